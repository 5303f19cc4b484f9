"""The clipped GRPO objective with the k3 KL penalty (docs/ALGORITHMS.md s.4).

    python -c "import torch; from diffucode.rl import grpo_loss; \
print(grpo_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1), torch.ones(1, 2, dtype=torch.bool)).loss)"

Per completion token ``k`` of completion ``i``::

    rho   = exp(logp - logp_old)
    KL3   = exp(ref - logp) - (ref - logp) - 1          (Schulman's k3, >= 0)
    l_k   = -min(rho * A_i, clip(rho, 1 - eps_low, 1 + eps_high) * A_i) + beta * KL3

    loss  = sum_{i,k in loss_mask} l_k / normalizer

``normalizer`` defaults to the number of loss tokens here; the recipe passes the number of loss
tokens of the whole optimiser batch (all micro-batches and processes), so the loss is a plain
token-level average over every completion token of the batch, independent of how the batch was
split. (The reference code averages over the tokens of each micro-batch of 4 completions and then
over micro-batches; with equal token counts per micro-batch the two agree.)

``logp``, ``logp_old`` and ``ref`` are the estimator's per-token values
(``diffucode.rl.estimators``), not exact log-probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def kl3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi || ref): ``exp(ref - logp) - (ref - logp) - 1``."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


@dataclass
class GRPOLossOutput:
    loss: torch.Tensor  # scalar
    ratio: torch.Tensor  # [B, L] rho (detached)
    kl: torch.Tensor | None  # [B, L] KL3 (detached), None when beta == 0 or no reference
    # Sums over loss tokens (tensors, so the caller can all-reduce them before dividing):
    stats: dict[str, torch.Tensor]


def grpo_loss(
    logp: torch.Tensor,  # [B, L] current policy estimate (with grad)
    old_logp: torch.Tensor,  # [B, L] the same estimate at rollout time (same masks)
    advantages: torch.Tensor,  # [B]
    loss_mask: torch.Tensor,  # [B, L] bool: completion tokens that count
    ref_logp: torch.Tensor | None = None,  # [B, L]
    beta: float = 0.0,
    clip_eps: float = 0.5,
    clip_eps_high: float | None = None,  # default clip_eps
    normalizer: float | torch.Tensor | None = None,  # default loss_mask.sum()
) -> GRPOLossOutput:
    """Clipped-ratio policy loss plus ``beta`` * KL3, averaged over loss tokens (module docstring)."""
    eps_low = clip_eps
    eps_high = clip_eps if clip_eps_high is None else clip_eps_high
    mask = loss_mask.bool()
    m = mask.to(logp.dtype)
    adv = advantages.to(logp.dtype)[:, None]  # [B, 1]
    ratio = torch.exp(logp - old_logp.detach())  # [B, L]
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    per_token = -torch.minimum(ratio * adv, clipped * adv)  # [B, L]
    kl = None
    if beta != 0.0 and ref_logp is not None:
        kl = kl3(logp, ref_logp.detach())
        per_token = per_token + beta * kl
    # where() rather than multiply: a masked-out position with an inf ratio must not make NaN
    total = torch.where(mask, per_token, torch.zeros_like(per_token)).sum()
    if normalizer is None:
        normalizer = m.sum()
    if isinstance(normalizer, torch.Tensor):
        loss = total / normalizer.to(total.dtype).clamp(min=1.0)
    else:
        loss = total / max(float(normalizer), 1.0)
    with torch.no_grad():
        r = ratio.detach()
        low = (r < 1 - eps_low) & (adv < 0) & mask  # the clip binds on the low side
        high = (r > 1 + eps_high) & (adv > 0) & mask  # ... on the high side
        stats = {
            "tokens": m.sum(),
            "ratio_sum": torch.where(mask, r, torch.zeros_like(r)).sum(),
            "clip_low_sum": low.sum().to(logp.dtype),
            "clip_high_sum": high.sum().to(logp.dtype),
            "clip_sum": (low | high).sum().to(logp.dtype),
            "kl_sum": torch.where(mask, kl.detach(), torch.zeros_like(r)).sum() if kl is not None else torch.zeros((), dtype=logp.dtype),
        }
    return GRPOLossOutput(loss=loss, ratio=ratio.detach(), kl=None if kl is None else kl.detach(), stats=stats)
