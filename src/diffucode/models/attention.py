"""Attention masks for diffusion LMs: bidirectional, block-causal and causal, with left padding.

We do not patch transformers' attention modules. Instead every forward passes an explicit
4-D boolean mask ``[B, 1, q, K]`` (True = may attend): transformers' mask builder returns a
4-D mask untouched, and SDPA accepts booleans directly. This keeps the stock Qwen2 / Llama
modules (and their SDPA / eager kernels, KV caches and PEFT support) and makes the attention
pattern one auditable function instead of a monkey-patch.

Block-causal (SDAR / Stable-DiffCoder): the block id of a token is ``position_id // block_len``,
so blocks are aligned from each row's first real token even in a left-padded batch; a query
sees every key whose block id is <= its own.
"""

from __future__ import annotations

from typing import Literal

import torch

AttentionMode = Literal["bidirectional", "block_causal", "causal"]
ATTENTION_MODES = ("bidirectional", "block_causal", "causal")


def positions_from_padding(attention_mask: torch.Tensor) -> torch.Tensor:
    """``[B, K]`` 0/1 padding mask -> ``[B, K]`` position ids, 0 at each row's first real token."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def build_attention_mask(
    mode: AttentionMode,
    key_padding: torch.Tensor,  # [B, K] bool/0-1, True = real token (cache + new tokens)
    q_len: int,
    key_positions: torch.Tensor | None = None,  # [B, K] long; default from key_padding
    block_len: int | None = None,
) -> torch.Tensor:
    """Boolean ``[B, 1, q_len, K]`` mask; the queries are the last ``q_len`` keys.

    Pad keys are hidden from every query. A query that would see nothing (a pad query) is
    allowed to see itself, so SDPA never meets an all-False row (which yields NaN).
    """
    if mode not in ATTENTION_MODES:
        raise ValueError(f"unknown attention mode {mode!r}; choose one of {ATTENTION_MODES}")
    key_padding = key_padding.bool()
    B, K = key_padding.shape
    if q_len > K:
        raise ValueError(f"q_len={q_len} exceeds the number of keys {K}")
    device = key_padding.device
    q_index = torch.arange(K - q_len, K, device=device)  # [q] absolute index of each query
    k_index = torch.arange(K, device=device)  # [K]
    if mode == "bidirectional":
        allowed = torch.ones(B, q_len, K, dtype=torch.bool, device=device)
    elif mode == "causal":
        allowed = (k_index[None, :] <= q_index[:, None]).expand(B, q_len, K)
    else:
        if not block_len or block_len < 1:
            raise ValueError("block_causal attention needs block_len >= 1")
        if key_positions is None:
            key_positions = positions_from_padding(key_padding)
        blocks = key_positions // block_len  # [B, K]
        q_blocks = blocks[:, K - q_len:]  # [B, q]
        allowed = blocks[:, None, :] <= q_blocks[:, :, None]  # [B, q, K]
    allowed = allowed & key_padding[:, None, :]
    diagonal = k_index[None, :] == q_index[:, None]  # [q, K]
    allowed = allowed | (diagonal[None] & ~allowed.any(-1, keepdim=True))
    return allowed[:, None]  # [B, 1, q, K]


def block_causal_reference(positions: list[int], block_len: int) -> list[list[bool]]:
    """Slow double loop used by tests: may position i attend to position j?"""
    return [[pj // block_len <= pi // block_len for pj in positions] for pi in positions]
