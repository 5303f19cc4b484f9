"""Noise schedules for masked- and block-diffusion training (ALGORITHMS.md section 3).

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
  masked token per block, weight ``1/u_blk`` (so at most ``B``).
* Mask-rate warm-up (Stable-DiffCoder): during the first ``S`` steps ``t ~ U(0, u_max(s))`` with
  ``u_max(s) = u_init + (1 - u_init) * s / S`` and no ``1/t`` weight.
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


def annealing_fraction(step: int, anneal_steps: int) -> float:
    """Fraction ``p`` of future keys visible at optimiser step ``step``: ``min(1, step / N)``.

    ``p = 0`` is causal attention (the AR checkpoint's own pattern), ``p = 1`` bidirectional.
    ``anneal_steps <= 0`` means no annealing (bidirectional from the first step).
    """
    if anneal_steps <= 0:
        return 1.0
    return min(1.0, max(0.0, step / anneal_steps))
