"""One loader for every checkpoint family: ``load_model(path) -> (DiffusionLM, tokenizer)``.

Formats (detected from ``config.json``):

| format       | detected by                                       | backbone            | attention      | shift |
|--------------|---------------------------------------------------|---------------------|----------------|-------|
| diffucode    | ``diffusion_attention`` in config (our own saves) | the config's class  | from config    | from config |
| dream        | ``model_type: "Dream"`` (DiffuCoder, Dream)       | Qwen2ForCausalLM    | bidirectional  | yes   |
| llada        | ``model_type: "llada"`` (OLMo-style names)        | LlamaForCausalLM    | bidirectional  | no    |
| block        | ``block_length`` / ``block_size`` + ``mask_token_id`` (Stable-DiffCoder, SDAR-style Llama) | LlamaForCausalLM | block_causal | no |
| causal_lm    | anything transformers' AutoModelForCausalLM loads | that class          | bidirectional (adaptation default) | yes |

Dream and LLaDA are loaded *without* ``trust_remote_code``: their configs are translated to
transformers' Qwen2 / Llama configs and LLaDA's weight names are renamed on load
(``key_mapping``), so the stock, maintained modules run them.

    python -c "from diffucode.models import load_model; print(load_model('path/to/ckpt')[0])"
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

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


class CheckpointError(ValueError):
    """A checkpoint directory is missing, malformed, or does not match its config."""


def _read_config(path: Path) -> dict:
    if not path.exists():
        raise CheckpointError(f"model path does not exist: {path}")
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"{path}: no config.json (is this a Hugging Face model directory?)")
    try:
        return json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_file}: not valid JSON: {e}") from e


def detect_format(cfg: dict) -> str:
    """Name the checkpoint family of a parsed config.json (see the module table)."""
    model_type = str(cfg.get("model_type", "")).lower()
    if "diffusion_attention" in cfg:
        return "diffucode"
    if model_type == "dream":
        return "dream"
    if model_type == "llada":
        return "llada"
    if any(k in cfg for k in _BLOCK_LEN_KEYS) and "mask_token_id" in cfg and model_type in ("llama", "sdar", "stable_diffcoder", "qwen2"):
        return "block"
    from transformers import CONFIG_MAPPING

    if model_type in CONFIG_MAPPING:
        return "causal_lm"
    raise CheckpointError(
        f"unknown model_type {cfg.get('model_type')!r}: supported are Dream/DiffuCoder ('Dream'), LLaDA ('llada'), "
        "block-diffusion Llama checkpoints (with block_length and mask_token_id), and any causal LM transformers knows"
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


def _block_config(cfg: dict):
    from transformers import AutoConfig, LlamaConfig

    model_type = str(cfg.get("model_type", "")).lower()
    if model_type in ("llama", "qwen2"):
        cls = AutoConfig.for_model(model_type).__class__
        known = {k: v for k, v in cfg.items() if k not in ("architectures", "auto_map", "model_type")}
        return cls(**known)
    kwargs = {k: v for k, v in cfg.items() if k not in ("architectures", "auto_map", "model_type")}
    return LlamaConfig(**kwargs)


def _from_pretrained(cls, path: Path, config, dtype, key_mapping=None):
    """transformers' loader (shards, dtype, safetensors) with a strict check of the weights."""
    try:
        model, info = cls.from_pretrained(
            str(path), config=config, dtype=dtype or torch.float32, key_mapping=key_mapping,
            output_loading_info=True,
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
) -> tuple[DiffusionLM, Any]:
    """Load any supported checkpoint directory as a :class:`DiffusionLM` plus its tokenizer.

    ``attention`` / ``shift`` / ``block_len`` override what the checkpoint implies (for
    adapting a causal LM these are the choice of recipe). ``dtype`` may be a torch dtype or
    "float32" / "bfloat16" / "float16"; default: float32 on CPU, the stored dtype elsewhere.
    """
    from transformers import AutoModelForCausalLM, LlamaForCausalLM, Qwen2ForCausalLM

    path = Path(path)
    cfg = _read_config(path)
    fmt = detect_format(cfg)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if attention is not None and attention not in ATTENTION_MODES:
        raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
    tokenizer = load_tokenizer(path) if (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file() else None
    if tokenizer is None:
        raise CheckpointError(f"{path}: no tokenizer files (tokenizer.json / tokenizer_config.json)")

    if fmt == "diffucode":
        from transformers import AutoConfig

        hf_cfg = AutoConfig.from_pretrained(str(path))
        backbone = _from_pretrained(AutoModelForCausalLM, path, hf_cfg, dtype)
        default_attention, default_shift = cfg["diffusion_attention"], bool(cfg.get("diffusion_shift", False))
        default_block = cfg.get("diffusion_block_len")
        mask_id = cfg.get("mask_token_id")
    elif fmt == "dream":
        backbone = _from_pretrained(Qwen2ForCausalLM, path, _dream_config(cfg), dtype)
        default_attention, default_shift, default_block = "bidirectional", True, None
        mask_id = cfg.get("mask_token_id")
    elif fmt == "llada":
        backbone = _from_pretrained(LlamaForCausalLM, path, _llada_config(cfg), dtype, LLADA_KEY_MAPPING)
        default_attention, default_shift, default_block = "bidirectional", False, None
        mask_id = cfg.get("mask_token_id", LLADA_MASK_ID)
    elif fmt == "block":
        hf_cfg = _block_config(cfg)
        cls = Qwen2ForCausalLM if hf_cfg.model_type == "qwen2" else LlamaForCausalLM
        backbone = _from_pretrained(cls, path, hf_cfg, dtype)
        default_attention, default_shift = "block_causal", False
        default_block = next(int(cfg[k]) for k in _BLOCK_LEN_KEYS if k in cfg)
        mask_id = cfg["mask_token_id"]
    else:  # causal_lm being adapted
        from transformers import AutoConfig

        hf_cfg = AutoConfig.from_pretrained(str(path))
        backbone = _from_pretrained(AutoModelForCausalLM, path, hf_cfg, dtype)
        default_attention, default_shift, default_block = "bidirectional", True, None
        mask_id = None

    if mask_id is None or mask_token is not None:
        added = ensure_mask_token(tokenizer, mask_token)
        mask_id = tokenizer.mask_token_id
        if mask_id >= backbone.get_input_embeddings().num_embeddings or added:
            backbone.resize_token_embeddings(len(tokenizer))
    elif tokenizer.mask_token is None:
        token = tokenizer.convert_ids_to_tokens(int(mask_id))
        if token is not None:
            tokenizer.mask_token = token

    attention = attention or default_attention
    block_len = block_len if block_len is not None else default_block
    model = DiffusionLM(
        backbone,
        mask_token_id=int(mask_id),
        attention=attention,
        shift=default_shift if shift is None else shift,
        block_len=block_len,
        eos_token_id=tokenizer.eos_token_id if tokenizer.eos_token_id is not None else cfg.get("eos_token_id"),
        pad_token_id=tokenizer.pad_token_id,
    )
    model.checkpoint_format = fmt
    if device is not None:
        model.to(device)
    model.eval()
    return model, tokenizer


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
    here = Path(__file__).resolve().parent.parent / "assets" / "diffucoder-nano"
    return here if (here / "config.json").is_file() else None
