"""pass@k with the unbiased estimator of Chen et al. (2021), computed exactly.

    python -c "from diffucode.evaluation.passk import pass_at_k; print(pass_at_k(10, 3, 5))"

For one task with ``n`` samples of which ``c`` pass, ``pass@k = 1 - C(n-c, k) / C(n, k)``: the
chance that at least one of ``k`` samples drawn without replacement passes. The ratio of two
binomial coefficients is evaluated in integers (``fractions.Fraction``), so there is no
rounding until the final float; the benchmark score is the mean over tasks, also exact.
pass@k is reported only where every task has ``n >= k`` samples.

Error bars (:func:`pass_at_k_ci`, :func:`paired_difference`): a percentile bootstrap over tasks.
The tasks are resampled with replacement (``n_resamples`` times, fixed ``seed``), the mean of
the per-task unbiased pass@k is taken for each resample, and the interval is the
``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of those means. It measures how
much the score would move on another draw of tasks like these, with the samples per task as
they are (sampling noise inside a task is not resampled, so with few samples per task it is a
lower bound on the noise). For two runs on the same tasks, the difference is bootstrapped with
the same resampled tasks for both (paired), which cancels the spread due to task difficulty.
"""

from __future__ import annotations

import random
from fractions import Fraction
from math import ceil, comb, floor
from typing import Iterable, Mapping, Sequence

CI_RESAMPLES = 1000
CI_CONFIDENCE = 0.95
CI_SEED = 0


def pass_at_k_exact(n: int, c: int, k: int) -> Fraction:
    if not (0 <= c <= n) or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per task, got n={n}")
    if n - c < k:  # every draw of k samples contains a passing one
        return Fraction(1)
    return 1 - Fraction(comb(n - c, k), comb(n, k))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one task with ``n`` samples, ``c`` correct."""
    return float(pass_at_k_exact(n, c, k))


def reportable_ks(ks: Iterable[int], n_per_task: Sequence[int]) -> list[int]:
    """The ``k`` values that every task has enough samples for, sorted, without duplicates."""
    n_min = min(n_per_task) if n_per_task else 0
    return sorted({int(k) for k in ks if 1 <= int(k) <= n_min})


def mean_pass_at_k(n_per_task: Sequence[int], c_per_task: Sequence[int], ks: Iterable[int]) -> dict[str, float]:
    """``{"pass@k": mean over tasks}`` for each reportable ``k``."""
    if len(n_per_task) != len(c_per_task):
        raise ValueError("n_per_task and c_per_task differ in length")
    if not n_per_task:
        return {}
    out = {}
    for k in reportable_ks(ks, n_per_task):
        total = sum((pass_at_k_exact(n, c, k) for n, c in zip(n_per_task, c_per_task)), Fraction(0))
        out[f"pass@{k}"] = float(total / len(n_per_task))
    return out


def bootstrap_mean_ci(values: Sequence[float], n_resamples: int = CI_RESAMPLES, confidence: float = CI_CONFIDENCE,
                      seed: int = CI_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (one value per task)."""
    if not values:
        raise ValueError("bootstrap of an empty list")
    if n_resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"need n_resamples >= 1 and 0 < confidence < 1, got {n_resamples}, {confidence}")
    rng = random.Random(seed)
    m = len(values)
    means = sorted(sum(values[rng.randrange(m)] for _ in range(m)) / m for _ in range(n_resamples))
    alpha = (1.0 - confidence) / 2.0
    lo = means[min(n_resamples - 1, floor(alpha * n_resamples))]
    hi = means[max(0, ceil((1.0 - alpha) * n_resamples) - 1)]
    return lo, hi


def per_task_pass_at_k(n_per_task: Sequence[int], c_per_task: Sequence[int], k: int) -> list[float]:
    return [pass_at_k(n, c, k) for n, c in zip(n_per_task, c_per_task)]


def pass_at_k_ci(n_per_task: Sequence[int], c_per_task: Sequence[int], ks: Iterable[int],
                 n_resamples: int = CI_RESAMPLES, confidence: float = CI_CONFIDENCE,
                 seed: int = CI_SEED) -> dict[str, list[float]]:
    """``{"pass@k": [lo, hi]}``: bootstrap interval over tasks for each reportable ``k``."""
    if len(n_per_task) != len(c_per_task):
        raise ValueError("n_per_task and c_per_task differ in length")
    if not n_per_task:
        return {}
    return {f"pass@{k}": list(bootstrap_mean_ci(per_task_pass_at_k(n_per_task, c_per_task, k), n_resamples,
                                                confidence, seed))
            for k in reportable_ks(ks, n_per_task)}


def paired_difference(a: Mapping[str, tuple[int, int]], b: Mapping[str, tuple[int, int]], k: int = 1,
                      n_resamples: int = CI_RESAMPLES, confidence: float = CI_CONFIDENCE,
                      seed: int = CI_SEED) -> dict:
    """Paired bootstrap of ``pass@k(a) - pass@k(b)`` over the tasks both runs scored.

    ``a`` and ``b`` map task id -> ``(n, c)``. Returns the difference, its interval, the tasks
    used and a verdict: larger than the noise when the interval excludes 0."""
    tasks = sorted(set(a) & set(b))
    if not tasks:
        raise ValueError("the two runs have no task in common")
    diffs = [pass_at_k(*a[t], k) - pass_at_k(*b[t], k) for t in tasks]
    lo, hi = bootstrap_mean_ci(diffs, n_resamples, confidence, seed)
    diff = sum(diffs) / len(diffs)
    larger = lo > 0 or hi < 0
    return {"k": k, "difference": diff, "ci": [lo, hi], "confidence": confidence, "n_resamples": n_resamples,
            "tasks": len(tasks), "only_in_a": len(set(a) - set(b)), "only_in_b": len(set(b) - set(a)),
            "larger_than_noise": larger,
            "verdict": (f"pass@{k} difference {100 * diff:+.1f} points [{100 * confidence:.0f}% CI "
                        f"{100 * lo:+.1f} to {100 * hi:+.1f}] over {len(tasks)} tasks: "
                        + ("larger than the noise" if larger else "within noise"))}
