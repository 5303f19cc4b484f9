"""Scoring samples in the sandbox: MBPP asserts, EvalPlus base/plus with tolerances and oracles,
synthetic tasks, and the summary built from the outcomes."""

import pytest

from diffucode.evaluation import IOLimits, ReferenceOutputs, load_benchmark, score_samples, summarize
from diffucode.execution import SandboxConfig

SANDBOX = SandboxConfig(timeout=10)


def _score(tasks, solutions: dict[str, list[str]], refs=None):
    samples = [{"task_id": tid, "solution": sol, "sample_idx": j}
               for tid, sols in solutions.items() for j, sol in enumerate(sols)]
    return score_samples(tasks, samples, sandbox=SANDBOX, refs=refs)


def test_mbpp_all_asserts_must_pass(mbpp_full_file, mbpp_sanitized_file):
    tasks = load_benchmark("mbpp", mbpp_full_file) + load_benchmark("mbpp", mbpp_sanitized_file)
    good = {t.task_id: [t.reference] for t in tasks}
    assert all(o["passed"] for o in _score(tasks, good)), "canonical MBPP solutions must pass"
    wrong = _score(tasks, {"Mbpp/11": ["def add_nums(a, b):\n    return a + b if a > 0 else 1\n"],
                           "Mbpp/17": ["def square_perimeter(a):\n    return 40\n"]})
    assert [o["passed"] for o in wrong] == [False, False]
    assert (wrong[0]["asserts_passed"], wrong[0]["asserts_total"]) == (1, 2)
    assert (wrong[1]["asserts_passed"], wrong[1]["asserts_total"]) == (1, 2)


@pytest.fixture
def he_plus(he_plus_file, tmp_path):
    tasks = {t.task_id: t for t in load_benchmark("humaneval_plus", he_plus_file)}
    return tasks, ReferenceOutputs(tmp_path / "refs.jsonl")


def test_evalplus_canonical_passes_base_and_plus(he_plus):
    tasks, refs = he_plus
    out = _score(tasks, {tid: [t.reference] for tid, t in tasks.items()}, refs)
    assert [(o["base_passed"], o["plus_passed"], o["passed"]) for o in out] == [(True, True, True)] * 3
    assert refs.broken == {}


def test_evalplus_base_and_plus_are_separate(he_plus):
    tasks, refs = he_plus
    p = tasks["HumanEval/31"].prompt
    sols = {"HumanEval/31": [
        p + "    return all(n % d for d in range(2, n))\n",  # right on 2,3,4,5,97; wrong on 0 and 1 (plus)
        p + "    return n in (2, 3, 5)\n",  # wrong on base (97)
    ]}
    out = _score(tasks, sols, refs)
    assert (out[0]["base_passed"], out[0]["plus_passed"]) == (True, False)
    assert (out[1]["base_passed"], out[1]["plus_passed"]) == (False, False)
    res = summarize([tasks["HumanEval/31"]], out, [1, 2])
    assert res["pass@k_base"] == {"pass@1": 0.5, "pass@2": 1.0}
    assert res["pass@k_plus"] == res["pass@k"] == {"pass@1": 0.0, "pass@2": 0.0}
    assert res["tasks"]["HumanEval/31"]["base_correct"] == 1


def test_evalplus_float_tolerance(he_plus):
    tasks, refs = he_plus
    p = tasks["HumanEval/2"].prompt
    sols = {"HumanEval/2": [
        p + "    return number % 1.0 + 1e-9\n",  # within the 1e-6 EvalPlus applies to float outputs
        p + "    return number % 1.0 + 1e-3\n",  # outside it
        p + "    return number - int(number)\n",  # a different float computation, equal up to rounding
    ]}
    assert [o["passed"] for o in _score(tasks, sols, refs)] == [True, False, True]


def test_evalplus_special_oracle_accepts_any_zero(he_plus):
    tasks, refs = he_plus
    p = tasks["HumanEval/32"].prompt
    # Newton from a different start finds a different zero (3 instead of the bisection's 1)
    newton = ("    x = 10.0\n    for _ in range(100):\n        f = poly(xs, x)\n"
              "        d = sum(i * c * x ** (i - 1) for i, c in enumerate(xs) if i)\n        x = x - f / d\n    return x\n")
    out = _score(tasks, {"HumanEval/32": [p + newton, p + "    return 0.0\n"]}, refs)
    assert [o["passed"] for o in out] == [True, False]


def test_evalplus_timeouts_and_errors_fail(he_plus):
    tasks, refs = he_plus
    p = tasks["HumanEval/2"].prompt
    out = _score(tasks, {"HumanEval/2": [p + "    while True:\n        pass\n", p + "    return undefined\n",
                                         p + "    exit(0)\n"]}, refs)
    assert [o["passed"] for o in out] == [False, False, False]
    assert out[0]["status"] == "timeout"


def test_reference_outputs_are_cached(he_plus, tmp_path):
    tasks, refs = he_plus
    refs.ensure(tasks.values(), SANDBOX, IOLimits())
    lines = (tmp_path / "refs.jsonl").read_text().splitlines()
    assert len(lines) == 3
    again = ReferenceOutputs(tmp_path / "refs.jsonl")
    again.ensure(tasks.values(), SANDBOX, IOLimits())
    assert (tmp_path / "refs.jsonl").read_text().splitlines() == lines  # nothing recomputed
    assert set(again.entries) == set(tasks)


def test_mbpp_plus_set_oracle_and_tuples(mbpp_plus_file):
    tasks = load_benchmark("mbpp_plus", mbpp_plus_file)
    t = tasks[0]
    reordered = "def similar_elements(a, b):\n    assert isinstance(a, tuple)\n    return tuple(sorted(set(a) & set(b), reverse=True))\n"
    out = _score(tasks, {t.task_id: [t.reference, reordered, "def similar_elements(a, b):\n    return ()\n"]})
    assert [o["passed"] for o in out] == [True, True, False]


def test_synthetic_canonical_solutions_pass():
    tasks = load_benchmark("synthetic", limit=6)
    out = _score(tasks, {t.task_id: [t.reference] for t in tasks})
    assert all(o["passed"] for o in out), [o["reason"] for o in out if not o["passed"]]


def test_unknown_task_in_samples_is_rejected():
    tasks = load_benchmark("humaneval", limit=1)
    with pytest.raises(Exception, match="not in the benchmark"):
        _score(tasks, {"HumanEval/9999": ["x = 1"]})
