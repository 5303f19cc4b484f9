"""``GenerationConfig``: every knob of the decoding engine, validated on construction.

    python -c "from diffucode.sampling import GenerationConfig; print(GenerationConfig(threshold=0.9, block_len=32))"

Checks that need the model (``block_len`` against a block-causal model's block, the context
length) happen in :func:`diffucode.sampling.generate`. Errors are :class:`ConfigError` and name
the CLI flag next to the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from diffucode.config import ConfigError
from diffucode.sampling.algorithms import ALGORITHMS, DREAM_ALGS

CACHE_MODES = ("none", "prefix", "dual")
BLOCK_SCHEDULES = ("masked", "block")
THRESHOLD_FLOORS = ("schedule", "one")

Algorithm = Literal["origin", "maskgit_plus", "topk_margin", "entropy", "low_confidence", "random"]


@dataclass
class GenerationConfig:
    max_new_tokens: int = field(default=256, metadata={"help": "completion length L: number of masks appended to the prompt"})
    steps: int | None = field(
        default=None,
        metadata={"help": "denoising steps in total (None = max_new_tokens, one token per step); must be <= max_new_tokens. "
                          "With threshold: the most steps decoding may take (see threshold_floor)"},
    )
    alg: Algorithm = field(
        default="entropy",
        metadata={"help": "unmasking rule: Dream's origin | maskgit_plus | topk_margin | entropy, LLaDA's low_confidence | random"},
    )
    alg_temp: float = field(
        default=0.0,
        metadata={"help": "> 0: draw the positions to reveal from softmax(score / alg_temp) instead of taking the best"},
    )
    temperature: float = field(default=0.0, metadata={"help": "token sampling temperature; 0 = greedy (argmax)"})
    top_p: float | None = field(default=None, metadata={"help": "nucleus sampling mass in (0, 1]; None = off"})
    top_k: int | None = field(default=None, metadata={"help": "keep the k most likely tokens; None = off"})
    block_len: int | None = field(
        default=None,
        metadata={"help": "semi-autoregressive block length (bidirectional models; must divide max_new_tokens). "
                          "Block-causal models: None = their own block; a multiple of it decodes in larger blocks "
                          "(SDAR-style B = 16 / 32): the attention is block-causal over blocks of block_len for this "
                          "decode (a different attention pattern than a B = 4 model was trained with), the KV cache "
                          "of completed blocks stays exact"},
    )
    sub_block_len: int | None = field(
        default=None,
        metadata={"help": "decode each block in sub-blocks of this many tokens, left to right (Fast-dLLM v2): every "
                          "forward runs the whole block, but only the current sub-block's masks are candidates; "
                          "must divide the block length. None = the whole block at once"},
    )
    threshold: float | None = field(
        default=None,
        metadata={"help": "Fast-dLLM parallel decoding: also reveal every masked token of the block whose probability is "
                          ">= threshold (see threshold_floor for the least a step reveals)"},
    )
    threshold_floor: Literal["schedule", "one"] = field(
        default="schedule",
        metadata={"help": "with threshold, the least a step reveals: schedule = the count the steps schedule gives "
                          "(so never more NFE than without the threshold; steps=None is one token per step) | "
                          "one = Fast-dLLM's exact rule, the single best token (steps must be unset)"},
    )
    lookahead: int = field(
        default=0,
        metadata={"help": "threshold decoding: also decode the next N blocks in the same forward passes (several "
                          "blocks in flight); their tokens are revealed only when above the threshold, before the "
                          "blocks left of them are complete. Not with the dual cache"},
    )
    cache: Literal["none", "prefix", "dual"] = field(
        default="none",
        metadata={"help": "bidirectional models: none (exact reference) | prefix | dual (Fast-dLLM's approximate KV caches, "
                          "refreshed at every block start)"},
    )
    refresh_every: int = field(
        default=1,
        metadata={"help": "dual cache: run the full canvas at the start of every K-th block (1 = Fast-dLLM: every "
                          "block). At the blocks in between, the first step's forward also re-encodes the block just "
                          "completed (the tokens that changed) and writes its keys/values into the cache; the rest "
                          "of the cache is kept from the last refresh"},
    )
    block_cache: bool = field(
        default=True,
        metadata={"help": "block-causal models: decode with the exact KV cache (true) or recompute the whole canvas "
                          "every step (false: the slow reference, same tokens)"},
    )
    block_schedule: Literal["masked", "block"] = field(
        default="masked",
        metadata={"help": "LLaDA-style algorithms, per-step reveal counts inside a block: masked = the block's masked "
                          "count split evenly over its steps (LLaDA, Fast-dLLM, Stable-DiffCoder) | block = the block "
                          "LENGTH split evenly, each step revealing at most that many of the masks left (SDAR's "
                          "get_num_transfer_tokens(block_length, steps)); they differ only in a partly filled block "
                          "(the one holding the prompt's end, or the last one)"},
    )
    fastdllm_dream: bool = field(
        default=False,
        metadata={"help": "Fast-dLLM's Dream port rules (Dream algorithms on bidirectional models). With --cache "
                          "prefix/dual: each block starts with a full-canvas pass that writes the block's first token "
                          "unconditionally; later steps rank by probability (--threshold) or, for every other alg, "
                          "by negative entropy on the schedule linspace(1, eps, steps_per_block + 1)[1:]. With "
                          "--cache none and --threshold: at most masked/steps reveals per step plus the ones "
                          "refused earlier (carry-over)"},
    )
    eps: float = field(default=1e-3, metadata={"help": "Dream timestep schedule: ts = linspace(1, eps, steps + 1)"})
    seed: int | None = field(default=None, metadata={"help": "seed for every random draw (None: drawn from torch's global RNG)"})
    num_return_sequences: int = field(default=1, metadata={"help": "completions per prompt (rows are repeated)"})
    stop_at_eos: bool = field(
        default=True,
        metadata={"help": "cut each completion after its first end token (eos, pad, stop_token_ids); the rest becomes pad"},
    )
    stop_token_ids: list[int] = field(
        default_factory=list, metadata={"help": "extra token ids that end a completion (e.g. <|im_end|> for chat models)"}
    )
    early_exit: bool = field(
        default=True,
        metadata={"help": "stop decoding a row once its text up to the first end token is fully revealed "
                          "(never changes the returned sequences or order; only saves forward passes)"},
    )
    return_history: bool = field(default=False, metadata={"help": "keep the canvas after every step (for animations / analysis)"})

    def __post_init__(self):
        def bad(flag: str, msg: str):
            raise ConfigError(f"{flag}: {msg}")

        if self.alg not in ALGORITHMS:
            bad("--alg", f"unknown algorithm {self.alg!r}; choose one of {', '.join(ALGORITHMS)}")
        if self.cache not in CACHE_MODES:
            bad("--cache", f"unknown cache mode {self.cache!r}; choose one of {', '.join(CACHE_MODES)}")
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            bad("--max-new-tokens", f"must be a positive integer, got {self.max_new_tokens!r}")
        if self.steps is not None:
            if not isinstance(self.steps, int) or self.steps < 1:
                bad("--steps", f"must be a positive integer, got {self.steps!r}")
            if self.steps > self.max_new_tokens:
                bad("--steps", f"{self.steps} steps for {self.max_new_tokens} tokens: a step reveals at least one token, "
                               f"so steps must be <= max_new_tokens")
        if self.block_len is not None and (not isinstance(self.block_len, int) or self.block_len < 1):
            bad("--block-len", f"must be a positive integer, got {self.block_len!r}")
        if self.alg_temp is None:
            self.alg_temp = 0.0
        # finite numbers only: nan compares False with everything (temperature=nan would decode
        # greedily without a word) and inf turns the softmax into nan inside torch
        for flag, name in (("--temperature", "temperature"), ("--alg-temp", "alg_temp"), ("--top-p", "top_p"),
                           ("--threshold", "threshold"), ("--eps", "eps")):
            v = getattr(self, name)
            if v is None and name in ("top_p", "threshold"):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                bad(flag, f"must be a finite number, got {v!r}")
        if self.temperature < 0:
            bad("--temperature", f"must be >= 0, got {self.temperature}")
        if self.alg_temp < 0:
            bad("--alg-temp", f"must be >= 0, got {self.alg_temp}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            bad("--top-p", f"must be in (0, 1], got {self.top_p}")
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 1):
            bad("--top-k", f"must be a positive integer, got {self.top_k!r}")
        if self.threshold is not None and not 0 < self.threshold <= 1:
            bad("--threshold", f"must be in (0, 1], got {self.threshold}")
        if not isinstance(self.lookahead, int) or self.lookahead < 0:
            bad("--lookahead", f"must be a non-negative integer, got {self.lookahead!r}")
        if self.lookahead and self.threshold is None:
            bad("--lookahead", "needs --threshold (blocks ahead reveal only tokens above it)")
        if self.lookahead and self.cache == "dual":
            bad("--lookahead", "does not work with --cache dual (the blocks ahead would be in the cached suffix); "
                               "use --cache prefix or none")
        if self.sub_block_len is not None and (isinstance(self.sub_block_len, bool) or not isinstance(self.sub_block_len, int)
                                               or self.sub_block_len < 1):
            bad("--sub-block-len", f"must be a positive integer, got {self.sub_block_len!r}")
        if self.sub_block_len is not None and self.lookahead:
            bad("--sub-block-len", "does not combine with --lookahead (both change which masks are candidates); drop one")
        if self.sub_block_len is not None and self.fastdllm_dream:
            bad("--sub-block-len", "is not part of Fast-dLLM's Dream port; drop --sub-block-len or --fastdllm-dream")
        if isinstance(self.refresh_every, bool) or not isinstance(self.refresh_every, int) or self.refresh_every < 1:
            bad("--refresh-every", f"must be a positive integer, got {self.refresh_every!r}")
        if self.refresh_every > 1 and self.cache != "dual":
            bad("--refresh-every", f"applies to --cache dual only (got --cache {self.cache})")
        if self.refresh_every > 1 and self.fastdllm_dream:
            bad("--refresh-every", "is not part of Fast-dLLM's Dream port (it refreshes at every block)")
        if self.block_schedule not in BLOCK_SCHEDULES:
            bad("--block-schedule", f"unknown schedule {self.block_schedule!r}; choose one of {', '.join(BLOCK_SCHEDULES)}")
        if self.threshold_floor not in THRESHOLD_FLOORS:
            bad("--threshold-floor", f"unknown floor {self.threshold_floor!r}; choose one of {', '.join(THRESHOLD_FLOORS)}")
        if self.threshold is not None and self.threshold_floor == "one" and self.steps is not None:
            bad("--steps", "has no meaning with --threshold-floor one (Fast-dLLM's exact rule: a block takes as many "
                           "steps as it needs); drop --steps, or use --threshold-floor schedule to cap the steps")
        if not 0 < self.eps < 1:
            bad("--eps", f"must be in (0, 1), got {self.eps}")
        if not isinstance(self.num_return_sequences, int) or self.num_return_sequences < 1:
            bad("--num-return-sequences", f"must be a positive integer, got {self.num_return_sequences!r}")
        if self.fastdllm_dream and self.alg not in DREAM_ALGS:
            bad("--fastdllm-dream", f"applies to Dream's algorithms ({', '.join(DREAM_ALGS)}), not {self.alg!r}")
        if self.fastdllm_dream and self.lookahead:
            bad("--lookahead", "is not part of Fast-dLLM's Dream port; drop --lookahead or --fastdllm-dream")
        self.stop_token_ids = [int(t) for t in (self.stop_token_ids or [])]

    @property
    def num_steps(self) -> int:
        """``steps`` with the default filled in."""
        return self.steps if self.steps is not None else self.max_new_tokens

    @property
    def scheduled(self) -> bool:
        """Whether a step schedule applies (always, except Fast-dLLM's exact threshold rule)."""
        return self.threshold is None or self.threshold_floor == "schedule"

    @property
    def stochastic(self) -> bool:
        """Whether any random draw happens (token sampling, random positions, origin's coin flips)."""
        return self.temperature > 0 or self.alg_temp > 0 or self.alg in ("origin", "random")
