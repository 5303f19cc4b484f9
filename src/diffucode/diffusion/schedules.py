"""Noise schedules for masked- and block-diffusion training (docs/ALGORITHMS.md section 3).

    python -c "from diffucode.diffusion.schedules import warmup_mask_cap; print(warmup_mask_cap(50, 100))"

Everything here is a pure function of its arguments. The one source of randomness the
training objectives use is :func:`row_uniform`: uniforms drawn from a generator seeded by
``(seed, sample id, stream)``. The noise applied to a training sequence is therefore a function
of *which* sequence it is, not of how the global batch was split over processes and
gradient-accumulation micro-batches, nor of what ran before. That is what makes a 2-process run
equal a 1-process run with the same global batch, and a resumed run equal an uninterrupted one.

Schedules (linear: a token is masked with probability ``t``):

* MDM (LLaDA / DiffuCoder): ``t ~ U(eps, 1)`` per sequence, weight ``1/t``.
* Block-truncated (Stable-DiffCoder): ``u_blk = min(1, max(u, 1/B))`` per block, at least one
  masked token per block. Weight: ``1/pi`` with ``pi`` the token's real masking probability
  including the forced mask (:func:`forced_inclusion_probability`), which keeps the loss an
  unbiased per-token estimate on the MDM scale; the paper's literal ``1/u_blk`` over-counts by
  ~11% at ``B = 4`` (``diffusion.block_weight=literal`` keeps it).
* Mask-rate warm-up (Stable-DiffCoder): during the first ``S`` steps ``t ~ U(0, u_max(s))`` with
  ``u_max(s) = u_init + (1 - u_init) * s / S`` and no ``1/t`` weight. With the block-truncated
  schedule the cap is applied last, as a thinning (:func:`warmup_keep`): see there for why.
* Attention-mask annealing (DiffuCoder's AR -> diffusion adaptation): the fraction of future
  keys a query may see grows linearly from 0 to 1 over ``N`` steps.
"""

from __future__ import annotations

from typing import Sequence

import torch

_MASK64 = (1 << 64) - 1

# Stream ids: independent random streams per sample, so adding a new draw never shifts the
# others (and a change in one objective cannot silently change another's noise).
STREAM_T = 1  # the per-sequence time t (or u)
STREAM_TOKENS = 2  # per-token uniforms compared with t
STREAM_PICK = 3  # per-token scores used to pick the forced mask of an empty block
STREAM_TRUNCATE = 4  # DiffuCoder's random truncation: (select, length)
STREAM_PREFIX = 5  # DiffuCoder's clean prefix: (select, length)
STREAM_BLOCK_T = 6  # per-block u when block_t_per == "block"
STREAM_SFT_EOS = 7  # number of EOS appended to an SFT response
STREAM_ANNEAL = 8  # the annealed attention mask of an optimiser step
STREAM_WARMUP_KEEP = 9  # block warm-up: per-token uniforms thinning the truncated schedule's mask


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def mix_seed(*parts: int) -> int:
    """Hash integers into one 63-bit seed (splitmix64); equal inputs give equal seeds."""
    x = 0x2545F4914F6CDD1D
    for p in parts:
        x = _splitmix64(x ^ (int(p) & _MASK64))
    return x & ((1 << 63) - 1)


def seeded_generator(*parts: int) -> torch.Generator:
    """A CPU generator seeded with ``mix_seed(*parts)``."""
    g = torch.Generator()
    g.manual_seed(mix_seed(*parts))
    return g


def row_uniform(
    seed: int,
    sample_ids: Sequence[int] | torch.Tensor,  # [B] global ids of the sequences in the batch
    n: int,
    stream: int,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``[B, n]`` uniforms in [0, 1); row ``b`` depends only on ``(seed, sample_ids[b], stream)``."""
    if isinstance(sample_ids, torch.Tensor):
        sample_ids = sample_ids.tolist()
    rows = [torch.rand(n, generator=seeded_generator(seed, int(s), stream)) for s in sample_ids]
    out = torch.stack(rows) if rows else torch.empty(0, n)
    return out.to(device) if device is not None else out


def mdm_time(u: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``t = eps + (1 - eps) * u``: maps U(0,1) draws to ``t ~ U(eps, 1)`` (LLaDA / DiffuCoder)."""
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}")
    return eps + (1.0 - eps) * u


def warmup_mask_cap(step: int, warmup_steps: int, u_init: float = 1e-3) -> float:
    """Stable-DiffCoder's mask-rate cap ``u_max(s) = u_init + (1 - u_init) * s / S`` (1 after warm-up).

    ``step`` is the number of optimiser steps already taken (0 for the first step).
    """
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    return u_init + (1.0 - u_init) * step / warmup_steps


def in_warmup(step: int, warmup_steps: int) -> bool:
    """True while the mask-rate warm-up applies (unweighted loss, capped mask rate)."""
    return warmup_steps > 0 and step < warmup_steps


def warmup_time(u: torch.Tensor, cap: float) -> torch.Tensor:
    """``t ~ U(0, cap)`` from U(0,1) draws (the warm-up draw; no eps floor, as in the paper)."""
    return u * cap


def block_truncated_rate(u: torch.Tensor, block_len: int) -> torch.Tensor:
    """Stable-DiffCoder's per-block mask rate ``u_blk = min(1, max(u, 1/B))``.

    With a plain linear schedule a block of ``B`` tokens is left without a masked token with
    probability ``1/(B+1)``; flooring the rate at ``1/B`` (plus one forced mask, see
    ``masking.force_one_mask_per_block``) keeps every block supervised, and the weight
    ``1/u_blk`` is then at most ``B``.
    """
    if block_len < 1:
        raise ValueError(f"block_len must be >= 1, got {block_len}")
    return u.clamp(min=1.0 / block_len).clamp(max=1.0)


def forced_inclusion_probability(
    rate: torch.Tensor,  # [B, L] per-token rate u_blk (constant within a block)
    maskable: torch.Tensor,  # [B, L] bool
    blocks: torch.Tensor,  # [B, L] long block index of each token (``masking.block_ids``)
) -> torch.Tensor:
    """``[B, L]``: the probability that a maskable token ends up masked under the block-truncated
    schedule *with* the forced mask, given its block's rate ``r`` and the block's number ``n`` of
    maskable tokens:

        pi = r + (1 - r)^n / n

    (masked by its own coin with probability ``r``, or forced: all ``n`` coins of the block came up
    clean, probability ``(1 - r)^n``, and the uniform pick chose it, ``1/n``; disjoint events).

    Why weight by ``1/pi`` and not the paper's ``1/r``. The loss is
    ``(1/N) sum_i m_i w_i CE_i`` (``m_i`` = token i masked, ``N`` supervisable tokens). Its
    expectation is ``(1/N) sum_i P(m_i) w_i E[CE_i | m_i]``: with ``w_i = 1/P(m_i)`` every token
    contributes exactly its expected masked cross-entropy with weight one, as the MDM loss's
    ``1/t`` does (there ``P(m_i) = t``), so block and MDM losses (and runs with and without
    truncation, or with other block lengths) are on one per-token scale. With ``w_i = 1/r`` the
    expected weighted count per token is ``pi / r = 1 + (1 - r)^n / (n r)``, about 1.11 averaged
    over ``u ~ U(0, 1)`` at ``B = 4``: the literal form over-weights exactly the forced tokens.
    Non-maskable positions get ``rate`` back (their weight is never used).
    """
    n_blocks = int(blocks.max().item()) + 1 if blocks.numel() else 0
    n = torch.zeros(rate.shape[0], n_blocks, device=rate.device).scatter_add(1, blocks, maskable.float())
    n_tok = n.gather(1, blocks).clamp(min=1.0)  # [B, L]
    r = rate.float()
    pi = r + (1.0 - r).pow(n_tok) / n_tok
    return torch.where(maskable, pi.clamp(max=1.0), r)


def warmup_keep(u_keep: torch.Tensor, cap: float) -> torch.Tensor:
    """Block warm-up under the block-truncated schedule: keep each mask of the final schedule
    with probability ``cap`` (``u_keep < cap``).

    How the warm-up and the truncation compose (Stable-DiffCoder states both, not their
    combination). The warm-up is an easy-to-hard curriculum: early steps mask almost nothing
    (``t ~ U(0, u_max)``, ``u_max`` from ~1e-3). The ``1/B`` floor and the forced mask exist so
    that every block carries a signal in expectation once the model is trained on the real
    objective. Applied literally, the floor (and the forced token) would override the cap until
    ``u_max`` passes ``1/B``: every block ~25-33% masked from the first step, no curriculum at
    all. Our reading keeps the curriculum and the shape of the truncated schedule: draw the final
    schedule's mask (floor, forced token) and thin it by the cap. A token is then masked with
    probability ``cap * pi`` (the floor becomes ``cap / B``, the forced token appears with
    probability ``cap``), so the realised mask rate is exactly ``cap`` times the final one in
    expectation, never above ``cap`` per token, and continuous with the final schedule when the
    warm-up ends (``cap = 1``). The logged ``mask_cap`` is this ``cap``, the largest masking
    probability any token has. The loss stays unweighted during the warm-up, as in the paper.
    """
    return u_keep < cap


def annealing_fraction(step: int, anneal_steps: int) -> float:
    """Fraction ``p`` of future keys visible at optimiser step ``step``: ``min(1, step / N)``.

    ``p = 0`` is causal attention (the AR checkpoint's own pattern), ``p = 1`` bidirectional.
    ``anneal_steps <= 0`` means no annealing (bidirectional from the first step).
    """
    if anneal_steps <= 0:
        return 1.0
    return min(1.0, max(0.0, step / anneal_steps))
