"""The decoding engine: ``generate(model, input_ids, attention_mask, config)`` for every
unmasking algorithm of docs/ALGORITHMS.md section 2, batched, with KV caches and parallel decoding.

    python -c "
    from diffucode.models import build_tiny_model
    from diffucode.sampling import generate, GenerationConfig
    model, tok = build_tiny_model()
    out = generate(model, tok('def f(x):', return_tensors='pt').input_ids, config=GenerationConfig(max_new_tokens=16))
    print(out.sequences.shape, out.nfe, out.order)"

How it decodes. The canvas is ``prompt ++ [M] * L (++ suffix)``. Decoding walks over *blocks*
of the canvas, left to right; within a block every step runs the model once (one NFE), scores
the masked positions of the block and reveals some (``remasking.py``). Tokens are never
re-masked.

- Bidirectional models (Dream / DiffuCoder / LLaDA): the canvas is the usual left-padded
  batch; the blocks are ``block_len`` slices of the completion (one block of ``L`` without
  ``block_len``). ``cache="none"`` runs the whole canvas every step (the reference).
  ``cache="prefix"`` (Fast-dLLM): the first step of a block runs the whole canvas and keeps the
  keys/values of everything left of the block; later steps run only ``block ++ rest``.
  ``cache="dual"``: also keeps the keys/values right of the block; later steps run only the
  block. Both are approximations (the cached keys are stale once tokens are revealed inside
  the block); the tokens they produce can differ from ``cache="none"``.
- Block-causal models (SDAR / Stable-DiffCoder) and causal models (block of 1): blocks are the
  model's own blocks, aligned from each row's first real token. Each row is placed on the canvas
  so that its left padding is a whole number of blocks: then every canvas block is a model block
  for every row, and a batch can be decoded block by block (rows whose completion starts later
  just have nothing masked in the first block; shorter rows get right padding, hidden like left
  padding). The KV cache is exact: a step runs ``[uncommitted clean blocks] ++ [current block]``
  against the cache and keeps only the clean blocks' keys/values. This fuses the reference's
  separate "commit" forward of a finished block (and the prompt's prefill) into the first step of
  the next block, which the block-causal mask makes exact; cached and uncached decoding give
  the same tokens with the same number of forward passes.
- Larger blocks (SDAR-style, ``block_len`` a multiple of a block-causal model's block): the
  canvas blocks are ``block_len`` long and every forward is block-causal over them (the model's
  ``block_len`` is overridden per call, never changed); the exact cache works as above. On a model
  trained with smaller blocks this is a different attention pattern: measure its quality.
- Sub-blocks (``sub_block_len``, Fast-dLLM v2): a block is decoded in sub-blocks, left to right;
  every step runs the whole block against the cache (so the exact cache stays exact and the block
  attends to its own masks, as in training) but only the current sub-block's masks are candidates
  (schedule, threshold and floor apply to it); the block's steps are spread over its sub-blocks
  (``ceil(steps_per_block * sub / block)`` each). ``sub_block_len`` equal to the block is plain
  block decoding.
- Dual cache refresh (``refresh_every = K``): the full-canvas pass at every K-th block start only;
  see ``_DualRunner``.
- Shift models (Dream): the logits for position ``j`` are the output at ``j - 1``, so cached spans
  start one token early; for block-causal shift models the output at the last position of the
  committed prefix is carried over.

Departures from the references (Dream ``_sample``, LLaDA ``generate``, Fast-dLLM, SDAR):

- Only the logits that are read are computed (``logit_positions``: the block's columns), and
  plain full / causal attention without padding runs mask-free (``models/attention.py``).
- Random draws use one ``torch.Generator`` per row (seeded from ``seed`` and the row index) and
  only for masked candidates, so a row's randomness does not depend on the other rows; with the
  same seed a run is reproducible. Per row and step the draws are, in order: tokens (multinomial
  or Gumbel noise), then ``random``'s scores, then ``alg_temp``'s Gumbel noise or ``origin``'s
  coin flips. The references draw from the global RNG over the whole batch.
- A step that revealed nothing leaves the canvas unchanged, so the next step reuses its logits
  instead of running the model again (Dream's first step with ``steps == L`` reveals 0 tokens):
  the returned tokens are the same, ``nfe`` counts real forward passes.
- Early exit: a row stops once it holds an end token with nothing masked before it (its text
  can no longer change) and is dropped from the batch; decoding ends when every row has. No
  reference stops early for bidirectional models; with ``stop_at_eos`` the output is trimmed
  after the first end token either way, so ``early_exit`` never changes ``sequences`` or
  ``order``. End tokens: ``eos``, ``pad`` (DiffuCoder's instruct model ends with pads) and
  ``stop_token_ids``.
- Dream's algorithms with ``block_len`` (or on a block-causal model) use the Dream schedule inside
  each block with ``steps / num_blocks`` steps, every reveal chosen by the algorithm's score. This
  is NOT what Fast-dLLM's Dream port does (it writes each block's first token unconditionally from
  a full-canvas pass, ranks by negative entropy whatever the algorithm, and caps its no-cache
  threshold): ``fastdllm_dream=True`` switches to its rules (see ``GenerationConfig``). On block-causal
  models, ``steps`` gives ``ceil(steps * block / L)`` steps per block, because a partial first
  block makes the number of blocks row-dependent.
- With ``threshold`` (Fast-dLLM), a step reveals every candidate whose chosen token has
  probability >= threshold, and never fewer than the step schedule would (``threshold_floor =
  "schedule"``, the default: the schedule's count of best-scored candidates, and at least one):
  so a threshold never takes more forward passes than the same ``steps`` without it, and
  ``steps`` caps them. With ``steps=None`` the floor is one token per step (LLaDA's algorithms:
  exactly Fast-dLLM's rule; Dream's schedule reveals nothing at a block's first step, and a step
  that reveals nothing reuses its logits, so there too it costs no forward more than the
  schedule). ``threshold_floor="one"`` is Fast-dLLM's rule (always the single best token, then
  everything above the threshold; ``steps`` refused).
  Fast-dLLM instead reveals only the single best token when nothing reaches the threshold, so an
  unsure model can need many more steps than the schedule it replaced. Batched rows share the
  block boundaries, so a row that has finished a block waits for the others (the tokens are
  unaffected; its ``order`` steps are the batch's).
- Prompts may not contain the mask token (use ``suffix_ids`` for infilling); the references
  would silently decode such masks too.

Stop strings are text: the caller cuts the decoded text (see ``recipes/generate.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from diffucode.config import ConfigError
from diffucode.sampling import remasking as R
from diffucode.sampling.config import GenerationConfig


@dataclass
class GenerationOutput:
    sequences: torch.Tensor  # [B*n, P+L] long: prompt (as given, left-padded) ++ completion
    order: torch.Tensor  # [B*n, L] long: 1-based step at which each position was revealed; 0 = trimmed after the end
    nfe: int  # forward passes actually run
    history: list[torch.Tensor] | None  # per step, [B*n, L] completion canvas (masks included) on the CPU
    num_steps: int  # denoising steps (>= nfe: a step after one that revealed nothing reuses its logits)
    prompt_len: int  # P: the completion of row b is sequences[b, P:]

    @property
    def completions(self) -> torch.Tensor:
        """``[B*n, L]`` the generated part of ``sequences``."""
        return self.sequences[:, self.prompt_len:]


# ---------------------------------------------------------------------------------------------
# KV-cache helpers (transformers DynamicCache)
# ---------------------------------------------------------------------------------------------
def _cache_keep_first(cache, n: int) -> None:
    """Drop every cached position after the first ``n`` (in place)."""
    extra = cache.get_seq_length() - n
    if extra > 0:
        cache.crop(-extra)  # transformers >= 5: a negative count removes that many positions


def _cache_select_positions(cache, index: torch.Tensor) -> None:
    """Keep the cached positions ``index`` ([K'] long), in that order (in place)."""
    for layer in cache.layers:
        if getattr(layer, "keys", None) is None or not getattr(layer, "is_initialized", True):
            continue
        layer.keys = layer.keys.index_select(-2, index)
        layer.values = layer.values.index_select(-2, index)


# ---------------------------------------------------------------------------------------------
# runners: one per cache mode; each returns the logits predicting the block's positions
# ---------------------------------------------------------------------------------------------
def _raw_span(c: int, bs: int, be: int, shift: bool) -> tuple[int, int]:
    """Raw output indices ``[lo, hi)`` of a call covering canvas columns ``[c, c+q)`` that hold the
    logits of columns ``[bs, be)``: shift models read column ``j - 1``, so ``lo`` is ``-1`` when
    that column is not in the call (``bs == c``); its output then comes from ``carry``."""
    s = int(shift)
    return bs - s - c, be - s - c


def _window(out_logits: torch.Tensor, lo: int, carry: torch.Tensor | None = None) -> torch.Tensor:
    """Logits of the block from a call that computed raw outputs ``[max(lo, 0), hi)`` only
    (``logit_positions``). ``lo == -1``: the first column's output is ``carry`` (or, at canvas
    column 0, a placeholder never used: nothing before the first token is ever masked)."""
    if lo >= 0:
        return out_logits
    first = carry if carry is not None else out_logits[:, 0]  # [B, V]
    return torch.cat([first[:, None], out_logits], dim=1)


class _State:
    """The working canvas of the rows still being decoded (rows are dropped on early exit)."""

    def __init__(self, x, pad, pos, gen, gen_start, rows, gens):
        self.x = x  # [B, W] long canvas
        self.pad = pad  # [B, W] long 1 = real token (prompt, completion, suffix)
        self.pos = pos  # [B, W] long position ids
        self.gen = gen  # [B, W] bool: completion columns
        self.gen_start = gen_start  # [B] long: column of each row's first completion token
        self.order = torch.zeros_like(x, dtype=torch.long)  # [B, W] step of reveal, 0 = not (yet) revealed
        self.rows = rows  # [B] long: index of each working row in the output
        self.gens = gens  # list of B torch.Generator (or None when nothing is random)

    @property
    def B(self) -> int:
        return self.x.shape[0]

    def select(self, keep: torch.Tensor) -> None:
        for name in ("x", "pad", "pos", "gen", "gen_start", "order", "rows"):
            setattr(self, name, getattr(self, name)[keep])
        if self.gens is not None:
            self.gens = [self.gens[i] for i in keep.tolist()]


class _Runner:
    def __init__(self, model):
        self.model = model
        self.shift = bool(model.shift)
        self.nfe = 0
        # Fast-dLLM's Dream port: the cached prefix is [0, bs), so a shift model's first block column
        # reads its own output (never used: that column is written by the block's full-canvas pass)
        self.fastdllm = False
        # block-causal decoding in larger blocks than the model's: this call's block (None = the model's)
        self.attn_block = None

    def _first_column(self, bs: int) -> int:
        return bs - int(self.shift and not self.fastdllm)

    def _forward(self, ids, pad, pos, cache=None, span: tuple[int, int] | None = None):
        """One NFE; ``span`` = raw output indices ``[lo, hi)`` whose logits are read (the LM head
        runs only there: ``logit_positions``)."""
        self.nfe += 1
        keep = None
        if span is not None:
            keep = torch.arange(max(span[0], 0), span[1], device=ids.device)
        extra = {} if self.attn_block is None else {"block_len": self.attn_block}
        return self.model(ids, attention_mask=pad, position_ids=pos, past_key_values=cache,
                          use_cache=cache is not None or self.wants_cache, align=False, logit_positions=keep, **extra)

    wants_cache = False

    def begin_block(self, st: _State, bs: int, be: int) -> None:
        pass

    def select(self, keep: torch.Tensor) -> None:
        pass


class _FullRunner(_Runner):
    """No cache: the whole canvas every step (the reference for every model kind)."""

    def logits(self, st: _State, bs: int, be: int, ls: int | None = None, le: int | None = None) -> torch.Tensor:
        span = _raw_span(0, bs if ls is None else ls, be if le is None else le, self.shift)
        return _window(self._forward(st.x, st.pad, st.pos, span=span).logits, span[0])


class _PrefixRunner(_Runner):
    """Fast-dLLM prefix cache (bidirectional, approximate)."""

    wants_cache = True

    def begin_block(self, st, bs, be):
        self.cache = None
        self.c0 = self._first_column(bs)  # first column re-run by later steps

    def logits(self, st, bs, be, ls=None, le=None):
        ls, le = (bs if ls is None else ls), (be if le is None else le)
        if self.cache is None:  # block start: whole canvas, keep the prefix
            span = _raw_span(0, ls, le, self.shift)
            out = self._forward(st.x, st.pad, st.pos, span=span)
            self.cache = out.past_key_values
            _cache_keep_first(self.cache, self.c0)
            return _window(out.logits, span[0])
        c0 = self.c0
        span = _raw_span(c0, ls, le, self.shift)
        out = self._forward(st.x[:, c0:], st.pad, st.pos[:, c0:], self.cache, span=span)
        _cache_keep_first(self.cache, c0)
        return _window(out.logits, span[0])

    def select(self, keep):
        if self.cache is not None:
            self.cache.batch_select_indices(keep)


class _DualRunner(_Runner):
    """Fast-dLLM dual cache (bidirectional, approximate): prefix and suffix keys/values kept,
    later steps run only the block. Keys carry their RoPE position, and attention is
    bidirectional, so the cache may hold its columns in any order (``cols`` records it; the
    padding mask follows the same order).

    ``refresh_every = K``: the full-canvas pass runs at every K-th block start only. At the
    other block starts the cache still holds the new block's columns (as masks, from the last
    refresh) and lacks the block just completed: those columns are dropped, and the block's
    first forward runs ``[completed block ++ new block]`` against the rest, keeping the
    completed block's fresh keys/values. No extra forward; the cached keys of everything else
    are as old as the last refresh."""

    wants_cache = True

    def __init__(self, model, refresh_every: int = 1):
        super().__init__(model)
        self.refresh_every = refresh_every
        self.cache = None
        self.nblock = 0  # blocks begun
        self.c0 = self.be = None

    def begin_block(self, st, bs, be):
        prev_c0 = self.c0
        self.c0, self.be = self._first_column(bs), be
        self.fresh = self.cache is None or self.nblock % self.refresh_every == 0
        self.nblock += 1
        if self.fresh:
            self.cache = None
            self.run_from = self.c0
        else:
            # drop the new block's columns from the cache; re-run the columns not cached since the last block
            inside = (self.cols >= self.c0) & (self.cols < be)
            keep = (~inside).nonzero().squeeze(-1)
            _cache_select_positions(self.cache, keep)
            self._set_cols(st, self.cols[keep])
            self.run_from = prev_c0  # the completed block (and a shift model's column before it)

    def _set_cols(self, st, cols):
        self.cols = cols  # [K'] canvas column of each cached position, in cache order
        self.pad_cols = st.pad[:, cols]  # [B, K'] their padding

    def logits(self, st, bs, be, ls=None, le=None):
        ls, le = (bs if ls is None else ls), (be if le is None else le)
        c0 = self.c0
        dev = st.x.device
        if self.cache is None:
            span = _raw_span(0, ls, le, self.shift)
            out = self._forward(st.x, st.pad, st.pos, span=span)
            W = st.x.shape[1]
            self._set_cols(st, torch.cat([torch.arange(0, c0, device=dev), torch.arange(be, W, device=dev)]))
            self.cache = out.past_key_values
            _cache_select_positions(self.cache, self.cols)
            return _window(out.logits, span[0])
        r0 = self.run_from
        span = _raw_span(r0, ls, le, self.shift)
        pad_kv = torch.cat([self.pad_cols, st.pad[:, r0:be]], dim=1)  # [B, K' + q]
        out = self._forward(st.x[:, r0:be], pad_kv, st.pos[:, r0:be], self.cache, span=span)
        if r0 < c0:  # the completed block's keys/values join the cache, once
            self._set_cols(st, torch.cat([self.cols, torch.arange(r0, c0, device=dev)]))
            self.run_from = c0
        _cache_keep_first(self.cache, self.cols.numel())
        return _window(out.logits, span[0])

    def select(self, keep):
        if self.cache is not None:
            self.cache.batch_select_indices(keep)
            self.pad_cols = self.pad_cols[keep]


class _BlockCacheRunner(_Runner):
    """Exact KV cache for block-causal (and causal) models. ``committed`` columns are cached;
    a step runs ``[committed, be)``: the clean blocks not yet cached plus the current block,
    then keeps the keys/values up to ``bs`` (the clean part). See the module docstring."""

    wants_cache = True

    def __init__(self, model):
        super().__init__(model)
        self.cache = None
        self.committed = 0
        self.carry = None  # [B, V] output at column committed-1 (shift models)

    def logits(self, st, bs, be, ls=None, le=None):
        """Runs ``[committed, be)``; returns the logits of ``[ls, le)`` (default: the block; a
        sub-block reads a part of it)."""
        ls, le = (bs if ls is None else ls), (be if le is None else le)
        c = self.committed
        span = _raw_span(c, ls, le, self.shift)
        out = self._forward(st.x[:, c:be], st.pad[:, :be], st.pos[:, c:be], self.cache, span=span)
        self.cache = out.past_key_values
        _cache_keep_first(self.cache, bs)
        pred = _window(out.logits, span[0], self.carry)  # [B, le - ls, V]
        if span[0] >= 0 and self.shift and ls == bs and c < bs:
            self.carry = out.logits[:, 0]  # the output at column bs - 1, for the block's later steps
        self.committed = bs
        return pred

    def select(self, keep):
        if self.cache is not None:
            self.cache.batch_select_indices(keep)
        if self.carry is not None:
            self.carry = self.carry[keep]


# ---------------------------------------------------------------------------------------------
# one step: propose tokens for the block's masked positions, then choose which to reveal
# ---------------------------------------------------------------------------------------------
def _split_rows(t: torch.Tensor, sizes: list[int]):
    return torch.split(t, sizes, dim=0)


def _propose(cfg: GenerationConfig, flat: torch.Tensor, sizes: list[int], gens, mask_id: int | None = None):
    """``flat`` [M, V]: logits of the candidates, row-major. Returns tokens [M], the chosen
    token's probability [M] and the ranking score [M]."""
    if mask_id is not None:
        # Never propose the mask token itself: a revealed position must hold a real token.
        # (The references can sample it and leave the position masked; we exclude it instead.)
        flat = flat.clone()
        flat[:, mask_id] = float("-inf")
    dream = cfg.alg in R.DREAM_ALGS
    T = cfg.temperature
    if dream:
        z = flat / T if T > 0 else flat
        probs = torch.softmax(R.filter_logits(z, cfg.top_p, cfg.top_k), dim=-1)  # [M, V]
        if T > 0:
            tokens = torch.cat([
                torch.multinomial(p, 1, generator=g).squeeze(-1)
                for p, g in zip(_split_rows(probs, sizes), gens) if p.shape[0] > 0
            ])
        else:
            tokens = probs.max(dim=-1).indices
        p_chosen = probs.gather(-1, tokens[:, None]).squeeze(-1)
        kind = _fastdllm_score_kind(cfg) or R.dream_score_kind(cfg.alg)
        score = p_chosen if kind == "prob" else R.confidence(probs, tokens, kind)
    else:
        z = R.filter_logits(flat, cfg.top_p, cfg.top_k)
        if T > 0:
            tokens = torch.cat([
                R.gumbel_argmax(zr, T, g) for zr, g in zip(_split_rows(z, sizes), gens) if zr.shape[0] > 0
            ])
        else:
            tokens = z.argmax(dim=-1)
        # LLaDA scores with softmax of the (filtered) logits, not of the temperature-scaled ones
        p_chosen = torch.softmax(z, dim=-1).gather(-1, tokens[:, None]).squeeze(-1)
        if cfg.alg == "random":
            score = torch.cat([
                torch.rand(n, device=flat.device, generator=g) for n, g in zip(sizes, gens) if n > 0
            ])
        else:
            score = p_chosen
    return tokens, p_chosen, score


def _fastdllm_score_kind(cfg) -> str | None:
    """Fast-dLLM's Dream port ranks by probability under a threshold, and with a cache by negative
    entropy for every other algorithm; None: the algorithm's own score."""
    if not cfg.fastdllm_dream:
        return None
    if cfg.threshold is not None:
        return "prob"
    return "neg_entropy" if cfg.cache != "none" else None


def _choose(cfg, cand, tokens, p_chosen, score, sizes, gens, counts_now, t, s, last, cap=None, nh=None):
    """Which candidates to reveal: bool [B, nw]. ``counts_now`` [B] for the count schedules;
    ``cap`` [B] for Fast-dLLM's no-cache capped threshold. The first ``nh`` columns are the head
    block (all of them without lookahead): the schedule and the always-one rule apply there;
    later (lookahead) blocks reveal only above the threshold."""
    B, nw = cand.shape
    dev = cand.device
    if cap is not None:
        scores = torch.full((B, nw), float("-inf"), dtype=torch.float64, device=dev)
        scores[cand] = p_chosen.to(torch.float64)
        return R.select_capped_threshold(scores, cap, cfg.threshold)
    if cfg.alg == "origin" and cfg.threshold is None and _fastdllm_score_kind(cfg) is None:
        picks = [R.select_origin(n, t, s, last, g, dev) for n, g in zip(sizes, gens) if n > 0]
        sel = torch.zeros(B, nw, dtype=torch.bool, device=dev)
        sel[cand] = torch.cat(picks)
        return sel
    scores = torch.full((B, nw), float("-inf"), dtype=torch.float64, device=dev)
    if cfg.alg_temp > 0:
        score = torch.cat([
            R.gumbel_perturb(sr, cfg.alg_temp, g) for sr, g in zip(_split_rows(score, sizes), gens) if sr.shape[0] > 0
        ])
    scores[cand] = score.to(torch.float64)
    head = cand
    if nh is not None and nh < nw:
        head = cand.clone()
        head[:, nh:] = False
        scores_head = scores.masked_fill(~head, float("-inf"))
    else:
        scores_head = scores
    # the schedule's count of best-scored head candidates; with a threshold, the least a step reveals
    # (origin with a threshold ranks by probability, like maskgit_plus, and flips no coins)
    floor = R.select_top(scores_head, counts_now) & head if counts_now is not None else None
    if cfg.threshold is not None:
        probs = torch.zeros(B, nw, dtype=p_chosen.dtype, device=dev)
        probs[cand] = p_chosen
        sel = cand & (probs >= cfg.threshold)
        if floor is not None:  # the schedule's count is the floor (0 at Dream's first step: logits reused)
            return sel | floor
        best = R.select_top(scores_head, head.any(-1).long()) & head  # Fast-dLLM: always one in the head block
        return sel | best
    return floor


# ---------------------------------------------------------------------------------------------
# input checks and canvas layout
# ---------------------------------------------------------------------------------------------
def _as_ids(x, name: str, device) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
        if x.numel() == 0:  # [] / [[]] read as float
            x = x.long()
    if x.dim() == 1:
        x = x[None]
    if x.dim() != 2:
        raise ValueError(f"{name} must be [B, P] (or [P]) token ids, got shape {tuple(x.shape)}")
    if x.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.bool):
        raise ValueError(f"{name} must hold integer token ids, got dtype {x.dtype}")
    return x.to(device=device, dtype=torch.long)


def _check_inputs(model, input_ids, attention_mask, suffix_ids, device):
    input_ids = _as_ids(input_ids, "input_ids", device)
    B, P = input_ids.shape
    if B == 0:
        raise ValueError("input_ids has no rows: the batch is empty, give at least one prompt")
    if P == 0:
        raise ValueError("input_ids is empty: the prompt needs at least one token")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    else:
        attention_mask = _as_ids(attention_mask, "attention_mask", device)
        if attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, input_ids {tuple(input_ids.shape)}")
        if ((attention_mask != 0) & (attention_mask != 1)).any():
            raise ValueError("attention_mask must be 0/1")
        if (attention_mask[:, 1:] < attention_mask[:, :-1]).any():
            raise ValueError("attention_mask must be left-padded (0...0 1...1 per row): pad the prompts on the left "
                             "(tokenizer.padding_side = 'left')")
        if (attention_mask.sum(1) == 0).any():
            raise ValueError("a row of attention_mask is all padding: every prompt needs at least one token")
    vocab = model.backbone.get_input_embeddings().num_embeddings
    real = input_ids[attention_mask.bool()]
    if real.numel() and (real.min() < 0 or real.max() >= vocab):
        raise ValueError(f"input_ids holds ids outside the vocabulary [0, {vocab})")
    if (real == model.mask_token_id).any():
        raise ValueError(f"the prompt contains the mask token (id {model.mask_token_id}); for infilling pass the text "
                         "after the hole as suffix_ids (CLI: --suffix)")
    if suffix_ids is not None:
        suffix_ids = _as_ids(suffix_ids, "suffix_ids", device)
        if suffix_ids.shape[0] == 1 and B > 1:
            suffix_ids = suffix_ids.expand(B, -1)
        if suffix_ids.shape[0] != B:
            raise ValueError(f"suffix_ids has {suffix_ids.shape[0]} rows for {B} prompts")
        if (suffix_ids == model.mask_token_id).any():
            raise ValueError("suffix_ids contains the mask token")
        if suffix_ids.shape[1] == 0:
            suffix_ids = None
    return input_ids, attention_mask, suffix_ids


def _check_context(model, width: int, what: str) -> None:
    limit = model.max_seq_len
    if width > limit:
        raise ValueError(f"{what} = {width} tokens exceeds the model's context of {limit} tokens "
                         f"(max_position_embeddings): shorten the prompt or lower --max-new-tokens")


def _fill_id(model) -> int:
    for t in (model.pad_token_id, model.eos_token_id):
        if t is not None and t != model.mask_token_id:
            return int(t)
    return 0


def _layout_bidirectional(model, cfg, ids, amask, suffix):
    """Left-padded canvas ``prompt ++ masks ++ suffix``; blocks are slices of the completion."""
    B, P = ids.shape
    L = cfg.max_new_tokens
    S = 0 if suffix is None else suffix.shape[1]
    what = f"prompt ({P}) + max_new_tokens ({L})" + (f" + suffix ({S})" if S else "")
    _check_context(model, P + L + S, what)
    parts = [ids, torch.full((B, L), model.mask_token_id, dtype=torch.long, device=ids.device)]
    pads = [amask, torch.ones(B, L + S, dtype=torch.long, device=ids.device)]
    if suffix is not None:
        parts.append(suffix)
    x = torch.cat(parts, dim=1)  # [B, W]
    pad = torch.cat(pads, dim=1)  # [B, W]
    gen = torch.zeros_like(x, dtype=torch.bool)
    gen[:, P:P + L] = True
    gen_start = torch.full((B,), P, dtype=torch.long, device=ids.device)

    bl = cfg.block_len or L
    if L % bl:
        raise ConfigError(f"--block-len: {bl} does not divide --max-new-tokens {L} (bidirectional models decode "
                          f"max_new_tokens / block_len whole blocks)")
    nblocks = L // bl
    steps_per_block = None
    if cfg.scheduled:
        steps = cfg.num_steps
        if steps % nblocks:
            raise ConfigError(f"--steps: {steps} steps cannot be split evenly over {nblocks} blocks of {bl} tokens; "
                              f"use a multiple of {nblocks}")
        steps_per_block = steps // nblocks
    blocks = [(P + k * bl, P + (k + 1) * bl) for k in range(nblocks)]
    return x, pad, gen, gen_start, blocks, steps_per_block


def _layout_blockwise(model, cfg, ids, amask):
    """Canvas for block-causal / causal models: row ``r`` starts at a multiple of the block
    length ``Bk`` (left padding of whole blocks), so canvas blocks are model blocks for every row.
    ``block_len`` a multiple of the model's block (block-causal only): ``Bk`` is that larger block,
    and the attention is block-causal over it for this decode (SDAR-style larger blocks)."""
    Bk = int(model.block_len) if model.attention == "block_causal" else 1
    if cfg.block_len is not None and cfg.block_len != Bk:
        if model.attention != "block_causal":
            raise ConfigError(f"--block-len: this {model.attention} model decodes in its own blocks of {Bk}; "
                              f"leave --block-len unset or set it to {Bk}")
        if cfg.block_len % Bk:
            raise ConfigError(f"--block-len: {cfg.block_len} is not a multiple of this block-causal model's block "
                              f"{Bk}; use {Bk} (its own) or a multiple (larger blocks, e.g. {4 * Bk})")
        Bk = cfg.block_len
    B, P = ids.shape
    L = cfg.max_new_tokens
    dev = ids.device
    lens = amask.sum(1)  # [B]
    lmax = int(lens.max())
    _check_context(model, lmax + L, f"prompt ({lmax}) + max_new_tokens ({L})")
    off = Bk * ((lmax - lens) // Bk)  # [B] left padding, whole blocks
    g = off + lens  # [B] completion start column
    W = int(g.max()) + L
    col = torch.arange(W, device=dev)[None, :]  # [1, W]
    rel = col - off[:, None]  # [B, W] position within the row
    is_prompt = (rel >= 0) & (rel < lens[:, None])
    src = (P - lens[:, None] + rel).clamp(0, P - 1)  # index into the left-padded input
    gen = (col >= g[:, None]) & (col < g[:, None] + L)
    x = torch.where(is_prompt, ids.gather(1, src), torch.full_like(src, _fill_id(model)))
    x = torch.where(gen, torch.full_like(x, model.mask_token_id), x)
    pad = (is_prompt | gen).long()
    nblk = math.ceil(W / Bk)
    k0 = int(g.min()) // Bk
    blocks = [(k * Bk, min((k + 1) * Bk, W)) for k in range(k0, nblk)]
    steps_per_block = None
    if cfg.scheduled:
        steps_per_block = max(1, math.ceil(cfg.num_steps * Bk / L))
    return x, pad, gen, g, blocks, steps_per_block


def row_generators(cfg: GenerationConfig, n_rows: int, device) -> list | None:
    """The per-row ``torch.Generator`` s that :func:`generate` draws from (None when nothing is
    random). Row ``r`` of a call is seeded from ``(seed, r)``; exposed so tests can replay draws."""
    if not cfg.stochastic:
        return None
    base = cfg.seed if cfg.seed is not None else int(torch.randint(0, 2**62, (1,)).item())
    gens = []
    for r in range(n_rows):
        g = torch.Generator(device=device)
        g.manual_seed((int(base) * 1_000_003 + r * 7_919 + 12_345) % (2**63 - 1))
        gens.append(g)
    return gens


def _end_ids(model, cfg) -> torch.Tensor:
    ids = {int(t) for t in cfg.stop_token_ids}
    for t in (model.eos_token_id, model.pad_token_id):
        if t is not None:
            ids.add(int(t))
    ids.discard(int(model.mask_token_id))
    return torch.tensor(sorted(ids), dtype=torch.long, device=model.device)


def _first_end(tokens: torch.Tensor, end_ids: torch.Tensor) -> torch.Tensor:
    """``[B, L]`` -> ``[B]`` index of the first end token (L if none)."""
    L = tokens.shape[1]
    is_end = torch.isin(tokens, end_ids)
    idx = torch.arange(L, device=tokens.device).expand_as(tokens)
    return torch.where(is_end, idx, torch.full_like(idx, L)).min(dim=1).values


def port_steps(cfg: GenerationConfig, nblocks: int) -> int:
    """Steps per block of Fast-dLLM's no-cache capped threshold (``steps`` spread over the blocks)."""
    return max(1, cfg.num_steps // nblocks)


def _fastdllm_mode(cfg: GenerationConfig, model, L: int, nblocks: int, spb) -> str | None:
    """Which of Fast-dLLM's Dream-port rules apply: "block" (with a cache: forced first token per
    block), "cap" (no cache, threshold: capped reveals with carry-over) or None."""
    if not cfg.fastdllm_dream:
        return None
    if model.attention != "bidirectional":
        raise ConfigError(f"--fastdllm-dream: Fast-dLLM's Dream port is for bidirectional models; this one is {model.attention}")
    if cfg.cache != "none":
        if cfg.threshold is None and spb is not None and spb < 2:
            raise ConfigError("--fastdllm-dream: with a cache each block needs >= 2 steps (the first is the forced "
                              "full-canvas token); raise --steps")
        return "block"
    if cfg.threshold is None:
        return None  # the no-cache port runs Dream's own algorithms unchanged
    steps = port_steps(cfg, nblocks)
    if (L // nblocks) % steps:
        raise ConfigError(f"--steps: Fast-dLLM's no-cache threshold reveals (block length {L // nblocks}) / steps per "
                          f"step and needs them to divide; {steps} steps per block do not")
    return "cap"


# ---------------------------------------------------------------------------------------------
# the engine
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def generate(
    model,
    input_ids: torch.Tensor,  # [B, P] left-padded prompt ids (or [P])
    attention_mask: torch.Tensor | None = None,  # [B, P] 0/1
    config: GenerationConfig | None = None,
    suffix_ids: torch.Tensor | None = None,  # [S] or [B, S]: text after the hole (infilling, bidirectional only)
    *,
    generators: list | None = None,  # B*n torch.Generator, one per output row (replaces the (seed, row) ones)
    on_step: Callable[[torch.Tensor, torch.Tensor], None] | None = None,  # (rows [B'], completion canvas [B', L])
) -> GenerationOutput:
    """Decode ``config.max_new_tokens`` tokens after each prompt (see the module docstring).

    Returns a :class:`GenerationOutput`; ``sequences[b, P:]`` is row ``b``'s completion. With
    ``num_return_sequences = n`` the rows are ``prompt0 x n, prompt1 x n, ...``. With
    ``suffix_ids`` the masks sit between the prompt and the suffix, and ``sequences`` holds
    prompt ++ hole (the suffix is not repeated in the output).

    ``generators`` gives each output row its own random stream (a server batching requests
    passes the generators each request would get alone, so a row decodes the same in any batch).
    ``on_step(rows, canvas)`` is called after every step that revealed a token, with the output
    row indices still being decoded ([B'] long) and their completion canvas ([B', L] long, masks
    included); it must not modify them. Revealed tokens are final, so a caller can stream them.
    """
    cfg = config if config is not None else GenerationConfig()
    if not isinstance(cfg, GenerationConfig):
        raise TypeError(f"config must be a GenerationConfig, got {type(cfg).__name__}")
    device = model.device
    ids, amask, suffix = _check_inputs(model, input_ids, attention_mask, suffix_ids, device)
    n = cfg.num_return_sequences
    if n > 1:
        ids, amask = ids.repeat_interleave(n, 0), amask.repeat_interleave(n, 0)
        suffix = suffix.repeat_interleave(n, 0) if suffix is not None else None
    Btot, P = ids.shape
    L = cfg.max_new_tokens

    if model.attention == "bidirectional":
        x, pad, gen, gen_start, blocks, spb = _layout_bidirectional(model, cfg, ids, amask, suffix)
        runner = {"none": _FullRunner, "prefix": _PrefixRunner,
                  "dual": lambda m: _DualRunner(m, cfg.refresh_every)}[cfg.cache](model)
        runner.fastdllm = cfg.fastdllm_dream
    elif model.attention in ("block_causal", "causal"):
        if suffix is not None:
            raise ValueError(f"infilling (suffix_ids / --suffix) needs a bidirectional model; this one is {model.attention}")
        if cfg.cache != "none":
            raise ConfigError(f"--cache {cfg.cache}: prefix/dual caches are for bidirectional models; this "
                              f"{model.attention} model always uses its exact KV cache (block_cache=False disables it)")
        x, pad, gen, gen_start, blocks, spb = _layout_blockwise(model, cfg, ids, amask)
        runner = _BlockCacheRunner(model) if cfg.block_cache else _FullRunner(model)
        if cfg.block_len is not None and model.attention == "block_causal" and cfg.block_len != int(model.block_len):
            runner.attn_block = cfg.block_len  # SDAR-style larger blocks: block-causal over block_len
    else:
        raise ValueError(f"unknown model attention {model.attention!r}")
    port = _fastdllm_mode(cfg, model, L, len(blocks), spb)
    # the decoding block's length (bidirectional: block_len or L; block-causal: the model's or block_len)
    blen = (cfg.block_len or L) if model.attention == "bidirectional" else (cfg.block_len or int(model.block_len or 1))
    sub = cfg.sub_block_len
    if sub is not None and blen % sub:
        raise ConfigError(f"--sub-block-len: {sub} does not divide the block length {blen}")

    pos = (pad.cumsum(-1) - 1).clamp(min=0)  # [B, W] position 0 at each row's first real token
    if generators is not None:
        if not cfg.stochastic:
            generators = None  # nothing is drawn
        elif len(generators) != Btot:
            raise ValueError(f"generators: {len(generators)} given for {Btot} output rows (prompts x num_return_sequences)")
    gens = list(generators) if generators is not None else row_generators(cfg, Btot, device)
    st = _State(x, pad, pos, gen, gen_start, torch.arange(Btot, device=device), gens)
    mask_id = model.mask_token_id
    end_ids = _end_ids(model, cfg)
    exit_early = cfg.early_exit and cfg.stop_at_eos and end_ids.numel() > 0
    gen_offsets = torch.arange(L, device=device)  # [L]
    final_x, final_order = x.clone(), st.order.clone()  # rows are written back when they leave
    history: list[torch.Tensor] | None = [] if cfg.return_history else None
    hist_base = torch.full((Btot, L), mask_id, dtype=torch.long) if cfg.return_history else None
    full_gen_start = gen_start
    dream = cfg.alg in R.DREAM_ALGS

    def retire(keep_mask: torch.Tensor) -> torch.Tensor:
        """Write finished rows back and drop them from the working batch and the runner; returns the kept indices."""
        gone = (~keep_mask).nonzero().squeeze(-1)
        final_x[st.rows[gone]] = st.x[gone]
        final_order[st.rows[gone]] = st.order[gone]
        if hist_base is not None:
            idx = st.gen_start[gone, None] + gen_offsets
            hist_base[st.rows[gone].cpu()] = st.x[gone].gather(1, idx).cpu()
        keep = keep_mask.nonzero().squeeze(-1)
        st.select(keep)
        runner.select(keep)
        return keep

    step = 0
    ahead = cfg.lookahead if cfg.threshold is not None else 0
    for k_blk, (bs, be) in enumerate(blocks):
        if st.B == 0:
            break
        cand = (st.x[:, bs:be] == mask_id) & st.gen[:, bs:be]  # [B, nb]
        if not cand.any():
            continue
        # the window decoded together: the head block [bs, be) and up to `lookahead` blocks after it
        we = blocks[min(k_blk + ahead, len(blocks) - 1)][1]
        runner.begin_block(st, bs, we)
        # Fast-dLLM's Dream port has no step schedule under a threshold (no floor, no step limit)
        sched_blk = None if (port == "cap" or (port and cfg.threshold is not None)) else spb
        units = [(bs, we)]  # (first, end) of the candidate windows decoded in turn
        if sub is not None and sub < blen:
            units = [(u, min(u + sub, be)) for u in range(bs, be, sub)]
            if sched_blk is not None:  # the block's steps spread over its sub-blocks
                sched_blk = max(1, math.ceil(sched_blk * sub / blen))
        pred = None
        cap_base = cap_left = None
        if port == "block":
            # Fast-dLLM's Dream port: a full-canvas pass writes the block's first token, whatever its score
            pred = runner.logits(st, bs, be)  # [B, nb, V]
            first = cand[:, 0]  # [B]
            if first.any():
                sizes0 = first.long().tolist()
                tok0, _, _ = _propose(cfg, pred[:, 0][first], sizes0, st.gens or [None] * st.B, mask_id)
                step += 1
                st.x[first, bs] = tok0
                st.order[first, bs] = step
                pred = None
        elif port == "cap":
            cap_base = cand.sum(1) // port_steps(cfg, len(blocks))  # [B] reveals allowed per step
            cap_left = torch.zeros_like(cap_base)  # [B] refused last step, allowed on top
        for us, ue in units:
            if st.B == 0:
                break
            cand = (st.x[:, us:ue] == mask_id) & st.gen[:, us:ue]  # [B, nu]
            if not cand.any():
                continue
            nh = min(be, ue) - us  # head columns (the rest of the window: lookahead blocks)
            sched = sched_blk
            counts = None
            if sched and not dream:
                # masked: split the unit's masked count; block (SDAR): split the unit's full length (a whole
                # model block even where the canvas cuts it), a step revealing at most that many of the masks
                # left (select_top never picks a non-candidate)
                n_split = cand[:, :nh].sum(1)
                if cfg.block_schedule == "block":
                    full = sub if len(units) > 1 else (int(model.block_len) if model.attention == "block_causal" else nh)
                    n_split = torch.full_like(n_split, full)
                counts = R.llada_transfer_schedule(n_split, sched)  # [B, sched]
            ts = R.dream_timesteps(sched, cfg.eps) if (sched and dream) else None
            # the forced pass of the Dream port counts as the schedule's step 0
            i = 1 if port == "block" else 0
            while True:
                cand = (st.x[:, us:ue] == mask_id) & st.gen[:, us:ue]  # [B, nw]
                head_left = cand[:, :nh].sum(1)  # [B] masks left in the head block
                if not head_left.any():
                    break
                if sched is not None and i >= sched:
                    raise RuntimeError("internal error: the step schedule ended with masked tokens left")
                if pred is None:
                    pred = runner.logits(st, bs, max(we, be) if len(units) == 1 else be, us, ue)  # [B, nw, V]
                sizes = cand.sum(1).tolist()
                tokens, p_chosen, score = _propose(cfg, pred[cand], sizes, st.gens or [None] * st.B, mask_id)
                last = sched is not None and i == sched - 1
                t = s = counts_now = None
                if ts is not None:
                    t, s = ts[i], ts[i + 1]
                    counts_now = R.dream_transfer_counts(head_left, t, s, last)
                elif counts is not None:
                    counts_now = counts[:, i]
                cap = None if cap_base is None else cap_base + cap_left
                sel = _choose(cfg, cand, tokens, p_chosen, score, sizes, st.gens or [None] * st.B, counts_now, t, s, last, cap, nh)
                if cap is not None:
                    refused = torch.minimum(cap, cand.sum(1)) - sel.sum(1)  # [B]
                    cap_left = refused
                    if i >= port_steps(cfg, len(blocks)) - 1:  # past the nominal last step: only carry-over is left
                        cap_base = torch.where(refused > 0, torch.zeros_like(cap_base), cap_base)
                step += 1
                i += 1
                if sel.any():
                    tok_full = torch.zeros_like(cand, dtype=torch.long)
                    tok_full[cand] = tokens
                    window = st.x[:, us:ue]  # a view: writes go to the canvas
                    window[sel] = tok_full[sel]
                    st.order[:, us:ue][sel] = step
                    pred = None  # the canvas changed: the next step needs a forward pass
                if on_step is not None and sel.any():
                    on_step(st.rows, st.x.gather(1, st.gen_start[:, None] + gen_offsets))
                if history is not None:
                    frame = hist_base.clone()
                    frame[st.rows.cpu()] = st.x.gather(1, st.gen_start[:, None] + gen_offsets).cpu()
                    history.append(frame)
                if exit_early and sel.any():
                    g = st.x.gather(1, st.gen_start[:, None] + gen_offsets)  # [B, L]
                    first = _first_end(g, end_ids)
                    masked_before = ((g == mask_id) & (gen_offsets[None] < first[:, None])).any(1)
                    done = ~masked_before  # an end token with nothing masked before it, or fully decoded
                    if done.any():
                        keep = retire(~done)
                        if counts is not None:
                            counts = counts[keep]
                        if cap_base is not None:
                            cap_base, cap_left = cap_base[keep], cap_left[keep]
                        if st.B == 0:
                            break
        if st.B == 0:
            break
    if st.B:
        retire(torch.zeros(st.B, dtype=torch.bool, device=device))

    idx = full_gen_start[:, None] + gen_offsets  # [Btot, L]
    completion = final_x.gather(1, idx)  # [Btot, L]
    order = final_order.gather(1, idx)
    if cfg.stop_at_eos and end_ids.numel():
        first = _first_end(completion, end_ids)  # [Btot]
        after = gen_offsets[None] > first[:, None]
        completion = completion.masked_fill(after, _fill_id(model))
        order = order.masked_fill(after, 0)
    if (completion == mask_id).any():
        raise RuntimeError("internal error: masked tokens left in the output")
    return GenerationOutput(
        sequences=torch.cat([ids, completion], dim=1),
        order=order,
        nfe=runner.nfe,
        history=history,
        num_steps=step,
        prompt_len=P,
    )
