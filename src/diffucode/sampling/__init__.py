"""Decoding: the pure remasking rules (``remasking``) and the ``generate`` engine (``engine``).

    from diffucode.sampling import generate, GenerationConfig
    out = generate(model, input_ids, attention_mask, GenerationConfig(max_new_tokens=64, threshold=0.9, block_len=32))
"""

from diffucode.sampling.config import CACHE_MODES, GenerationConfig
from diffucode.sampling.engine import GenerationOutput, generate
from diffucode.sampling.remasking import ALGORITHMS, DREAM_ALGS, LLADA_ALGS

__all__ = ["ALGORITHMS", "CACHE_MODES", "DREAM_ALGS", "GenerationConfig", "GenerationOutput", "LLADA_ALGS", "generate"]
