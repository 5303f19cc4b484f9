"""Named decoding presets: the settings each family's published code decodes with.

    python -c "from diffucode.sampling.presets import preset_config; print(preset_config('diffucoder-instruct'))"
    diffucode generate --preset diffucoder-instruct --chat --model DiffuCoder-7B-Instruct "Write a quick sort."

Each preset is plain data: ``GenerationConfig`` fields plus where they come from. Flags given
on the command line (or keyword arguments to :func:`preset_config`) override a preset field by
field. ``steps: "L"`` means "one token per step" (steps = max_new_tokens, whatever the length).

Dream's hidden default. Dream's ``diffusion_generate`` (used by DiffuCoder and Dream) builds its
generation config from the model config, and under the transformers 4.x those releases pin, the
model config carries the legacy generation defaults ``top_k=50, temperature=1.0, top_p=1.0``.
Arguments a call does not pass keep those values (and ``alg="origin"``, ``steps=512`` from
Dream's own defaults). The published DiffuCoder and Dream calls pass temperature, top_p and alg
but not top_k, so their numbers were decoded with ``top_k=50``: the Dream-family presets set it.
"""

from __future__ import annotations

from diffucode.sampling.config import GenerationConfig

# name -> {"fields": GenerationConfig fields, "source": where the numbers come from, "model": what it is for}
PRESETS: dict[str, dict] = {
    "diffucoder-base": {
        "model": "DiffuCoder-7B-Base",
        "source": "apple/ml-diffucoder README (base example) + Dream's implicit top_k=50",
        "fields": dict(max_new_tokens=256, steps="L", alg="entropy", alg_temp=0.0, temperature=0.2, top_p=0.95,
                       top_k=50, eps=1e-3),
    },
    "diffucoder-instruct": {
        "model": "DiffuCoder-7B-Instruct / -cpGRPO (use --chat)",
        "source": "apple/ml-diffucoder README (instruct example) + Dream's implicit top_k=50; output ends at <|dlm_pad|>",
        "fields": dict(max_new_tokens=256, steps="L", alg="entropy", alg_temp=0.0, temperature=0.4, top_p=0.95,
                       top_k=50, eps=1e-3),
    },
    "dream": {
        "model": "Dream-v0-7B (Base / Instruct)",
        "source": "DreamLM/Dream README example + its implicit top_k=50",
        "fields": dict(max_new_tokens=512, steps="L", alg="entropy", alg_temp=0.0, temperature=0.2, top_p=0.95,
                       top_k=50, eps=1e-3),
    },
    "llada": {
        "model": "LLaDA-8B (Base / Instruct)",
        "source": "ML-GSAI/LLaDA generate.py main(): steps=128, gen_length=128, block_length=32, temperature=0, "
                  "remasking='low_confidence'",
        "fields": dict(max_new_tokens=128, steps="L", block_len=32, alg="low_confidence", temperature=0.0),
    },
    "fast-dllm": {
        "model": "LLaDA-8B with Fast-dLLM (dual cache + parallel decoding)",
        "source": "NVlabs/Fast-dLLM llada/eval_humaneval.sh: gen_length=256, block_length=32, threshold=0.9, "
                  "use_cache + dual_cache",
        "fields": dict(max_new_tokens=256, block_len=32, threshold=0.9, cache="dual", alg="low_confidence",
                       temperature=0.0),
    },
    "fast-dllm-dream": {
        "model": "Dream-7B with Fast-dLLM (dual cache + parallel decoding, its Dream port's rules)",
        "source": "NVlabs/Fast-dLLM dream/eval_humaneval.sh: max_new_tokens=256, alg=confidence_threshold, "
                  "threshold=0.9, use_cache + dual_cache (block_length 32, the code's default); top_k None",
        "fields": dict(max_new_tokens=256, block_len=32, threshold=0.9, cache="dual", alg="maskgit_plus",
                       temperature=0.0, fastdllm_dream=True),
    },
    "sdar": {
        "model": "SDAR (block 4, from the checkpoint)",
        "source": "JetAstra/SDAR README: greedy, block_length=4, denoising_steps=4 (one token per step, "
                  "lowest-confidence-first; its evaluation code: top_k=1, remasking='low_confidence', threshold=1.0 "
                  "= static); per-step counts split the block length (get_num_transfer_tokens); length is ours",
        "fields": dict(max_new_tokens=512, steps="L", alg="low_confidence", temperature=0.0, block_schedule="block"),
    },
    "stable-diffcoder": {
        "model": "Stable-DiffCoder-8B (block 4)",
        "source": "ByteDance-Seed/Stable-DiffCoder README: steps=512, gen_length=512, block_length=4, temperature=0, "
                  "remasking='low_confidence', threshold=None",
        "fields": dict(max_new_tokens=512, steps="L", alg="low_confidence", temperature=0.0),
    },
}


def preset_fields(name: str, max_new_tokens: int | None = None) -> dict:
    """The ``GenerationConfig`` fields of preset ``name`` (``steps="L"`` resolved against the length)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    fields = dict(PRESETS[name]["fields"])
    if max_new_tokens is not None:
        fields["max_new_tokens"] = max_new_tokens
    if fields.get("steps") == "L":
        fields["steps"] = fields["max_new_tokens"]
    return fields


def preset_config(name: str, **overrides) -> GenerationConfig:
    """``GenerationConfig`` of preset ``name``; keyword arguments override its fields."""
    fields = preset_fields(name, overrides.get("max_new_tokens"))
    if "steps" in overrides and overrides["steps"] is None and "steps" in fields:
        overrides = {k: v for k, v in overrides.items() if k != "steps"}
    fields.update(overrides)
    return GenerationConfig(**fields)


def describe(name: str) -> str:
    """One line: the preset's full settings and their source (for --help and the README)."""
    p = PRESETS[name]
    settings = ", ".join(f"{k}={v}" for k, v in p["fields"].items())
    return f"{name}: {settings} [{p['source']}]"
