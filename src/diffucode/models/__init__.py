"""The model layer: any checkpoint family as a diffusion LM (the only package that imports
transformers model classes). See ``loading.py`` for the supported formats."""

from diffucode.models.attention import ATTENTION_MODES, build_attention_mask
from diffucode.models.diffusion_lm import DiffusionLM, DiffusionOutput
from diffucode.models.loading import CheckpointError, build_tiny_model, default_model_path, detect_format, load_model
from diffucode.models.tokenizer import build_tiny_tokenizer, ensure_mask_token, load_tokenizer

__all__ = [
    "ATTENTION_MODES", "CheckpointError", "DiffusionLM", "DiffusionOutput", "build_attention_mask",
    "build_tiny_model", "build_tiny_tokenizer", "default_model_path", "detect_format", "ensure_mask_token",
    "load_model", "load_tokenizer",
]
