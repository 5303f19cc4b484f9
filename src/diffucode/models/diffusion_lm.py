"""``DiffusionLM``: a transformers causal-LM backbone run as a diffusion language model.

The wrapper adds exactly three things to a stock ``Qwen2ForCausalLM`` / ``LlamaForCausalLM``:
the attention pattern (bidirectional, block-causal or causal, via an explicit 4-D mask: see
``attention.py``), the logits shift convention, and the mask token. Everything downstream
(losses, samplers, RL) reads *aligned* logits, ``logits[:, j]`` = distribution of token ``j``,
so it never needs to know whether the model was trained with the Dream/DiffuCoder shift.

    from diffucode.models import build_tiny_model
    model, tok = build_tiny_model()
    out = model(tok("def f(x):", return_tensors="pt").input_ids)
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from diffucode.models.attention import (
    ATTENTION_MODES,
    AttentionMode,
    build_attention_mask,
    install_plain_mask_hooks,
    plain_mask,
    plain_pattern,
    positions_from_padding,
)

# Keys written into config.json so a saved model round-trips with its diffusion behaviour.
CONFIG_KEYS = ("diffusion_attention", "diffusion_shift", "diffusion_block_len", "mask_token_id")


def backbone_cache_kwarg(backbone) -> str:
    """The name a backbone's forward takes its KV cache by: transformers renamed ``past_key_values``
    to ``cache`` during 5.x (the old name warns, and goes in 5.40). Looked up on the unwrapped
    model (a peft or compiled wrapper forwards ``**kwargs``)."""
    base = getattr(backbone, "_orig_mod", backbone)  # torch.compile
    if hasattr(base, "get_base_model"):  # peft
        base = base.get_base_model()
    return _cache_kwarg_of(type(base))


@functools.lru_cache(maxsize=None)
def _cache_kwarg_of(cls: type) -> str:
    # once per class: forward runs at every decoding step, the signature does not change
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


def returned_cache(out) -> Any:
    """The updated KV cache of a backbone output, under either name (see ``backbone_cache_kwarg``)."""
    for name in ("cache", "past_key_values"):
        value = out.get(name) if hasattr(out, "get") else getattr(out, name, None)
        if value is not None:
            return value
    return None


@dataclass
class DiffusionOutput:
    logits: torch.Tensor  # [B, q, V] float32
    past_key_values: Any = None


class DiffusionLM(nn.Module):
    """A diffusion LM over a transformers ``*ForCausalLM`` backbone (see module docstring)."""

    def __init__(
        self,
        backbone: nn.Module,
        mask_token_id: int,
        attention: AttentionMode = "bidirectional",
        shift: bool = False,
        block_len: int | None = None,
        eos_token_id: int | None = None,
        pad_token_id: int | None = None,
    ):
        super().__init__()
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
        if attention == "block_causal" and (block_len is None or block_len < 1):
            raise ValueError("attention='block_causal' needs block_len >= 1")
        vocab = backbone.get_input_embeddings().num_embeddings
        if not 0 <= mask_token_id < vocab:
            raise ValueError(f"mask_token_id {mask_token_id} is outside the embedding table (size {vocab})")
        self.backbone = backbone
        self.mask_token_id = int(mask_token_id)
        self.attention: AttentionMode = attention
        self.shift = bool(shift)
        self.block_len = block_len
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        # mask-free SDPA for plain full / causal patterns (see attention.py); 0 = not available
        self.plain_masks = install_plain_mask_hooks(backbone) > 0
        self._sync_config()

    # -- conveniences -------------------------------------------------------------------
    @property
    def config(self):
        return self.backbone.config

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def max_seq_len(self) -> int:
        return int(getattr(self.config, "max_position_embeddings", 1 << 30))

    def _sync_config(self) -> None:
        cfg = self.backbone.config
        cfg.diffusion_attention = self.attention
        cfg.diffusion_shift = self.shift
        cfg.diffusion_block_len = self.block_len
        cfg.mask_token_id = self.mask_token_id

    def set_attention(self, attention: AttentionMode, block_len: int | None = None, shift: bool | None = None):
        """Switch the default attention (e.g. AR stage -> block-diffusion stage)."""
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
        if block_len is not None:
            self.block_len = block_len
        if attention == "block_causal" and not self.block_len:
            raise ValueError("attention='block_causal' needs block_len")
        self.attention = attention
        if shift is not None:
            self.shift = bool(shift)
        self._sync_config()
        return self

    def compile_backbone(self, dynamic: bool = True):
        """Opt-in ``torch.compile`` of the backbone (``--compile``). ``dynamic=True``: decoding calls
        the backbone with many shapes (the block, the growing cache), each would recompile otherwise.
        The first calls are slow (compilation); see the README for what it pays on a CPU."""
        import torch

        if not isinstance(self.backbone, torch._dynamo.eval_frame.OptimizedModule):
            self.backbone = torch.compile(self.backbone, dynamic=dynamic)
        return self

    # -- forward ------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,  # [B, q]
        attention_mask: torch.Tensor | None = None,  # [B, past + q] 0/1
        past_key_values: Any = None,
        use_cache: bool = False,
        position_ids: torch.Tensor | None = None,  # [B, q]
        attention_mode: AttentionMode | None = None,
        attn_mask_4d: torch.Tensor | None = None,  # [B, 1, q, past + q] bool
        align: bool = True,
        logit_positions: torch.Tensor | None = None,  # [k] long: only these positions' logits
        block_len: int | None = None,  # block_causal: this call's block length (default: the model's)
    ) -> DiffusionOutput:
        """See the module docstring. ``logit_positions`` (indices into this call's ``q`` tokens,
        shared by the batch) returns logits ``[B, k, V]`` for those positions only, which saves the
        LM head and the float32 logits of everything else (e.g. the clean half in block training).
        ``block_len`` overrides the model's block for this call only (SDAR-style decoding of a B = 4
        model in larger blocks, see ``sampling/engine.py``); the model itself is not changed."""
        if block_len is not None and (not isinstance(block_len, int) or block_len < 1):
            raise ValueError(f"block_len must be a positive integer, got {block_len!r}")
        blk = block_len if block_len is not None else self.block_len
        B, q = input_ids.shape
        past = past_key_values.get_seq_length() if past_key_values is not None else 0
        if attention_mask is None:
            attention_mask = torch.ones(B, past + q, dtype=torch.long, device=input_ids.device)
        if attention_mask.shape != (B, past + q):
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)}; expected {(B, past + q)} "
                f"(cached tokens {past} + new tokens {q})"
            )
        if past + q > self.max_seq_len:
            raise ValueError(f"sequence of {past + q} tokens exceeds the model's context of {self.max_seq_len}")
        key_positions = positions_from_padding(attention_mask)  # [B, K]
        if position_ids is None:
            position_ids = key_positions[:, past:]
        plain = None
        if attn_mask_4d is None:
            mode = attention_mode or self.attention
            sdpa = getattr(self.backbone.config, "_attn_implementation", None) == "sdpa"
            if self.plain_masks and sdpa:  # only SDPA reads is_causal; eager would need the mask
                plain = plain_pattern(mode, attention_mask, q, key_positions, blk)
            if plain is not None:  # the attention hooks turn it into mask-free SDPA
                mask = plain_mask(plain, B, q, past + q, input_ids.device)
            else:
                mask = build_attention_mask(mode, attention_mask, q, key_positions, blk)
        else:
            if attn_mask_4d.shape != (B, 1, q, past + q):
                raise ValueError(f"attn_mask_4d has shape {tuple(attn_mask_4d.shape)}; expected {(B, 1, q, past + q)}")
            mask = attn_mask_4d.bool() & attention_mask.bool()[:, None, None, :]
            empty = ~mask.any(-1, keepdim=True)
            if empty.any():  # never an all-False row (NaN in SDPA): let such a query see itself
                diag = torch.eye(q, past + q, past, dtype=torch.bool, device=mask.device)[None, None]
                mask = mask | (diag & empty)
        if plain is None and getattr(self.backbone.config, "_attn_implementation", "sdpa") == "eager":
            # eager attention adds the mask to the scores
            mask = torch.zeros(mask.shape, dtype=self.dtype, device=mask.device).masked_fill(
                ~mask, torch.finfo(self.dtype).min
            )
        extra = {}
        if logit_positions is not None:
            # aligned position j of a shift model reads raw output j-1 (position 0 reads itself)
            raw_idx = (logit_positions - 1).clamp(min=0) if (align and self.shift) else logit_positions
            extra["logits_to_keep"] = raw_idx.to(input_ids.device)
        if past_key_values is not None:
            extra[backbone_cache_kwarg(self.backbone)] = past_key_values
        out = self.backbone(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=position_ids,
            use_cache=use_cache,
            **extra,
        )
        logits = out.logits.float()  # [B, q, V] (or [B, k, V])
        if align and self.shift and logit_positions is None:
            # Dream/DiffuCoder: the output at i predicts token i+1, so token j reads output j-1.
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        return DiffusionOutput(logits=logits, past_key_values=returned_cache(out) if use_cache else None)

    # -- saving -------------------------------------------------------------------------
    def save_pretrained(self, out_dir: str | Path, tokenizer=None, dtype: torch.dtype | None = None) -> Path:
        """Write a normal Hugging Face directory (config with the diffusion fields, safetensors,
        tokenizer). Written to a temporary sibling and renamed, so a crash leaves no half model."""
        import shutil

        out_dir = Path(out_dir)
        tmp = out_dir.with_name(out_dir.name + ".tmp-save")
        if tmp.exists():
            shutil.rmtree(tmp)
        self._sync_config()
        cfg = self.backbone.config
        cfg.eos_token_id = self.eos_token_id if self.eos_token_id is not None else cfg.eos_token_id
        cfg.pad_token_id = self.pad_token_id if self.pad_token_id is not None else cfg.pad_token_id
        backbone = self.backbone
        if dtype is not None and dtype != self.dtype:
            import copy

            backbone = copy.deepcopy(self.backbone).to(dtype)
        backbone.save_pretrained(str(tmp), safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        write_transformers4_fields(tmp)
        if out_dir.exists():
            old = out_dir.with_name(out_dir.name + ".old-save")
            if old.exists():
                shutil.rmtree(old)
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old)
        else:
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            tmp.rename(out_dir)
        return out_dir

    def extra_repr(self) -> str:
        return f"attention={self.attention}, shift={self.shift}, block_len={self.block_len}, mask_token_id={self.mask_token_id}"


def write_transformers4_fields(out_dir: str | Path) -> None:
    """Make a saved directory readable by transformers 4.x too (what Dream, LLaDA, Fast-dLLM, SDAR
    and lm-eval pin). transformers 5 writes ``rope_parameters`` and ``dtype``; 4.x reads
    ``rope_theta`` and ``torch_dtype`` and silently falls back to rope_theta 10000 without them.
    transformers 5 names the tokenizer class ``TokenizersBackend`` and lists extra special tokens
    under ``extra_special_tokens``; 4.x knows ``PreTrainedTokenizerFast`` (the same tokenizer.json)
    and ``additional_special_tokens``. Both versions read the fields written here."""
    import json

    out_dir = Path(out_dir)
    cfg_file = out_dir / "config.json"
    if cfg_file.is_file():
        cfg = json.loads(cfg_file.read_text())
        rope = cfg.get("rope_parameters")
        if isinstance(rope, dict) and "rope_theta" in rope:
            cfg.setdefault("rope_theta", rope["rope_theta"])
            if rope.get("rope_type", "default") != "default":
                cfg.setdefault("rope_scaling", {k: v for k, v in rope.items() if k != "rope_theta"})
        if "dtype" in cfg:
            cfg.setdefault("torch_dtype", cfg["dtype"])
        cfg_file.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    tok_file = out_dir / "tokenizer_config.json"
    if tok_file.is_file() and (out_dir / "tokenizer.json").is_file():
        tcfg = json.loads(tok_file.read_text())
        if tcfg.get("tokenizer_class") in (None, "TokenizersBackend"):
            tcfg["tokenizer_class"] = "PreTrainedTokenizerFast"
        extra = tcfg.get("extra_special_tokens")
        if isinstance(extra, list):  # 4.x expects a name -> token dict here
            tcfg.pop("extra_special_tokens")
            tcfg.setdefault("additional_special_tokens", extra)
        tok_file.write_text(json.dumps(tcfg, indent=2, ensure_ascii=False) + "\n")
