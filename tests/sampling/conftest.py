"""Fixtures for the decoding tests: tiny models and a slow, obviously-correct reference decoder.

The reference decoder follows ALGORITHMS.md section 2 line by line for ONE row: it runs the
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


@pytest.fixture(scope="session")
def dream_model():
    """Bidirectional, shifted logits (Dream / DiffuCoder layout)."""
    return _tiny(attention="bidirectional", shift=True, seed=0)


@pytest.fixture(scope="session")
def llada_model():
    """Bidirectional, no shift (LLaDA layout)."""
    return _tiny(attention="bidirectional", shift=False, arch="llama", seed=1)


@pytest.fixture(scope="session")
def sharp_model():
    """Dream layout with a scaled output head, so some predictions are confident (threshold tests)."""
    model, tok = _tiny(attention="bidirectional", shift=True, seed=2)
    with torch.no_grad():
        model.backbone.lm_head.weight.mul_(60.0)
    return model, tok


@pytest.fixture(scope="session")
def block_model():
    """Block-causal, block 4, no shift (Stable-DiffCoder / SDAR layout)."""
    return _tiny(attention="block_causal", block_len=4, shift=False, arch="llama", seed=3)


@pytest.fixture(scope="session")
def block_shift_model():
    """Block-causal with shifted logits (an AR model adapted to block diffusion, DiffuCoder-style)."""
    model, tok = _tiny(attention="block_causal", block_len=4, shift=True, seed=4)
    with torch.no_grad():
        model.backbone.lm_head.weight.mul_(25.0)
    return model, tok


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


def _top_n(scores: list[float], n: int) -> list[int]:
    return sorted(range(len(scores)), key=lambda k: (-scores[k], k))[:n]


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
                else:
                    tokens = [int(torch.argmax(p)) for p in probs]
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
                    tokens = (z.double().exp() / (-torch.log(u)) ** T).argmax(-1).tolist()
                else:
                    tokens = z.argmax(-1).tolist()
                probs = torch.softmax(z, -1)
                p_tok = [float(probs[k, tokens[k]]) for k in range(m)]
                score = torch.rand(m, generator=gen).tolist() if cfg.alg == "random" else p_tok
            last = i == spb - 1
            if cfg.alg == "origin" and cfg.threshold is None:
                if last:
                    chosen = list(range(m))
                else:
                    u = torch.rand(m, generator=gen)
                    chosen = [k for k in range(m) if bool(u[k] < (1 - ts[i + 1] / ts[i]))]
            else:
                if cfg.alg_temp > 0:
                    u = torch.rand(m, dtype=torch.float64, generator=gen).clamp_min(torch.finfo(torch.float64).tiny)
                    score = [score[k] / cfg.alg_temp - math.log(-math.log(float(u[k]))) for k in range(m)]
                if cfg.threshold is not None:
                    best = _top_n(score, 1)[0]
                    chosen = [k for k in range(m) if k == best or p_tok[k] >= cfg.threshold]
                    if cfg.threshold_floor == "schedule":  # ... and at least the schedule's count
                        n = m if last else (int(torch.tensor(float(m)) * (1 - ts[i + 1] / ts[i])) if dream
                                            else base + (1 if i < rem else 0))
                        chosen = sorted(set(chosen) | set(_top_n(score, n)))
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
