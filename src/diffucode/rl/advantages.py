"""Group-relative advantages and reward weighting for GRPO (docs/ALGORITHMS.md s.4).

    python -c "import torch; from diffucode.rl import group_advantages; \
print(group_advantages(torch.tensor([1., 0., 0., 1., 1., 1.]), group_size=3))"

Completions are laid out group-major: rows ``[g*G, (g+1)*G)`` are the ``G`` completions of prompt
``g``. Baselines:

* ``mean`` (DiffuCoder's paper, the default): ``A_i = r_i - mean_j r_j``.
* ``leave_one_out`` (the published code's variant, RLOO): ``A_i = r_i - mean_{j != i} r_j``
  ``= G/(G-1) * (r_i - mean_j r_j)``.

Std scaling (``A / (std + eps)``, the original GRPO) is off by default, as in DiffuCoder.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch

Baseline = Literal["mean", "leave_one_out"]


def group_advantages(
    rewards: torch.Tensor,  # [N] with N = num_groups * group_size
    group_size: int,
    baseline: Baseline = "mean",
    scale_std: bool = False,
    eps: float = 1e-4,
) -> torch.Tensor:
    """``[N]`` advantages, one per completion (see module docstring)."""
    if rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards must be [N] with N a multiple of group_size={group_size}, got {tuple(rewards.shape)}")
    r = rewards.float().view(-1, group_size)  # [n_groups, G]
    if baseline == "mean":
        base = r.mean(dim=1, keepdim=True)
    elif baseline == "leave_one_out":
        if group_size < 2:
            raise ValueError("baseline='leave_one_out' needs group_size >= 2")
        base = (r.sum(dim=1, keepdim=True) - r) / (group_size - 1)
    else:
        raise ValueError(f"baseline must be 'mean' or 'leave_one_out', got {baseline!r}")
    adv = r - base
    if scale_std:
        std = r.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(base)
        adv = adv / (std + eps)
    return adv.view(-1)


def group_std(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """``[n_groups]`` sample std of each group's rewards (0 for a group of one)."""
    r = rewards.float().view(-1, group_size)
    return r.std(dim=1) if group_size > 1 else torch.zeros(r.shape[0])


def weighted_reward(
    per_func: torch.Tensor,  # [N, F] rewards of each function; NaN = "no reward from this function"
    weights: Sequence[float] | torch.Tensor,  # [F]
) -> torch.Tensor:
    """``[N]`` total reward ``sum_f w_f r_f``, skipping NaN entries (TRL's convention for ``None``)."""
    w = torch.as_tensor(weights, dtype=torch.float32, device=per_func.device)
    if w.shape != (per_func.shape[1],):
        raise ValueError(f"{per_func.shape[1]} reward functions but {w.numel()} weights")
    return (per_func.float() * w[None]).nansum(dim=1)
