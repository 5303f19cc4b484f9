"""diffucode: diffusion language models for code.

Importing the package does nothing heavy; the public entry points load lazily:

    from diffucode import load_model, generate
    model, tokenizer = load_model("path/to/checkpoint")
"""

__version__ = "0.1.0"

__all__ = ["__version__", "load_model", "generate", "GenerationConfig"]


def __getattr__(name):  # lazy, so `import diffucode` stays cheap (no torch import)
    if name == "load_model":
        from diffucode.models import load_model

        return load_model
    if name in ("generate", "GenerationConfig"):
        from diffucode import sampling

        return getattr(sampling, name)
    raise AttributeError(f"module 'diffucode' has no attribute {name!r}")
