"""`diffucode rl`: coupled-GRPO (DiffuCoder) with code-execution rewards, and the hard-prompt filter.

    diffucode rl --config configs/rl/coupled_grpo_tiny.yaml                 # a few steps on a CPU
    diffucode rl --config configs/rl/coupled_grpo.yaml model.init_from=path/to/DiffuCoder-7B-Instruct
    diffucode rl filter --prompts prompts.jsonl --pass-rates rates.jsonl --out hard.jsonl
    accelerate launch --config_file configs/accelerate/ddp.yaml -m diffucode.cli rl --config ...

One step of the loop (read it top to bottom in :func:`train_rl`):

1. take the step's prompts (a seeded permutation per epoch; each process its share);
2. sample ``G`` completions per prompt with the diffusion sampler (``rl/rollout.py``);
3. score them with the reward functions (TRL signature; code execution in the sandbox + format),
   and turn the weighted rewards into group-relative advantages;
4. draw the estimator's masks once (seeded by run seed, step, completion, iteration), compute the
   reference model's estimate with them (block-causal policies: passes on the ``x_t ++ x0``
   layout, ``grpo.layout``, see ``diffucode.rl.block``);
5. ``mu`` optimiser updates on the clipped GRPO loss + ``beta`` KL3; the first update's estimate
   is the old-policy estimate (same masks, same weights: the ratio is exactly 1), later updates
   reuse it;
6. re-sync the reference model every ``grpo.ref_sync_every`` optimiser updates; log; checkpoint.

Units: ``max_steps`` counts rollout steps; each makes ``grpo.mu`` optimiser updates (the lr
schedule runs over ``max_steps * mu`` updates; ``ref_sync_every`` counts updates, as the paper's 64).

Outputs in ``output_dir``, as ``diffucode train``: ``config.yaml``, ``checkpoints/step-XXXXXXXX/``
(model, optimiser, scheduler, RNG, reference model in ``extra.pt``), ``final/``, ``reward_curve.png``
(reward, pass rate, KL and loss per step; ``logging.plot``) and ``metrics.jsonl``
with one line per step: ``reward`` (weighted, mean over completions), ``rewards/<func>``, ``pass_rate``
(share of completions passing every assert), ``reward_std`` (mean within-group std), ``zero_std_frac``
(groups with no signal), ``kl`` (the estimator's own k3, token mean over the ``mu`` updates: its scale
depends on the estimator, coupled k3 runs ~2x the full-mask one for the same policy pair, so do not
compare it across estimators), ``kl_full_mask`` (estimator-independent: k3 between the policy and the
reference on whole-completion-masked passes, at the rollout weights; ``grpo.log_full_mask_kl``),
``clip_frac`` / ``clip_low`` / ``clip_high``, ``ratio`` (token means over the ``mu`` updates), ``loss``, ``grad_norm``, ``lr``, ``completion_length`` (loss tokens),
``arness_local`` / ``arness_global`` (AR-ness@1 of the rollouts' decoding orders), ``nfe``, timings.

Departures from the reference code (apple/ml-diffucoder, built on TRL's GRPOTrainer), each with
the switch that restores the reference where it changes numbers:

* the loss is a token average over the whole optimiser batch, normalised by its supervisable
  (loss) tokens; the reference averages over each micro-batch's tokens, then over micro-batches
  (``grpo.loss_norm=micro_batch``; the two agree when micro-batches hold equal token counts);
* the padded prompt's pad tokens are hidden from attention in the estimator's passes; the
  reference attends to them (``grpo.hide_prompt_pads=false``);
* the advantage baseline is the group mean, as in the paper; the published code uses the
  leave-one-out mean, ``G/(G-1)`` times larger advantages (``grpo.baseline=leave_one_out``);
* the reference model is re-synced by a hard copy by default; the published configuration mixes,
  ``ref <- 0.6 policy + 0.4 ref`` every 64 updates (``grpo.ref_sync_alpha=0.6``);
* ``t`` is drawn per completion (the reference draws one per micro-batch; same expectation, no
  switch); dropout is switched off so that the first update's ratio is exactly 1.

The mask seed is as in the reference: one draw serves the old-policy estimate and all ``mu``
updates (``grpo.mask_seed=shared``; ``per_iteration`` is a variant with fresh masks per update,
each with its own old estimate). Not covered: LoRA, vLLM-style rollout servers, and
FSDP/DeepSpeed (the loop is DDP; the checkpoint code supports the others but this recipe is not
tested under them).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Optional, Sequence

from diffucode.config import ConfigError, config_command, config_to_dict, save_config
from diffucode.training.config import LoggingConfig, ModelConfig, OptimConfig


# ---------------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------------
@dataclass
class RLModelConfig(ModelConfig):
    """ModelConfig (same keys and defaults) with RL's help texts and no causal attention (RL needs a diffusion model).

    A key added to ModelConfig appears here too: _build_model below must then honour it.
    """

    init_from: Optional[str] = field(
        default=None, metadata={"help": "checkpoint to fine-tune (any format load_model reads); unset: a fresh tiny model"}
    )
    attention: Optional[Literal["bidirectional", "block_causal"]] = field(
        default=None,
        metadata={"help": "override the attention (unset: the checkpoint's; tiny: bidirectional). block_causal models "
                          "get the block-diffusion estimator (grpo.layout)"},
    )
    shift: Optional[bool] = field(default=None, metadata={"help": "override the logits shift (unset: the checkpoint's; tiny: true)"})
    block_len: Optional[int] = field(default=None, metadata={"help": "block length for block_causal attention"})
    dtype: Literal["float32", "bfloat16", "float16"] = field(default="float32", metadata={"help": "dtype of the weights"})


@dataclass
class RLDataConfig:
    prompts: Optional[str] = field(
        default=None,
        metadata={"help": "JSONL prompts with asserts ({'question', 'test_cases'} per line, AceCode-style; 'test_list' "
                          "also accepted). Unset: synthetic tasks from diffucode.data.synthetic"},
    )
    synthetic_n: int = field(default=64, metadata={"help": "number of synthetic train tasks when data.prompts is unset"})
    synthetic_seed: int = field(default=0, metadata={"help": "seed of the synthetic tasks' surface forms"})
    limit: Optional[int] = field(default=None, metadata={"help": "use only the first N prompts"})
    chat_template: bool = field(default=True, metadata={"help": "wrap each question in the tokenizer's chat template"})
    system_prompt: str = field(default="You are a helpful assistant.", metadata={"help": "system message (DiffuCoder's)"})
    max_prompt_len: int = field(default=200, metadata={"help": "prompt tokens kept (the last ones), as the reference (200)"})


@dataclass
class RolloutConfig:
    group_size: int = field(default=10, metadata={"help": "G: completions per prompt (DiffuCoder: 10)"})
    max_new_tokens: int = field(default=256, metadata={"help": "completion length L (DiffuCoder: 256)"})
    steps: Optional[int] = field(default=None, metadata={"help": "denoising steps (unset: max_new_tokens, one token per step)"})
    alg: Literal["origin", "maskgit_plus", "topk_margin", "entropy", "low_confidence", "random"] = field(
        default="entropy", metadata={"help": "unmasking rule (DiffuCoder: entropy)"}
    )
    alg_temp: float = field(default=0.0, metadata={"help": "randomise the unmasking order (0 = greedy order)"})
    temperature: float = field(default=1.2, metadata={"help": "token sampling temperature (DiffuCoder RL: 1.2)"})
    top_p: Optional[float] = field(default=0.95, metadata={"help": "nucleus sampling (DiffuCoder: 0.95)"})
    top_k: Optional[int] = field(default=None, metadata={"help": "top-k sampling"})
    block_len: Optional[int] = field(default=None, metadata={"help": "semi-autoregressive decoding block (unset: one block)"})
    threshold: Optional[float] = field(default=None, metadata={"help": "confidence-threshold parallel decoding (Fast-dLLM)"})
    threshold_floor: Literal["schedule", "one"] = field(
        default="schedule", metadata={"help": "with threshold: at least the steps schedule's count per step, or one (Fast-dLLM)"})
    lookahead: int = field(default=0, metadata={"help": "with threshold: blocks decoded ahead of the current one"})
    cache: Literal["none", "prefix", "dual"] = field(default="none", metadata={"help": "approximate KV cache for bidirectional models"})
    stop_tokens: list[str] = field(
        default_factory=lambda: ["<|im_end|>"],
        metadata={"help": "tokens that end a completion besides eos/pad (ones the tokenizer lacks are ignored)"},
    )
    batch_prompts: int = field(default=8, metadata={"help": "prompts per generate call (each expands to G rows)"})

    def __post_init__(self):
        if self.group_size < 1 or self.max_new_tokens < 1 or self.batch_prompts < 1:
            raise ValueError("rollout.group_size, rollout.max_new_tokens and rollout.batch_prompts must be >= 1")
        if self.steps is not None and not 1 <= self.steps <= self.max_new_tokens:
            raise ValueError(f"rollout.steps must be in [1, rollout.max_new_tokens={self.max_new_tokens}]")


@dataclass
class RewardConfig:
    funcs: list[Literal["code", "format"]] = field(
        default_factory=lambda: ["code", "format"],
        metadata={"help": "reward functions: code (fraction of asserts passing, valid format only) and format"},
    )
    weights: list[float] = field(default_factory=lambda: [2.0, 0.5], metadata={"help": "one weight per function (DiffuCoder: 2.0, 0.5)"})
    timeout: float = field(default=5.0, metadata={"help": "seconds per program in the sandbox"})
    workers: int = field(default=4, metadata={"help": "sandbox processes run in parallel (per training process)"})
    allow_unsandboxed: bool = field(default=False, metadata={
        "help": "run generated code with resource limits only when bubblewrap is unusable (refused otherwise; "
                "also --allow-unsandboxed)"})

    def __post_init__(self):
        if self.timeout <= 0 or self.workers < 1:
            raise ValueError("reward.timeout must be > 0 and reward.workers >= 1")


@dataclass
class GRPOConfig:
    estimator: Literal["coupled", "decoupled", "full", "d1"] = field(
        default="coupled",
        metadata={"help": "log-likelihood estimator: coupled (complementary masks + full mask, DiffuCoder), decoupled "
                          "(two independent masks), full (whole completion masked), d1 (one pass, prompt masked)"},
    )
    t_min: float = field(default=0.2, metadata={"help": "t ~ U(t_min, t_max) for the partial masks (DiffuCoder: 0.2)"})
    t_max: float = field(default=0.8, metadata={"help": "upper end of t (DiffuCoder: 0.8)"})
    d1_p_mask_prompt: float = field(default=0.15, metadata={"help": "estimator d1: prompt-token mask probability (d1: 0.15)"})
    mu: int = field(default=2, metadata={"help": "optimiser updates per rollout batch (DiffuCoder: 2)"})
    mask_seed: Literal["shared", "per_iteration"] = field(
        default="shared",
        metadata={"help": "shared: one mask draw for the old-policy estimate and all mu updates (the reference code: one "
                          "seed per micro-batch, reused across its updates); per_iteration: a variant with fresh masks per "
                          "update, each with its own old-policy estimate"},
    )
    clip_eps: float = field(default=0.5, metadata={"help": "ratio clip epsilon (DiffuCoder: 0.5)"})
    clip_eps_high: Optional[float] = field(default=None, metadata={"help": "upper clip epsilon (unset: clip_eps)"})
    beta: float = field(default=0.01, metadata={"help": "KL3 weight (DiffuCoder: 0.01); 0 = no reference model"})
    ref_sync_every: int = field(
        default=64, metadata={"help": "re-sync the reference model every this many optimiser updates (0 = never)"}
    )
    ref_sync_alpha: float = field(
        default=1.0,
        metadata={"help": "re-sync by mixing: ref <- alpha * policy + (1 - alpha) * ref (1.0 = hard copy; DiffuCoder's "
                          "published configuration: 0.6 every 64 updates)"},
    )
    hide_prompt_pads: bool = field(
        default=True,
        metadata={"help": "estimator passes: hide the prompt's left padding from attention (false = the reference code, "
                          "which attends to pads and counts them in the position ids)"},
    )
    loss_norm: Literal["batch", "micro_batch"] = field(
        default="batch",
        metadata={"help": "batch: token average over the whole optimiser batch; micro_batch: the reference code's average "
                          "over each micro-batch's tokens, then over micro-batches"},
    )
    log_full_mask_kl: bool = field(
        default=True,
        metadata={"help": "log kl_full_mask: k3 between policy and reference on whole-completion-masked passes (comparable "
                          "across estimators; two extra no-grad passes per step)"},
    )
    baseline: Literal["mean", "leave_one_out"] = field(default="mean", metadata={"help": "group baseline of the advantage"})
    scale_std: bool = field(default=False, metadata={"help": "divide advantages by the group's reward std (off in DiffuCoder)"})
    batch_passes: bool = field(default=True, metadata={"help": "run the estimator's passes as one batched forward"})
    t_per: Literal["completion", "block"] = field(
        default="completion",
        metadata={"help": "one t per completion (DiffuCoder), or one per block (block layout only; each token weighted "
                          "by its block's 1/t_b)"},
    )
    layout: Literal["auto", "plain", "block"] = field(
        default="auto",
        metadata={"help": "what the estimator's passes condition on. block: block-diffusion coupled-GRPO on the x_t ++ x0 "
                          "layout (a masked token of block b sees clean blocks < b and its own block's noisy tokens; "
                          "no-shift block-causal models; estimators coupled/decoupled/full); plain: prompt ++ noisy "
                          "completion under the model's own attention; auto: block for block-causal models, else plain"},
    )

    def __post_init__(self):
        if not 0.0 < self.t_min <= self.t_max < 1.0:
            raise ValueError("grpo.t_min / grpo.t_max must satisfy 0 < t_min <= t_max < 1")
        if self.mu < 1:
            raise ValueError("grpo.mu must be >= 1")
        if not 0.0 < self.clip_eps < 1.0 or (self.clip_eps_high is not None and self.clip_eps_high <= 0):
            raise ValueError("grpo.clip_eps must be in (0, 1) and grpo.clip_eps_high > 0")
        if self.beta < 0 or self.ref_sync_every < 0:
            raise ValueError("grpo.beta and grpo.ref_sync_every must be >= 0")
        if not 0.0 < self.ref_sync_alpha <= 1.0:
            raise ValueError("grpo.ref_sync_alpha must be in (0, 1]")
        if not 0.0 <= self.d1_p_mask_prompt < 1.0:
            raise ValueError("grpo.d1_p_mask_prompt must be in [0, 1)")


@dataclass
class RLOptimConfig(OptimConfig):
    """OptimConfig with DiffuCoder's RL defaults (lr 1e-6, betas (0.9, 0.99), wd 0.1, clip 0.2, cosine to 10%)."""

    lr: float = field(default=1e-6, metadata={"help": "peak learning rate (DiffuCoder RL: 1e-6)"})
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99], metadata={"help": "AdamW betas (DiffuCoder RL: 0.9, 0.99)"})
    max_grad_norm: float = field(default=0.2, metadata={"help": "clip the global gradient norm (DiffuCoder RL: 0.2; 0 = off)"})


@dataclass
class RLConfig:
    output_dir: str = field(default="runs/rl", metadata={"help": "run directory: checkpoints/, final/, metrics.jsonl, config.yaml"})
    max_steps: int = field(default=100, metadata={"help": "rollout steps; each makes grpo.mu optimiser updates"})
    prompts_per_step: int = field(default=8, metadata={"help": "prompts per rollout step, all processes together"})
    micro_batch_size: int = field(default=4, metadata={"help": "completions per forward/backward per process"})
    seed: int = field(default=0, metadata={"help": "seed of prompt order, rollouts and masks"})
    save_every: int = field(default=0, metadata={"help": "checkpoint every this many steps (0 = only at the end)"})
    keep_last: int = field(default=2, metadata={"help": "checkpoints kept"})
    resume: bool = field(default=False, metadata={"help": "continue from the newest checkpoint in output_dir"})
    overwrite: bool = field(default=False, metadata={"help": "allow starting fresh over existing checkpoints (deleted)"})
    stop_after: Optional[int] = field(default=None, metadata={"help": "end this invocation after this step with a checkpoint"})
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = field(default="auto", metadata={"help": "auto: bf16 on GPUs that support it"})
    tokenizer_path: Optional[str] = field(default=None, metadata={"help": "tokenizer to use instead of the model's"})
    log_arness: bool = field(default=True, metadata={"help": "log local/global AR-ness@1 of the rollouts' decoding orders"})
    model: RLModelConfig = field(default_factory=RLModelConfig, metadata={"help": "model"})
    data: RLDataConfig = field(default_factory=RLDataConfig, metadata={"help": "prompts"})
    rollout: RolloutConfig = field(default_factory=RolloutConfig, metadata={"help": "sampling"})
    reward: RewardConfig = field(default_factory=RewardConfig, metadata={"help": "rewards"})
    grpo: GRPOConfig = field(default_factory=GRPOConfig, metadata={"help": "coupled-GRPO"})
    optim: RLOptimConfig = field(default_factory=RLOptimConfig, metadata={"help": "optimiser"})
    logging: LoggingConfig = field(default_factory=LoggingConfig, metadata={"help": "logging"})

    def __post_init__(self):
        if self.max_steps < 1 or self.prompts_per_step < 1 or self.micro_batch_size < 1:
            raise ValueError("max_steps, prompts_per_step and micro_batch_size must be >= 1")
        if self.stop_after is not None and not 1 <= self.stop_after <= self.max_steps:
            raise ValueError(f"stop_after must be in [1, max_steps={self.max_steps}]")
        if self.save_every < 0 or self.keep_last < 1:
            raise ValueError("save_every must be >= 0 and keep_last >= 1")
        if len(self.reward.weights) != len(self.reward.funcs):
            raise ValueError(f"reward.weights has {len(self.reward.weights)} entries for {len(self.reward.funcs)} "
                             "reward.funcs")
        if self.grpo.baseline == "leave_one_out" and self.rollout.group_size < 2:
            raise ValueError("grpo.baseline=leave_one_out needs rollout.group_size >= 2")


def _reward_funcs(cfg: RLConfig) -> list[Callable]:
    import functools

    from diffucode.rl.rewards import code_reward, format_reward

    table = {
        "code": functools.update_wrapper(
            functools.partial(code_reward, timeout=cfg.reward.timeout, max_workers=cfg.reward.workers,
                              allow_unsandboxed=cfg.reward.allow_unsandboxed), code_reward),
        "format": format_reward,
    }
    out = []
    for name in cfg.reward.funcs:
        if name not in table:
            raise ConfigError(f"reward.funcs: unknown reward {name!r}; known: {sorted(table)}")
        out.append(table[name])
    return out


@dataclass
class RLResult:
    status: str  # finished | stopped | diverged
    step: int
    output_dir: Path
    final_dir: Path | None
    checkpoint: Path | None
    last_metrics: dict


class RLDiverged(RuntimeError):
    pass


def _log(accelerator, msg: str) -> None:
    if accelerator is None or accelerator.is_main_process:
        print(f"diffucode rl: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# pieces of the loop
# ---------------------------------------------------------------------------------------------
def _build_model(cfg: RLConfig):
    import torch

    from diffucode.models import build_tiny_model, load_model, load_tokenizer

    m = cfg.model
    tok_override = load_tokenizer(cfg.tokenizer_path) if cfg.tokenizer_path else None
    if m.init_from:
        model, tok = load_model(m.init_from, dtype=m.dtype)
        if m.attention is not None or m.shift is not None or m.block_len is not None:
            model.set_attention(m.attention or model.attention, block_len=m.block_len, shift=m.shift)
        if tok_override is not None:
            tok = tok_override
    else:
        t = m.tiny
        need = cfg.data.max_prompt_len + cfg.rollout.max_new_tokens + 64
        model, tok = build_tiny_model(
            attention=m.attention or "bidirectional", shift=True if m.shift is None else m.shift, block_len=m.block_len,
            arch=t.arch, hidden_size=t.hidden_size, num_layers=t.num_layers, num_heads=t.num_heads,
            num_kv_heads=t.num_kv_heads, max_seq_len=max(1024, need), tokenizer=tok_override, seed=t.seed,
        )
        if m.dtype != "float32":
            model.to(getattr(torch, m.dtype))
    if model.attention == "causal":
        raise ConfigError("model: RL needs a diffusion model (bidirectional or block_causal attention); this one is causal")
    return model, tok


def _disable_dropout(model) -> None:
    """Dropout off everywhere, so the policy's estimate is a deterministic function of the weights
    and the masks (the ratio of the first update is then exactly 1)."""
    import torch

    for mod in model.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
        if hasattr(mod, "attention_dropout") and isinstance(mod.attention_dropout, float):
            mod.attention_dropout = 0.0
    if hasattr(model.config, "attention_dropout"):
        model.config.attention_dropout = 0.0


def _load_records(cfg: RLConfig, base_dir: Path | None) -> list[dict]:
    from diffucode.rl.data import load_prompts, normalise_record

    d = cfg.data
    if d.prompts:
        path = Path(d.prompts)
        if not path.is_absolute() and not path.exists() and base_dir is not None and (base_dir / path).exists():
            path = base_dir / path
        return load_prompts(path, limit=d.limit)
    from diffucode.data.synthetic import load_split

    tasks = load_split("train", d.limit or d.synthetic_n, seed=d.synthetic_seed)
    return [normalise_record(t, f"synthetic task {i}", i) for i, t in enumerate(tasks)]


def score_completions(
    reward_funcs: Sequence[Callable],
    prompts: list[str],
    completions: list[str],
    completion_ids: list[list[int]],
    columns: dict[str, list],
):
    """``[N, F]`` float tensor of every reward function's output (NaN where it returned None)."""
    import torch

    per_func = torch.full((len(completions), len(reward_funcs)), float("nan"))
    for j, fn in enumerate(reward_funcs):
        name = getattr(fn, "__name__", repr(fn))
        out = fn(prompts=prompts, completions=completions, completion_ids=completion_ids, **columns)
        if not isinstance(out, (list, tuple)) or len(out) != len(completions):
            raise ValueError(f"reward function {name} returned {type(out).__name__} of length "
                             f"{len(out) if hasattr(out, '__len__') else '?'}; expected a list of {len(completions)} floats")
        for i, r in enumerate(out):
            if r is not None:
                per_func[i, j] = float(r)
    return per_func


def sync_reference(ref, policy, alpha: float = 1.0) -> None:
    """Re-sync the reference model: ``ref <- alpha * policy + (1 - alpha) * ref`` for every
    parameter (``alpha = 1``: a hard copy; DiffuCoder's published configuration mixes with 0.6).
    Buffers (none in the supported backbones hold state that should be mixed) are copied."""
    import torch

    if alpha >= 1.0:
        ref.load_state_dict(policy.state_dict())
        return
    with torch.no_grad():
        for (name, r), (pname, q) in zip(ref.named_parameters(), policy.named_parameters()):
            if name != pname:
                raise ValueError(f"reference and policy parameters differ: {name} vs {pname}")
            r.mul_(1.0 - alpha).add_(q.detach().to(r.dtype), alpha=alpha)
        for r, q in zip(ref.buffers(), policy.buffers()):
            r.copy_(q)


def _all_sum(accelerator, values: dict[str, float]) -> dict[str, float]:
    """Sum named numbers over all processes (one all-reduce)."""
    import torch

    keys = list(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=accelerator.device)
    return dict(zip(keys, accelerator.reduce(t, "sum").tolist()))


def rollout_arness(order, seed: int) -> tuple[float, float]:
    """Mean local / global AR-ness@1 of a batch of reveal-step rows (ties of multi-token steps in random order)."""
    from diffucode.analysis import global_arness, local_arness, reveal_steps_to_positions

    loc, glo = [], []
    for i, row in enumerate(order.tolist()):
        pos = reveal_steps_to_positions(row, ties="random", seed=seed + i)
        if len(pos) >= 1:
            loc.append(local_arness(pos, 1))
            glo.append(global_arness(pos, 1))
    if not loc:
        return float("nan"), float("nan")
    return sum(loc) / len(loc), sum(glo) / len(glo)


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------
def train_rl(
    cfg: RLConfig,
    config_path: str | Path | None = None,
    reward_funcs: Sequence[Callable] | None = None,
) -> RLResult:
    """Run coupled-GRPO to ``max_steps`` (or ``stop_after``) holding ``output_dir``'s lock (one run per directory)."""
    import torch
    from accelerate import PartialState

    from diffucode.training.checkpoint import lock_output_dir

    lock = lock_output_dir(cfg.output_dir, PartialState(cpu=not torch.cuda.is_available()), "diffucode rl")
    try:
        return _train_rl(cfg, config_path, reward_funcs)
    finally:
        if lock is not None:
            lock.release()


def _train_rl(
    cfg: RLConfig,
    config_path: str | Path | None = None,
    reward_funcs: Sequence[Callable] | None = None,
) -> RLResult:
    """Run coupled-GRPO to ``max_steps`` (or ``stop_after``); see the module docstring.

    ``reward_funcs`` (TRL signature ``(prompts, completions, **columns) -> list[float | None]``)
    replaces ``cfg.reward.funcs``; ``cfg.reward.weights`` must then have one weight per function.
    """
    import torch
    from accelerate import PartialState
    from tqdm.auto import tqdm

    from diffucode.diffusion.schedules import mix_seed
    from diffucode.rl import draw_mask_noise, estimate_logps, group_advantages, group_std, grpo_loss, kl3, plan_masks, weighted_reward
    from diffucode.rl.data import format_prompt, reward_columns, step_prompt_indices
    from diffucode.rl.rollout import sample_groups
    from diffucode.sampling import GenerationConfig
    from diffucode.training.checkpoint import CheckpointManager, latest_checkpoint
    from diffucode.training.logging import MetricsLogger
    from diffucode.training.optim import build_optimizer, build_scheduler

    t_start = time.time()
    cpu = not torch.cuda.is_available()
    world = PartialState(cpu=cpu).num_processes
    G = cfg.rollout.group_size
    mu = cfg.grpo.mu
    if cfg.prompts_per_step % world:
        raise ConfigError(f"prompts_per_step={cfg.prompts_per_step} must be a multiple of the {world} processes")
    local_prompts = cfg.prompts_per_step // world
    n_local = local_prompts * G  # completions per process per step
    n_micro = math.ceil(n_local / cfg.micro_batch_size)
    funcs = list(reward_funcs) if reward_funcs is not None else _reward_funcs(cfg)
    if reward_funcs is None and "code" in cfg.reward.funcs:
        _check_sandbox(cfg.reward.allow_unsandboxed, "reward.allow_unsandboxed=true (or --allow-unsandboxed)")
    if len(cfg.reward.weights) != len(funcs):
        raise ConfigError(f"reward.weights has {len(cfg.reward.weights)} entries for {len(funcs)} reward functions")
    func_names = [getattr(f, "__name__", f"reward{j}") for j, f in enumerate(funcs)]

    from diffucode.training.optim import make_accelerator

    accelerator = make_accelerator(cpu, cfg.mixed_precision)
    rank = accelerator.process_index
    out = Path(cfg.output_dir)
    from diffucode.training.checkpoint import prepare_output_dir

    resume_from = prepare_output_dir(cfg.output_dir, cfg.resume, cfg.overwrite, accelerator,
                                     lambda msg: _log(accelerator, msg))
    # -- model, reference, data -----------------------------------------------------------------
    model, tok = _build_model(cfg)
    from diffucode.rl.block import max_completion_blocks, resolve_layout

    try:
        layout = resolve_layout(model, cfg.grpo.layout, cfg.grpo.estimator, cfg.grpo.hide_prompt_pads)
    except ValueError as e:
        raise ConfigError(f"grpo.layout={cfg.grpo.layout}: {e}") from e
    if cfg.grpo.t_per == "block" and (layout != "block" or cfg.grpo.estimator == "full"):
        raise ConfigError(f"grpo.t_per=block needs the block layout and a partial-mask estimator (coupled, decoupled); "
                          f"here layout {layout}, estimator {cfg.grpo.estimator}")
    _disable_dropout(model)
    if cfg.model.gradient_checkpointing:
        model.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    ref = None
    if cfg.grpo.beta > 0:
        ref = copy.deepcopy(model).eval().requires_grad_(False)
    base_dir = Path(config_path).resolve().parent if config_path else None
    records = _load_records(cfg, base_dir)
    if accelerator.is_main_process:  # only once model and prompts loaded: a failed start writes nothing
        save_config(cfg, out / "config.yaml")
    if "code" in cfg.reward.funcs and reward_funcs is None:
        no_tests = sum(1 for r in records if not r.get("test_cases"))
        if no_tests:
            _log(accelerator, f"{no_tests} of {len(records)} prompts have no test_cases: they get no code reward")
    prompt_texts = [format_prompt(tok, r["question"], cfg.data.system_prompt, cfg.data.chat_template) for r in records]
    stop_ids = [tok.convert_tokens_to_ids(s) for s in cfg.rollout.stop_tokens if s in tok.get_vocab()]
    ro = cfg.rollout
    gen_cfg = GenerationConfig(max_new_tokens=ro.max_new_tokens, steps=ro.steps, alg=ro.alg, alg_temp=ro.alg_temp,
                               temperature=ro.temperature, top_p=ro.top_p, top_k=ro.top_k, block_len=ro.block_len,
                               threshold=ro.threshold, threshold_floor=ro.threshold_floor,
                               lookahead=ro.lookahead, cache=ro.cache,
                               stop_token_ids=stop_ids)

    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.max_steps * mu)  # stepped once per optimiser update
    model, optimizer = accelerator.prepare(model, optimizer)
    core = accelerator.unwrap_model(model)
    if ref is not None:
        ref.to(accelerator.device)
    ckpt = CheckpointManager(out, accelerator, cfg.keep_last)

    start_step = 0
    if resume_from is not None:
        state = ckpt.load(resume_from, model=model, optimizer=optimizer, scheduler=scheduler)
        saved = {k: state.get(k) for k in ("seed", "prompts_per_step", "group_size", "mu")}
        now = {"seed": cfg.seed, "prompts_per_step": cfg.prompts_per_step, "group_size": G, "mu": mu}
        if saved != now:
            raise ConfigError(f"{resume_from}: saved with {saved}; resuming with {now} would change the run")
        if ref is not None:
            extra = state.get("extra") or {}
            if "ref" not in extra:
                raise ConfigError(f"{resume_from}: no reference model saved (was it written with grpo.beta=0?)")
            ref.load_state_dict(extra["ref"])
        start_step = int(state["step"])
        _log(accelerator, f"resumed from {resume_from} at step {start_step}")
    metrics = MetricsLogger(out, cfg.logging, accelerator.is_main_process,
                            resume_step=start_step if resume_from is not None else None, config_dict=config_to_dict(cfg))
    n_params = sum(p.numel() for p in core.parameters() if p.requires_grad)
    _log(accelerator, f"coupled-GRPO: estimator {cfg.grpo.estimator}, {len(records)} prompts, {cfg.prompts_per_step} "
                      f"prompts x G={G} per step over {world} process(es), mu={mu}, beta={cfg.grpo.beta}; model "
                      f"{core.attention} (shift {core.shift}), estimator layout {layout}, {n_params:,} trainable parameters; rewards "
                      f"{dict(zip(func_names, cfg.reward.weights))}")

    def save(step: int) -> Path:
        tstate = {"step": step, "updates": step * mu, "seed": cfg.seed, "prompts_per_step": cfg.prompts_per_step,
                  "group_size": G, "mu": mu, "estimator": cfg.grpo.estimator}
        extra = {"ref": {k: v.detach().cpu() for k, v in ref.state_dict().items()}} if ref is not None else None
        return ckpt.save(step, model=model, tokenizer=tok, optimizer=optimizer, scheduler=scheduler,
                         trainer_state=tstate, extra=extra)

    def micro_slices():
        for i in range(n_micro):
            yield slice(i * cfg.micro_batch_size, min(n_local, (i + 1) * cfg.micro_batch_size))

    bar = tqdm(total=cfg.max_steps, initial=start_step, desc="rl", dynamic_ncols=True,
               disable=not (accelerator.is_main_process and cfg.logging.progress_bar))
    end_step = min(cfg.max_steps, cfg.stop_after or cfg.max_steps)
    last_saved = start_step if resume_from is not None else None
    last_record: dict = {}
    status = "finished"
    device = accelerator.device
    step = start_step
    try:
        for step in range(start_step, end_step):
            t0 = time.time()
            # 1. this step's prompts; this process takes its contiguous share
            idx = step_prompt_indices(len(records), step, cfg.prompts_per_step, cfg.seed)
            mine = idx[rank * local_prompts:(rank + 1) * local_prompts]
            recs = [records[i] for i in mine]

            # 2. rollouts (no grad; eval mode so that gradient checkpointing does not switch the KV cache off)
            core.eval()
            roll = sample_groups(core, tok, [prompt_texts[i] for i in mine], G, gen_cfg,
                                 seed=mix_seed(cfg.seed, step, rank, 0xA11), batch_prompts=ro.batch_prompts,
                                 max_prompt_len=cfg.data.max_prompt_len)
            core.train()
            t_roll = time.time() - t0

            # 3. rewards and advantages (groups never straddle processes)
            ids_list = [row[m].tolist() for row, m in zip(roll.completion_ids, roll.completion_mask)]
            per_func = score_completions(funcs, [prompt_texts[i] for i in mine for _ in range(G)], roll.texts, ids_list,
                                         reward_columns(recs, G, exclude=("question", "prompts", "completions",
                                                                          "completion_ids")))
            rewards = weighted_reward(per_func, cfg.reward.weights)  # [n_local]
            adv = group_advantages(rewards, G, cfg.grpo.baseline, cfg.grpo.scale_std)  # [n_local]

            # 4. masks (one draw per iteration seed) and the reference estimate, micro-batch by micro-batch
            prompt_ids, prompt_mask = roll.prompt_ids.to(device), roll.prompt_mask.to(device)
            comp_ids, loss_mask = roll.completion_ids.to(device), roll.completion_mask.to(device)
            noise_mask = roll.noise_mask.to(device)
            sample_ids = [step * cfg.prompts_per_step * G + rank * n_local + i for i in range(n_local)]
            mask_seed = mix_seed(cfg.seed, step)
            n_plans = mu if cfg.grpo.mask_seed == "per_iteration" else 1
            n_block_t = max_completion_blocks(comp_ids.shape[1], core.block_len) if cfg.grpo.t_per == "block" else 0
            plans = [plan_masks(cfg.grpo.estimator, noise_mask,
                                draw_mask_noise(mask_seed, sample_ids, it, comp_ids.shape[1], prompt_ids.shape[1],
                                                (cfg.grpo.t_min, cfg.grpo.t_max), n_block_t=n_block_t),
                                prompt_mask=prompt_mask, d1_p_mask_prompt=cfg.grpo.d1_p_mask_prompt, shift=core.shift,
                                block_len=core.block_len)
                     for it in range(n_plans)]
            adv = adv.to(device)

            def estimate(net, plan, sl):
                with accelerator.autocast():
                    return estimate_logps(net, prompt_ids[sl], prompt_mask[sl], comp_ids[sl], plan.rows(sl),
                                          mask_token_id=core.mask_token_id, batch_passes=cfg.grpo.batch_passes,
                                          hide_pads=cfg.grpo.hide_prompt_pads, layout=layout)

            ref_logps: list = [None] * n_plans
            old_logps: list = [None] * n_plans
            with torch.no_grad():
                for p in range(n_plans):
                    if ref is not None:
                        ref_logps[p] = torch.cat([estimate(ref, plans[p], sl) for sl in micro_slices()])
                    if p > 0:  # per_iteration: later updates' old estimates at the rollout weights
                        old_logps[p] = torch.cat([estimate(model, plans[p], sl) for sl in micro_slices()])
                kl_full = {"kl_full": 0.0}
                if ref is not None and cfg.grpo.log_full_mask_kl:
                    # estimator-independent KL: both models on whole-completion-masked passes (deterministic masks)
                    full = plan_masks("full", noise_mask, draw_mask_noise(0, sample_ids, 0, comp_ids.shape[1]))
                    for sl in micro_slices():
                        k = kl3(estimate(model, full, sl), estimate(ref, full, sl))
                        kl_full["kl_full"] += torch.where(loss_mask[sl], k, torch.zeros_like(k)).sum().item()
            old_logps[0] = torch.zeros_like(comp_ids, dtype=torch.float32)  # filled by the first update
            total_tokens = _all_sum(accelerator, {"t": loss_mask.sum().item()})["t"]  # the loss's denominator
            scale = world  # DDP averages gradients over processes; the loss is a global token average
            if cfg.grpo.loss_norm == "micro_batch":  # the reference: mean over micro-batches of per-micro-batch means
                scale = 1.0 / n_micro  # (DDP's average over processes completes the mean over all micro-batches)

            # 5. mu optimiser updates
            sums = dict.fromkeys(("ratio", "clip", "clip_low", "clip_high", "kl"), 0.0)  # over loss tokens, all updates
            loss_sum = grad_norm_sum = 0.0
            for it in range(mu):
                p = it if n_plans > 1 else 0
                loss_local = 0.0
                for k, sl in enumerate(micro_slices()):
                    # gradients are all-reduced once per update, on its last micro-batch
                    ctx = accelerator.no_sync(model) if k < n_micro - 1 else contextlib.nullcontext()
                    with ctx:
                        logp = estimate(model, plans[p], sl)  # [b, L] with grad
                        if it == 0:  # rollout weights: this IS the old-policy estimate (ratio exactly 1)
                            old_logps[p][sl] = logp.detach()
                        micro = cfg.grpo.loss_norm == "micro_batch"
                        lo = grpo_loss(logp, old_logps[p][sl], adv[sl], loss_mask[sl],
                                       ref_logp=None if ref is None else ref_logps[p][sl], beta=cfg.grpo.beta,
                                       clip_eps=cfg.grpo.clip_eps, clip_eps_high=cfg.grpo.clip_eps_high,
                                       normalizer=loss_mask[sl].sum() if micro else total_tokens)
                        accelerator.backward(lo.loss * scale)
                    # logged loss: the global token average, or the mean of the micro-batch means
                    loss_local += lo.loss.item() / (n_micro * world) if micro else lo.loss.item()
                    for key, stat in (("ratio", "ratio_sum"), ("clip", "clip_sum"), ("clip_low", "clip_low_sum"),
                                      ("clip_high", "clip_high_sum"), ("kl", "kl_sum")):
                        sums[key] += lo.stats[stat].item()
                loss = _all_sum(accelerator, {"loss": loss_local})["loss"]
                if not math.isfinite(loss):
                    raise RLDiverged(f"the loss became {loss} at step {step + 1}, update {it + 1}")
                loss_sum += loss
                max_norm = cfg.optim.max_grad_norm if cfg.optim.max_grad_norm > 0 else float("inf")
                gn = accelerator.clip_grad_norm_(model.parameters(), max_norm)
                grad_norm_sum += float(gn) if gn is not None else float("nan")
                lr = scheduler.get_last_lr()[0]
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)

            # 6. reference re-sync (takes effect at the next rollout), metrics, checkpoint
            updates = (step + 1) * mu
            every = cfg.grpo.ref_sync_every
            if ref is not None and every and updates // every > (updates - mu) // every:
                sync_reference(ref, core, cfg.grpo.ref_sync_alpha)
            done = step + 1
            stds = group_std(rewards, G)  # [local_prompts]
            local = {**sums, **kl_full, "reward": rewards.sum().item(), "completions": n_local, "groups": local_prompts,
                     "length": loss_mask.sum().item(), "group_std": stds.sum().item(),
                     "zero_std_groups": (stds < 1e-6).sum().item(), "nfe": roll.nfe}
            for j, name in enumerate(func_names):
                col = per_func[:, j]
                scored = ~torch.isnan(col)
                local[f"sum/{name}"] = col[scored].sum().item()
                local[f"n/{name}"] = scored.sum().item()
                if name == "code_reward":  # pass rate: share of scored completions passing every assert
                    local["solved"] = (col[scored] >= 1.0).sum().item()
            tot = _all_sum(accelerator, local)
            tokens_all_updates = max(total_tokens, 1.0) * mu
            record = {
                "reward": tot["reward"] / tot["completions"],
                "reward_std": tot["group_std"] / tot["groups"],
                "zero_std_frac": tot["zero_std_groups"] / tot["groups"],
                "loss": loss_sum / mu,
                "kl": tot["kl"] / tokens_all_updates,
                **({"kl_full_mask": tot["kl_full"] / max(total_tokens, 1.0)}
                   if ref is not None and cfg.grpo.log_full_mask_kl else {}),
                "clip_frac": tot["clip"] / tokens_all_updates,
                "clip_low": tot["clip_low"] / tokens_all_updates,
                "clip_high": tot["clip_high"] / tokens_all_updates,
                "ratio": tot["ratio"] / tokens_all_updates,
                "completion_length": tot["length"] / tot["completions"],
                "grad_norm": grad_norm_sum / mu,
                "lr": lr,
                "nfe": tot["nfe"] / world,
                "rollout_time_s": t_roll,
                "step_time_s": time.time() - t0,
            }
            for name in func_names:
                n = tot[f"n/{name}"]
                record[f"rewards/{name.removesuffix('_reward')}"] = tot[f"sum/{name}"] / n if n else float("nan")
            if "solved" in tot:
                record["pass_rate"] = tot["solved"] / tot["n/code_reward"] if tot["n/code_reward"] else float("nan")
            if cfg.log_arness:
                record["arness_local"], record["arness_global"] = rollout_arness(roll.order, mix_seed(cfg.seed, step))
            last_record = record
            bar.update(1)
            bar.set_postfix(reward=f"{record['reward']:.3f}")
            if done % cfg.logging.log_every == 0 or done == end_step:
                metrics.log(done, record)
            if cfg.save_every and done % cfg.save_every == 0:
                save(done)
                last_saved = done
        step = end_step
    except RLDiverged as e:
        good = latest_checkpoint(out)
        _log(accelerator, f"{e}. Stopping without saving; the last good checkpoint is {good}.")
        bar.close()
        metrics.close()
        return RLResult("diverged", step, out, None, good, last_record)
    bar.close()

    if last_saved != end_step:
        save(end_step)
    final_dir = None
    if end_step < cfg.max_steps:
        status = "stopped"
        _log(accelerator, f"stopped after step {end_step} of {cfg.max_steps} (stop_after); continue with resume=true")
    else:
        final_dir = out / "final"
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            from diffucode.training.checkpoint import quiet_hf_progress

            with quiet_hf_progress():
                core.save_pretrained(final_dir, tokenizer=tok)
        accelerator.wait_for_everyone()
    metrics.close()
    if accelerator.is_main_process and cfg.logging.plot:  # the plot logging.plot documents
        from diffucode.training.logging import METRICS_FILE, plot_metric_curves

        plot_metric_curves(out / METRICS_FILE, out / "reward_curve.png", ("reward", "pass_rate", "kl", "loss"),
                           title=f"coupled-GRPO ({cfg.grpo.estimator}): {out.name}")
    _log(accelerator, f"{status} at step {end_step} in {time.time() - t_start:.1f}s; outputs in {out}")
    return RLResult(status, end_step, out, final_dir, latest_checkpoint(out), last_record)


# ---------------------------------------------------------------------------------------------
# the hard-prompt filter
# ---------------------------------------------------------------------------------------------
def _filter_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="diffucode rl filter",
        description="DiffuCoder's hard-prompt filter: keep prompts whose mean pass rate across reference models is in "
                    "the bottom --mean-quantile and whose spread (std across models) is in the top --spread-quantile. "
                    "Pass rates come from --pass-rates, or are measured by sampling each of --models --samples times "
                    "per prompt and running the asserts in the sandbox.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  diffucode rl filter --prompts acecode.jsonl --pass-rates rates.jsonl --out hard.jsonl\n"
               "  diffucode rl filter --prompts acecode.jsonl --models ckpt_a ckpt_b ckpt_c --samples 8 \\\n"
               "      --rates-out rates.jsonl --out hard.jsonl\n\n"
               "pass-rate file: one JSON object per line, {\"id\": ..., \"pass_rates\": {\"model\": rate, ...}}",
    )
    parser.add_argument("--prompts", required=True, help="JSONL prompts (question + test_cases)")
    parser.add_argument("--out", required=True, help="where to write the kept prompts (JSONL)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--pass-rates", help="precomputed per-model pass rates (JSONL)")
    src.add_argument("--models", nargs="+", help="reference model checkpoints to sample (at least two)")
    parser.add_argument("--mean-quantile", type=float, default=0.2, help="keep the bottom share by mean pass rate (0.2)")
    parser.add_argument("--spread-quantile", type=float, default=0.4, help="keep the top share by spread (0.4)")
    parser.add_argument("--rates-out", help="with --models: also write the measured pass rates here (JSONL)")
    parser.add_argument("--samples", type=int, default=4, help="with --models: completions per prompt and model")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="with --models: completion length")
    parser.add_argument("--steps", type=int, default=None, help="with --models: denoising steps (default: max-new-tokens)")
    parser.add_argument("--temperature", type=float, default=1.2, help="with --models: sampling temperature")
    parser.add_argument("--top-p", type=float, default=0.95, help="with --models: nucleus sampling")
    parser.add_argument("--alg", default="entropy", help="with --models: unmasking rule")
    parser.add_argument("--batch-prompts", type=int, default=8, help="with --models: prompts per generate call")
    parser.add_argument("--no-chat-template", action="store_true", help="with --models: feed the raw question")
    parser.add_argument("--timeout", type=float, default=5.0, help="with --models: sandbox seconds per program")
    parser.add_argument("--workers", type=int, default=4, help="with --models: sandbox processes in parallel")
    parser.add_argument("--allow-unsandboxed", action="store_true",
                        help="with --models: run the completions with resource limits only if bubblewrap is unusable")
    parser.add_argument("--seed", type=int, default=0, help="with --models: sampling seed")
    args = parser.parse_args(argv)

    from diffucode.rl.data import DataError, load_prompts, write_jsonl
    from diffucode.rl.filter import id_key, read_pass_rates, select_hard_prompts

    try:
        records = load_prompts(args.prompts)
        if args.pass_rates:
            rates, _ = read_pass_rates(args.pass_rates)  # keyed by id_key: ids compare by value
            missing = [r["id"] for r in records if id_key(r["id"]) not in rates]
            if missing:
                raise DataError(f"{args.pass_rates}: no pass rates for {len(missing)} prompts (first: {missing[0]!r})")
            rates = {id_key(r["id"]): rates[id_key(r["id"])] for r in records}
        else:
            if len(args.models) < 2:
                parser.error("--models: the spread criterion needs at least two reference models")
            rates = {id_key(k): v for k, v in measure_pass_rates(records, args.models, args).items()}
            if args.rates_out:
                names = [Path(m).name or m for m in args.models]
                if len(set(names)) != len(names):
                    names = list(args.models)
                write_jsonl([{"id": r["id"], "pass_rates": dict(zip(names, rates[id_key(r["id"])]))} for r in records],
                            args.rates_out)
        keep = set(select_hard_prompts(rates, args.mean_quantile, args.spread_quantile))
    except (DataError, ValueError) as e:
        print(f"diffucode rl filter: {e}", file=sys.stderr)
        return 2
    kept = [r for r in records if id_key(r["id"]) in keep]
    write_jsonl(kept, args.out)
    print(f"diffucode rl filter: kept {len(kept)} of {len(records)} prompts -> {args.out}", file=sys.stderr)
    return 0


def measure_pass_rates(records: list[dict], model_paths: Sequence[str], args) -> dict[str, list[float]]:
    """Per prompt, the mean code reward of ``args.samples`` sampled completions under each model."""
    import torch

    from diffucode.models import load_model
    from diffucode.rl.data import format_prompt
    from diffucode.rl.rewards import code_reward
    from diffucode.rl.rollout import sample_groups
    from diffucode.sampling import GenerationConfig

    out: dict[str, list[float]] = {r["id"]: [] for r in records}
    n = args.samples
    for path in model_paths:
        model, tok = load_model(path, device="cuda" if torch.cuda.is_available() else None)
        stop_ids = [tok.convert_tokens_to_ids("<|im_end|>")] if "<|im_end|>" in tok.get_vocab() else []
        gen = GenerationConfig(max_new_tokens=args.max_new_tokens, steps=args.steps, alg=args.alg,
                               temperature=args.temperature, top_p=args.top_p, stop_token_ids=stop_ids)
        texts = [format_prompt(tok, r["question"], chat=not args.no_chat_template) for r in records]
        roll = sample_groups(model, tok, texts, n, gen, seed=args.seed, batch_prompts=args.batch_prompts)
        scores = code_reward(None, roll.texts, test_cases=[r["test_cases"] for r in records for _ in range(n)],
                             timeout=args.timeout, max_workers=args.workers,
                             allow_unsandboxed=args.allow_unsandboxed)
        for i, r in enumerate(records):
            vals = [s for s in scores[i * n:(i + 1) * n] if s is not None]
            out[r["id"]].append(sum(vals) / len(vals) if vals else 0.0)
        del model
    return out


def _check_sandbox(allow_unsandboxed: bool, how: str) -> None:
    """Refuse, before any work, to run generated code without bubblewrap unless opted in."""
    from diffucode.execution import SandboxConfig, SandboxUnavailableError, sandbox_info

    try:
        sandbox_info(SandboxConfig(allow_unsandboxed=allow_unsandboxed))
    except SandboxUnavailableError as e:
        raise ConfigError(f"{e} ({how})") from e


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    if argv and argv[0] == "filter":
        return _filter_main(argv[1:])
    if "--allow-unsandboxed" in argv:  # the flag form of the config key
        argv = [a for a in argv if a != "--allow-unsandboxed"] + ["reward.allow_unsandboxed=true"]
    parsed = config_command(
        argv, RLConfig,
        prog="diffucode rl",
        description="coupled-GRPO (DiffuCoder): reinforcement learning for diffusion code models with complementary-mask "
                    "log-likelihood estimates and code-execution rewards. Sub-mode 'diffucode rl filter' selects hard "
                    "prompts (see 'diffucode rl filter --help').",
        examples=[
            "diffucode rl --config configs/rl/coupled_grpo_tiny.yaml",
            "diffucode rl --config configs/rl/coupled_grpo.yaml model.init_from=ckpt data.prompts=hard.jsonl",
            "diffucode rl --config configs/rl/coupled_grpo_tiny.yaml grpo.estimator=decoupled output_dir=runs/dec",
            "diffucode rl --config configs/rl/coupled_grpo_tiny.yaml resume=true",
            "diffucode rl filter --prompts p.jsonl --pass-rates rates.jsonl --out hard.jsonl",
        ],
        config_example="configs/rl/coupled_grpo_tiny.yaml",
        overrides_example="grpo.beta=0 max_steps=3",
    )
    if isinstance(parsed, int):
        return parsed
    cfg, args = parsed
    from diffucode.recipes.run_errors import run_config_recipe

    return run_config_recipe("rl", lambda: train_rl(cfg, config_path=args.config), cfg, data_errors=_data_errors)


def _data_errors() -> tuple[type, ...]:
    from diffucode.rl.data import DataError

    return (DataError,)
