"""Typed configuration of ``diffucode train`` (and reusable pieces for other training recipes).

    diffucode train --config configs/train/mdm_tiny.yaml max_steps=5 optim.lr=1e-3
    diffucode train --help          # every key with its help text and default

Sections: ``model`` (what to train and with which attention), ``data``, ``optim``, ``diffusion``
(objective knobs), ``sft``, ``lora`` and ``logging``. ``OptimConfig``, ``LoggingConfig`` and
``LoraConfig`` are shared with the RL recipe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Optional

Recipe = Literal["ar", "mdm", "block", "sft"]

# The attention / shift each recipe trains with when model.attention / model.shift are unset.
# sft: None = keep what the init checkpoint says.
RECIPE_ATTENTION = {"ar": "causal", "mdm": "bidirectional", "block": "block_causal", "sft": None}
RECIPE_SHIFT = {"ar": None, "mdm": True, "block": False, "sft": None}


@dataclass
class TinyModelConfig:
    arch: Literal["qwen2", "llama"] = field(default="qwen2", metadata={"help": "backbone family of the tiny model"})
    hidden_size: int = field(default=64, metadata={"help": "hidden size of the tiny model"})
    num_layers: int = field(default=2, metadata={"help": "number of transformer layers of the tiny model"})
    num_heads: int = field(default=4, metadata={"help": "attention heads of the tiny model"})
    num_kv_heads: int = field(default=2, metadata={"help": "key/value heads of the tiny model"})
    seed: int = field(default=0, metadata={"help": "initialisation seed of the tiny model"})


@dataclass
class ModelConfig:
    init_from: Optional[str] = field(
        default=None,
        metadata={"help": "checkpoint directory to start from (any format load_model reads; e.g. the previous "
                          "stage's output_dir/final), or a bundled model's name (nano, nano-mdm). Unset: a fresh tiny model built from model.tiny"},
    )
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig, metadata={"help": "tiny model (when init_from is unset)"})
    attention: Optional[Literal["bidirectional", "block_causal", "causal"]] = field(
        default=None,
        metadata={"help": "attention to train with and save; unset: ar->causal, mdm->bidirectional, "
                          "block->block_causal, sft->the checkpoint's"},
    )
    shift: Optional[bool] = field(
        default=None,
        metadata={"help": "logits shift (Dream/DiffuCoder: token i read from output i-1); unset: mdm->true, "
                          "block->false, ar/sft->the checkpoint's (true for a tiny model)"},
    )
    block_len: Optional[int] = field(
        default=None, metadata={"help": "block length B for block_causal attention / the block recipe (default 4)"}
    )
    dtype: Literal["float32", "bfloat16", "float16"] = field(
        default="float32", metadata={"help": "dtype of the master weights (mixed precision is set separately)"}
    )
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations in backward to save memory"})


@dataclass
class DataConfig:
    train: list[str] = field(
        default_factory=list,
        metadata={"help": "training sources: files (.txt/.py/.jsonl/.json/.parquet), directories, globs, "
                          "save_to_disk datasets or hub ids. Relative paths: current dir, then the config's dir"},
    )
    eval: list[str] = field(default_factory=list, metadata={"help": "evaluation sources (same forms as data.train)"})
    eval_fraction: float = field(
        default=0.0, metadata={"help": "hold out this fraction of training rows/examples for evaluation when data.eval is empty"}
    )
    text_field: str = field(default="text", metadata={"help": "field holding the document text in JSONL/parquet/HF records"})
    hf_split: str = field(default="train", metadata={"help": "split to read from Hugging Face datasets"})
    shuffle: bool = field(default=True, metadata={"help": "shuffle rows each epoch (deterministic from seed)"})
    add_bos: bool = field(default=False, metadata={"help": "put the tokenizer's BOS before every packed document"})


@dataclass
class OptimConfig:
    lr: float = field(default=3e-4, metadata={"help": "peak learning rate (DiffuCoder adaptation: 2e-5)"})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "cosine decays to lr * min_lr_ratio (DiffuCoder: 0.1)"})
    warmup_steps: int = field(default=0, metadata={"help": "linear learning-rate warm-up steps"})
    schedule: Literal["cosine", "constant"] = field(default="cosine", metadata={"help": "learning-rate schedule after warm-up"})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay (not applied to biases and norms)"})
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95], metadata={"help": "AdamW betas"})
    eps: float = field(default=1e-8, metadata={"help": "AdamW epsilon"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "clip the global gradient norm to this (0 = no clipping)"})

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError("optim.lr must be > 0")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError("optim.min_lr_ratio must be in [0, 1]")
        if self.warmup_steps < 0:
            raise ValueError("optim.warmup_steps must be >= 0")
        if len(self.betas) != 2:
            raise ValueError("optim.betas must be two numbers")


@dataclass
class DiffusionConfig:
    eps: float = field(default=1e-3, metadata={"help": "t ~ U(eps, 1) for MDM / SFT; u ~ U(eps, 1) for block diffusion"})
    anneal_steps: int = field(
        default=0,
        metadata={"help": "mdm: attention-mask annealing from causal to bidirectional over this many steps (0 = off)"},
    )
    anneal_style: Literal["random", "band"] = field(
        default="random",
        metadata={"help": "annealing: 'random' opens each future key with prob. p (one pattern per step), "
                          "'band' opens the next round(p*(L-1)) keys"},
    )
    truncate_fraction: float = field(
        default=0.0, metadata={"help": "mdm: fraction of sequences cut to a random length (DiffuCoder: ~0.01)"}
    )
    prefix_fraction: float = field(
        default=0.0, metadata={"help": "mdm: fraction of sequences given a clean random-length prefix (DiffuCoder: ~0.01)"}
    )
    block_truncate: bool = field(
        default=True,
        metadata={"help": "block: Stable-DiffCoder's block-truncated schedule (u_blk = min(1, max(u, 1/B)), >= 1 mask "
                          "per block); false = plain u per block, weight 1/u"},
    )
    block_weight: Literal["inclusion", "literal"] = field(
        default="inclusion",
        metadata={"help": "block_truncate: loss weight of a masked token. inclusion = 1/pi, pi = u_blk + (1-u_blk)^n/n its "
                          "real masking probability with the forced mask (unbiased, on the MDM loss's scale); literal = "
                          "the paper's 1/u_blk (over-counts forced tokens: ~1.11 weighted tokens per token at B=4)"},
    )
    block_t_per: Literal["sequence", "block"] = field(
        default="sequence", metadata={"help": "block: draw u once per sequence, or independently for every block"}
    )
    mask_warmup_steps: int = field(
        default=0,
        metadata={"help": "Stable-DiffCoder warm-up: for this many steps t ~ U(0, u_max(s)), u_max rising linearly "
                          "from mask_warmup_init to 1, loss unweighted (mean CE over masked tokens). With block_truncate "
                          "the truncated schedule's mask is thinned by u_max (each mask kept w.p. u_max), so the 1/B floor "
                          "and the forced mask never override the cap"},
    )
    mask_warmup_init: float = field(default=1e-3, metadata={"help": "u_init of the mask-rate warm-up"})
    certainty_weight: float = field(
        default=0.0,
        metadata={"help": "mdm / block / their SFT: add this times dParallel's certainty-forcing term (entropy of the "
                          "prediction at masked positions the model already gets right) to the loss; train on the "
                          "model's own decodes (scripts/build_distill_data.py) for certainty-forcing distillation. "
                          "0 = off"},
    )
    certainty_temperature: float = field(
        default=1.0, metadata={"help": "softmax temperature of the certainty-forcing entropy"}
    )
    sft_objective: Literal["auto", "mdm", "block", "ar"] = field(
        default="auto", metadata={"help": "sft: loss to fine-tune with; auto = block for block_causal models, else mdm"}
    )

    def __post_init__(self):
        if not 0.0 <= self.eps < 1.0:
            raise ValueError("diffusion.eps must be in [0, 1)")
        for name in ("truncate_fraction", "prefix_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"diffusion.{name} must be in [0, 1]")
        if self.anneal_steps < 0 or self.mask_warmup_steps < 0:
            raise ValueError("diffusion.anneal_steps and diffusion.mask_warmup_steps must be >= 0")
        if not 0.0 < self.mask_warmup_init <= 1.0:
            raise ValueError("diffusion.mask_warmup_init must be in (0, 1]")
        if not (self.certainty_weight >= 0.0 and math.isfinite(self.certainty_weight)):
            raise ValueError(f"diffusion.certainty_weight must be a finite number >= 0, got {self.certainty_weight}")
        if not (self.certainty_temperature > 0.0 and math.isfinite(self.certainty_temperature)):
            raise ValueError(f"diffusion.certainty_temperature must be a finite number > 0, got {self.certainty_temperature}")


@dataclass
class SFTConfig:
    chat_template: bool = field(default=True, metadata={"help": "format conversations with the tokenizer's chat template"})
    pad_mode: Literal["pad_to_max", "random_eos"] = field(
        default="pad_to_max",
        metadata={"help": "pad_to_max: response + EOS + pad tokens to max_seq_len, all supervised (DiffuCoder); "
                          "random_eos: 1..max_eos EOS appended, padding ignored (Stable-DiffCoder)"},
    )
    fill_token: Literal["pad", "eos"] = field(default="pad", metadata={"help": "pad_to_max: the token that fills the response"})
    max_eos: int = field(default=4, metadata={"help": "random_eos: append 1..max_eos EOS tokens"})

    def __post_init__(self):
        if self.max_eos < 1:
            raise ValueError("sft.max_eos must be >= 1")


@dataclass
class LoraConfig:
    enabled: bool = field(default=False, metadata={"help": "train LoRA adapters (peft) instead of all weights"})
    r: int = field(default=16, metadata={"help": "LoRA rank"})
    alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale = alpha / r)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the LoRA input"})
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        metadata={"help": "module names that get adapters"},
    )
    modules_to_save: list[str] = field(
        default_factory=list,
        metadata={"help": "modules trained in full next to the adapters (e.g. embed_tokens when a mask token was added)"},
    )
    merge_at_end: bool = field(default=True, metadata={"help": "merge the adapters and save a plain checkpoint as final/"})

    def __post_init__(self):
        if self.r < 1:
            raise ValueError("lora.r must be >= 1")


@dataclass
class LoggingConfig:
    log_every: int = field(default=1, metadata={"help": "write a metrics.jsonl line every this many steps"})
    progress_bar: bool = field(default=True, metadata={"help": "show a tqdm progress bar (main process)"})
    tensorboard: bool = field(default=False, metadata={"help": "also log to TensorBoard (output_dir/tensorboard)"})
    wandb: bool = field(default=False, metadata={"help": "also log to Weights & Biases"})
    wandb_project: str = field(default="diffucode", metadata={"help": "W&B project"})
    run_name: Optional[str] = field(default=None, metadata={"help": "run name for W&B / TensorBoard (default: output_dir name)"})
    plot: bool = field(default=True, metadata={"help": "write the curves at the end: loss_curve.png (train), reward_curve.png (rl)"})

    def __post_init__(self):
        if self.log_every < 1:
            raise ValueError("logging.log_every must be >= 1")


@dataclass
class TrainConfig:
    recipe: Recipe = field(
        default="mdm",
        metadata={"help": "objective: ar (next-token), mdm (DiffuCoder-style masked diffusion / adaptation), "
                          "block (Stable-DiffCoder block diffusion), sft (instruction tuning)"},
    )
    output_dir: str = field(default="runs/train", metadata={"help": "run directory: checkpoints/, final/, metrics.jsonl, config.yaml"})
    max_steps: int = field(default=100, metadata={"help": "optimiser steps of the whole run (sets the lr schedule)"})
    batch_size: int = field(default=8, metadata={"help": "global batch size in sequences per optimiser step (all processes)"})
    micro_batch_size: int = field(
        default=8, metadata={"help": "sequences per forward pass per process; accumulation = batch_size / (micro * processes)"}
    )
    max_seq_len: int = field(default=256, metadata={"help": "tokens per training row (block recipe: the model sees 2x this)"})
    seed: int = field(default=0, metadata={"help": "seed of data order and of every noise draw"})
    save_every: int = field(default=0, metadata={"help": "write a checkpoint every this many steps (0 = only at the end)"})
    keep_last: int = field(default=2, metadata={"help": "checkpoints kept in output_dir/checkpoints (older ones deleted)"})
    resume: bool = field(default=False, metadata={"help": "true: continue from the newest checkpoint in output_dir"})
    overwrite: bool = field(
        default=False, metadata={"help": "allow starting fresh in an output_dir that already has checkpoints (they are deleted)"}
    )
    stop_after: Optional[int] = field(
        default=None,
        metadata={"help": "end this invocation after this step with a checkpoint, without finishing the schedule "
                          "(continue later with resume=true; for preemptible jobs and tests)"},
    )
    eval_every: int = field(default=0, metadata={"help": "evaluation loss every this many steps (0 = never; also at the end if eval data)"})
    eval_batches: int = field(default=4, metadata={"help": "micro-batches per process in one evaluation"})
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = field(
        default="auto", metadata={"help": "auto: bf16 on GPUs that support it, otherwise fp32"}
    )
    tokenizer_path: Optional[str] = field(
        default=None, metadata={"help": "tokenizer directory to use instead of the model's (must match its vocabulary)"}
    )
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "model"})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "data"})
    optim: OptimConfig = field(default_factory=OptimConfig, metadata={"help": "optimiser"})
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig, metadata={"help": "objective"})
    sft: SFTConfig = field(default_factory=SFTConfig, metadata={"help": "SFT data"})
    lora: LoraConfig = field(default_factory=LoraConfig, metadata={"help": "LoRA"})
    logging: LoggingConfig = field(default_factory=LoggingConfig, metadata={"help": "logging"})

    def __post_init__(self):
        if self.max_steps < 1:
            raise ValueError("max_steps must be >= 1")
        if self.batch_size < 1 or self.micro_batch_size < 1:
            raise ValueError("batch_size and micro_batch_size must be >= 1")
        if self.batch_size % self.micro_batch_size:
            raise ValueError(f"batch_size ({self.batch_size}) must be a multiple of micro_batch_size ({self.micro_batch_size})")
        if self.max_seq_len < 2:
            raise ValueError("max_seq_len must be >= 2")
        if self.save_every < 0 or self.eval_every < 0 or self.keep_last < 1:
            raise ValueError("save_every and eval_every must be >= 0, keep_last >= 1")
        if self.stop_after is not None and not 1 <= self.stop_after <= self.max_steps:
            raise ValueError(f"stop_after must be in [1, max_steps={self.max_steps}]")
        if not self.data.train:
            raise ValueError("data.train is empty: name at least one training source")
        if not 0.0 <= self.data.eval_fraction < 1.0:
            raise ValueError("data.eval_fraction must be in [0, 1)")
        if self.model.block_len is not None and self.model.block_len < 1:
            raise ValueError("model.block_len must be >= 1")
        if self.recipe == "block" and self.model.shift:
            raise ValueError("recipe 'block' trains without the logits shift: set model.shift=false (or leave it unset)")
        if self.recipe == "block" and self.model.attention not in (None, "block_causal"):
            raise ValueError("recipe 'block' trains block_causal attention: leave model.attention unset or set block_causal")
        if self.recipe == "ar" and self.model.attention not in (None, "causal"):
            raise ValueError("recipe 'ar' trains causal attention: leave model.attention unset or set causal")
        if self.recipe == "mdm" and self.model.attention == "block_causal":
            raise ValueError("recipe 'mdm' is whole-sequence diffusion: use recipe 'block' for block_causal models")
        if self.diffusion.anneal_steps and self.recipe not in ("mdm", "sft"):
            raise ValueError("diffusion.anneal_steps applies to recipe mdm (annealing causal -> bidirectional)")
        if self.diffusion.certainty_weight and (self.recipe == "ar" or self.diffusion.sft_objective == "ar"):
            raise ValueError("diffusion.certainty_weight applies to the diffusion losses (mdm, block and their SFT), "
                             "not to the ar objective")

    def resolved_attention(self, checkpoint_attention: str) -> str:
        if self.model.attention is not None:
            return self.model.attention
        if self.recipe == "sft" and self.diffusion.sft_objective == "block":
            return "block_causal"
        return RECIPE_ATTENTION[self.recipe] or checkpoint_attention

    def resolved_shift(self, checkpoint_shift: bool) -> bool:
        if self.model.shift is not None:
            return self.model.shift
        default = RECIPE_SHIFT[self.recipe]
        return checkpoint_shift if default is None else default
