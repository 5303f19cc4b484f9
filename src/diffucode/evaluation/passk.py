"""pass@k with the unbiased estimator of Chen et al. (2021), computed exactly.

    python -c "from diffucode.evaluation.passk import pass_at_k; print(pass_at_k(10, 3, 5))"

For one task with ``n`` samples of which ``c`` pass, ``pass@k = 1 - C(n-c, k) / C(n, k)``: the
chance that at least one of ``k`` samples drawn without replacement passes. The ratio of two
binomial coefficients is evaluated in integers (``fractions.Fraction``), so there is no
rounding until the final float; the benchmark score is the mean over tasks, also exact.
pass@k is reported only where every task has ``n >= k`` samples.
"""

from __future__ import annotations

from fractions import Fraction
from math import comb
from typing import Iterable, Sequence


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
