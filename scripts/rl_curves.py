"""Compare `diffucode rl` runs from their metrics.jsonl: reward at equal steps and at equal wall time.

    python scripts/rl_curves.py runs/nano/grpo_block_coupled runs/nano/grpo_block_full runs/nano/grpo_block_decoupled

Runs started with the same seed and prompts see the same prompts at the same step, so per-step
rewards pair across runs. For each run it prints: steps, wall time (sum of ``step_time_s``), the
mean of ``--key`` over all steps with a percentile-bootstrap interval over steps, the mean over
the steps done within ``--wall`` seconds (default: the fastest run's total, i.e. equal wall time),
and, for every run after the first, the paired difference from the first run over their common
steps (bootstrap over steps; "larger than the noise" when the interval excludes 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from diffucode.evaluation.passk import bootstrap_mean_ci
from diffucode.evaluation.results import read_jsonl


def read_metrics(run: Path) -> list[dict]:
    """The per-step rows of a run's metrics.jsonl (rows without a step or the key are skipped by callers)."""
    path = run / "metrics.jsonl" if run.is_dir() else run
    if not path.is_file():
        raise SystemExit(f"{run}: no metrics.jsonl")
    rows = read_jsonl(path)  # a torn last line (a run still writing) is skipped
    by_step = {r["step"]: r for r in rows if "step" in r and "step_time_s" in r}  # a resumed run may repeat a step
    return [by_step[s] for s in sorted(by_step)]


def summarize(rows: list[dict], key: str, wall: float | None = None) -> dict:
    """Mean of ``key`` over all steps (with a bootstrap interval over steps) and over the steps
    finished within ``wall`` seconds of cumulative step time."""
    vals = [float(r[key]) for r in rows]
    if not vals:
        raise ValueError(f"no step has {key!r}")
    elapsed, within = 0.0, []
    for r, v in zip(rows, vals):
        elapsed += float(r["step_time_s"])
        if wall is None or elapsed <= wall + 1e-9:
            within.append(v)
    lo, hi = bootstrap_mean_ci(vals)
    return {"steps": len(vals), "wall_s": sum(float(r["step_time_s"]) for r in rows), "mean": sum(vals) / len(vals),
            "ci": [lo, hi], "steps_within_wall": len(within),
            "mean_within_wall": sum(within) / len(within) if within else None}


def paired_steps(a: list[dict], b: list[dict], key: str) -> dict:
    """Mean over common steps of ``key``(a) - ``key``(b), bootstrap interval over steps."""
    bs = {r["step"]: float(r[key]) for r in b}
    diffs = [float(r[key]) - bs[r["step"]] for r in a if r["step"] in bs]
    if not diffs:
        raise ValueError("the two runs have no step in common")
    lo, hi = bootstrap_mean_ci(diffs)
    return {"steps": len(diffs), "difference": sum(diffs) / len(diffs), "ci": [lo, hi],
            "larger_than_noise": lo > 0 or hi < 0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories (or metrics.jsonl files); the first is the reference")
    ap.add_argument("--key", default="rewards/code", help="metric to compare (default rewards/code; e.g. reward)")
    ap.add_argument("--wall", type=float, default=None, help="wall-time budget in seconds (default: the fastest run's)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    runs = {r: read_metrics(Path(r)) for r in args.runs}
    for r, rows in runs.items():
        missing = [row["step"] for row in rows if args.key not in row]
        if missing:
            raise SystemExit(f"{r}: step {missing[0]} has no {args.key!r}")
    wall = args.wall if args.wall is not None else min(sum(float(x["step_time_s"]) for x in rows) for rows in runs.values())
    out = {"key": args.key, "wall_s": wall, "runs": {r: summarize(rows, args.key, wall) for r, rows in runs.items()}}
    first = args.runs[0]
    out["paired_vs_first"] = {r: paired_steps(runs[r], runs[first], args.key) for r in args.runs[1:]}
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"{args.key}; equal wall time = {wall:.0f} s of step time")
    for r, s in out["runs"].items():
        print(f"{r}: {s['steps']} steps, {s['wall_s']:.0f} s, mean {s['mean']:.3f} [{s['ci'][0]:.3f}, {s['ci'][1]:.3f}]; "
              f"within {wall:.0f} s: {s['steps_within_wall']} steps, mean "
              + ("n/a" if s["mean_within_wall"] is None else f"{s['mean_within_wall']:.3f}"))
    for r, d in out["paired_vs_first"].items():
        print(f"{r} minus {first}, paired over {d['steps']} steps: {d['difference']:+.3f} "
              f"[{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]: " + ("larger than the noise" if d["larger_than_noise"] else "within noise"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
