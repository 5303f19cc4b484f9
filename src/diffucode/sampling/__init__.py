"""Decoding: the pure remasking rules (``remasking``) and the ``generate`` engine (``engine``).

    from diffucode.sampling import generate, GenerationConfig
    out = generate(model, input_ids, attention_mask, GenerationConfig(max_new_tokens=64, threshold=0.9, block_len=32))

Names load lazily: ``GenerationConfig`` and the algorithm names import no torch, so command
lines validate their flags before the engine (and torch) is imported.
"""

from diffucode.sampling.algorithms import ALGORITHMS, DREAM_ALGS, LLADA_ALGS
from diffucode.sampling.config import CACHE_MODES, GenerationConfig

__all__ = ["ALGORITHMS", "BatchScheduler", "CACHE_MODES", "DREAM_ALGS", "GenerationConfig", "GenerationOutput",
           "LLADA_ALGS", "StreamResult", "generate", "generate_stream"]


def __getattr__(name):  # the engine imports torch: only when asked for
    if name in ("generate", "GenerationOutput"):
        from diffucode.sampling import engine

        return getattr(engine, name)
    if name in ("BatchScheduler", "StreamResult", "generate_stream"):
        from diffucode.sampling import continuous

        return getattr(continuous, name)
    raise AttributeError(f"module 'diffucode.sampling' has no attribute {name!r}")
