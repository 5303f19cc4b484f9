"""Attention layouts for training: block diffusion on ``x_t ++ x0`` and annealed causal masks.

    python -c "from diffucode.diffusion.block import block_diffusion_mask; print(block_diffusion_mask(None, 4, 2)[0, 0].int())"

Block diffusion (BD3-LM layout, used by Stable-DiffCoder with ``B = 4``). All blocks of a
sequence are trained in one forward pass over the concatenation ``x_t ++ x0`` (length ``2L``):

* a noisy token of block ``b`` sees the noisy tokens of block ``b`` and the clean tokens of
  blocks ``< b`` (it is denoised given the clean past, exactly as at decoding time);
* a clean token of block ``b`` sees the clean tokens of blocks ``<= b`` (block-causal; these
  positions provide the keys/values of the clean past and carry no loss);
* no clean token ever sees a noisy one.

Both halves use position ids ``0..L-1`` (the clean copy of a token has the same position as
its noisy copy), and block ids are ``position_id // B``. The loss is read from the noisy half
only, without a logits shift. The 2L layout doubles attention and MLP work per step; that is
the price of supervising every block at once (see ``benchmarks/train_step.py``).

Attention annealing (DiffuCoder's adaptation from an AR checkpoint, after DiffuLLaMA): at
annealing fraction ``p`` every (query, future key) pair is opened independently with probability
``p`` on top of the causal mask. Our choice (the reference code is not specified in the papers):
one random ``[L, L]`` pattern per optimiser step, shared by every sequence of the global batch,
so it does not depend on how the batch is split over processes. ``style="band"`` is the
deterministic alternative: query ``i`` sees keys ``j <= i + round(p * (L - 1))``.
"""

from __future__ import annotations

from typing import Literal

import torch

AnnealStyle = Literal["random", "band"]


def _positions(positions: torch.Tensor | None, L: int, device=None) -> torch.Tensor:
    if positions is None:
        return torch.arange(L, device=device)[None]  # [1, L]
    return positions


def block_diffusion_mask(
    positions: torch.Tensor | None,  # [B, L] position ids of the clean sequence (None: 0..L-1)
    L: int,
    block_len: int,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Boolean ``[B, 1, 2L, 2L]`` mask (True = may attend) for the ``x_t ++ x0`` layout.

    Query/key order: indices ``0..L-1`` are the noisy half, ``L..2L-1`` the clean half.
    Padding is not handled here: pass the ``[B, 2L]`` padding mask to the model as well.
    """
    if block_len < 1:
        raise ValueError(f"block_len must be >= 1, got {block_len}")
    pos = _positions(positions, L, device)
    blk = pos // block_len  # [B, L]
    q = blk[:, :, None]  # [B, L, 1]
    k = blk[:, None, :]  # [B, 1, L]
    noisy_noisy = q == k  # own block, noisy tokens
    noisy_clean = k < q  # earlier blocks, clean tokens
    clean_clean = k <= q  # block-causal over the clean copy
    clean_noisy = torch.zeros_like(noisy_noisy)
    top = torch.cat([noisy_noisy, noisy_clean], dim=-1)  # [B, L, 2L] queries in x_t
    bottom = torch.cat([clean_noisy, clean_clean], dim=-1)  # [B, L, 2L] queries in x0
    return torch.cat([top, bottom], dim=-2)[:, None]  # [B, 1, 2L, 2L]


def block_diffusion_inputs(
    x_t: torch.Tensor,  # [B, L] noisy ids
    x0: torch.Tensor,  # [B, L] clean ids
    attention_mask: torch.Tensor | None = None,  # [B, L] 0/1
    block_len: int = 4,
) -> dict[str, torch.Tensor]:
    """Model inputs for the ``x_t ++ x0`` layout: ``input_ids``, ``attention_mask``,
    ``position_ids`` (each ``[B, 2L]``) and ``attn_mask_4d`` (``[B, 1, 2L, 2L]``).

    Position ids restart at 0 for the clean half; with a padding mask they count real tokens
    from each row's first one (the model's own convention), so left padding is handled too.
    """
    B, L = x0.shape
    if attention_mask is None:
        attention_mask = torch.ones_like(x0)
    pos = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # [B, L]
    return {
        "input_ids": torch.cat([x_t, x0], dim=1),
        "attention_mask": torch.cat([attention_mask, attention_mask], dim=1),
        "position_ids": torch.cat([pos, pos], dim=1),
        "attn_mask_4d": block_diffusion_mask(pos, L, block_len, device=x0.device),
    }


def annealed_attention_mask(
    L: int,
    p: float,
    u: torch.Tensor | None = None,  # [L, L] uniforms (style "random")
    style: AnnealStyle = "random",
) -> torch.Tensor:
    """``[L, L]`` bool: causal attention plus a fraction ``p`` of the future keys.

    ``p = 0`` gives exactly the causal mask, ``p = 1`` all-True (bidirectional).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"annealing fraction p must be in [0, 1], got {p}")
    device = u.device if u is not None else None
    i = torch.arange(L, device=device)
    causal = i[None, :] <= i[:, None]  # [L, L] key j <= query i
    if style == "band":
        width = round(p * (L - 1))
        return i[None, :] <= i[:, None] + width
    if style != "random":
        raise ValueError(f"anneal style must be 'random' or 'band', got {style!r}")
    if u is None:
        raise ValueError("style='random' needs the [L, L] uniforms u")
    if p >= 1.0:
        return torch.ones(L, L, dtype=torch.bool, device=device)
    return causal | (u < p)
