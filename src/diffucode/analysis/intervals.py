"""Error bars for AR-ness: a bootstrap interval over prompts, the spread over decoding seeds,
and a paired bootstrap of the difference between two settings.

    python -c "from diffucode.analysis.intervals import prompt_interval, paired_difference; \
print(prompt_interval([0.5, 0.7, 0.9, 0.6]), paired_difference([0.8, 0.7, 0.9], [0.4, 0.5, 0.3])['ci'])"

The unit of resampling is the prompt: a prompt's value is its AR-ness averaged over its samples
and decoding seeds, and the interval says how far the mean would move on another draw of
prompts like these (the decoding noise inside a prompt is part of each prompt's value, so it is
counted too, once). The bootstrap itself is the evaluation package's percentile bootstrap
(:func:`diffucode.evaluation.passk.bootstrap_mean_ci`), so pass@k and AR-ness intervals are
computed the same way. Two settings decoded on the same prompts are compared on the per-prompt
differences, resampling the same prompts for both (paired): the spread due to some prompts
being easier to write left to right cancels.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from diffucode.evaluation.passk import CI_CONFIDENCE, CI_RESAMPLES, CI_SEED, bootstrap_mean_ci

__all__ = ["prompt_interval", "seed_spread", "paired_difference", "per_prompt_means"]


def per_prompt_means(values: Sequence[float], num_prompts: int) -> list[float]:
    """Average ``values`` laid out prompt-major (``num_prompts`` blocks of equal size, e.g. the
    samples of one prompt) into one value per prompt."""
    arr = np.asarray(values, dtype=float)
    if num_prompts < 1 or arr.size == 0 or arr.size % num_prompts:
        raise ValueError(f"{arr.size} values do not split into {num_prompts} prompts of equal size")
    return [float(v) for v in arr.reshape(num_prompts, -1).mean(axis=1)]


def prompt_interval(per_prompt: Sequence[float], n_resamples: int = CI_RESAMPLES,
                    confidence: float = CI_CONFIDENCE, seed: int = CI_SEED) -> list[float]:
    """``[lo, hi]``: percentile bootstrap interval over prompts of the mean of ``per_prompt``."""
    return list(bootstrap_mean_ci([float(v) for v in per_prompt], n_resamples, confidence, seed))


def seed_spread(per_seed: Sequence[float]) -> float | None:
    """Sample standard deviation (``ddof=1``) of the per-seed means; None for a single seed."""
    if len(per_seed) < 2:
        return None
    return float(np.std(np.asarray(per_seed, dtype=float), ddof=1))


def paired_difference(a: Sequence[float], b: Sequence[float], n_resamples: int = CI_RESAMPLES,
                      confidence: float = CI_CONFIDENCE, seed: int = CI_SEED) -> dict:
    """Paired bootstrap over prompts of ``mean(b) - mean(a)``; ``a[i]`` and ``b[i]`` are the same prompt.

    Returns ``{"difference", "ci": [lo, hi], "confidence", "n_resamples", "prompts",
    "larger_than_noise"}``; larger than the noise means the interval excludes 0."""
    if len(a) != len(b):
        raise ValueError(f"paired difference needs the same prompts on both sides, got {len(a)} and {len(b)} values")
    diffs = [float(y) - float(x) for x, y in zip(a, b)]
    lo, hi = bootstrap_mean_ci(diffs, n_resamples, confidence, seed)
    return {"difference": float(np.mean(diffs)), "ci": [lo, hi], "confidence": confidence,
            "n_resamples": n_resamples, "prompts": len(diffs), "larger_than_noise": bool(lo > 0 or hi < 0)}
