"""Fixtures for the decoding tests: tiny models and a slow, obviously-correct reference decoder.

The reference decoder follows docs/ALGORITHMS.md section 2 line by line for ONE row: it runs the
model on the whole canvas at every step (no cache, no batching, no padding), reads the model's
own aligned logits, and picks positions with plain Python sorting. Random draws follow the
engine's documented protocol (per step: tokens, then `random` scores, then alg_temp noise or
origin coins, all from the row's generator), so seeded runs can be compared token for token.
"""

import math

import pytest
import torch

from diffucode.models import build_tiny_model
from diffucode.sampling.remasking import DREAM_ALGS


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny models on a shared 2-core machine: a second intra-op thread mostly spins (35x slower here)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _tiny(**kw):
    kw.setdefault("hidden_size", 32)
    kw.setdefault("num_layers", 2)
    model, tok = build_tiny_model(**kw)
    return model, tok


def _separated(model, gain: float = 12.0):
    """Scale every weight matrix by ``gain``. At the default init (std 0.02) the attention scores
    are ~0, so every masked position sees the same uniform mix and predicts almost the same
    distribution: the positions' scores then tie to ~1e-6 and the reveal order is decided by float
    rounding (different for the batched engine and the one-row reference, and across thread
    counts). With larger weights the positions' predictions differ; the fixtures' seeds are chosen
    so that every decision of every reference case is separated by >= 2e-4 (TIE_TOL below is 1e-4,
    float noise is ~1e-6), which ``reference_decode`` re-checks on every run."""
    with torch.no_grad():
        for p in model.backbone.parameters():
            if p.dim() == 2:
                p.mul_(gain)
    return model


@pytest.fixture(scope="session")
def dream_model():
    """Bidirectional, shifted logits (Dream / DiffuCoder layout)."""
    model, tok = _tiny(attention="bidirectional", shift=True, seed=0)
    return _separated(model), tok


@pytest.fixture(scope="session")
def llada_model():
    """Bidirectional, no shift (LLaDA layout)."""
    model, tok = _tiny(attention="bidirectional", shift=False, arch="llama", seed=1)
    return _separated(model), tok


@pytest.fixture(scope="session")
def sharp_model():
    """Dream layout with a scaled output head, so some predictions are confident (threshold tests)."""
    model, tok = _tiny(attention="bidirectional", shift=True, seed=8)  # seed: no near-ties (see _separated)
    with torch.no_grad():
        model.backbone.lm_head.weight.mul_(60.0)
    return model, tok


@pytest.fixture(scope="session")
def block_model():
    """Block-causal, block 4, no shift (Stable-DiffCoder / SDAR layout)."""
    model, tok = _tiny(attention="block_causal", block_len=4, shift=False, arch="llama", seed=5)
    return _separated(model), tok


@pytest.fixture(scope="session")
def block_shift_model():
    """Block-causal with shifted logits (an AR model adapted to block diffusion, DiffuCoder-style)."""
    model, tok = _tiny(attention="block_causal", block_len=4, shift=True, seed=6)
    return _separated(model), tok


class EosAfter(torch.nn.Module):
    """Test double: the wrapped model, except that the end-of-text token becomes by far the most
    likely prediction for every position whose position id is >= ``cut``."""

    def __init__(self, inner, cut: int, boost: float = 60.0):
        super().__init__()
        self.inner, self.cut, self.boost = inner, cut, boost
        for name in ("mask_token_id", "eos_token_id", "pad_token_id", "attention", "shift", "block_len"):
            setattr(self, name, getattr(inner, name))

    @property
    def backbone(self):
        return self.inner.backbone

    @property
    def device(self):
        return self.inner.device

    @property
    def max_seq_len(self):
        return self.inner.max_seq_len

    def forward(self, input_ids, attention_mask=None, position_ids=None, align=True, **kw):
        out = self.inner(input_ids, attention_mask=attention_mask, position_ids=position_ids, align=align, **kw)
        assert position_ids is not None, "the engine always passes position ids"
        # which position each logit row predicts: raw outputs of shift models predict the next one
        predicted = position_ids + (1 if (self.shift and not align) else 0)
        if kw.get("logit_positions") is not None:  # logits of those call positions only
            predicted = predicted[:, kw["logit_positions"]]
        out.logits[..., self.eos_token_id] += self.boost * (predicted >= self.cut).float()
        return out


@pytest.fixture
def eos_after():
    return EosAfter


# ---------------------------------------------------------------------------------------------
# the reference decoder
# ---------------------------------------------------------------------------------------------
def _filter_row(z: torch.Tensor, top_p, top_k) -> torch.Tensor:
    """top-p then top-k on one row of logits, by plain Python over the sorted list."""
    z = z.clone()
    lowest = torch.finfo(z.dtype).min
    if top_p is not None and top_p < 1:
        probs = torch.softmax(z, -1).tolist()
        ranked = sorted(range(len(probs)), key=lambda v: -z[v].item())
        before = 0.0  # probability mass strictly before this token in the ranking
        for v in ranked:
            if before > top_p:
                z[v] = lowest
            before += probs[v]
    if top_k is not None:
        kth = sorted(z.tolist(), reverse=True)[min(top_k, z.numel()) - 1]
        z[z < kth] = lowest
    return z


# The explicit tie rule. The engine (batched, cached, vectorised) and this loop compute the same
# scores up to float rounding (~1e-6, and it moves with the thread count), so a decision between
# two candidates closer than that is decided by rounding, not by the algorithm: comparing orders
# there would be a coin toss. Every decision the reference takes (which positions to reveal, which
# token greedy decoding picks, which side of a threshold or an origin coin a value falls) must
# therefore be separated by at least TIE_TOL, or the reference refuses to answer. The test models
# are built so that this holds with a wide margin (see _separated); a fixture that drifts into
# near-ties fails loudly here instead of flaking.
TIE_TOL = 1e-4


class NearTie(AssertionError):
    pass


def _check_gap(gap: float, what: str):
    if gap < TIE_TOL:
        raise NearTie(f"near-tie in {what}: gap {gap:.3g} < {TIE_TOL}; the comparison would depend on float rounding")


def _top_n(scores: list[float], n: int, sure=frozenset()) -> list[int]:
    """The n best positions (ties to the lower index). The last chosen and the first left out must
    be told apart, unless every position near that cut is in ``sure`` (chosen anyway, e.g. above a
    confidence threshold), in which case the tie cannot change the result."""
    ranked = sorted(range(len(scores)), key=lambda k: (-scores[k], k))
    if 0 < n < len(scores):
        hi, lo = scores[ranked[n - 1]], scores[ranked[n]]
        near = [k for k in range(len(scores)) if lo - TIE_TOL < scores[k] < hi + TIE_TOL and k not in sure]
        if near:
            _check_gap(hi - lo, "position selection")
    return ranked[:n]


def _argmax_checked(row: torch.Tensor, what: str) -> int:
    """argmax of one row of (log-)scores, refusing a near-tie between the two best."""
    top2 = torch.topk(row.double(), 2).values
    if torch.isfinite(top2[1]):
        _check_gap(float(top2[0] - top2[1]), what)
    return int(torch.argmax(row))


def reference_decode(model, prompt: list[int], cfg, gen=None, suffix=(), block_causal: bool = False):
    """Decode one row. Returns (completion ids [L], order [L], steps)."""
    M = model.mask_token_id
    L = cfg.max_new_tokens
    P = len(prompt)
    x = torch.tensor(list(prompt) + [M] * L + list(suffix))
    if block_causal:  # the model's own blocks, aligned from position 0; the first one may be partial
        Bk = model.block_len
        blocks = [(k * Bk, min((k + 1) * Bk, P + L)) for k in range(P // Bk, math.ceil((P + L) / Bk))]
        spb = max(1, math.ceil(cfg.num_steps * Bk / L))  # (unused with threshold_floor "one")
    else:
        bl = cfg.block_len or L
        blocks = [(P + k * bl, P + (k + 1) * bl) for k in range(L // bl)]
        spb = cfg.num_steps // len(blocks)
    dream = cfg.alg in DREAM_ALGS
    T = cfg.temperature
    order = torch.zeros(P + L + len(suffix), dtype=torch.long)
    step = 0
    for bs, be in blocks:
        first_masked = sum(int(x[j] == M) for j in range(bs, be))
        if first_masked == 0:
            continue
        base, rem = divmod(first_masked, spb)
        ts = torch.linspace(1, cfg.eps, spb + 1)
        i = 0
        while any(int(x[j]) == M for j in range(bs, be)):
            with torch.no_grad():
                logits = model(x[None]).logits[0]  # [W, V] aligned: row j is the distribution of token j
            cands = [j for j in range(bs, be) if int(x[j]) == M]
            m = len(cands)
            rows = logits[cands].clone()  # [m, V]
            rows[:, M] = float("-inf")  # the mask token is never a proposal
            if dream:
                z = rows / T if T > 0 else rows
                probs = torch.softmax(torch.stack([_filter_row(r, cfg.top_p, cfg.top_k) for r in z]), -1)
                if T > 0:
                    tokens = torch.multinomial(probs, 1, generator=gen).squeeze(-1).tolist()
                else:  # greedy: the two best logits must be apart (compared in log space)
                    tokens = [_argmax_checked(torch.log(p), "greedy token") for p in probs]
                p_tok = [float(probs[k, tokens[k]]) for k in range(m)]
                if cfg.alg == "topk_margin":
                    score = [float(torch.sort(p, descending=True).values[0] - torch.sort(p, descending=True).values[1]) for p in probs]
                elif cfg.alg == "entropy":
                    score = [float((p * torch.log(p + 1e-10)).sum()) for p in probs]
                else:
                    score = p_tok
            else:
                z = torch.stack([_filter_row(r, cfg.top_p, cfg.top_k) for r in rows])
                if T > 0:  # Gumbel-max in float64, LLaDA's add_gumbel_noise
                    u = torch.rand(z.shape, dtype=torch.float64, generator=gen)
                    g = (z.double().exp() / (-torch.log(u)) ** T).log()
                    tokens = [_argmax_checked(r, "Gumbel-max token") for r in g]
                else:
                    tokens = [_argmax_checked(r, "greedy token") for r in z]
                probs = torch.softmax(z, -1)
                p_tok = [float(probs[k, tokens[k]]) for k in range(m)]
                score = torch.rand(m, generator=gen).tolist() if cfg.alg == "random" else p_tok
            last = i == spb - 1
            if cfg.alg == "origin" and cfg.threshold is None:
                if last:
                    chosen = list(range(m))
                else:
                    u = torch.rand(m, generator=gen)
                    cut = 1 - ts[i + 1] / ts[i]
                    for k in range(m):
                        _check_gap(abs(float(u[k] - cut)), "origin coin")
                    chosen = [k for k in range(m) if bool(u[k] < cut)]
            else:
                if cfg.alg_temp > 0:
                    u = torch.rand(m, dtype=torch.float64, generator=gen).clamp_min(torch.finfo(torch.float64).tiny)
                    score = [score[k] / cfg.alg_temp - math.log(-math.log(float(u[k]))) for k in range(m)]
                if cfg.threshold is not None:
                    sure = {k for k in range(m) if p_tok[k] >= cfg.threshold}
                    if cfg.threshold_floor == "schedule":  # every sure one and at least the schedule's count
                        n = m if last else (int(torch.tensor(float(m)) * (1 - ts[i + 1] / ts[i])) if dream
                                            else base + (1 if i < rem else 0))
                        floor = set(_top_n(score, n, sure))
                        for k in range(m):
                            if k not in floor:
                                _check_gap(abs(p_tok[k] - cfg.threshold), "confidence threshold")
                        chosen = sorted(sure | floor)
                    else:  # Fast-dLLM: every sure one, and always the best one
                        best = _top_n(score, 1, sure)[0]
                        for k in range(m):
                            if k != best:
                                _check_gap(abs(p_tok[k] - cfg.threshold), "confidence threshold")
                        chosen = [k for k in range(m) if k == best or k in sure]
                else:
                    if dream:
                        n = m if last else int(torch.tensor(float(m)) * (1 - ts[i + 1] / ts[i]))
                    else:
                        n = base + (1 if i < rem else 0)
                    chosen = _top_n(score, n)
            step += 1
            i += 1
            for k in chosen:
                x[cands[k]] = tokens[k]
                order[cands[k]] = step
    return x[P:P + L].tolist(), order[P:P + L].tolist(), step


@pytest.fixture
def reference():
    return reference_decode
