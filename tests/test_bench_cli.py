"""`diffucode bench`: help texts, dispatch, tiny smoke runs of each benchmark, and the import rule.

    OMP_NUM_THREADS=1 python -m pytest tests/test_bench_cli.py -q

The smoke runs use the smallest settings each benchmark accepts: they check that the JSON report
is complete and well formed, not the speed numbers (which mean nothing at this size).
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import diffucode
from diffucode.recipes import bench

REPO = Path(__file__).resolve().parents[1]
PKG = Path(diffucode.__file__).parent
SCRIPTS = {"decode": "decode_speed.py", "train": "train_step.py", "sandbox": "sandbox_throughput.py",
           "serve": "serve_throughput.py"}


def _run(*args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=60)


def test_bench_help_lists_the_four_benchmarks():
    proc = _run("-m", "diffucode.cli", "bench", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "diffucode bench" in proc.stdout
    for name in SCRIPTS:
        assert f"  {name} " in proc.stdout  # one line (at least) per benchmark in the epilog
    assert "--output FILE" in proc.stdout


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_each_benchmark_help(name):
    proc = _run("-m", "diffucode.cli", "bench", name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: diffucode bench {name} ")
    assert "--output FILE" in proc.stdout


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_scripts_still_work_as_wrappers(name):
    proc = _run(str(REPO / "benchmarks" / SCRIPTS[name]), "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: {SCRIPTS[name]} ")


def test_no_or_unknown_benchmark_fails(capsys):
    assert bench.main([]) == 2
    assert "decode" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        bench.main(["nope"])
    assert e.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_bad_flags_are_named(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["train", "--variants", "ar,foo"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--variants: unknown ['foo']" in err
    with pytest.raises(SystemExit):
        bench.main(["decode", "--tiny", "--output", str(tmp_path)])  # a directory, refused before any work
    assert f"--output {tmp_path}: is a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["decode", "--repeats", "0"])
    assert "--repeats must be >= 1" in capsys.readouterr().err


def _report(capsys, out_file: Path) -> dict:
    stdout = capsys.readouterr().out
    report = json.loads(stdout)  # stdout holds the JSON report and nothing else
    assert json.loads(out_file.read_text()) == report  # --output wrote the same report
    assert not list(out_file.parent.glob(".*.tmp"))  # the atomic write left no temp file
    return report


def test_decode_smoke(tmp_path, capsys):
    out = tmp_path / "new_dir" / "decode.json"
    rc = bench.main(["decode", "--tiny", "--device", "cpu", "--hidden", "32", "--layers", "1", "--lengths", "32",
                     "--batch-sizes", "1,2", "--reference-steps", "3", "--repeats", "1", "--output", str(out)])
    assert rc == 0
    r = _report(capsys, out)
    assert r["benchmark"] == "decode_speed"
    assert {"machine", "model", "prompts", "timing", "shapes"} <= set(r)
    assert r["model"]["trained"] is False and r["model"]["source"].startswith("build_tiny_model(hidden_size=32")
    assert [(s["max_new_tokens"], s["batch_size"]) for s in r["shapes"]] == [(32, 1), (32, 2)]
    for shape in r["shapes"]:
        rows = shape["rows"]
        ref, ar = rows[0], rows[-1]
        assert ref["config"].startswith("reference") and "no cache" in ref["config"]
        assert ref["settings"]["block_cache"] is False  # the reference of a block-causal model is really uncached
        assert "first 3 of its" in ref["note"]  # timed in part, scaled
        assert ar["config"].startswith("autoregressive") and ar["nfe_per_prompt"] == 32
        assert any("B=16" in row["config"] for row in rows) and any("bidirectional" in row["config"] for row in rows)
        for row in rows:
            assert row["tokens_per_cpu_s"] > 0 and row["nfe_per_prompt"] >= 1
            assert row["tokens_per_nfe"] == pytest.approx(32 / row["nfe_per_prompt"], abs=1e-2)
            assert {"vs_reference", "vs_autoregressive", "vs_floor", "wall_s", "cpu_s"} <= set(row)
            assert row["vs_floor"] > 0


def test_decode_bench_fits_the_bundled_block_causal_model(capsys):
    """The default model refuses prefix/dual caches and block lengths that are not multiples of its
    block: the plan must not ask for them (larger blocks are multiples, named as reinterpreted)."""
    from diffucode.benchmarks.decode_speed import _plan
    from diffucode.models import build_tiny_model

    import argparse

    model, _ = build_tiny_model(attention="block_causal", block_len=4, shift=False, hidden_size=32, num_layers=1)
    rows = _plan(model, argparse.Namespace(threshold=0.9), trained=True, L=64)
    assert rows[0].kind == "reference" and rows[0].kw["block_cache"] is False
    for row in rows:
        assert row.model is model and row.kw.get("cache", "none") == "none"
        if row.kw.get("block_len") is not None:
            assert row.kw["block_len"] % 4 == 0 and "attention reinterpreted" in row.name
    assert any(row.kw.get("lookahead") for row in rows)
    assert any(row.kw.get("sub_block_len") for row in rows)


@pytest.mark.slow
def test_decode_compile_twins(tmp_path, capsys):
    """--compile adds torch.compile twins with their compile cost apart (slow: compiles on the CPU)."""
    out = tmp_path / "decode.json"
    rc = bench.main(["decode", "--tiny", "--device", "cpu", "--hidden", "32", "--layers", "1", "--lengths", "16",
                     "--batch-sizes", "1", "--reference-steps", "3", "--repeats", "1", "--compile", "--no-floor",
                     "--output", str(out)])
    assert rc == 0
    rows = _report(capsys, out)["shapes"][0]["rows"]
    twins = [r for r in rows if r["config"].endswith("[torch.compile]")]
    assert twins and all(r["compile_cost"]["warmup_cpu_s"] > 0 for r in twins)
    eager = {r["config"]: r for r in rows}
    for t in twins:  # the same tokens as the eager row
        assert t["agree"] == eager[t["config"].removesuffix(" [torch.compile]")]["agree"]


def test_train_smoke(tmp_path, capsys):
    out = tmp_path / "train.json"
    rc = bench.main(["train", "--device", "cpu", "--hidden", "32", "--layers", "1", "--heads", "1", "--batch", "1",
                     "--seq-len", "8", "--steps", "1", "--warmup", "0", "--output", str(out)])
    assert rc == 0
    r = _report(capsys, out)
    assert r["benchmark"] == "train_step" and r["device"] == "cpu"
    assert r["model"]["hidden"] == 32 and r["seq_len"] == 8 and r["timed_steps"] == 1
    assert set(r["results"]) == {"ar", "mdm", "mdm_annealing", "block"}
    for name, row in r["results"].items():
        assert row["median_s"] > 0 and row["min_s"] > 0
        # block diffusion runs the model on x_t ++ x0: twice the tokens of the others
        assert row["tokens_through_model"] == (16 if name == "block" else 8)
    assert r["results"]["ar"]["median_ratio_to_ar"] == 1.0


def test_sandbox_smoke(tmp_path, capsys):
    out = tmp_path / "sandbox.json"
    rc = bench.main(["sandbox", "--limit", "1", "--repeats", "1", "--latency-samples", "1", "--workers", "1",
                     "--output", str(out)])
    assert rc == 0
    r = _report(capsys, out)
    assert r["programs"] == 1 and r["workers"] == 1
    # HumanEval/0's canonical solution passes under every method
    assert r["passed"] == {"bwrap_sandbox": 1, "bwrap_fresh_sandbox": 1, "limits_only": 1, "human_eval_in_process": 1}
    assert set(r["latency_ms"]) == {"bwrap_sandbox", "bwrap_fresh_sandbox", "limits_only", "human_eval_in_process",
                                   "bare_python"}
    assert all(v > 0 for v in r["throughput_programs_per_s"].values())


@pytest.mark.slow  # starts `diffucode serve` in a fresh process (imports torch, loads a model)
def test_serve_smoke(tmp_path, capsys):
    out = tmp_path / "serve.json"
    rc = bench.main(["serve", "--tiny", "--concurrency", "1,2", "--requests", "2", "--max-tokens", "4",
                     "--prompts", "2", "--threads", "1", "--batching", "fixed,continuous", "--output", str(out)])
    assert rc == 0
    r = _report(capsys, out)
    assert r["benchmark"] == "serve_throughput" and r["model"] == "tiny-untrained"
    assert [(lv["batching"], lv["clients"]) for lv in r["levels"]] == [("fixed", 1), ("fixed", 2), ("continuous", 1),
                                                                        ("continuous", 2)]
    for lv in r["levels"]:
        assert lv["requests"] == 2 and lv["errors"] == 0 and lv["requests_per_s"] > 0
        assert lv["canvas_tokens_per_s"] > 0 and lv["mean_batch_rows"] >= 1
    assert r["levels"][0]["speedup_vs_1"] == 1.0 and r["levels"][2]["speedup_vs_1"] == 1.0
    assert r["levels"][3]["vs_fixed"] > 0 and "vs_fixed" not in r["levels"][1]


def test_only_recipes_bench_imports_benchmarks():
    importers = []
    for f in PKG.rglob("*.py"):
        rel = f.relative_to(PKG)
        if rel.parts[0] == "benchmarks" or rel == Path("recipes/bench.py"):
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if any(n == "diffucode.benchmarks" or n.startswith("diffucode.benchmarks.") for n in names):
                importers.append(str(rel))
    assert importers == []
    assert "diffucode.benchmarks" in (PKG / "recipes" / "bench.py").read_text()  # the one that should
