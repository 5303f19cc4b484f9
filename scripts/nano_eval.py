"""Measure one DiffuCoder-nano model for the README table, or print the table from the results.

    python scripts/nano_eval.py run --model runs/nano/mdm/final --name mdm [--chat] [--half-steps] [--arness]
    python scripts/nano_eval.py table --out results/nano
    python scripts/nano_eval.py compare results/nano/sft_mdm results/nano/grpo_coupled   # paired, same tasks

``run`` calls the public commands (``diffucode eval`` / ``diffucode analyze arness``), so every
figure can be reproduced by hand from the command it prints. The shared protocol:

* held-out synthetic split, first ``--limit`` tasks (60: 24 from held-out families), n = 10
  samples per task, temperature 0.4, top-p 0.95, pass@1 and pass@10 (unbiased estimator);
* base models: completion prompts, 48 new tokens; chat (SFT / RL) models: the ``--chat`` prompt
  with no response prefix (the model opens the fence itself), 64 new tokens;
* diffusion models: Dream ``entropy``, one token per step (``--half-steps``: half the steps).
  Bidirectional models decode with the approximate dual cache in blocks of 16 (Fast-dLLM; the
  no-cache reference is ~10x slower on this CPU); block-diffusion models use their exact KV cache;
  the AR model decodes left to right with its KV cache;
* AR-ness: 16 completion prompts, one sample each, temperatures 0.2 and 1.2, no cache, k = 1..4.

Error bars: ``table`` gives each pass@k a 95% percentile-bootstrap interval over tasks (1000
resamples, seed 0; ``diffucode.evaluation.passk``), recomputed from the per-task counts in
``results.json``; ``compare`` bootstraps the difference of two runs on the same tasks (paired)
and says whether it is larger than the noise.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path


def _attention(model: str) -> str:
    return json.loads((Path(model) / "config.json").read_text()).get("diffusion_attention", "bidirectional")


def _run(cmd: list[str], log: Path) -> None:
    print("+", shlex.join(cmd), flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as f:
        f.write("+ " + shlex.join(cmd) + "\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}); see {log}")


def run(args) -> None:
    out = Path(args.out) / args.name
    attention = _attention(args.model)
    new_tokens = 64 if args.chat else 48
    base = ["diffucode", "eval", "--benchmark", "synthetic", "--model", args.model, "--limit", str(args.limit),
            "--n-samples", str(args.n_samples), "--k", "1,10", "--temperature", "0.4", "--top-p", "0.95",
            "--max-new-tokens", str(new_tokens), "--batch-size", "40", "--no-progress", "--seed", "0"]
    if args.chat:
        base += ["--chat", "--response-prefix", ""]
    if attention == "bidirectional":
        base += ["--block-len", "16", "--cache", "dual"]
    runs = [("eval", new_tokens)] + ([("eval_half", new_tokens // 2)] if args.half_steps else [])
    for sub, steps in runs:
        _run(base + ["--steps", str(steps), "--output", str(out / sub)], out / "log.txt")
    if args.arness and attention != "causal":
        _run(["diffucode", "analyze", "arness", "--model", args.model, "--benchmark", "synthetic", "--limit", "16",
              "--temperatures", "0.2,1.2", "--ks", "1,2,3,4", "--max-new-tokens", "48", "--no-pass-at-1",
              "--batch-size", "16", "--output", str(out / "arness")], out / "log.txt")


def _results(path: Path) -> dict:
    """results.json of a run: ``path`` is the results file, its directory, or a row directory
    (then its ``eval/``)."""
    for p in (path, path / "results.json", path / "eval" / "results.json"):
        if p.is_file():
            return json.loads(p.read_text())
    return {}


def _pass(path: Path) -> dict:
    """pass@k and its bootstrap interval (``pass@k_ci``), recomputed from the per-task counts so
    runs written before intervals were stored get them too."""
    from diffucode.evaluation.passk import pass_at_k_ci

    res = _results(path)
    if not res:
        return {}
    tasks = list(res.get("tasks", {}).values())
    ci = pass_at_k_ci([t["n"] for t in tasks], [t["correct"] for t in tasks], [1, 10]) if tasks else {}
    return {**res["pass@k"], **{f"{k}_ci": v for k, v in ci.items()}}


def _executions(path: Path) -> dict:
    """How far the samples got: ``parsed`` (compiled: status is not ``error``), ``ran`` (reached the
    asserts: passed, failed an assert or timed out); and pass@1 split into tasks from held-out
    families and tasks from held-in families with held-out constants."""
    file = path / "executions.jsonl"
    if not file.is_file():
        return {}
    from diffucode.data.synthetic import held_out_families

    unseen = set(held_out_families())
    rows = [json.loads(x) for x in file.read_text().splitlines() if x.strip()]
    ran = sum(r["passed"] or r["reason"].startswith("AssertionError") or r["status"] == "timeout" for r in rows)
    groups: dict[str, list[bool]] = {"unseen_family": [], "unseen_constants": []}
    for r in rows:
        family = r["task_id"].split("/")[1]
        groups["unseen_family" if family in unseen else "unseen_constants"].append(bool(r["passed"]))
    parsed = sum(r["status"] != "error" for r in rows)
    out = {"samples": len(rows), "passed": sum(r["passed"] for r in rows), "parsed": parsed, "ran": ran}
    for g, v in groups.items():
        out[f"pass@1_{g}"] = sum(v) / len(v) if v else None
    return out


def table(args) -> None:
    root = Path(args.out)
    rows = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        full, half = _pass(d / "eval"), _pass(d / "eval_half")
        row = {"model": d.name, "pass@1": full.get("pass@1"), "pass@10": full.get("pass@10"),
               "pass@1_ci": full.get("pass@1_ci"), "pass@10_ci": full.get("pass@10_ci"),
               "half_steps_pass@1": half.get("pass@1"), "half_steps_pass@10": half.get("pass@10"),
               **_executions(d / "eval"), **{f"half_steps_{k}": v for k, v in _executions(d / "eval_half").items()}}
        ar = d / "arness" / "arness.json"
        if ar.is_file():
            data = json.loads(ar.read_text())
            for p in data["points"]:
                t = p["temperature"]
                for k in ("1", "2", "4"):
                    row[f"local@{k}_T{t}"] = p["local"][k]["mean"]
                    row[f"global@{k}_T{t}"] = p["global"][k]["mean"]
        rows.append(row)
    print(_markdown(rows) if args.markdown else json.dumps(rows, indent=1))


def _markdown(rows: list[dict]) -> str:
    """The README's tables: pass rates, then AR-ness (models that have it)."""
    pct = lambda v: "–" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    num = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    def with_ci(r, key):
        ci = r.get(f"{key}_ci")
        return pct(r[key]) + ("" if ci is None or r[key] is None else f" [{100 * ci[0]:.1f}-{100 * ci[1]:.1f}]")

    lines = ["| model | pass@1 [95% CI] | pass@10 [95% CI] | parsed | reached asserts | pass@1, held-out constants | "
             "pass@1, held-out families | half the steps: pass@1 | pass@10 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {with_ci(r, 'pass@1')} | {with_ci(r, 'pass@10')} | {r.get('parsed', '–')} | "
                     f"{r.get('ran', '–')} | {pct(r.get('pass@1_unseen_constants'))} | "
                     f"{pct(r.get('pass@1_unseen_family'))} | {pct(r['half_steps_pass@1'])} | "
                     f"{pct(r['half_steps_pass@10'])} |")
    lines += ["", "| model | local@1, T=0.2 | local@1, T=1.2 | global@1, T=0.2 | global@1, T=1.2 |", "|---|---|---|---|---|"]
    for r in rows:
        if "local@1_T0.2" in r:
            lines.append(f"| {r['model']} | {num(r['local@1_T0.2'])} | {num(r.get('local@1_T1.2'))} | "
                         f"{num(r['global@1_T0.2'])} | {num(r.get('global@1_T1.2'))} |")
    return "\n".join(lines)


def compare(args) -> None:
    """Paired bootstrap of pass@k(A) - pass@k(B) over the tasks both runs scored."""
    from diffucode.evaluation.passk import paired_difference

    runs = []
    for p in (args.a, args.b):
        res = _results(Path(p))
        if not res.get("tasks"):
            raise SystemExit(f"{p}: no results.json with per-task results (looked for {p}, {p}/results.json, "
                             f"{p}/eval/results.json)")
        runs.append({tid: (t["n"], t["correct"]) for tid, t in res["tasks"].items()})
    out = paired_difference(runs[0], runs[1], k=args.k)
    print(json.dumps(out, indent=1) if args.json else f"{args.a} vs {args.b}: {out['verdict']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--model", required=True)
    r.add_argument("--name", required=True)
    r.add_argument("--chat", action="store_true")
    r.add_argument("--half-steps", action="store_true")
    r.add_argument("--arness", action="store_true")
    r.add_argument("--limit", type=int, default=60)
    r.add_argument("--n-samples", type=int, default=10)
    r.add_argument("--out", default="results/nano")
    t = sub.add_parser("table")
    t.add_argument("--out", default="results/nano")
    t.add_argument("--markdown", action="store_true", help="print the README tables instead of JSON")
    c = sub.add_parser("compare", help="paired bootstrap of the pass@k difference of two runs on the same tasks")
    c.add_argument("a", help="run A: a row directory, an eval output directory or its results.json")
    c.add_argument("b", help="run B, the same")
    c.add_argument("--k", type=int, default=1)
    c.add_argument("--json", action="store_true", help="print the whole comparison as JSON")
    args = ap.parse_args(argv)
    {"run": run, "table": table, "compare": compare}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
