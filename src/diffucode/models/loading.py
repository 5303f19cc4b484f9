"""One loader for every checkpoint family: ``load_model(path) -> (DiffusionLM, tokenizer)``.

Formats (detected from ``config.json``; the loader prints one line saying which and why):

| format           | detected by                                            | backbone           | attention     | shift | block |
|------------------|--------------------------------------------------------|--------------------|---------------|-------|-------|
| diffucode        | ``diffusion_attention`` in config (our own saves)      | the config's class | from config   | from config | from config |
| dream            | ``model_type: "Dream"`` (DiffuCoder, Dream)            | Qwen2ForCausalLM   | bidirectional | yes   | -     |
| llada            | ``model_type: "llada"`` (OLMo-style names)             | LlamaForCausalLM   | bidirectional | no    | -     |
| sdar             | ``model_type: "sdar"`` (Qwen3: q_norm/k_norm, head_dim) | Qwen3ForCausalLM   | block_causal  | no    | ``block_size`` |
| stable_diffcoder | ``architectures`` / ``auto_map`` naming StableDiffcoder (a plain ``llama`` config with no diffusion fields) | LlamaForCausalLM | block_causal | no | 4 (the release's code) |
| block            | ``block_length`` / ``block_size`` + ``mask_token_id``  | Llama / Qwen2      | block_causal  | no    | from config |
| causal_lm        | anything transformers' AutoModelForCausalLM loads      | that class         | bidirectional (adaptation default) | yes | - |

Nothing here runs code shipped with a checkpoint: every transformers call passes
``trust_remote_code=False``; Dream / LLaDA / SDAR / Stable-DiffCoder configs are translated to
transformers' Qwen2 / Llama / Qwen3 configs (LLaDA's weight names are renamed on load with
``key_mapping``), so the stock, maintained modules run them. For a layout the loader does not
recognise (or gets wrong) pass ``attention``, ``shift``, ``block_len`` and ``mask_token``
(CLI: ``--attention``, ``--logits-shift/--no-logits-shift``, ``--model-block-len``,
``--mask-token``).

    python -c "from diffucode.models import load_model; print(load_model('path/to/ckpt')[0])"
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from diffucode.bundled import bundled_model_path, resolve_model_path
from diffucode.errors import UserError
from diffucode.models.attention import ATTENTION_MODES
from diffucode.models.diffusion_lm import DiffusionLM
from diffucode.models.tokenizer import build_tiny_tokenizer, ensure_mask_token, load_tokenizer

LLADA_MASK_ID = 126336

# LLaDA (OLMo-style) weight names -> transformers Llama names. Checkpoint key regex -> model key.
LLADA_KEY_MAPPING = {
    r"^model\.transformer\.wte\.": "model.embed_tokens.",
    r"^model\.transformer\.ln_f\.": "model.norm.",
    r"^model\.transformer\.ff_out\.": "lm_head.",
    r"^model\.transformer\.blocks\.(\d+)\.q_proj\.": r"model.layers.\1.self_attn.q_proj.",
    r"^model\.transformer\.blocks\.(\d+)\.k_proj\.": r"model.layers.\1.self_attn.k_proj.",
    r"^model\.transformer\.blocks\.(\d+)\.v_proj\.": r"model.layers.\1.self_attn.v_proj.",
    r"^model\.transformer\.blocks\.(\d+)\.attn_out\.": r"model.layers.\1.self_attn.o_proj.",
    r"^model\.transformer\.blocks\.(\d+)\.ff_proj\.": r"model.layers.\1.mlp.gate_proj.",  # SiLU applies here
    r"^model\.transformer\.blocks\.(\d+)\.up_proj\.": r"model.layers.\1.mlp.up_proj.",
    r"^model\.transformer\.blocks\.(\d+)\.ff_out\.": r"model.layers.\1.mlp.down_proj.",
    r"^model\.transformer\.blocks\.(\d+)\.attn_norm\.": r"model.layers.\1.input_layernorm.",
    r"^model\.transformer\.blocks\.(\d+)\.ff_norm\.": r"model.layers.\1.post_attention_layernorm.",
}

_QWEN2_KEYS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps", "rope_theta",
    "tie_word_embeddings", "attention_dropout", "bos_token_id", "eos_token_id", "pad_token_id",
    "initializer_range", "rope_scaling",
)
_BLOCK_LEN_KEYS = ("diffusion_block_len", "block_length", "block_len", "block_size")


class CheckpointError(UserError, ValueError):
    """A checkpoint directory is missing, malformed, or does not match its config."""


def _read_config(path: Path) -> dict:
    if not path.exists():
        from diffucode.bundled import missing_model_hint

        raise CheckpointError(f"model path does not exist: {path} ({missing_model_hint(path)})")
    if not path.is_dir():
        raise CheckpointError(f"{path}: is a file, not a model directory (config.json + weights + tokenizer)")
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"{path}: no config.json (is this a Hugging Face model directory?)")
    try:
        cfg = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_file}: not valid JSON: {e}") from e
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{cfg_file}: expected a JSON object, got {type(cfg).__name__}")
    return cfg


STABLE_DIFFCODER_BLOCK_LEN = 4  # fixed in the release's code, absent from its config
STABLE_DIFFCODER_MASK_TOKEN = "<[MASK_TOKEN]>"  # id 5 in the release tokenizer


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _names_stable_diffcoder(cfg: dict) -> str | None:
    """The config field that names Stable-DiffCoder's custom class, if any (architectures, then auto_map)."""
    for arch in cfg.get("architectures") or []:
        if "stablediffcoder" in _norm(arch):
            return f"architectures {arch!r}"
    auto_map = cfg.get("auto_map") or {}
    for key, target in auto_map.items():
        targets = target if isinstance(target, (list, tuple)) else [target]
        if any(t and "stablediffcoder" in _norm(t) for t in targets):
            return f"auto_map {key} -> {target!r}"
    return None


def detect_format(cfg: dict) -> str:
    """Name the checkpoint family of a parsed config.json (see the module table)."""
    return _detect(cfg)[0]


def _detect(cfg: dict) -> tuple[str, str]:
    """``(format, why)``: the family and the config fields that decided it."""
    model_type = str(cfg.get("model_type", "")).lower()
    if "diffusion_attention" in cfg:
        return "diffucode", "config has diffusion_attention (saved by diffucode)"
    if model_type == "dream":
        return "dream", "model_type 'Dream'"
    if model_type == "llada":
        return "llada", "model_type 'llada'"
    if model_type == "sdar":
        return "sdar", "model_type 'sdar'"
    named = _names_stable_diffcoder(cfg)
    if named and model_type in ("llama", "stable_diffcoder", "stablediffcoder", ""):
        return "stable_diffcoder", named
    if any(k in cfg for k in _BLOCK_LEN_KEYS) and "mask_token_id" in cfg and model_type in ("llama", "stable_diffcoder", "qwen2"):
        key = next(k for k in _BLOCK_LEN_KEYS if k in cfg)
        return "block", f"config has {key} and mask_token_id"
    from transformers import CONFIG_MAPPING

    if model_type in CONFIG_MAPPING:
        return "causal_lm", f"model_type {cfg.get('model_type')!r} with no diffusion fields: a causal LM to adapt"
    raise CheckpointError(
        f"unknown model_type {cfg.get('model_type')!r}: supported are Dream/DiffuCoder ('Dream'), LLaDA ('llada'), "
        "SDAR ('sdar'), Stable-DiffCoder (architectures StableDiffcoderForCausalLM), block-diffusion Llama "
        "checkpoints (with block_length and mask_token_id), and any causal LM transformers knows"
    )


def _dream_config(cfg: dict):
    from transformers import Qwen2Config

    kwargs = {k: cfg[k] for k in _QWEN2_KEYS if k in cfg and cfg[k] is not None}
    return Qwen2Config(**kwargs)


def _llada_config(cfg: dict):
    from transformers import LlamaConfig

    n_heads = cfg["n_heads"]
    return LlamaConfig(
        vocab_size=cfg.get("embedding_size") or cfg["vocab_size"],
        hidden_size=cfg["d_model"],
        intermediate_size=cfg.get("mlp_hidden_size") or cfg["d_model"] * cfg.get("mlp_ratio", 4),
        num_hidden_layers=cfg["n_layers"],
        num_attention_heads=n_heads,
        num_key_value_heads=cfg.get("n_kv_heads") or n_heads,
        max_position_embeddings=cfg.get("max_sequence_length", 4096),
        rms_norm_eps=cfg.get("rms_norm_eps", 1e-5),
        rope_theta=cfg.get("rope_theta", 10000.0),
        tie_word_embeddings=bool(cfg.get("weight_tying", False)),
        attention_bias=bool(cfg.get("include_qkv_bias", cfg.get("include_bias", False))),
        mlp_bias=bool(cfg.get("include_bias", False)),
        hidden_act="silu",
        eos_token_id=cfg.get("eos_token_id"),
        pad_token_id=cfg.get("pad_token_id"),
    )


# Config keys that are run-time choices of the releases' own code, not architecture: never let
# them pick an attention kernel (SDAR's "flex_attention") or change the loaded module.
_DROP_KEYS = ("architectures", "auto_map", "model_type", "attn_implementation", "_attn_implementation",
              "torch_dtype", "dtype", "transformers_version")


def _block_config(cfg: dict):
    from transformers import AutoConfig, LlamaConfig

    model_type = str(cfg.get("model_type", "")).lower()
    known = {k: v for k, v in cfg.items() if k not in _DROP_KEYS}
    if model_type in ("llama", "qwen2"):
        return AutoConfig.for_model(model_type).__class__(**known)
    return LlamaConfig(**known)


_QWEN3_KEYS = _QWEN2_KEYS + ("head_dim", "attention_bias", "use_sliding_window", "sliding_window", "max_window_layers")


def _sdar_config(cfg: dict):
    """SDAR is Qwen3 (per-head q_norm / k_norm, an explicit head_dim) with a block-causal mask."""
    from transformers import Qwen3Config

    kwargs = {k: cfg[k] for k in _QWEN3_KEYS if k in cfg and cfg[k] is not None}
    if not kwargs.get("use_sliding_window"):
        kwargs.pop("sliding_window", None)
    return Qwen3Config(**kwargs)


def _from_pretrained(cls, path: Path, config, dtype, key_mapping=None):
    """transformers' loader (shards, dtype, safetensors) with a strict check of the weights."""
    try:
        model, info = cls.from_pretrained(
            str(path), config=config, dtype=dtype or torch.float32, key_mapping=key_mapping,
            output_loading_info=True, trust_remote_code=False,
        )
    except (RuntimeError, ValueError, OSError) as e:
        raise CheckpointError(f"{path}: weights do not load into a {cls.__name__} built from its config: {e}") from e
    missing = [k for k in info.get("missing_keys", []) if "rotary_emb" not in k]
    if getattr(config, "tie_word_embeddings", False):
        missing = [k for k in missing if k != "lm_head.weight"]
    problems = []
    if missing:
        problems.append(f"missing weights {sorted(missing)[:5]}{' ...' if len(missing) > 5 else ''}")
    if info.get("unexpected_keys"):
        unexpected = sorted(info["unexpected_keys"])
        problems.append(f"unexpected weights {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    if info.get("mismatched_keys"):
        problems.append(f"shape mismatches {list(info['mismatched_keys'])[:5]}")
    if problems:
        raise CheckpointError(f"{path}: checkpoint weights do not match its config: " + "; ".join(problems))
    return model


def load_model(
    path: str | Path,
    attention: str | None = None,
    shift: bool | None = None,
    block_len: int | None = None,
    mask_token: str | None = None,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = None,
    verbose: bool = True,
) -> tuple[DiffusionLM, Any]:
    """Load any supported checkpoint directory as a :class:`DiffusionLM` plus its tokenizer.
    ``path`` may also name a bundled model: ``"nano"`` (block diffusion) or ``"nano-mdm"`` (bidirectional).

    ``attention`` / ``shift`` / ``block_len`` / ``mask_token`` override what the checkpoint
    implies (for adapting a causal LM these are the choice of recipe; for a release the loader
    does not recognise they are the fix). ``dtype`` may be a torch dtype or "float32" /
    "bfloat16" / "float16"; default float32. With ``verbose`` one line on stderr says what was
    detected and why (also kept as ``model.detection``). Nothing is ever written to stdout, and
    no code shipped with the checkpoint is run.
    """
    path = resolve_model_path(path)  # "nano", "nano-mdm": the bundled models
    cfg = _read_config(path)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if attention is not None and attention not in ATTENTION_MODES:
        raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
    if block_len is not None and (not isinstance(block_len, int) or block_len < 1):
        raise ValueError(f"block_len must be a positive integer, got {block_len!r}")
    # transformers must never prompt or print on stdout: it carries only the result (--json).
    with contextlib.redirect_stdout(sys.stderr):
        model, tokenizer, line = _load(path, cfg, attention, shift, block_len, mask_token, dtype)
    model.detection = line
    if verbose:
        print(line, file=sys.stderr)
    if device is not None:
        model.to(device)
    model.eval()
    return model, tokenizer


@dataclass
class _Implied:
    """What a checkpoint format implies, before the caller's overrides."""

    attention: str
    shift: bool
    block_len: int | None
    mask_id: int | None
    backbone: str = ""
    notes: list[str] = field(default_factory=list)


def _load(path: Path, cfg: dict, attention, shift, block_len, mask_token, dtype):
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM

    fmt, why = _detect(cfg)
    if not ((path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file()
            or (path / "vocab.json").is_file()):
        raise CheckpointError(f"{path}: no tokenizer files (tokenizer.json / tokenizer_config.json / vocab.json)")
    try:
        tokenizer = load_tokenizer(path)
    except (ValueError, OSError) as e:
        raise CheckpointError(f"{path}: could not load the tokenizer: {e}") from e

    if fmt == "diffucode":
        hf_cfg = AutoConfig.from_pretrained(str(path), trust_remote_code=False)
        backbone = _from_pretrained(AutoModelForCausalLM, path, hf_cfg, dtype)
        imp = _Implied(cfg["diffusion_attention"], bool(cfg.get("diffusion_shift", False)),
                       cfg.get("diffusion_block_len"), cfg.get("mask_token_id"))
    elif fmt == "dream":
        backbone = _from_pretrained(Qwen2ForCausalLM, path, _dream_config(cfg), dtype)
        imp = _Implied("bidirectional", True, None, cfg.get("mask_token_id"))
    elif fmt == "llada":
        backbone = _from_pretrained(LlamaForCausalLM, path, _llada_config(cfg), dtype, LLADA_KEY_MAPPING)
        imp = _Implied("bidirectional", False, None, cfg.get("mask_token_id", LLADA_MASK_ID))
    elif fmt == "sdar":
        backbone = _from_pretrained(Qwen3ForCausalLM, path, _sdar_config(cfg), dtype)
        blk = next((int(cfg[k]) for k in _BLOCK_LEN_KEYS if k in cfg), None)
        imp = _Implied("block_causal", False, blk, cfg.get("mask_token_id"))
        if blk is None:
            imp.notes.append("no block_size in config")
    elif fmt == "stable_diffcoder":
        backbone = _from_pretrained(LlamaForCausalLM, path, _block_config({**cfg, "model_type": "llama"}), dtype)
        blk = next((int(cfg[k]) for k in _BLOCK_LEN_KEYS if k in cfg), STABLE_DIFFCODER_BLOCK_LEN)
        mask_id = cfg.get("mask_token_id")
        if mask_id is None:
            vocab = tokenizer.get_vocab()
            if STABLE_DIFFCODER_MASK_TOKEN in vocab:
                mask_id = vocab[STABLE_DIFFCODER_MASK_TOKEN]
        imp = _Implied("block_causal", False, blk, mask_id)
    elif fmt == "block":
        hf_cfg = _block_config(cfg)
        cls = Qwen2ForCausalLM if hf_cfg.model_type == "qwen2" else LlamaForCausalLM
        backbone = _from_pretrained(cls, path, hf_cfg, dtype)
        imp = _Implied("block_causal", False, next(int(cfg[k]) for k in _BLOCK_LEN_KEYS if k in cfg), cfg["mask_token_id"])
    else:  # causal_lm being adapted
        hf_cfg = AutoConfig.from_pretrained(str(path), trust_remote_code=False)
        backbone = _from_pretrained(AutoModelForCausalLM, path, hf_cfg, dtype)
        imp = _Implied("bidirectional", True, None, None)

    mask_id = imp.mask_id
    if mask_id is None or mask_token is not None:
        added = ensure_mask_token(tokenizer, mask_token)
        mask_id = tokenizer.mask_token_id
        if mask_id >= backbone.get_input_embeddings().num_embeddings or added:
            backbone.resize_token_embeddings(len(tokenizer))
        if added:
            imp.notes.append(f"added mask token {tokenizer.mask_token!r} = {mask_id} (new embedding row)")
    elif tokenizer.mask_token_id != int(mask_id):
        # the config's id wins (SDAR's tokenizer_config names a mask string that is not its id 151669)
        token = tokenizer.convert_ids_to_tokens(int(mask_id))
        if token is not None:
            tokenizer.mask_token = token

    overridden = [name for name, v in (("attention", attention), ("shift", shift), ("block_len", block_len),
                                       ("mask_token", mask_token)) if v is not None]
    attention = attention or imp.attention
    block_len = block_len if block_len is not None else imp.block_len
    shift = imp.shift if shift is None else bool(shift)
    if attention == "block_causal" and not block_len:
        raise CheckpointError(f"{path}: block-causal attention needs a block length and the checkpoint gives none: "
                              f"pass block_len (CLI: --model-block-len N)")
    model = DiffusionLM(
        backbone,
        mask_token_id=int(mask_id),
        attention=attention,
        shift=shift,
        block_len=block_len,
        eos_token_id=tokenizer.eos_token_id if tokenizer.eos_token_id is not None else cfg.get("eos_token_id"),
        pad_token_id=tokenizer.pad_token_id,
    )
    model.checkpoint_format = fmt
    mask_str = tokenizer.convert_ids_to_tokens(int(mask_id))
    line = (f"diffucode: {path.name or path}: {fmt} ({why}): {type(backbone).__name__}, {attention} attention"
            + (f", block {model.block_len}" if attention == "block_causal" else "")
            + f", {'shifted' if shift else 'unshifted'} logits, mask {mask_str!r} = {mask_id}"
            + (f"; overridden: {', '.join(overridden)}" if overridden else "")
            + (f"; {'; '.join(imp.notes)}" if imp.notes else ""))
    return model, tokenizer, line


def build_tiny_model(
    attention: str = "bidirectional",
    shift: bool = True,
    block_len: int | None = None,
    arch: str = "qwen2",
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    max_seq_len: int = 1024,
    tokenizer=None,
    seed: int = 0,
) -> tuple[DiffusionLM, Any]:
    """An untrained small model (and a tiny BPE tokenizer unless one is given), for tests and
    smoke runs. Deterministic from ``seed``."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tok = tokenizer if tokenizer is not None else build_tiny_tokenizer()
    ensure_mask_token(tok)
    common = dict(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_seq_len,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    if arch == "qwen2":
        cfg, cls = Qwen2Config(**common), Qwen2ForCausalLM
    elif arch == "llama":
        cfg, cls = LlamaConfig(**common), LlamaForCausalLM
    else:
        raise ValueError(f"arch must be 'qwen2' or 'llama', got {arch!r}")
    cfg._attn_implementation = "sdpa"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = cls(cfg)
    if attention == "block_causal" and block_len is None:
        block_len = 4
    model = DiffusionLM(
        backbone,
        mask_token_id=tok.mask_token_id,
        attention=attention,
        shift=shift,
        block_len=block_len,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model.checkpoint_format = "tiny"
    model.eval()
    return model, tok


def default_model_path() -> Path | None:
    """The bundled model shipped inside the package, or None if this install has none."""
    return bundled_model_path()
