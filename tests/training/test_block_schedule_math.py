"""The block-truncated schedule's math: the warm-up really starts easy under the shipped block
configs, the forced mask's real masking probability, and block and MDM losses on one scale.

Every expected number here is computed independently in the test (exact enumeration or a
numerical integral), and every Monte Carlo tolerance is derived from a measured or bounded
standard deviation (5 sigma), so the tests fail on the old behaviour (1/B floor overriding the
warm-up cap; 1/u_blk weighting over-counting the forced tokens), not on noise."""

import itertools
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from diffucode.config import load_config
from diffucode.diffusion.masking import force_one_mask_per_block
from diffucode.diffusion.schedules import forced_inclusion_probability, row_uniform, warmup_mask_cap
from diffucode.training.config import DiffusionConfig, TrainConfig
from diffucode.training.objectives import BlockObjective, MDMObjective

ROOT = Path(__file__).resolve().parents[2]
MASK = 3
V = 50  # vocabulary of the constant-logits stub model


def _rows(B, L, start=0, prompt=0):
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(10, V, (B, L), generator=g)
    batch = {"input_ids": ids, "attention_mask": torch.ones(B, L, dtype=torch.long),
             "sample_ids": torch.arange(start, start + B)}
    if prompt:
        region = torch.ones(B, L, dtype=torch.bool)
        region[:, :prompt] = False
        batch["loss_region"] = region
    return batch


def _pi(r: float, n: int) -> float:
    """P(a token of an n-token block is masked) by exact enumeration of the n coins and the pick."""
    total = 0.0
    for coins in itertools.product((0, 1), repeat=n):
        p = math.prod(r if c else 1 - r for c in coins)
        if coins[0]:
            total += p  # token 0 masked by its own coin
        elif not any(coins):
            total += p / n  # block empty: the forced mask picks token 0 with probability 1/n
    return total


def _expect_over_u(f, B: int, eps: float = 1e-3, n: int = 200001) -> float:
    """E over u ~ U(eps, 1) of f(u_blk), u_blk = max(u, 1/B): midpoint rule (error << 1e-4)."""
    u = eps + (1 - eps) * (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return float(f(u.clamp(min=1.0 / B)).mean())


# ----------------------------------------------------------------------------------------------
# 1. the warm-up under the shipped block configs
# ----------------------------------------------------------------------------------------------
BLOCK_CONFIGS = [p for p in sorted((ROOT / "configs").rglob("*.yaml"))
                 if "accelerate" not in p.parts and p.read_text().splitlines()[0].startswith("# diffucode train")
                 and "\nrecipe: block" in p.read_text()]


def test_found_the_shipped_block_configs():
    names = {str(p.relative_to(ROOT)) for p in BLOCK_CONFIGS}
    assert {"configs/nano/02_block.yaml", "configs/train/block_tiny.yaml", "configs/train/block_cpt.yaml"} <= names


@pytest.mark.parametrize("path", [p for p in BLOCK_CONFIGS if "mask_warmup_steps: 0" not in p.read_text()],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_warmup_starts_easy_under_shipped_block_config(path):
    cfg = load_config(TrainConfig, path)
    d, Bk = cfg.diffusion, cfg.model.block_len or 4
    assert d.block_truncate and d.mask_warmup_steps > 0
    obj = BlockObjective(d, seed=cfg.seed, mask_token_id=MASK, shift=False, block_len=Bk)
    L = min(cfg.max_seq_len, 256)
    rows = 256
    # the final schedule's expected mask rate (full blocks): E_u[pi(u_blk, B)]
    final = _expect_over_u(lambda r: r + (1 - r) ** Bk / Bk, Bk, d.eps)
    steps = sorted({0, 1, 2, d.mask_warmup_steps // 10})
    realised = []
    for s in steps:
        prep = obj.prepare(_rows(rows, L, start=1000 * s), step=s)
        cap = warmup_mask_cap(s, d.mask_warmup_steps, d.mask_warmup_init)
        rate = prep.masked.float().mean().item()
        realised.append(rate)
        assert prep.stats["mask_cap"] == pytest.approx(cap)  # the logged cap is the one in force...
        assert prep.rate.max().item() <= cap + 1e-7  # ...and no token is masked with a higher probability
        assert not prep.weighted and prep.count.item() == prep.masked.sum().item()  # unweighted warm-up loss
        # expected realised rate cap * final; the rows share u, so the row mean varies with
        # std <= cap * 0.5 / sqrt(rows) (pi lies in [1/B, 1]), plus the token coins' binomial noise
        sd = cap * 0.5 / math.sqrt(rows) + math.sqrt(cap * final / (rows * L))
        assert abs(rate - cap * final) < 5 * sd, (s, cap, rate, cap * final)
    assert realised[0] < 0.005  # the first step is easy (was ~0.33 with the 1/B floor overriding the cap)
    if len(steps) > 2:
        assert realised[0] < realised[-1]
    after = obj.prepare(_rows(rows, L, start=99), step=d.mask_warmup_steps)
    assert after.weighted and after.stats["mask_cap"] == 1.0
    assert abs(after.masked.float().mean().item() - final) < 5 * (0.5 / math.sqrt(rows) + math.sqrt(final / (rows * L)))


# ----------------------------------------------------------------------------------------------
# 2. the forced mask's masking probability and unbiased weights
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("r,n", [(0.25, 4), (0.3, 3), (0.6, 2), (0.25, 1), (1.0, 4)])
def test_forced_inclusion_probability_matches_enumeration_and_sampling(r, n):
    blocks = torch.zeros(1, n, dtype=torch.long)
    maskable = torch.ones(1, n, dtype=torch.bool)
    got = forced_inclusion_probability(torch.full((1, n), r), maskable, blocks)
    assert torch.allclose(got, torch.full((1, n), _pi(r, n), dtype=torch.float32), atol=1e-6)
    # ...and it is the frequency the real masking code produces
    N = 20000
    u = row_uniform(5, range(N), n, 2)
    masked = (u < r) & maskable
    forced = force_one_mask_per_block(masked, maskable.expand(N, n), n, row_uniform(5, range(N), n, 3))
    freq = forced.float().mean(0)
    sd = math.sqrt(_pi(r, n) * (1 - _pi(r, n)) / N) + 1e-9
    assert (freq - _pi(r, n)).abs().max() < 5 * sd + 1e-6


def test_inclusion_probability_counts_only_maskable_tokens_of_each_block():
    # block 0: 2 maskable (prompt in front), block 1: 4 maskable, block 2: partial block of 1
    blocks = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1, 2]])
    maskable = torch.tensor([[False, False, True, True, True, True, True, True, True]])
    got = forced_inclusion_probability(torch.full((1, 9), 0.4), maskable, blocks)[0]
    assert got[2].item() == pytest.approx(_pi(0.4, 2), abs=1e-6)
    assert got[4].item() == pytest.approx(_pi(0.4, 4), abs=1e-6)
    assert got[8].item() == pytest.approx(_pi(0.4, 1), abs=1e-6) == 1.0  # a lone token is always masked


class ConstantLM:
    """Stub model: all-zero logits, so every supervised token costs exactly ln V. A loss is then
    ln V times the expected weighted token count per supervisable token."""

    def __call__(self, input_ids, logit_positions=None, **kw):
        q = input_ids.shape[1] if logit_positions is None else len(logit_positions)
        return SimpleNamespace(logits=torch.zeros(input_ids.shape[0], q, V))


def _loss_per_row(obj, rows, L, prompt=0):
    """Per-row losses (sum / supervisable tokens) of the final objective (step=None). The batch
    total goes through the objective's own loss_sum; the per-row split (for the spread) uses that
    with a constant model every supervised token costs ln V, checked against the total."""
    out = []
    for start in range(0, rows, 500):
        prep = obj.prepare(_rows(500, L, start=start, prompt=prompt), step=None)
        w = torch.where(prep.masked, 1.0 / prep.rate.double(), torch.zeros((), dtype=torch.float64))
        if not prep.weighted:
            w = prep.masked.double()
        per_row = math.log(V) * w.sum(1) / (L - prompt)
        total = obj.loss_sum(ConstantLM(), prep).item() / (L - prompt)
        assert total == pytest.approx(per_row.sum().item(), rel=1e-5)
        out.append(per_row)
    return torch.cat(out)


def test_block_and_mdm_losses_are_on_one_scale():
    """Same (constant) model, same tokens: the MDM loss, the block loss and the block loss with a
    prompt and partial blocks all estimate ln V per token; the paper's literal 1/u_blk weighting
    does not (its expectation, integrated here independently, is ~1.11 ln V at B = 4)."""
    lnV = math.log(V)
    L, rows = 18, 2000
    losses = {
        # eps 0.1 only narrows the spread of 1/t (E[masked / t] = 1 for any eps)
        "mdm": _loss_per_row(MDMObjective(DiffusionConfig(eps=0.1), 0, MASK, False), rows, L),
        "block": _loss_per_row(BlockObjective(DiffusionConfig(), 0, MASK, False, block_len=4), rows, L),
        "block_prompt": _loss_per_row(BlockObjective(DiffusionConfig(), 0, MASK, False, block_len=4), rows, L, prompt=3),
        "block8": _loss_per_row(BlockObjective(DiffusionConfig(), 0, MASK, False, block_len=8), rows, 16),
        "literal": _loss_per_row(BlockObjective(DiffusionConfig(block_weight="literal"), 0, MASK, False, block_len=4), rows, 16),
    }
    for name, x in losses.items():
        # tolerance: 5 standard errors of the mean, from the measured spread of the per-row losses
        tol = 5 * x.std().item() / math.sqrt(len(x))
        target = lnV
        if name == "literal":  # E[pi / u_blk] over u, full blocks of 4
            target = lnV * _expect_over_u(lambda r: 1 + (1 - r) ** 4 / (4 * r), 4)
            assert target / lnV == pytest.approx(1.11, abs=0.01)
        assert abs(x.mean().item() - target) < tol, (name, x.mean().item(), target, tol)
        if name != "mdm":
            assert tol < 0.4 * 0.11 * lnV  # the literal form's 11% bias is > 2.5 tolerances away
