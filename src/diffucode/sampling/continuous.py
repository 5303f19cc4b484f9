"""Continuous batching for block-causal and causal models: finished rows leave the batch and
queued prompts take their places at the next block boundary, so the batch stays full.

    from diffucode.sampling import BatchScheduler, GenerationConfig, generate_stream
    for i, tokens in generate_stream(model, [tok(p).input_ids for p in prompts], GenerationConfig(max_new_tokens=64),
                                     batch_size=8):
        print(i, tok.decode(tokens, skip_special_tokens=True))

    sched = BatchScheduler(model, cfg, batch_size=8)   # a server: submit() whenever a request
    ticket = sched.submit(ids)                         # arrives, step() between requests; each
    for ticket, result in sched.step(): ...            # step decodes one block for every row

How. Every row sits on one shared canvas whose columns are grouped in the model's blocks of
``Bk`` (blocks aligned from column 0; a row's left padding is a whole number of blocks, as in
``generate``). Decoding walks over the blocks left to right; each block is decoded exactly as in
:func:`~diffucode.sampling.generate` (same ``_propose`` / ``_choose``, schedule, threshold and
floor, exact KV cache: a step runs the clean blocks not yet cached plus the block). A new prompt
joins at a block start: it is placed so that its completion starts in the block about to be
decoded (a prompt longer than the canvas so far first gets room: whole blocks of padding are put
before every running row, in the canvas and in the cache), the columns to its left are padding, and its prompt's keys/values up to the cached length are computed by one prefill
forward and appended to the batch cache. Leading columns that are padding for every row are
dropped (whole blocks), so the canvas does not grow without bound.

Rows may ask for different completion lengths (``submit(..., max_new_tokens=)``) when that does
not change the step schedule: always with one token per step (``steps`` unset) or a threshold
rule, otherwise only the configured length. A row's blocks are decoded with the same number of
steps either way, so a short request that joins a long one leaves as soon as its own
completion is done (what a server wants: requests rarely share ``max_tokens``).

``on_step``, when set, is called ``(tickets, canvases)`` after every step that revealed a token,
with each running row's completion canvas (masks where not decoded yet): streaming.

Each row's result is what ``generate`` returns for it alone: rows never see each other (padding
is hidden), and row ``i`` (the i-th submitted prompt) draws its random numbers from the same
per-row generator that row ``i`` of one big ``generate`` call would (seed and index). Tested:
``generate_stream`` == ``generate`` row by row, greedy and seeded.

Not here (use ``generate``): bidirectional models (their blocks are slices of one completion
span, and a full-canvas pass per block start is needed anyway), ``lookahead``, Fast-dLLM's Dream
port, ``return_history``, ``num_return_sequences`` (submit the prompt n times), sub-blocks,
SDAR's ``block_schedule="block"``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch

from diffucode.config import ConfigError
from diffucode.sampling import remasking as R
from diffucode.sampling.config import GenerationConfig
from diffucode.sampling.engine import (
    _as_ids,
    _cache_keep_first,
    _choose,
    _end_ids,
    _fill_id,
    _first_end,
    _propose,
    _raw_span,
    _window,
)


@dataclass
class StreamResult:
    tokens: torch.Tensor  # [L] long: the completion (after the first end token: the fill id, as generate)
    order: torch.Tensor  # [L] long: block-local step of each reveal (0 = trimmed); only the ranking is comparable
    prompt_len: int


def _row_generator(base: int, r: int, device) -> torch.Generator:
    # the same seeding as engine.row_generators (row r of a call seeded with `base`)
    g = torch.Generator(device=device)
    g.manual_seed((int(base) * 1_000_003 + r * 7_919 + 12_345) % (2**63 - 1))
    return g


def _pad_cache_left(cache, d: int) -> None:
    """``d`` columns of zero keys/values before every row's cache (for padding columns, masked out)."""
    if d <= 0:
        return
    for layer in cache.layers:
        for name in ("keys", "values"):
            t = getattr(layer, name)
            setattr(layer, name, torch.cat([t.new_zeros(*t.shape[:2], d, t.shape[3]), t], dim=2))


class BatchScheduler:
    """A running batch of at most ``batch_size`` rows; see the module docstring."""

    def __init__(self, model, config: GenerationConfig | None = None, batch_size: int = 8):
        cfg = config if config is not None else GenerationConfig()
        if model.attention not in ("block_causal", "causal"):
            raise ConfigError(f"continuous batching needs a block-causal or causal model (this one is {model.attention}); "
                              "decode fixed batches with generate()")
        for bad, what in ((cfg.lookahead, "--lookahead"), (getattr(cfg, "fastdllm_dream", False), "--fastdllm-dream"),
                          (cfg.return_history, "return_history"), (cfg.num_return_sequences != 1, "num_return_sequences"),
                          (cfg.cache != "none", "--cache"), (not cfg.block_cache, "block_cache=False"),
                          (getattr(cfg, "sub_block_len", None) is not None, "--sub-block-len"),
                          (getattr(cfg, "block_schedule", "masked") != "masked", "--block-schedule block")):
            if bad:
                raise ConfigError(f"{what}: not supported by continuous batching; decode with generate()")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.cfg, self.batch_size = model, cfg, int(batch_size)
        self.Bk = int(model.block_len) if model.attention == "block_causal" else 1
        if cfg.block_len is not None and cfg.block_len != self.Bk:
            raise ConfigError(f"--block-len: this {model.attention} model decodes in its own blocks of {self.Bk}")
        self.L = cfg.max_new_tokens  # the default completion length (submit() may give a row its own)
        self.spb = self._steps_per_block(self.L)
        self.device = model.device
        self.mask_id = model.mask_token_id
        self.fill = _fill_id(model)
        self.end_ids = _end_ids(model, cfg)
        self.exit_early = cfg.early_exit and cfg.stop_at_eos and self.end_ids.numel() > 0
        self.shift = bool(model.shift)
        self.base_seed = None
        if cfg.stochastic:
            self.base_seed = cfg.seed if cfg.seed is not None else int(torch.randint(0, 2**62, (1,)).item())
        self.queue: deque = deque()
        self.next_ticket = 0
        self.nfe = 0
        # working state (rows x canvas columns)
        dev = self.device
        self.x = torch.zeros(0, 0, dtype=torch.long, device=dev)
        self.pad = torch.zeros(0, 0, dtype=torch.long, device=dev)
        self.pos = torch.zeros(0, 0, dtype=torch.long, device=dev)
        self.gen = torch.zeros(0, 0, dtype=torch.bool, device=dev)
        self.order = torch.zeros(0, 0, dtype=torch.long, device=dev)
        self.gstart = torch.zeros(0, dtype=torch.long, device=dev)
        self.glen = torch.zeros(0, dtype=torch.long, device=dev)  # each row's completion length
        self.tickets: list[int] = []
        self.plens: list[int] = []
        self.gens: list = []
        self.cache = None
        self.carry = None  # [B, V] output at column committed - 1 (shift models)
        self.committed = 0  # cached columns
        self.bs = 0  # start of the next block to decode
        self.on_step = None  # (tickets, [completion canvas [L_row]] per row) after each step that revealed a token

    def _steps_per_block(self, L: int) -> int | None:
        """The step schedule of a row of ``L`` tokens, as ``generate`` sets it (None: threshold rule)."""
        if not self.cfg.scheduled:
            return None
        steps = self.cfg.steps if self.cfg.steps is not None else L
        return max(1, math.ceil(steps * self.Bk / L))

    # -- queue ---------------------------------------------------------------------------
    def submit(self, input_ids, generator: torch.Generator | None = None, max_new_tokens: int | None = None) -> int:
        """Queue one prompt (``[P]`` ids, no padding); returns its ticket (0, 1, 2, ... in order).
        ``generator`` replaces the row's seeded one (as ``generate(generators=...)``);
        ``max_new_tokens`` gives the row its own completion length (see the module docstring)."""
        ids = _as_ids(input_ids, "input_ids", self.device)
        if ids.shape[0] != 1 or ids.shape[1] == 0:
            raise ValueError(f"submit() takes one non-empty prompt, got shape {tuple(ids.shape)}")
        vocab = self.model.backbone.get_input_embeddings().num_embeddings
        if ids.min() < 0 or ids.max() >= vocab:
            raise ValueError(f"input_ids holds ids outside the vocabulary [0, {vocab})")
        if (ids == self.mask_id).any():
            raise ValueError(f"the prompt contains the mask token (id {self.mask_id})")
        L = self.L if max_new_tokens is None else int(max_new_tokens)
        if L < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {L}")
        if self._steps_per_block(L) != self.spb:
            raise ValueError(f"max_new_tokens {L}: with steps={self.cfg.steps} it would change the step schedule of "
                             f"this batch (made for {self.L}); decode it in a batch of its own")
        if ids.shape[1] + L > self.model.max_seq_len:
            raise ValueError(f"prompt ({ids.shape[1]}) + max_new_tokens ({L}) exceeds the model's context of "
                             f"{self.model.max_seq_len} tokens")
        t = self.next_ticket
        self.next_ticket += 1
        if generator is None and self.base_seed is not None:
            generator = _row_generator(self.base_seed, t, self.device)
        self.queue.append((t, ids[0], generator, L))
        return t

    @property
    def busy(self) -> bool:
        return bool(self.tickets) or bool(self.queue)

    @property
    def rows(self) -> int:
        return len(self.tickets)

    # -- canvas bookkeeping ----------------------------------------------------------------
    def _widen(self, W: int) -> None:
        extra = W - self.x.shape[1]
        if extra <= 0:
            return
        B, dev = self.x.shape[0], self.device

        def grow(t, value):
            return torch.cat([t, torch.full((B, extra), value, dtype=t.dtype, device=dev)], dim=1)

        self.x, self.pad, self.gen = grow(self.x, self.fill), grow(self.pad, 0), grow(self.gen, False)
        self.pos, self.order = grow(self.pos, 0), grow(self.order, 0)

    def _extend_left(self, d: int) -> None:
        """Put ``d`` (whole blocks) columns of padding before every running row, in the canvas and
        in the cache (zero keys/values: padding is masked out, so the rows decode as before)."""
        B, dev = self.x.shape[0], self.device

        def pre(t, value):
            return torch.cat([torch.full((B, d), value, dtype=t.dtype, device=dev), t], dim=1)

        self.x, self.pad, self.gen = pre(self.x, self.fill), pre(self.pad, 0), pre(self.gen, False)
        self.pos, self.order = pre(self.pos, 0), pre(self.order, 0)
        if self.cache is not None:
            _pad_cache_left(self.cache, d)
            self.committed += d
        self.gstart = self.gstart + d
        self.bs += d

    def _admit(self) -> None:
        new = []
        while self.queue and len(self.tickets) + len(new) < self.batch_size:
            new.append(self.queue.popleft())
        if not new:
            return
        Bk, dev = self.Bk, self.device
        lens = [int(ids.numel()) for _, ids, _, _ in new]
        Ls = [L for _, _, _, L in new]
        if not self.tickets:  # an empty batch: right-align the prompts (as generate does)
            self.bs = Bk * (max(lens) // Bk)
        elif max(lens) > self.bs:  # room on the left, so a long prompt's completion starts in this block too
            self._extend_left(Bk * math.ceil((max(lens) - self.bs) / Bk))
        bs = self.bs
        offs = [Bk * math.ceil(max(bs - n, 0) / Bk) for n in lens]  # whole blocks of left padding
        W = max([self.x.shape[1]] + [o + n + L for o, n, L in zip(offs, lens, Ls)])
        W = Bk * math.ceil(W / Bk)  # whole blocks: a block never runs past the canvas
        self._widen(W)
        b = len(new)
        x = torch.full((b, W), self.fill, dtype=torch.long, device=dev)
        pad = torch.zeros(b, W, dtype=torch.long, device=dev)
        gen = torch.zeros(b, W, dtype=torch.bool, device=dev)
        for k, ((_, ids, _, L), o, n) in enumerate(zip(new, offs, lens)):
            x[k, o:o + n] = ids
            x[k, o + n:o + n + L] = self.mask_id
            pad[k, o:o + n + L] = 1
            gen[k, o + n:o + n + L] = True
        pos = (pad.cumsum(-1) - 1).clamp(min=0)
        c = self.committed
        carry = None
        new_cache = None
        if c > 0:  # the prompt part left of the cached length: one prefill forward for the new rows
            # from the first block holding a new row's token: the padding blocks left of it only
            # get zero keys/values (masked out), so a short prompt joining a wide canvas costs little
            lo = Bk * (min(min(offs), c - 1) // Bk)
            self.nfe += 1
            out = self.model(x[:, lo:c], attention_mask=pad[:, lo:c], position_ids=pos[:, lo:c], use_cache=True,
                             align=False, logit_positions=torch.tensor([c - 1 - lo], device=dev))
            new_cache = out.past_key_values
            _pad_cache_left(new_cache, lo)
            carry = out.logits[:, 0]
        if self.cache is not None and new_cache is not None:
            for old_l, new_l in zip(self.cache.layers, new_cache.layers):
                old_l.keys = torch.cat([old_l.keys, new_l.keys], dim=0)
                old_l.values = torch.cat([old_l.values, new_l.values], dim=0)
        elif new_cache is not None:
            self.cache = new_cache
        if self.shift and carry is not None:
            self.carry = carry if self.carry is None else torch.cat([self.carry, carry], dim=0)
        self.x, self.pad, self.pos = torch.cat([self.x, x]), torch.cat([self.pad, pad]), torch.cat([self.pos, pos])
        self.gen = torch.cat([self.gen, gen])
        self.order = torch.cat([self.order, torch.zeros_like(x)])
        self.gstart = torch.cat([self.gstart, torch.tensor([o + n for o, n in zip(offs, lens)], device=dev)])
        self.glen = torch.cat([self.glen, torch.tensor(Ls, dtype=torch.long, device=dev)])
        self.tickets += [t for t, _, _, _ in new]
        self.plens += lens
        self.gens += [g for _, _, g, _ in new]

    def _compact(self) -> None:
        """Drop leading columns that are padding for every row (whole blocks, cached ones only)."""
        if not self.tickets:
            return
        real = self.pad.bool().any(0)
        first = int(real.nonzero()[0]) if real.any() else self.x.shape[1]
        d = min(first, self.committed) // self.Bk * self.Bk
        if d <= 0:
            return
        for name in ("x", "pad", "pos", "gen", "order"):
            setattr(self, name, getattr(self, name)[:, d:])
        if self.cache is not None:
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, d:], layer.values[:, :, d:]
        self.gstart = self.gstart - d
        self.committed -= d
        self.bs -= d

    def _select(self, keep: torch.Tensor) -> None:
        for name in ("x", "pad", "pos", "gen", "order", "gstart", "glen"):
            setattr(self, name, getattr(self, name)[keep])
        idx = keep.tolist()
        self.tickets = [self.tickets[i] for i in idx]
        self.plens = [self.plens[i] for i in idx]
        self.gens = [self.gens[i] for i in idx]
        if self.cache is not None:
            self.cache.batch_select_indices(keep)
        if self.carry is not None:
            self.carry = self.carry[keep]
        if not self.tickets:  # an empty batch starts afresh: nothing cached
            self.cache, self.carry = None, None
            self.x = self.x[:, :0]
            self.pad, self.pos, self.gen, self.order = self.pad[:, :0], self.pos[:, :0], self.gen[:, :0], self.order[:, :0]
            self.committed = self.bs = 0

    def _completion(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.gstart[i] + torch.arange(int(self.glen[i]), device=self.device)
        return self.x[i, idx], self.order[i, idx]

    def _retire(self, done: torch.Tensor) -> list[tuple[int, StreamResult]]:
        out = []
        for i in done.nonzero().squeeze(-1).tolist():
            tokens, order = self._completion(i)
            if self.cfg.stop_at_eos and self.end_ids.numel():
                first = int(_first_end(tokens[None], self.end_ids)[0])
                after = torch.arange(tokens.numel(), device=self.device) > first
                tokens = tokens.masked_fill(after, self.fill)
                order = order.masked_fill(after, 0)
            if (tokens == self.mask_id).any():
                raise RuntimeError("internal error: masked tokens left in a finished row")
            out.append((self.tickets[i], StreamResult(tokens.cpu(), order.cpu(), self.plens[i])))
        self._select((~done).nonzero().squeeze(-1))
        return out

    # -- decoding ----------------------------------------------------------------------------
    def _logits(self, bs: int, be: int) -> torch.Tensor:
        c = self.committed
        span = _raw_span(c, bs, be, self.shift)
        keep = torch.arange(max(span[0], 0), span[1], device=self.device)
        self.nfe += 1
        out = self.model(self.x[:, c:be], attention_mask=self.pad[:, :be], position_ids=self.pos[:, c:be],
                         past_key_values=self.cache, use_cache=True, align=False, logit_positions=keep)
        self.cache = out.past_key_values
        _cache_keep_first(self.cache, bs)
        pred = _window(out.logits, span[0], self.carry)
        if span[0] >= 0 and self.shift:
            self.carry = out.logits[:, 0]
        self.committed = bs
        return pred

    def step(self) -> list[tuple[int, StreamResult]]:
        """Admit queued prompts, decode one block for every row; returns the rows that finished."""
        self._admit()
        self._compact()
        if not self.tickets:
            return []
        cfg, mask_id = self.cfg, self.mask_id
        bs = self.bs
        be = bs + self.Bk
        finished: list[tuple[int, StreamResult]] = []
        cand = (self.x[:, bs:be] == mask_id) & self.gen[:, bs:be]
        if cand.any():
            dream = cfg.alg in R.DREAM_ALGS
            spb = self.spb
            counts = R.llada_transfer_schedule(cand.sum(1), spb) if (spb and not dream) else None
            ts = R.dream_timesteps(spb, cfg.eps) if (spb and dream) else None
            pred = None
            i = 0
            offs = torch.arange(int(self.glen.max()), device=self.device)
            while True:
                cand = (self.x[:, bs:be] == mask_id) & self.gen[:, bs:be]
                if not cand.any():
                    break
                if spb is not None and i >= spb:
                    raise RuntimeError("internal error: the step schedule ended with masked tokens left")
                if pred is None:
                    pred = self._logits(bs, be)
                gens = self.gens if cfg.stochastic else [None] * len(self.tickets)
                sizes = cand.sum(1).tolist()
                tokens, p_chosen, score = _propose(cfg, pred[cand], sizes, gens, mask_id)
                last = spb is not None and i == spb - 1
                t = s = counts_now = None
                if ts is not None:
                    t, s = ts[i], ts[i + 1]
                    counts_now = R.dream_transfer_counts(cand.sum(1), t, s, last)
                elif counts is not None:
                    counts_now = counts[:, i]
                sel = _choose(cfg, cand, tokens, p_chosen, score, sizes, gens, counts_now, t, s, last)
                i += 1
                if sel.any():
                    tok_full = torch.zeros_like(cand, dtype=torch.long)
                    tok_full[cand] = tokens
                    self.x[:, bs:be][sel] = tok_full[sel]
                    self.order[:, bs:be][sel] = i
                    pred = None
                    if self.on_step is not None:
                        self.on_step(list(self.tickets), [self._completion(r)[0] for r in range(len(self.tickets))])
                    if self.exit_early:
                        # [B, Lmax]: past a shorter row's completion lie fill tokens (never masks), and a
                        # clamped index repeats one of its own positions: neither changes `done`
                        idx = (self.gstart[:, None] + offs).clamp(max=self.x.shape[1] - 1)
                        g = self.x.gather(1, idx)
                        first = _first_end(g, self.end_ids)
                        done = ~((g == mask_id) & (offs[None] < first[:, None])).any(1)
                        if done.any():
                            keep = (~done).nonzero().squeeze(-1)
                            finished += self._retire(done)
                            if counts is not None:
                                counts = counts[keep]
                            if not self.tickets:
                                break
                            offs = torch.arange(int(self.glen.max()), device=self.device)
        self.bs = be
        if self.tickets:  # rows whose completion ends in this block
            done = (self.gstart + self.glen) <= be
            if done.any():
                finished += self._retire(done)
        return finished

    def run(self) -> Iterator[tuple[int, StreamResult]]:
        """Decode until the queue and the batch are empty, yielding ``(ticket, result)`` as rows finish."""
        while self.busy:
            yield from self.step()


def generate_stream(model, prompts: Iterable, config: GenerationConfig | None = None, batch_size: int = 8,
                    generators: list | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """Decode every prompt (each ``[P]`` ids, no padding) with continuous batching; yields
    ``(index, completion [L])`` in the order rows finish. Row ``i`` equals row ``i`` of
    ``generate`` on all the prompts at once (same per-row seeding)."""
    sched = BatchScheduler(model, config, batch_size)
    prompts = list(prompts)
    for k, p in enumerate(prompts):
        sched.submit(p, None if generators is None else generators[k])
    for ticket, res in sched.run():
        yield ticket, res.tokens
