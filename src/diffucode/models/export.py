"""Write a :class:`DiffusionLM` in a public release's on-disk layout, so it loads in the upstream
code and in tools built on it (lm-eval harnesses, Fast-dLLM): ``export_model(model, tok, out, "dream")``.

| format | backbone it takes                    | conventions it needs          | what is written |
|--------|--------------------------------------|-------------------------------|-----------------|
| dream  | Qwen2 (q/k/v bias)                   | bidirectional, shifted logits | ``model_type: "Dream"``, Qwen2 weight names, ``vocab.json`` + ``merges.txt`` + ``tokenizer_config.json`` (``DreamTokenizer``, ``added_tokens_decoder``), no ``tokenizer.json`` |
| llada  | Llama, or Qwen2 whose q/k/v biases are all zero | bidirectional, no shift | ``model_type: "llada"``, OLMo-style names (``model.transformer.blocks.N.q_proj``, ``ff_proj``/``up_proj``/``ff_out``), ``tokenizer.json`` |
| sdar   | Qwen3 (q_norm / k_norm, head_dim)    | block-causal, no shift        | ``model_type: "sdar"``, Qwen3 weight names, ``block_size``, ``tokenizer.json`` |

A model whose attention or logits shift differ from the target family's is refused: the upstream
code would run it with the family's conventions and every logit would be wrong. ``force=True``
exports it anyway (a warning on stderr says what changes). ``auto_map`` names the upstream
modules (``modeling_dream.DreamModel``, ``modeling_llada.LLaDAModelLM``,
``modeling_sdar.SDARForCausalLM``) as the releases do, but their Python files are not written: to
run the upstream code on an export, copy those files from the release into the directory
(diffucode itself never runs them). Weights are ``model*.safetensors`` (sharded at 5 GB), written
to a temporary sibling directory and renamed, so a failure leaves nothing at ``out``.
Every format also gets a ``generation_config.json`` holding the token ids (Dream's
``DreamModel.from_pretrained`` requires the file; SDAR's ``generate.py`` reads its stop ids from it).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

from diffucode.errors import UserError

FORMATS = ("dream", "llada", "sdar")

# which backbone each target takes (config model_type of the loaded transformers module)
_FITS = "dream takes a Qwen2 backbone, llada a Llama (or bias-free Qwen2) backbone, sdar a Qwen3 backbone"
_CONVENTIONS = {"dream": ("bidirectional", True), "llada": ("bidirectional", False), "sdar": ("block_causal", False)}
_AUTO_MAP = {
    "dream": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
    "llada": {"AutoConfig": "configuration_llada.LLaDAConfig", "AutoModel": "modeling_llada.LLaDAModelLM",
              "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM"},
    "sdar": {"AutoConfig": "configuration_sdar.SDARConfig", "AutoModel": "modeling_sdar.SDARModel",
             "AutoModelForCausalLM": "modeling_sdar.SDARForCausalLM"},
}
_ARCHITECTURES = {"dream": ["DreamModel"], "llada": ["LLaDAModelLM"], "sdar": ["SDARForCausalLM"]}

# transformers Llama names -> LLaDA's OLMo-style names (the inverse of loading.LLADA_KEY_MAPPING)
_LLADA_LAYER = {
    "self_attn.q_proj": "q_proj", "self_attn.k_proj": "k_proj", "self_attn.v_proj": "v_proj",
    "self_attn.o_proj": "attn_out", "mlp.gate_proj": "ff_proj", "mlp.up_proj": "up_proj",
    "mlp.down_proj": "ff_out", "input_layernorm": "attn_norm", "post_attention_layernorm": "ff_norm",
}


class ExportError(UserError, ValueError):
    """The model does not fit the requested release layout (or the output path is taken)."""


def _rope_theta(cfg) -> float:
    rope = getattr(cfg, "rope_parameters", None) or {}
    return float(rope.get("rope_theta", getattr(cfg, "rope_theta", 10000.0)))


def _rope_scaling(cfg):
    rope = getattr(cfg, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") == "default":
        return None
    return {k: v for k, v in rope.items() if k != "rope_theta"}


def _dtype_name(model) -> str:
    return str(next(model.parameters()).dtype).removeprefix("torch.")


def check_fits(model, fmt: str, force: bool = False) -> list[str]:
    """Raise :class:`ExportError` if ``model`` cannot be written as ``fmt``; return warnings (``force``)."""
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    mt = model.backbone.config.model_type
    state = model.backbone.state_dict()
    if fmt == "dream" and mt != "qwen2":
        raise ExportError(f"cannot export a {mt} backbone as dream: {_FITS}")
    if fmt == "sdar" and mt != "qwen3":
        raise ExportError(f"cannot export a {mt} backbone as sdar: {_FITS}")
    if fmt == "llada":
        if mt not in ("llama", "qwen2"):
            raise ExportError(f"cannot export a {mt} backbone as llada: {_FITS}")
        nonzero = [k for k, v in state.items() if k.endswith(".bias") and bool(v.any())]
        if nonzero:  # LLaDA's blocks carry no q/k/v/o or MLP bias: dropping a non-zero one changes the model
            raise ExportError(f"cannot export as llada without loss: {len(nonzero)} non-zero bias tensors "
                              f"(e.g. {nonzero[0]}) have no place in LLaDA's bias-free blocks; {_FITS}")
    want_attn, want_shift = _CONVENTIONS[fmt]
    have = (model.attention, bool(model.shift))
    if have == (want_attn, want_shift):
        return []
    what = (f"the model runs {model.attention} attention with {'shifted' if model.shift else 'unshifted'} logits, "
            f"{fmt} runs {want_attn} with {'shifted' if want_shift else 'unshifted'} logits")
    if not force:
        raise ExportError(f"cannot export as {fmt}: {what}; the upstream code would compute different logits "
                          "(pass --force to export anyway)")
    return [f"exporting as {fmt} although {what}: loaded as {fmt}, its logits differ from this model's"]


def _dream_config(model) -> dict:
    c = model.backbone.config
    return {
        "architectures": _ARCHITECTURES["dream"], "auto_map": _AUTO_MAP["dream"], "model_type": "Dream",
        "vocab_size": c.vocab_size, "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_hidden_layers, "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.num_key_value_heads, "hidden_act": c.hidden_act,
        "max_position_embeddings": c.max_position_embeddings, "rms_norm_eps": c.rms_norm_eps,
        "rope_theta": _rope_theta(c), "rope_scaling": _rope_scaling(c), "tie_word_embeddings": bool(c.tie_word_embeddings),
        "attention_dropout": float(getattr(c, "attention_dropout", 0.0)), "initializer_range": c.initializer_range,
        "use_sliding_window": False, "sliding_window": None, "max_window_layers": c.num_hidden_layers,
        "use_cache": False, "mask_token_id": model.mask_token_id,
        "bos_token_id": getattr(c, "bos_token_id", None), "eos_token_id": model.eos_token_id,
        "pad_token_id": model.pad_token_id, "torch_dtype": _dtype_name(model),
    }


def _llada_config(model) -> dict:
    c = model.backbone.config
    return {
        "architectures": _ARCHITECTURES["llada"], "auto_map": _AUTO_MAP["llada"], "model_type": "llada",
        "d_model": c.hidden_size, "n_heads": c.num_attention_heads, "n_kv_heads": c.num_key_value_heads,
        "n_layers": c.num_hidden_layers, "mlp_hidden_size": c.intermediate_size, "mlp_ratio": 4,
        "vocab_size": c.vocab_size, "embedding_size": c.vocab_size,
        "max_sequence_length": c.max_position_embeddings, "rms_norm_eps": c.rms_norm_eps,
        "rope": True, "rope_theta": _rope_theta(c), "alibi": False, "activation_type": "silu", "block_type": "llama",
        "layer_norm_type": "rms", "attention_layer_norm": False, "weight_tying": bool(c.tie_word_embeddings),
        "include_bias": False, "include_qkv_bias": False, "init_std": c.initializer_range,
        "mask_token_id": model.mask_token_id, "eos_token_id": model.eos_token_id,
        "pad_token_id": model.pad_token_id, "use_cache": False, "torch_dtype": _dtype_name(model),
    }


def _sdar_config(model) -> dict:
    c = model.backbone.config
    return {
        "architectures": _ARCHITECTURES["sdar"], "auto_map": _AUTO_MAP["sdar"], "model_type": "sdar",
        "vocab_size": c.vocab_size, "hidden_size": c.hidden_size, "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_hidden_layers, "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.num_key_value_heads, "head_dim": c.head_dim, "hidden_act": c.hidden_act,
        "max_position_embeddings": c.max_position_embeddings, "rms_norm_eps": c.rms_norm_eps,
        "rope_theta": _rope_theta(c), "rope_scaling": _rope_scaling(c), "tie_word_embeddings": bool(c.tie_word_embeddings),
        "attention_bias": bool(c.attention_bias), "attention_dropout": float(getattr(c, "attention_dropout", 0.0)),
        "initializer_range": c.initializer_range, "use_sliding_window": False, "sliding_window": None,
        "max_window_layers": c.num_hidden_layers,
        # read unconditionally by SDAR's SDARForCausalLM.forward (AttributeError without it); true as
        # in the releases (its fused loss is used only in training)
        "fuse_cross_entropy": True,
        "block_size": int(model.block_len), "mask_token_id": model.mask_token_id,
        "bos_token_id": getattr(c, "bos_token_id", None), "eos_token_id": model.eos_token_id,
        "pad_token_id": model.pad_token_id, "use_cache": False, "torch_dtype": _dtype_name(model),
    }


def _generation_config(config: dict, fmt: str) -> dict:
    gen = {k: config.get(k) for k in ("bos_token_id", "eos_token_id", "pad_token_id") if config.get(k) is not None}
    if fmt == "dream":
        gen["mask_token_id"] = config["mask_token_id"]  # a field of Dream's DreamGenerationConfig
    return gen


def llada_weight_name(key: str) -> str:
    """A transformers Llama weight name as LLaDA's OLMo-style checkpoints spell it."""
    if key.startswith("model.embed_tokens."):
        return "model.transformer.wte." + key[len("model.embed_tokens."):]
    if key.startswith("model.norm."):
        return "model.transformer.ln_f." + key[len("model.norm."):]
    if key.startswith("lm_head."):
        return "model.transformer.ff_out." + key[len("lm_head."):]
    if key.startswith("model.layers."):
        idx, rest = key[len("model.layers."):].split(".", 1)
        for ours, theirs in _LLADA_LAYER.items():
            if rest.startswith(ours + "."):
                return f"model.transformer.blocks.{idx}.{theirs}{rest[len(ours):]}"
    raise ExportError(f"no LLaDA name for weight {key!r}")


def _weights(model, fmt: str) -> dict[str, torch.Tensor]:
    cfg = model.backbone.config
    out = {}
    for k, v in model.backbone.state_dict().items():
        if "rotary_emb" in k:
            continue
        if k == "lm_head.weight" and cfg.tie_word_embeddings:
            continue  # tied: the releases store the embedding once
        if fmt == "llada":
            if k.endswith(".bias"):
                continue  # checked to be all zero in check_fits
            k = llada_weight_name(k)
        out[k] = v.detach().contiguous().cpu()
    return out


def _dream_tokenizer(tokenizer, d: Path, model) -> None:
    """Dream's tokenizer files: the BPE's vocab.json + merges.txt and a tokenizer_config.json naming
    DreamTokenizer with every added token at its id (what the releases ship; no tokenizer.json)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or type(backend.model).__name__ != "BPE":
        raise ExportError("dream export needs a byte-level BPE tokenizer (Dream's is Qwen2's vocab.json + merges.txt); "
                          f"this one is {type(tokenizer).__name__} over {type(getattr(backend, 'model', None)).__name__}")
    backend.model.save(str(d))
    added = {}
    for idx, tok in sorted(tokenizer.added_tokens_decoder.items()):
        added[str(idx)] = {"content": tok.content, "lstrip": tok.lstrip, "normalized": tok.normalized,
                           "rstrip": tok.rstrip, "single_word": tok.single_word, "special": tok.special}
    specials = [t for t in getattr(tokenizer, "additional_special_tokens", None) or []]
    mask = tokenizer.convert_ids_to_tokens(model.mask_token_id)
    tcfg = {
        "add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": added,
        "additional_special_tokens": specials,
        "auto_map": {"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]},
        "bos_token": tokenizer.bos_token, "chat_template": getattr(tokenizer, "chat_template", None),
        "clean_up_tokenization_spaces": False, "eos_token": tokenizer.eos_token, "errors": "replace",
        "mask_token": mask, "model_max_length": model.backbone.config.max_position_embeddings,
        "pad_token": tokenizer.pad_token, "split_special_tokens": False, "tokenizer_class": "DreamTokenizer",
        "unk_token": None,
    }
    (d / "tokenizer_config.json").write_text(json.dumps(tcfg, indent=2, ensure_ascii=False) + "\n")


# code with the cases where pre-tokenization rules differ: runs of spaces and newlines, digits, unicode, contractions
_PROBE = ["def add(a, b):\n    return a + b\n", "x = 12345 + 0.5e-3  # caf\u00e9\n\n\n\tif x:\n        y = [i for i in 'ab']",
          "It's   fine; we'll see\r\n  \u4f60\u597d 2024"]


def _check_dream_tokenizer(tokenizer, d: Path, force: bool) -> list[str]:
    """Dream's tokenizer splits text with Qwen2's rule before BPE; a source tokenizer with another rule
    would give the exported model other ids for the same text. Checked on probe text, refused unless ``force``."""
    from diffucode.models.tokenizer import load_tokenizer

    rebuilt = load_tokenizer(d)
    for text in _PROBE:
        ours, theirs = tokenizer(text).input_ids, rebuilt(text).input_ids
        if ours != theirs:
            what = (f"this tokenizer's pre-tokenization is not Qwen2's: Dream's tokenizer files give other ids "
                    f"for {text[:24]!r}... ({len(ours)} vs {len(theirs)} tokens)")
            if not force:
                raise ExportError(f"cannot export as dream: {what} (pass --force to export anyway)")
            return [what]
    return []


def export_model(model, tokenizer, out_dir: str | Path, fmt: str, force: bool = False) -> Path:
    """Write ``model`` (+ ``tokenizer``) at ``out_dir`` in release layout ``fmt`` (see the module table).

    Refuses a non-empty ``out_dir``, a backbone that does not fit ``fmt``, and (unless ``force``)
    an attention / shift that differs from the family's. Returns ``out_dir``."""
    from huggingface_hub import save_torch_state_dict

    from diffucode.models.diffusion_lm import write_transformers4_fields

    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ExportError(f"--out {out_dir}: exists and is not an empty directory (refusing to overwrite)")
    for warning in check_fits(model, fmt, force):
        print(f"diffucode export: warning: {warning}", file=sys.stderr)
    if fmt == "sdar" and not model.block_len:
        raise ExportError("sdar export needs a block length (the model has none)")
    config = {"dream": _dream_config, "llada": _llada_config, "sdar": _sdar_config}[fmt](model)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-export")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        save_torch_state_dict(_weights(model, fmt), str(tmp), max_shard_size="5GB", metadata={"format": "pt"})
        if fmt == "dream":
            _dream_tokenizer(tokenizer, tmp, model)
            for warning in _check_dream_tokenizer(tokenizer, tmp, force):
                print(f"diffucode export: warning: {warning}", file=sys.stderr)
        else:
            tokenizer.save_pretrained(str(tmp))
            write_transformers4_fields(tmp)  # tokenizer_class / special tokens that transformers 4.x reads
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")  # after: nothing rewrites it
        # the releases ship one: Dream's DreamModel.from_pretrained reads it (OSError without it) and SDAR's
        # generate.py takes its stop ids from it. Token ids only, so upstream's own sampling defaults stay.
        (tmp / "generation_config.json").write_text(json.dumps(_generation_config(config, fmt), indent=2) + "\n")
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
