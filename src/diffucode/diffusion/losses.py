"""Training losses on *aligned* logits (``logits[:, j]`` = distribution of token ``j``).

    python -c "import torch; from diffucode.diffusion.losses import mdm_loss; print(mdm_loss(torch.zeros(1, 2, 4), torch.tensor([[1, 2]]), torch.tensor([[True, False]]), torch.tensor([0.5]), normalizer=2))"

Because the model contract hands out aligned logits, none of these functions needs to know
whether the model uses the Dream/DiffuCoder logits shift; the only shift-specific rule (never
mask a row's first token) lives in ``masking.maskable_positions``. The AR loss is the exception:
it uses the raw next-token logits (``align=False``).

Normalisation (docs/ALGORITHMS.md leaves it open; our choice): every loss is a *sum* over
supervised positions divided by a ``normalizer`` the caller supplies. The trainer passes the
number of supervisable tokens in the whole global batch (all processes and micro-batches),
counted before masking, so

    loss = (1 / N_supervisable) * sum_{masked i} (1/t) * -log p(x0_i | x_t)

which is an unbiased estimate of the per-token negative ELBO, and does not depend on how the
global batch was split. (LLaDA's pre-training code divides by ``B * L``, which is the same when
every token is supervisable; its SFT code divides by each answer's length instead.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def weighted_nll(
    logits: torch.Tensor,  # [B, N, V]
    targets: torch.Tensor,  # [B, N]
    weights: torch.Tensor,  # [B, N] float; 0 = not supervised
) -> torch.Tensor:
    """``sum_i weights_i * -log softmax(logits_i)[targets_i]`` over positions with nonzero weight.

    Only the supervised rows of the logits go through the softmax (with a large vocabulary most
    positions of a diffusion batch are unmasked and would be wasted work).
    """
    keep = weights != 0  # [B, N]
    if not bool(keep.any()):
        return logits.sum() * 0.0  # keeps the graph (and DDP's gradient hooks) connected
    ce = F.cross_entropy(logits[keep].float(), targets[keep], reduction="none")  # [M]
    return (ce * weights[keep].to(ce.dtype)).sum()


def _normalise(total: torch.Tensor, normalizer, default: int) -> torch.Tensor:
    n = default if normalizer is None else normalizer
    if isinstance(n, torch.Tensor):
        n = n.to(total.dtype).clamp(min=1.0)
        return total / n
    return total / max(float(n), 1.0)


def mdm_loss(
    logits: torch.Tensor,  # [B, L, V] aligned
    x0: torch.Tensor,  # [B, L] clean ids
    masked: torch.Tensor,  # [B, L] bool
    t: torch.Tensor,  # [B] per-sequence time, or [B, L] per-position mask rate
    normalizer: float | torch.Tensor | None = None,  # default B * L
    weighted: bool = True,
) -> torch.Tensor:
    """Masked-diffusion ELBO: ``(1/normalizer) * sum_{masked} w * CE`` with ``w = 1/t`` (or 1).

    ``weighted=False`` is Stable-DiffCoder's warm-up loss (plain cross-entropy over masked tokens;
    pass the number of masked tokens as ``normalizer`` for a per-masked-token mean).
    """
    if t.dim() == 1:
        t = t[:, None].expand_as(x0)  # [B, L]
    w = masked.float() / t.float() if weighted else masked.float()  # [B, L]
    return _normalise(weighted_nll(logits, x0, w), normalizer, x0.numel())


def block_diffusion_loss(
    logits: torch.Tensor,  # [B, 2L, V] aligned logits of x_t ++ x0 (or [B, L, V]: noisy half only)
    x0: torch.Tensor,  # [B, L]
    masked: torch.Tensor,  # [B, L] bool
    rate: torch.Tensor,  # [B, L] per-position mask rate u_blk
    normalizer: float | torch.Tensor | None = None,
    weighted: bool = True,
) -> torch.Tensor:
    """Block diffusion loss on the noisy half of the ``x_t ++ x0`` layout, weight ``1/u_blk``."""
    L = x0.shape[1]
    return mdm_loss(logits[:, :L], x0, masked, rate, normalizer=normalizer, weighted=weighted)


def certainty_loss(
    logits: torch.Tensor,  # [B, L, V] aligned
    x0: torch.Tensor,  # [B, L] target ids
    masked: torch.Tensor,  # [B, L] bool: supervised positions
    temperature: float = 1.0,
) -> torch.Tensor:
    """dParallel's certainty-forcing term (Chen et al., 2025, arXiv 2509.26488), as a *sum*:
    ``sum_{masked i, argmax_i = x0_i} H(softmax(logits_i / temperature))``.

    Only positions the model already predicts correctly are pushed towards certainty, so the
    term sharpens right answers without rewarding confident wrong ones; the cross-entropy it is
    added to keeps the model on its targets. Low entropy at many masked positions at once is
    what lets a confidence threshold reveal several tokens per forward.
    """
    keep = masked & (logits.argmax(-1) == x0)  # [B, L]
    if not bool(keep.any()):
        return logits.sum() * 0.0  # keeps the graph connected
    logp = F.log_softmax(logits[keep].float() / temperature, dim=-1)  # [M, V]
    return -(logp.exp() * logp).sum()


def ar_loss(
    raw_logits: torch.Tensor,  # [B, L, V] next-token logits (model(..., align=False))
    input_ids: torch.Tensor,  # [B, L]
    target_mask: torch.Tensor | None = None,  # [B, L] bool: tokens that count as targets (default: real tokens)
    attention_mask: torch.Tensor | None = None,  # [B, L] 0/1 padding mask (default: all real)
    normalizer: float | torch.Tensor | None = None,  # default: number of targets
) -> torch.Tensor:
    """Plain autoregressive cross-entropy: the output at ``j`` predicts token ``j + 1``.

    Token ``j + 1`` is a target when ``target_mask`` is True there and both it and token ``j``
    are real (so padding never predicts or is predicted).
    """
    real = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    target = real if target_mask is None else target_mask.bool() & real
    w = (target[:, 1:] & real[:, :-1]).float()  # [B, L-1]
    total = weighted_nll(raw_logits[:, :-1], input_ids[:, 1:], w)
    return _normalise(total, normalizer, int(w.sum().item()))
