"""Score solutions in the sandbox: one program per sample, per-benchmark test layout.

    python -c "from diffucode.evaluation import *; t = load_benchmark('humaneval', limit=2); print(score_samples(t, [{'task_id': x.task_id, 'solution': x.reference} for x in t]))"

* HumanEval / synthetic: ``solution`` + the task's test code + ``check(entry_point)``.
* MBPP: ``solution``, its setup code, then every assert (all must pass).
* HumanEval+ / MBPP+: the entry point is called on the base inputs, then on the plus inputs,
  and compared with the reference solution's outputs (computed once in the sandbox, cached).
  ``base_passed`` is the original-tests verdict, ``plus_passed`` requires base and plus.
  Per-input time limits follow EvalPlus: ``max(min_time_limit, factor * reference time)``;
  each group is capped at ``max_group_seconds``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from diffucode.execution import (
    ExecResult,
    SandboxConfig,
    asserts_job,
    check_job,
    io_job,
    outputs_job,
    pickle_inputs,
    run_jobs,
)
from diffucode.evaluation.tasks import Task


@dataclass
class IOLimits:
    """EvalPlus time limits."""

    min_time_limit: float = 1.0  # seconds per input, at least
    gt_time_limit_factor: float = 4.0  # times the reference solution's time on that input
    max_group_seconds: float = 60.0  # cap on the sum over one group (base or plus)
    reference_timeout: float = 300.0  # for computing the reference outputs


class ScoringError(RuntimeError):
    pass


def _inputs_of(task: Task) -> dict[str, list]:
    out = {"base": task.base_input or []}
    if task.plus_input is not None:
        out["plus"] = task.plus_input
    return out


class ReferenceOutputs:
    """Reference outputs of the io tasks, computed in the sandbox and cached in a JSONL file.

    The outputs stay pickled and base64-encoded in this process: they are produced by the
    dataset's code inside the sandbox and only ever unpickled inside a sandbox again.
    """

    def __init__(self, cache_file: str | Path | None = None):
        self.cache_file = Path(cache_file) if cache_file else None
        self.blobs: dict[str, dict[str, str]] = {}  # task_id -> pickled inputs per group
        self.entries: dict[str, dict] = {}  # task_id -> {"digest", group: blob, group + "_time": [...]}
        self.broken: dict[str, str] = {}  # task_id -> why the reference failed

    def inputs(self, task: Task) -> dict[str, str]:
        if task.task_id not in self.blobs:
            self.blobs[task.task_id] = pickle_inputs(_inputs_of(task))
        return self.blobs[task.task_id]

    def digest(self, task: Task) -> str:
        h = hashlib.sha256(task.reference.encode())
        h.update(task.entry_point.encode())
        for group, blob in sorted(self.inputs(task).items()):
            h.update(group.encode())
            h.update(blob.encode())
        return h.hexdigest()[:32]

    def _load_cache(self) -> dict[str, dict]:
        cached = {}
        if self.cache_file and self.cache_file.is_file():
            for line in self.cache_file.read_text().splitlines():
                try:
                    rec = json.loads(line)
                    cached[rec["task_id"]] = rec
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a torn last line from an interrupted run
        return cached

    def ensure(self, tasks: Iterable[Task], sandbox: SandboxConfig, limits: IOLimits, workers: int | None = None,
               on_result: Callable[[int, ExecResult], object] | None = None) -> None:
        todo = [t for t in tasks if t.kind == "io" and t.task_id not in self.entries]
        if not todo:
            return
        cached = self._load_cache()
        missing = []
        for t in todo:
            rec = cached.get(t.task_id)
            if rec and rec.get("digest") == self.digest(t):
                self.entries[t.task_id] = rec
            else:
                missing.append(t)
        if not missing:
            return
        jobs = [outputs_job(t.reference, t.entry_point, self.inputs(t), timeout=limits.reference_timeout)
                for t in missing]
        results = run_jobs(jobs, sandbox, workers=workers, on_result=on_result)
        new = []
        for t, r in zip(missing, results):
            groups = [g for g in ("base", "plus") if g in self.inputs(t)]
            if not r.passed or not all(isinstance(r.details.get(g), str) for g in groups):
                self.broken[t.task_id] = f"{r.status}: {r.reason}"
                continue
            rec = {"task_id": t.task_id, "digest": self.digest(t)}
            for g in groups:
                rec[g] = r.details[g]
                rec[g + "_time"] = list(r.details.get(g + "_time") or [])
            self.entries[t.task_id] = rec
            new.append(rec)
        if self.cache_file and new:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.cache_file, "a") as f:
                for rec in new:
                    f.write(json.dumps(rec) + "\n")
                f.flush()
                os.fsync(f.fileno())

    def time_limits(self, task: Task, limits: IOLimits) -> tuple[dict[str, list[float]], float]:
        rec = self.entries[task.task_id]
        per_group, total = {}, 0.0
        for g in ("base", "plus"):
            if g + "_time" not in rec:
                continue
            tl = [max(limits.min_time_limit, limits.gt_time_limit_factor * t) for t in rec[g + "_time"]]
            per_group[g] = tl
            total += min(limits.max_group_seconds, sum(tl))
        return per_group, total + 2.0

    def expected(self, task: Task) -> dict[str, str]:
        rec = self.entries[task.task_id]
        return {g: rec[g] for g in ("base", "plus") if g in rec}


def sample_job(task: Task, solution: str, timeout: float, refs: ReferenceOutputs | None = None,
               io_limits: IOLimits | None = None):
    """The sandbox job that scores ``solution`` (a whole program) on ``task``."""
    if task.kind == "check":
        return check_job(solution, task.test, task.entry_point, timeout=timeout)
    if task.kind == "asserts":
        return asserts_job(solution, task.test_list, setup=task.test_setup, entry_point=task.entry_point,
                           timeout=timeout)
    if task.kind == "io":
        if refs is None or task.task_id not in refs.entries:
            raise ScoringError(f"{task.task_id}: reference outputs are not available")
        per_group, total = refs.time_limits(task, io_limits or IOLimits())
        return io_job(solution, task.entry_point, refs.inputs(task), refs.expected(task), atol=task.atol,
                      oracle=task.oracle, time_limits=per_group, timeout=total)
    raise ScoringError(f"{task.task_id}: unknown task kind {task.kind!r}")


def outcome_of(task: Task, sample: dict, r: ExecResult) -> dict:
    """The per-sample record written to executions.jsonl."""
    out = {
        "task_id": task.task_id,
        "sample_idx": sample.get("sample_idx", 0),
        "solution_sha": solution_sha(sample["solution"]),
        "status": r.status,
        "passed": r.passed,
        "reason": r.reason[:500],
        "duration": round(r.duration, 4),
    }
    if task.kind == "io":
        base = r.details.get("base") if isinstance(r.details.get("base"), dict) else {}
        plus = r.details.get("plus") if isinstance(r.details.get("plus"), dict) else {}
        out["base_passed"] = bool(base.get("passed"))
        out["plus_passed"] = bool(base.get("passed")) and bool(plus.get("passed")) if task.has_plus else out["base_passed"]
        out["passed"] = out["plus_passed"]
    if task.kind == "asserts":
        res = r.details.get("results")
        if isinstance(res, list):
            out["asserts_passed"] = sum(1 for x in res if x is True)
            out["asserts_total"] = len(res)
    if not r.passed and r.stderr:
        out["stderr_tail"] = r.stderr[-500:]
    return out


def solution_sha(solution: str) -> str:
    return hashlib.sha1(solution.encode("utf-8", errors="surrogatepass")).hexdigest()[:16]


def score_samples(tasks: Sequence[Task] | dict[str, Task], samples: Sequence[dict], *,
                  sandbox: SandboxConfig | None = None, timeout: float = 10.0, workers: int | None = None,
                  io_limits: IOLimits | None = None, refs: ReferenceOutputs | None = None,
                  on_outcome: Callable[[dict], object] | None = None) -> list[dict]:
    """Run every sample (``{"task_id", "solution", "sample_idx"?}``) and return outcome records
    in the same order. ``on_outcome`` sees each record as it completes (e.g. to append it to a
    file so an interrupted run can resume)."""
    by_id = tasks if isinstance(tasks, dict) else {t.task_id: t for t in tasks}
    sandbox = sandbox or SandboxConfig(timeout=timeout)
    io_limits = io_limits or IOLimits()
    unknown = sorted({s["task_id"] for s in samples} - set(by_id))
    if unknown:
        raise ScoringError(f"samples refer to task ids not in the benchmark: {', '.join(unknown[:5])}")
    io_tasks = {s["task_id"]: by_id[s["task_id"]] for s in samples if by_id[s["task_id"]].kind == "io"}
    if io_tasks:
        refs = refs or ReferenceOutputs()
        refs.ensure(io_tasks.values(), sandbox, io_limits, workers=workers)
    outcomes: list[dict | None] = [None] * len(samples)
    runnable, jobs = [], []
    for i, s in enumerate(samples):
        task = by_id[s["task_id"]]
        if task.kind == "io" and refs is not None and task.task_id in refs.broken:
            rec = {"task_id": task.task_id, "sample_idx": s.get("sample_idx", 0), "solution_sha": solution_sha(s["solution"]),
                   "status": "error", "passed": False, "base_passed": False, "plus_passed": False,
                   "reason": f"reference solution failed: {refs.broken[task.task_id]}", "duration": 0.0}
            outcomes[i] = rec
            if on_outcome:
                on_outcome(rec)
            continue
        runnable.append(i)
        jobs.append(sample_job(task, s["solution"], timeout, refs, io_limits))

    def done(j: int, r: ExecResult) -> None:
        i = runnable[j]
        rec = outcome_of(by_id[samples[i]["task_id"]], samples[i], r)
        outcomes[i] = rec
        if on_outcome:
            on_outcome(rec)

    run_jobs(jobs, sandbox, workers=workers, on_result=done)
    return outcomes  # type: ignore[return-value]
