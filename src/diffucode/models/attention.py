"""Attention masks for diffusion LMs: bidirectional, block-causal and causal, with left padding.

We do not patch transformers' attention modules. Instead every forward passes an explicit
4-D boolean mask ``[B, 1, q, K]`` (True = may attend): transformers' mask builder returns a
4-D mask untouched, and SDPA accepts booleans directly. This keeps the stock Qwen2 / Llama
modules (and their SDPA / eager kernels, KV caches and PEFT support) and makes the attention
pattern one auditable function instead of a monkey-patch.

Fast path (measured: an explicit mask makes transformers fall back from grouped-query SDPA to
``repeat_kv`` + masked SDPA, 1.07-1.36x slower per forward). When the pattern is plain full
attention (every query sees every key: bidirectional without padding, a block-causal query
block against its own prefix) or plain causal attention without a cache, the mask built here
is *marked* (:func:`plain_pattern`). A forward pre-hook on each attention module
(:func:`install_plain_mask_hooks`, a public PyTorch API, not a patch) replaces a marked mask
by ``None`` plus ``is_causal``, so SDPA runs mask-free with ``enable_gqa``. The marked tensor is
itself the correct mask, so a model whose attention modules take the mask positionally (the
hook cannot see it) still computes the same thing, only slower.

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


_PLAIN_ATTR = "_diffucode_plain"  # "full" | "causal" on a marked mask


def plain_pattern(
    mode: AttentionMode,
    key_padding: torch.Tensor,  # [B, K] 0/1
    q_len: int,
    key_positions: torch.Tensor | None = None,  # [B, K]
    block_len: int | None = None,
) -> str | None:
    """``"full"`` when every query may see every key, ``"causal"`` for a plain causal pattern
    with the queries starting at key 0, else ``None`` (the mask is needed). Never with padding."""
    if not bool(key_padding.bool().all()):
        return None
    K = key_padding.shape[1]
    if mode == "bidirectional" or q_len == 1:
        return "full"
    if mode == "causal":
        return "causal" if q_len == K else None
    if mode == "block_causal" and block_len:
        if key_positions is None:
            key_positions = positions_from_padding(key_padding)
        # keys are in position order without padding: every key's block is <= the first query's
        # block iff the first and the last query share a block
        first, last = key_positions[:, K - q_len] // block_len, key_positions[:, K - 1] // block_len
        return "full" if bool((first == last).all()) else None
    return None


def plain_mask(kind: str, B: int, q_len: int, K: int, device) -> torch.Tensor:
    """The ``[B, 1, q, K]`` bool mask of a plain pattern, marked for the attention hook."""
    if kind == "full":
        m = torch.ones(1, 1, 1, 1, dtype=torch.bool, device=device).expand(B, 1, q_len, K)
    else:
        q_index = torch.arange(K - q_len, K, device=device)
        m = (torch.arange(K, device=device)[None, :] <= q_index[:, None])[None, None].expand(B, 1, q_len, K)
    setattr(m, _PLAIN_ATTR, kind)
    return m


def _plain_mask_hook(module, args, kwargs):
    kind = getattr(kwargs.get("attention_mask"), _PLAIN_ATTR, None)
    if kind is None:
        return None
    kwargs = dict(kwargs)
    kwargs["attention_mask"] = None  # SDPA (and eager) then attend to every key ...
    kwargs["is_causal"] = kind == "causal"  # ... or causally (transformers' sdpa reads this kwarg)
    return args, kwargs


def install_plain_mask_hooks(backbone: torch.nn.Module) -> int:
    """Register :func:`_plain_mask_hook` on every attention module of a transformers backbone
    (modules named ``*self_attn`` with an ``is_causal`` attribute); idempotent. Returns how many
    modules carry it (0: unknown architecture, marked masks are then used as plain masks)."""
    n = 0
    for name, mod in backbone.named_modules():
        if name.endswith("self_attn") and hasattr(mod, "is_causal"):
            if not getattr(mod, "_diffucode_hooked", False):
                mod.register_forward_pre_hook(_plain_mask_hook, with_kwargs=True)
                mod._diffucode_hooked = True
            n += 1
    return n


def block_causal_reference(positions: list[int], block_len: int) -> list[list[bool]]:
    """Slow double loop used by tests: may position i attend to position j?"""
    return [[pj // block_len <= pi // block_len for pj in positions] for pi in positions]
