"""Forward corruption for masked diffusion: which tokens may be masked, and masking them.

    python -c "import torch; from diffucode.diffusion.masking import *; print(mask_tokens(torch.arange(8)[None], torch.ones(1, 8, dtype=torch.bool), torch.tensor([0.5]), torch.rand(1, 8), 99))"

All randomness comes in as uniform tensors (see ``schedules.row_uniform``), so these are
deterministic functions that tests can drive with hand-picked numbers.

Conventions: ``[B, L]`` tensors; ``maskable`` is True where a token may be masked and is then
supervised (real tokens of the training region); ``masked`` is True where ``x_t`` holds the
mask token. For shift models (Dream / DiffuCoder) the first real token of a row is never
maskable: its aligned logit would come from the position before it, which does not exist.
"""

from __future__ import annotations

import torch


def maskable_positions(
    attention_mask: torch.Tensor,  # [B, L] 0/1, 1 = real token
    loss_region: torch.Tensor | None = None,  # [B, L] bool, e.g. the SFT response; None = everywhere
    shift: bool = False,
) -> torch.Tensor:
    """``[B, L]`` bool: real tokens inside ``loss_region``; minus each row's first real token if ``shift``."""
    real = attention_mask.bool()
    ok = real.clone()
    if loss_region is not None:
        ok &= loss_region.bool()
    if shift:
        first = real & (real.long().cumsum(-1) == 1)  # [B, L] the first real token of each row
        ok &= ~first
    return ok


def mask_tokens(
    x0: torch.Tensor,  # [B, L] clean ids
    maskable: torch.Tensor,  # [B, L] bool
    rate: torch.Tensor,  # [B] per-sequence or [B, L] per-position mask probability
    u: torch.Tensor,  # [B, L] uniforms in [0, 1)
    mask_token_id: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask each maskable token independently with probability ``rate``: ``masked = u < rate``.

    Returns ``(x_t [B, L], masked [B, L] bool)``.
    """
    if rate.dim() == 1:
        rate = rate[:, None]  # [B, 1]
    masked = (u < rate) & maskable
    x_t = torch.where(masked, torch.full_like(x0, mask_token_id), x0)
    return x_t, masked


def block_ids(positions: torch.Tensor, block_len: int) -> torch.Tensor:
    """``[B, L]`` block index of each token: ``position_id // block_len`` (blocks start at position 0)."""
    return positions // block_len


def force_one_mask_per_block(
    masked: torch.Tensor,  # [B, L] bool
    maskable: torch.Tensor,  # [B, L] bool
    block_len: int,
    scores: torch.Tensor,  # [B, L] uniforms; the forced position is the argmax among maskable ones
    positions: torch.Tensor | None = None,  # [B, L] position ids (default 0..L-1)
) -> torch.Tensor:
    """Stable-DiffCoder: a block with maskable tokens but none masked gets one, chosen uniformly.

    Returns the new ``masked``; blocks with no maskable token (all prompt, all padding) are left
    alone. Vectorised over rows and blocks with scatter reductions.
    """
    B, L = masked.shape
    if positions is None:
        positions = torch.arange(L, device=masked.device).expand(B, L)
    blocks = block_ids(positions, block_len)  # [B, L]
    n_blocks = int(blocks.max().item()) + 1 if L else 0
    zeros = torch.zeros(B, n_blocks, device=masked.device)
    has_masked = zeros.scatter_add(1, blocks, masked.float()) > 0  # [B, nb]
    has_maskable = zeros.scatter_add(1, blocks, maskable.float()) > 0  # [B, nb]
    s = torch.where(maskable, scores.float(), torch.full_like(scores.float(), -1.0))  # [B, L]
    best = torch.full((B, n_blocks), -1.0, device=masked.device).scatter_reduce(1, blocks, s, "amax")  # [B, nb]
    candidate = maskable & (s == best.gather(1, blocks))  # [B, L] (ties are broken below)
    index = torch.arange(L, device=masked.device).expand(B, L)
    big = torch.full_like(index, L)
    first = big[:, :1].expand(B, n_blocks).clone().scatter_reduce(
        1, blocks, torch.where(candidate, index, big), "amin"
    )  # [B, nb]: the lowest-index candidate of each block
    chosen = candidate & (index == first.gather(1, blocks))
    need = (~has_masked & has_maskable).gather(1, blocks)  # [B, L]
    return masked | (chosen & need)


def random_truncation(
    attention_mask: torch.Tensor,  # [B, L] 0/1
    u_select: torch.Tensor,  # [B] uniforms: the row is truncated when u_select < fraction
    u_length: torch.Tensor,  # [B] uniforms: the kept length
    fraction: float,
    min_len: int = 2,
) -> torch.Tensor:
    """DiffuCoder / LLaDA: a small ``fraction`` of sequences is cut to a random length.

    A selected row with ``n`` real tokens keeps its first ``l ~ U{min_len..n}`` real tokens; the
    rest become padding (``attention_mask`` 0, so they are neither seen nor supervised).
    Returns the new ``attention_mask``.
    """
    real = attention_mask.bool()
    n = real.sum(-1)  # [B]
    span = (n - min_len + 1).clamp(min=1)
    keep = (min_len + (u_length * span).floor().long()).clamp(max=n)  # [B]
    select = (u_select < fraction) & (n > min_len)
    rank = real.long().cumsum(-1)  # [B, L] 1-based rank of each real token
    cut = select[:, None] & (rank > keep[:, None])
    return (real & ~cut).to(attention_mask.dtype)


def clean_prefix(
    maskable: torch.Tensor,  # [B, L] bool
    u_select: torch.Tensor,  # [B] uniforms: the row gets a clean prefix when u_select < fraction
    u_length: torch.Tensor,  # [B] uniforms: the prefix length
    fraction: float,
) -> torch.Tensor:
    """DiffuCoder: a small ``fraction`` of sequences keeps a clean prefix of random length.

    For a selected row with ``n`` maskable tokens, the first ``l ~ U{1..n-1}`` of them are never
    masked (they become conditioning, as a prompt would be). Returns the new ``maskable``.
    """
    n = maskable.sum(-1)  # [B]
    length = 1 + (u_length * (n - 1).clamp(min=1)).floor().long()  # [B] in [1, n-1]
    select = (u_select < fraction) & (n > 1)
    rank = maskable.long().cumsum(-1)  # [B, L]
    prefix = select[:, None] & (rank <= length[:, None])
    return maskable & ~prefix
