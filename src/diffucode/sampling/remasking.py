"""Remasking rules: the pure math of which masked positions a diffusion sampler reveals, and with
which token (docs/ALGORITHMS.md section 2). No model, no I/O; every function works on plain tensors.

    python -c "from diffucode.sampling.remasking import dream_schedule; print(dream_schedule(256, 256))"

Token sampling (shared by every algorithm): logits / temperature, then top-p (keeping at least
one token), then top-k, then softmax; temperature 0 means argmax. Confidence scores are read
from that processed distribution:

- Dream family (``origin``, ``maskgit_plus``, ``topk_margin``, ``entropy``): the timestep
  schedule ``ts = linspace(1, eps, steps + 1)``; ``origin`` reveals each masked position with
  probability ``1 - s/t``; the others reveal the ``int(masked * (1 - s/t))`` best-scored
  positions (all that remain at the last step). ``alg_temp > 0`` draws those positions without
  replacement from ``softmax(score / alg_temp)``.
- LLaDA family (``low_confidence``, ``random``): tokens by Gumbel-max in float64 at
  ``temperature``; ``low_confidence`` scores the softmax probability of the chosen token,
  ``random`` a uniform draw; per block, ``masked // steps`` per step with the remainder given
  one each to the first steps.
- Confidence threshold (Fast-dLLM): reveal every candidate whose chosen-token probability is
  at least ``tau``, and always the single best-scored one (the engine adds the schedule's
  count as a floor, see ``GenerationConfig.threshold_floor``).

Departures from the reference code (all exact in distribution, none in greedy output):

- Dream samples with ``torch.distributions.Categorical`` on the global RNG; here
  ``torch.multinomial`` with an explicit ``torch.Generator`` (reproducible per call).
- ``alg_temp``: Dream calls ``torch.multinomial(softmax(score / alg_temp), n)`` without
  replacement; here the Gumbel-top-k trick (``score / alg_temp + Gumbel`` then the top ``n``),
  which is the same distribution, vectorised over rows with different ``n``.
- Dream's transfer count uses the *batch mean* of masked positions; here the count is per row.
  The two are identical whenever every row has the same number of masks (always true in the
  reference, which has no per-row early stop); per row keeps a batched call equal to row-by-row.
- The Dream timesteps are computed in float32 on the CPU, so the per-step counts do not depend
  on the device (``linspace`` on CUDA can differ in the last bit and flip an ``int()``).
- The threshold compares the probability of the chosen token with ``tau`` for every algorithm
  (for ``entropy`` the score itself is a negative entropy, not a probability); the always-one
  fallback picks the best position by the algorithm's own score.
"""

from __future__ import annotations

import torch

from diffucode.sampling.algorithms import ALGORITHMS, DREAM_ALGS, LLADA_ALGS  # noqa: F401 (re-exported)

# Dream's score for each score-based algorithm (origin has none; threshold mode uses "prob").
_DREAM_SCORE = {"origin": "prob", "maskgit_plus": "prob", "topk_margin": "margin", "entropy": "neg_entropy"}


# ---------------------------------------------------------------------------------------------
# token sampling
# ---------------------------------------------------------------------------------------------
def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filter on ``[N, V]`` logits: keep the smallest set of most likely tokens whose
    probability reaches ``top_p`` (always at least the top one); the rest get the dtype's min."""
    sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=True)
    cum = torch.softmax(sorted_logits, dim=-1).cumsum(-1)  # [N, V]
    remove = cum > top_p
    # shift right: the token that crosses top_p is kept, and the first token always is
    remove[..., 1:] = remove[..., :-1].clone()
    remove[..., 0] = False
    mask = torch.zeros_like(remove).scatter_(-1, sorted_idx, remove)
    return logits.masked_fill(mask, torch.finfo(logits.dtype).min)


def top_k_filter(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Keep the ``top_k`` largest logits of each row (ties with the k-th are kept)."""
    top_k = min(int(top_k), logits.size(-1))
    kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # [N, 1]
    return logits.masked_fill(logits < kth, torch.finfo(logits.dtype).min)


def filter_logits(logits: torch.Tensor, top_p: float | None = None, top_k: int | None = None) -> torch.Tensor:
    """top-p then top-k (the reference order); ``None`` (or top_p >= 1) disables a filter."""
    if top_p is not None and top_p < 1:
        logits = top_p_filter(logits, top_p)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    return logits


def sample_tokens(
    logits: torch.Tensor,  # [N, V]
    temperature: float = 0.0,
    top_p: float | None = None,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dream-style sampling. Returns ``(tokens [N], probs [N, V])`` where ``probs`` is the
    processed distribution (temperature, top-p, top-k) the confidence scores are read from."""
    if temperature > 0:
        logits = logits / temperature
    logits = filter_logits(logits, top_p, top_k)
    probs = torch.softmax(logits, dim=-1)
    if temperature > 0 and probs.shape[0] > 0:
        tokens = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    else:
        tokens = probs.max(dim=-1).indices
    return tokens, probs


def gumbel_argmax(
    logits: torch.Tensor, temperature: float = 0.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """LLaDA's sampler: ``argmax(exp(logits) / (-log u)^temperature)`` in float64, which is an
    exact draw from ``softmax(logits / temperature)``; temperature 0 is plain argmax. ``[N, V] -> [N]``."""
    if temperature == 0 or logits.shape[0] == 0:
        return logits.argmax(dim=-1)
    logits64 = logits.to(torch.float64)
    u = torch.rand(logits64.shape, dtype=torch.float64, device=logits.device, generator=generator)
    gumbel = (-torch.log(u)) ** temperature
    return (logits64.exp() / gumbel).argmax(dim=-1)


def confidence(probs: torch.Tensor, tokens: torch.Tensor, kind: str) -> torch.Tensor:
    """Score of each position (higher = surer). ``probs [N, V]``, ``tokens [N]`` -> ``[N]``.

    ``prob``: probability of the chosen token (maskgit_plus, low_confidence);
    ``margin``: p(top1) - p(top2) (topk_margin); ``neg_entropy``: sum p log p (entropy)."""
    if kind == "prob":
        return probs.gather(-1, tokens[:, None]).squeeze(-1)
    if kind == "margin":
        top2 = torch.topk(probs, min(2, probs.shape[-1]), dim=-1).values  # [N, 2]
        return top2[:, 0] - top2[:, -1] if top2.shape[-1] == 2 else top2[:, 0]
    if kind == "neg_entropy":
        return (probs * torch.log(probs + 1e-10)).sum(-1)
    raise ValueError(f"unknown confidence kind {kind!r}; choose prob, margin or neg_entropy")


def dream_score_kind(alg: str) -> str:
    """The confidence kind Dream's algorithm ``alg`` ranks by."""
    if alg not in _DREAM_SCORE:
        raise ValueError(f"{alg!r} is not a Dream algorithm ({', '.join(DREAM_ALGS)})")
    return _DREAM_SCORE[alg]


# ---------------------------------------------------------------------------------------------
# schedules
# ---------------------------------------------------------------------------------------------
def dream_timesteps(steps: int, eps: float = 1e-3) -> torch.Tensor:
    """``linspace(1, eps, steps + 1)`` in float32 on the CPU; step ``i`` goes from ``ts[i]`` to ``ts[i+1]``."""
    return torch.linspace(1, eps, steps + 1, dtype=torch.float32)


def dream_transfer_counts(num_masked: torch.Tensor, t: torch.Tensor, s: torch.Tensor, last: bool) -> torch.Tensor:
    """Dream's per-step count for each row: ``int(masked * (1 - s/t))``, all remaining at the last
    step. ``num_masked [B]`` long -> ``[B]`` long. The product is taken in float32 as in the reference."""
    if last:
        return num_masked.clone()
    frac = (1 - s / t).to(torch.float32)  # 0-dim float32, exactly as the reference computes it
    return (num_masked.to(torch.float32) * frac.to(num_masked.device)).to(torch.long)


def dream_schedule(num_tokens: int, steps: int, eps: float = 1e-3) -> list[int]:
    """The number revealed at each step when every step reveals its scheduled count.

    ``dream_schedule(256, 256) == [0, 1, 1, ..., 1, 2]``: at step 0 ``1 - s/t = (1-eps)/256``
    and ``256 * 0.999/256 < 1`` truncates to 0; the last step takes the two that remain."""
    ts = dream_timesteps(steps, eps)
    masked = torch.tensor([num_tokens])
    out = []
    for i in range(steps):
        n = dream_transfer_counts(masked, ts[i], ts[i + 1], last=i == steps - 1)
        out.append(int(n))
        masked = masked - n
    return out


def llada_transfer_schedule(num_masked: torch.Tensor, steps: int) -> torch.Tensor:
    """LLaDA's even split of each row's masked count over ``steps``: ``[B] -> [B, steps]``;
    ``masked // steps`` per step, the remainder one each to the first steps."""
    num_masked = num_masked.to(torch.long)
    base = num_masked // steps  # [B]
    rem = num_masked % steps  # [B]
    step = torch.arange(steps, device=num_masked.device)  # [steps]
    return base[:, None] + (step[None, :] < rem[:, None]).long()


# ---------------------------------------------------------------------------------------------
# selection
# ---------------------------------------------------------------------------------------------
def gumbel_perturb(scores: torch.Tensor, alg_temp: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``scores / alg_temp + Gumbel noise`` (float64): taking the top-n of the result draws n
    positions without replacement from ``softmax(scores / alg_temp)`` (the Gumbel-top-k trick).
    Pass one row's candidate scores; -inf stays -inf."""
    u = torch.rand(scores.shape, dtype=torch.float64, device=scores.device, generator=generator)
    u = u.clamp_min(torch.finfo(torch.float64).tiny)  # log(0) guard
    return scores.to(torch.float64) / alg_temp - torch.log(-torch.log(u))


def select_top(scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Per row, mark the ``counts[b]`` highest ``scores`` (``[B, N]``, ``[B]`` -> bool ``[B, N]``).
    Ties break towards the lower index. Rows ask for at most their number of finite scores."""
    order = torch.argsort(scores, dim=-1, descending=True, stable=True)  # [B, N]
    ranks = torch.empty_like(order).scatter_(-1, order, torch.arange(scores.shape[-1], device=scores.device).expand_as(order))
    return ranks < counts.to(scores.device)[:, None]


def select_threshold(
    scores: torch.Tensor,  # [B, N] rank score, -inf where not a candidate
    probs: torch.Tensor,  # [B, N] probability of the chosen token
    candidates: torch.Tensor,  # [B, N] bool
    threshold: float,
) -> torch.Tensor:
    """Fast-dLLM parallel decoding: every candidate with ``probs >= threshold``, plus the best
    candidate of each row by ``scores``, so a row with candidates always reveals at least one."""
    best = select_top(scores, candidates.any(-1).long())  # [B, N] one per row with candidates
    return candidates & ((probs >= threshold) | best)


def select_origin(
    num_candidates: int, t: torch.Tensor, s: torch.Tensor, last: bool,
    generator: torch.Generator | None = None, device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Dream ``origin`` for one row: each of its ``num_candidates`` masked positions is revealed
    independently with probability ``1 - s/t`` (1 at the last step). Returns bool ``[num_candidates]``."""
    if last:
        return torch.ones(num_candidates, dtype=torch.bool, device=device)
    p = (1 - s / t).to(torch.float32)
    u = torch.rand(num_candidates, device=device, generator=generator)
    return u < p.to(device)


def select_capped_threshold(
    scores: torch.Tensor,  # [B, N] probability of the chosen token, -inf where not a candidate
    cap: torch.Tensor,  # [B] long: how many of the best may be revealed this step
    threshold: float,
) -> torch.Tensor:
    """Fast-dLLM's no-cache ``confidence_threshold`` for Dream: of the ``cap`` best candidates, the
    best is always revealed and the others only if their score is >= ``threshold``. Bool ``[B, N]``;
    ties break towards the lower index (as in :func:`select_top`)."""
    order = torch.argsort(scores, dim=-1, descending=True, stable=True)  # [B, N]
    ranks = torch.empty_like(order).scatter_(-1, order, torch.arange(scores.shape[-1], device=scores.device).expand_as(order))
    finite = torch.isfinite(scores)
    in_cap = ranks < cap.to(scores.device)[:, None]
    return finite & in_cap & ((ranks == 0) | (scores >= threshold))
