"""Objectives on batches: measured mask rates, shift, block supervision, warm-up, annealing,
and independence of the noise from how a batch is split."""

import pytest
import torch

from diffucode.diffusion.block import block_diffusion_mask
from diffucode.training.config import DiffusionConfig
from diffucode.training.objectives import ARObjective, BlockObjective, MDMObjective

MASK = 3


def batch(B, L, start=0, region=None):
    g = torch.Generator().manual_seed(123)
    ids = torch.randint(10, 50, (B + start, L), generator=g)[start:]
    out = {"input_ids": ids, "attention_mask": torch.ones(B, L, dtype=torch.long),
           "sample_ids": torch.arange(start, start + B)}
    if region is not None:
        out["loss_region"] = region
    return out


def test_mdm_measured_mask_rate_close_to_t():
    obj = MDMObjective(DiffusionConfig(), seed=0, mask_token_id=MASK, shift=True)
    prep = obj.prepare(batch(64, 512), step=100)
    masked, rate = prep.masked, prep.rate  # rate: t of each row broadcast over positions
    per_row = masked[:, 1:].float().mean(1)  # position 0 is never maskable (shift)
    t = rate[:, 0]
    # binomial std sqrt(t(1-t)/511) <= 0.022: 5 sigma
    assert (per_row - t).abs().max() < 0.11
    assert (per_row - t).abs().mean() < 0.03
    assert not masked[:, 0].any()  # shift model: first token never masked
    assert (prep.model_inputs["input_ids"][masked] == MASK).all()
    assert prep.weighted and prep.count.item() == 64 * 511  # normalised by supervisable tokens
    assert prep.model_inputs["attention_mode"] == "bidirectional" and "attn_mask_4d" not in prep.model_inputs


def test_mdm_annealing_mask_starts_causal_and_is_shared():
    obj = MDMObjective(DiffusionConfig(anneal_steps=10), seed=0, mask_token_id=MASK, shift=True)
    causal = torch.tril(torch.ones(16, 16, dtype=torch.bool))
    m0 = obj.prepare(batch(2, 16), step=0).model_inputs["attn_mask_4d"]
    assert m0.shape == (2, 1, 16, 16) and (m0 == causal).all()
    m5a = obj.prepare(batch(2, 16), step=5).model_inputs["attn_mask_4d"]
    m5b = obj.prepare(batch(3, 16, start=7), step=5).model_inputs["attn_mask_4d"]
    assert torch.equal(m5a[0, 0], m5b[0, 0])  # one pattern per step, whatever the rows
    opened = (m5a[0, 0] & ~causal).sum().item() / (~causal).sum().item()
    assert 0.3 < opened < 0.7  # p = 0.5
    assert "attn_mask_4d" not in obj.prepare(batch(2, 16), step=10).model_inputs  # annealing over
    assert "attn_mask_4d" not in obj.prepare(batch(2, 16), step=None).model_inputs  # eval: final objective


def test_noise_depends_on_sample_not_on_batch_split():
    for obj in (MDMObjective(DiffusionConfig(truncate_fraction=0.5, prefix_fraction=0.5), 0, MASK, True),
                BlockObjective(DiffusionConfig(), 0, MASK, False, block_len=4)):
        full = obj.prepare(batch(4, 24), step=3)
        part = obj.prepare(batch(2, 24, start=2), step=3)
        assert torch.equal(full.masked[2:], part.masked)
        assert torch.equal(full.model_inputs["input_ids"][2:], part.model_inputs["input_ids"])


def test_block_objective_layout_and_every_block_supervised():
    L, blk = 22, 4
    region = torch.ones(32, L, dtype=torch.bool)
    region[:, :6] = False  # a prompt
    obj = BlockObjective(DiffusionConfig(), seed=1, mask_token_id=MASK, shift=False, block_len=blk)
    prep = obj.prepare(batch(32, L, region=region), step=50)
    x = prep.model_inputs
    assert x["input_ids"].shape == (32, 2 * L)
    assert torch.equal(x["input_ids"][:, L:], prep.x0)  # clean half is x0
    assert x["position_ids"][0].tolist() == list(range(L)) * 2
    assert torch.equal(x["attn_mask_4d"], block_diffusion_mask(x["position_ids"][:, :L], L, blk))
    assert not prep.masked[:, :6].any()  # prompt never masked
    for start in range(0, L, blk):
        blk_region = region[:, start:start + blk].any(1)
        assert (prep.masked[:, start:start + blk].any(1) | ~blk_region).all()
    assert prep.rate.min() >= 1 / blk and prep.weighted  # u_blk >= 1/B -> weight <= B


def test_block_warmup_caps_the_rate_and_drops_the_weight():
    cfg = DiffusionConfig(mask_warmup_steps=100, mask_warmup_init=1e-3, block_truncate=False)
    obj = BlockObjective(cfg, seed=0, mask_token_id=MASK, shift=False, block_len=4)
    prep = obj.prepare(batch(64, 32), step=20)
    cap = 1e-3 + (1 - 1e-3) * 20 / 100
    assert not prep.weighted
    assert prep.rate.max() <= cap + 1e-6
    assert prep.count.item() == prep.masked.sum().item()  # warm-up: mean CE over the masked tokens
    assert prep.stats["mask_cap"] == pytest.approx(cap)
    after = obj.prepare(batch(64, 32), step=100)
    assert after.weighted and after.count.item() == 64 * 32


def test_block_per_block_time():
    obj = BlockObjective(DiffusionConfig(block_t_per="block"), seed=0, mask_token_id=MASK, shift=False, block_len=4)
    prep = obj.prepare(batch(2, 16), step=5)
    rates = prep.rate[0].view(4, 4)
    assert (rates == rates[:, :1]).all()  # constant within a block
    assert len(set(rates[:, 0].tolist())) > 1  # but drawn per block


def test_ar_objective_counts_targets():
    obj = ARObjective(DiffusionConfig(), seed=0, mask_token_id=MASK, shift=True)
    b = batch(2, 8)
    b["attention_mask"][1, 6:] = 0
    prep = obj.prepare(b, step=0)
    assert prep.count.item() == 7 + 5  # row 0: tokens 1..7; row 1: tokens 1..5
    assert prep.model_inputs["attention_mode"] == "causal" and prep.model_inputs["align"] is False


@pytest.mark.parametrize("kind", ["mdm", "block"])
def test_certainty_weight_adds_exactly_the_weighted_certainty_term(kind):
    from diffucode.diffusion.losses import certainty_loss
    from diffucode.models import build_tiny_model

    if kind == "mdm":
        model, _ = build_tiny_model(attention="bidirectional", shift=True, seed=1)
        make = lambda cfg: MDMObjective(cfg, seed=0, mask_token_id=model.mask_token_id, shift=True)
    else:
        model, _ = build_tiny_model(attention="block_causal", shift=False, block_len=4, seed=1)
        make = lambda cfg: BlockObjective(cfg, seed=0, mask_token_id=model.mask_token_id, shift=False, block_len=4)
    b = batch(3, 16)
    # make some masked predictions right, so the term is not trivially zero: targets = the model's own argmax
    base_obj = make(DiffusionConfig())
    prep = base_obj.prepare(b, step=None)
    with torch.no_grad():
        kw = {} if kind == "mdm" else {"logit_positions": torch.arange(16)}
        logits = model(**prep.model_inputs, **kw).logits
    prep.x0 = torch.where(prep.masked & (torch.arange(16) % 2 == 0), logits.argmax(-1), prep.x0)
    with torch.no_grad():
        base = base_obj.loss_sum(model, prep)
        term = certainty_loss(logits, prep.x0, prep.masked, 0.7)
        total = make(DiffusionConfig(certainty_weight=2.5, certainty_temperature=0.7)).loss_sum(model, prep)
    assert term.item() > 0
    assert total.item() == pytest.approx(base.item() + 2.5 * term.item(), rel=1e-5)
