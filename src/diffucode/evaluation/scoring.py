"""Score solutions in the sandbox: one program per sample, per-benchmark test layout.

    python -c "from diffucode.evaluation import *; t = load_benchmark('humaneval', limit=2); print(score_samples(t, [{'task_id': x.task_id, 'solution': x.reference} for x in t]))"

* HumanEval / synthetic: ``solution`` + the task's test code + ``check(entry_point)``.
* MBPP: ``solution``, its setup code, then every assert (all must pass).
* HumanEval+ / MBPP+: the entry point is called on the base inputs, then on the plus inputs,
  and compared with the reference solution's outputs (computed once in the sandbox, cached).
  ``base_passed`` is the original-tests verdict, ``plus_passed`` requires base and plus.
  Per-input time limits follow EvalPlus: ``max(min_time_limit, factor * reference time)``;
  each group is capped at ``max_group_seconds``.

Every task runs **split** (the solution in a sandboxed process that only answers calls with
plain data, the tests in a separate judge process: see ``diffucode.execution.split``) when
its reference solution passes that way; the others (tests that pass functions or objects in,
or need what the function prints) run **in-process**. :class:`TaskModes` decides, once per
task (cached next to the results), and every outcome record says which mode scored it.
"""

from __future__ import annotations

import base64
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
    split_io_job,
    split_outputs_job,
    wire_inputs,
)
from diffucode.execution.wire import WireError
from diffucode.evaluation.results import GEN_ERROR
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

    def wire(self, task: Task) -> dict[str, bytes]:
        """The inputs in the split jobs' plain-data encoding (WireError if they are not plain data)."""
        return wire_inputs(_inputs_of(task))

    def mode(self, task: Task) -> str:
        return self.entries[task.task_id].get("mode", "in-process")

    def digest(self, task: Task) -> str:
        h = hashlib.sha256(b"v2" + task.reference.encode())
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
        # Split first: the reference answers calls, the judge keeps its outputs as plain data.
        # Tasks whose inputs or outputs are not plain data, or whose reference fails that way,
        # get the in-process (pickled) outputs instead.
        splittable, wires = [], {}
        for t in missing:
            try:
                wires[t.task_id] = self.wire(t)
                splittable.append(t)
            except WireError:
                pass
        new = []
        results = run_jobs([split_outputs_job(t.reference, t.entry_point, wires[t.task_id],
                                              timeout=limits.reference_timeout) for t in splittable],
                           sandbox, workers=workers, on_result=on_result) if splittable else []
        done = set()
        for t, r in zip(splittable, results):
            groups = [g for g in ("base", "plus") if g in wires[t.task_id]]
            if r.passed and all(isinstance(r.details.get(g), bytes) for g in groups):
                rec = {"task_id": t.task_id, "digest": self.digest(t), "mode": "split"}
                for g in groups:
                    rec[g] = base64.b64encode(r.details[g]).decode("ascii")
                    rec[g + "_time"] = list(r.details.get(g + "_time") or [])
                self.entries[t.task_id] = rec
                new.append(rec)
                done.add(t.task_id)
        missing = [t for t in missing if t.task_id not in done]
        jobs = [outputs_job(t.reference, t.entry_point, self.inputs(t), timeout=limits.reference_timeout)
                for t in missing]
        results = run_jobs(jobs, sandbox, workers=workers, on_result=on_result) if jobs else []
        for t, r in zip(missing, results):
            groups = [g for g in ("base", "plus") if g in self.inputs(t)]
            if not r.passed or not all(isinstance(r.details.get(g), str) for g in groups):
                self.broken[t.task_id] = f"{r.status}: {r.reason}"
                continue
            rec = {"task_id": t.task_id, "digest": self.digest(t), "mode": "in-process"}
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


class TaskModes:
    """Split or in-process, per check / asserts task: split when the task's reference solution
    passes split (so the tests only pass plain data and need nothing the function prints).
    The verdict depends only on the task, never on a candidate. Cached in a JSONL file."""

    def __init__(self, cache_file: str | Path | None = None):
        self.cache_file = Path(cache_file) if cache_file else None
        self.modes: dict[str, str] = {}

    @staticmethod
    def digest(task: Task) -> str:
        h = hashlib.sha256(b"modes-v1")
        for part in (task.kind, task.reference, task.prompt, task.test, task.test_setup, task.entry_point,
                     *task.test_list):
            h.update(part.encode("utf-8", "surrogatepass") + b"\0")
        return h.hexdigest()[:32]

    def ensure(self, tasks: Iterable[Task], sandbox: SandboxConfig, timeout: float, workers: int | None = None) -> None:
        todo = [t for t in tasks if t.kind in ("check", "asserts") and t.task_id not in self.modes]
        if not todo:
            return
        cached = {}
        if self.cache_file and self.cache_file.is_file():
            for line in self.cache_file.read_text().splitlines():
                try:
                    rec = json.loads(line)
                    cached[rec["task_id"]] = rec
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
        missing = []
        for t in todo:
            rec = cached.get(t.task_id)
            if rec and rec.get("digest") == self.digest(t) and rec.get("mode") in ("split", "in-process"):
                self.modes[t.task_id] = rec["mode"]
            else:
                missing.append(t)
        if not missing:
            return
        jobs = [sample_job(t, t.reference, timeout, mode="split") for t in missing]
        new = []
        for t, r in zip(missing, run_jobs(jobs, sandbox, workers=workers)):
            mode = "split" if r.passed else "in-process"
            self.modes[t.task_id] = mode
            new.append({"task_id": t.task_id, "digest": self.digest(t), "mode": mode, "split_reason": r.reason[:300]})
        if self.cache_file:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.cache_file, "a", encoding="utf-8") as f:
                for rec in new:
                    f.write(json.dumps(rec) + "\n")

    def mode(self, task: Task) -> str:
        return self.modes.get(task.task_id, "split")


def sample_job(task: Task, solution: str, timeout: float, refs: ReferenceOutputs | None = None,
               io_limits: IOLimits | None = None, mode: str = "split"):
    """The sandbox job that scores ``solution`` (a whole program) on ``task`` in ``mode``
    (split | in-process; for io tasks the reference outputs decide)."""
    if task.kind == "check":
        return check_job(solution, task.test, task.entry_point, timeout=timeout, prelude=task.prompt,
                         split=mode == "split")
    if task.kind == "asserts":
        return asserts_job(solution, task.test_list, setup=task.test_setup, entry_point=task.entry_point,
                           timeout=timeout, split=mode == "split")
    if task.kind == "io":
        if refs is None or task.task_id not in refs.entries:
            raise ScoringError(f"{task.task_id}: reference outputs are not available")
        per_group, total = refs.time_limits(task, io_limits or IOLimits())
        if refs.mode(task) == "split":
            expected = {g: base64.b64decode(b) for g, b in refs.expected(task).items()}
            return split_io_job(solution, task.entry_point, refs.wire(task), expected, atol=task.atol,
                                oracle=task.oracle, time_limits=per_group, timeout=total)
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
        "mode": r.mode,  # split | in-process
        "isolation": r.isolation,  # bwrap | limits-only
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
                  modes: TaskModes | None = None,
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
    modes = modes or TaskModes()
    modes.ensure({s["task_id"]: by_id[s["task_id"]] for s in samples}.values(), sandbox, timeout, workers=workers)
    outcomes: list[dict | None] = [None] * len(samples)
    runnable, jobs = [], []
    for i, s in enumerate(samples):
        task = by_id[s["task_id"]]
        if isinstance(s.get(GEN_ERROR), str):  # nothing was generated: a failure, nothing to run
            rec = {"task_id": task.task_id, "sample_idx": s.get("sample_idx", 0), "solution_sha": solution_sha(s["solution"]),
                   "status": "gen_error", "passed": False, "reason": f"generation failed: {s[GEN_ERROR]}"[:500],
                   "duration": 0.0, "mode": "", "isolation": ""}
            if task.kind == "io":
                rec.update(base_passed=False, plus_passed=False)
            outcomes[i] = rec
            if on_outcome:
                on_outcome(rec)
            continue
        if task.kind == "io" and refs is not None and task.task_id in refs.broken:
            rec = {"task_id": task.task_id, "sample_idx": s.get("sample_idx", 0), "solution_sha": solution_sha(s["solution"]),
                   "status": "error", "passed": False, "base_passed": False, "plus_passed": False,
                   "reason": f"reference solution failed: {refs.broken[task.task_id]}", "duration": 0.0,
                   "mode": "", "isolation": ""}
            outcomes[i] = rec
            if on_outcome:
                on_outcome(rec)
            continue
        runnable.append(i)
        jobs.append(sample_job(task, s["solution"], timeout, refs, io_limits, mode=modes.mode(task)))

    def done(j: int, r: ExecResult) -> None:
        i = runnable[j]
        rec = outcome_of(by_id[samples[i]["task_id"]], samples[i], r)
        outcomes[i] = rec
        if on_outcome:
            on_outcome(rec)

    run_jobs(jobs, sandbox, workers=workers, on_result=done)
    return outcomes  # type: ignore[return-value]


def mode_counts(tasks: Iterable[Task], outcomes: Iterable[dict]) -> dict[str, int]:
    """How many tasks were scored in each execution mode (by their outcome records)."""
    by_task: dict[str, str] = {}
    for o in outcomes:
        if o.get("mode"):
            by_task[o["task_id"]] = o["mode"]
    counts = {"split": 0, "in-process": 0}
    for t in tasks:
        m = by_task.get(t.task_id)
        if m in counts:
            counts[m] += 1
    return counts
