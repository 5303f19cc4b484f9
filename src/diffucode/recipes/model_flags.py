"""The model-override flags shared by ``generate``, ``eval`` and ``analyze``: how to run a
checkpoint whose layout the loader does not recognise, or recognises wrongly.

    diffucode generate --model ckpt --attention block_causal --model-block-len 4 --no-logits-shift "def f(x):"

Each flag maps to one ``load_model`` argument; unset flags leave the checkpoint's own choice.
"""

from __future__ import annotations

import argparse

ATTENTION_CHOICES = ("bidirectional", "block_causal", "causal")


def add_model_override_flags(group, suppress: bool = False) -> None:
    """Add --attention, --logits-shift/--no-logits-shift, --model-block-len, --mask-token to ``group``.
    ``suppress``: leave unset flags out of the namespace (for recipes whose config file fills them)."""
    default = argparse.SUPPRESS if suppress else None
    group.add_argument("--attention", choices=ATTENTION_CHOICES, default=default,
                       help="override the attention the checkpoint implies (default: detected from config.json)")
    group.add_argument("--logits-shift", dest="logits_shift", action=argparse.BooleanOptionalAction, default=default,
                       help="override the logits shift (Dream/DiffuCoder: on; LLaDA, SDAR, Stable-DiffCoder: off; "
                            "default: detected)")
    group.add_argument("--model-block-len", dest="model_block_len", type=int, default=default,
                       help="override the model's block length for block-causal attention (default: from config, "
                            "Stable-DiffCoder 4)")
    group.add_argument("--mask-token", dest="mask_token", default=default,
                       help="override the mask token string (default: the config's mask_token_id / the tokenizer's)")


def model_overrides(ns) -> dict:
    """``load_model`` keyword arguments from parsed flags (or a config object with the same names)."""
    return dict(attention=getattr(ns, "attention", None), shift=getattr(ns, "logits_shift", None),
                block_len=getattr(ns, "model_block_len", None), mask_token=getattr(ns, "mask_token", None))
