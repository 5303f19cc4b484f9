"""Run files (samples.jsonl, executions.jsonl, results.json) and the end-of-run summary.

    python -c "from diffucode.evaluation.results import format_summary; import json; print(format_summary(json.load(open('results.json'))))"

* ``samples.jsonl``: one line per sample in the EvalPlus format (``task_id``, ``solution``: the
  whole program) plus ours: ``sample_idx``, ``completion`` (what was appended to the prompt, or
  the extracted code block), ``raw`` (the decoded generation), ``gen_s`` (its share of its
  batch's wall time), ``nfe`` (forwards of its batch), ``batch_rows`` (rows decoded in that batch)
  and ``tokens`` (its completion's tokens, up to and including the end token). EvalPlus and other tools can score the file as it is. A sample
  that could not be generated (its prompt does not fit the model's context) has an empty
  ``solution`` and ``gen_error``: the reason; it is scored as a failure (status ``gen_error``)
  without running anything.
* ``executions.jsonl``: one line per executed sample (status, reason, verdicts, the execution
  ``mode`` and the ``isolation`` it ran under: ``bwrap`` or ``limits-only``), signed (``sig``,
  see below). Both files are appended as work finishes, so an interrupted run resumes where it
  stopped; a torn last line is ignored and, for repeated keys, the last line wins.
* ``results.json``: pass@k, per-task outcomes (with each sample's isolation), the decoding
  config, model, timings, sandbox (this run's, plus how many records ran under each isolation,
  earlier runs' included), what a resume reused and what it re-ran.

Verifying earlier records (:class:`RecordSigner`): each execution record carries an HMAC-SHA256
over its content, keyed by a random key kept in ``OUTPUT/.records.key`` (mode 0600, created by
the first run). A resume reuses a record only when its signature verifies and its
``solution_sha`` matches the sample; anything else is run again and counted. What this defends
against: records corrupted on disk or edited by hand, records copied in from another output
directory or written by another tool (other key), and records from a program that got out of
a limits-only run (``--allow-unsandboxed``: such a program runs as the same user and could
read the key, so records that ran without bubblewrap are re-run when this run has it). It does
not defend against someone who can read the key (the same user, outside the sandbox): then
the signature is only a checksum. The bubblewrap sandbox does not expose the output directory
at all, so sandboxed programs can neither read the key nor write the records.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Iterable, Sequence

from diffucode.evaluation.passk import CI_CONFIDENCE, CI_RESAMPLES, CI_SEED, mean_pass_at_k, pass_at_k_ci, reportable_ks
from diffucode.evaluation.tasks import Task

GEN_ERROR = "gen_error"  # samples.jsonl key: why the sample could not be generated


def read_jsonl(path: str | Path) -> list[dict]:
    """Records of a JSONL file; a line that does not parse (an interrupted write) is skipped."""
    return [rec for _, rec in read_jsonl_lines(path)]


def read_jsonl_lines(path: str | Path) -> list[tuple[int, dict]]:
    """``(line number, record)`` pairs of a JSONL file (lines that are not a JSON object skipped).

    Bytes that are not UTF-8 (a write torn inside a character) are replaced, so they only spoil
    their own line."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for n, line in enumerate(path.read_bytes().decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append((n, rec))
    return out


class JsonlAppender:
    """Appends records and flushes each batch to disk (so a crash loses at most the last line)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A torn last line (no newline) from a killed run would glue onto the next record.
        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, "rb+") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
        self.f = open(self.path, "a", encoding="utf-8")

    def write(self, records: Iterable[dict]) -> None:
        for rec in records:
            self.f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


KEY_FILE = ".records.key"
SIG = "sig"


class RecordSigner:
    """Sign and verify execution records with a per-output-directory key (see the module docstring)."""

    def __init__(self, out_dir: str | Path):
        self.path = Path(out_dir) / KEY_FILE
        self.created = False
        self.key = self._load_or_create()

    def _load_or_create(self) -> bytes:
        try:
            key = bytes.fromhex(self.path.read_text().strip())
            if len(key) == 32:
                return key
        except (OSError, ValueError):
            pass
        # missing or unreadable: a fresh key, so every earlier record is unverifiable and re-run
        from diffucode.fileio import atomic_write_text

        key = secrets.token_bytes(32)
        atomic_write_text(self.path, key.hex() + "\n", mode=0o600)
        self.created = True
        return key

    def _mac(self, rec: dict) -> str:
        body = json.dumps({k: v for k, v in rec.items() if k != SIG}, sort_keys=True, ensure_ascii=False,
                          separators=(",", ":"))
        return hmac.new(self.key, body.encode("utf-8", errors="surrogatepass"), hashlib.sha256).hexdigest()

    def sign(self, rec: dict) -> dict:
        return {**rec, SIG: self._mac(rec)}

    def verify(self, rec: dict) -> bool:
        sig = rec.get(SIG)
        return isinstance(sig, str) and hmac.compare_digest(sig, self._mac(rec))


def latest_by_key(records: Iterable[dict], key=("task_id", "sample_idx")) -> dict[tuple, dict]:
    out = {}
    for rec in records:
        out[tuple(rec.get(k) for k in key)] = rec
    return out


def _refuse_broken_lines(path: Path) -> None:
    """Raise naming the first line of ``path`` that is not a JSON object."""
    for n, line in enumerate(path.read_bytes().decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"--samples {path}, line {n}: not valid JSON ({e.msg}); fix or delete the line") from None
        if not isinstance(rec, dict):
            raise ValueError(f"--samples {path}, line {n}: expected a JSON object, got {type(rec).__name__}")


def load_samples(path: str | Path, tasks: dict[str, Task] | None = None, strict: bool = True) -> list[dict]:
    """Samples from ``path`` (ours or any EvalPlus-format file), deduplicated, in file order.

    A record needs ``task_id`` and ``solution`` (a whole program), or ``completion`` (then the
    solution is the task's prompt + completion, as EvalPlus does; + the suffix for infilling tasks). Missing ``sample_idx``
    values are numbered per task in file order. A line that is not a JSON object is an error
    naming ``file:line`` (skipping it would compute pass@k over fewer samples without a word);
    ``strict=False`` skips such lines, for the run's own file, where they are torn writes of an
    interrupted generation that the resumed run wrote again.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--samples {path}: no such file")
    with open(path, "rb") as f:
        if b"\0" in f.read(8192):
            raise ValueError(f"--samples {path}: not a JSONL text file (it contains NUL bytes)")
    if strict:
        _refuse_broken_lines(path)
    counters: dict[str, int] = {}
    out = []
    for n, rec in read_jsonl_lines(path):
        where = f"--samples {path}, line {n}"
        if "task_id" not in rec:
            raise ValueError(f"{where}: no task_id")
        if not isinstance(rec["task_id"], (str, int)) or isinstance(rec["task_id"], bool):
            raise ValueError(f"{where}: task_id must be a string, got {type(rec['task_id']).__name__}")
        tid = str(rec["task_id"])
        for key in ("solution", "completion"):
            if key in rec and not isinstance(rec[key], str):
                raise ValueError(f"{where}: `{key}` must be a string (the program text), got "
                                 f"{type(rec[key]).__name__} {str(rec[key])[:40]!r}")
        if "solution" not in rec:
            if "completion" not in rec:
                raise ValueError(f"{where}: needs `solution` or `completion`")
            if tasks is None or tid not in tasks:
                raise ValueError(f"{where}: `completion` without `solution` needs task {tid} "
                                 "in the benchmark to rebuild the program")
            # infilling tasks: the completion is the fill, between the prefix and the suffix
            rec = dict(rec, solution=tasks[tid].prompt + rec["completion"] + tasks[tid].suffix)
        if "sample_idx" not in rec:
            rec = dict(rec, sample_idx=counters.get(tid, 0))
        idx = rec["sample_idx"]
        if isinstance(idx, bool) or not isinstance(idx, int) or idx < 0:
            raise ValueError(f"{where}: sample_idx must be a non-negative integer, got {idx!r}")
        counters[tid] = max(counters.get(tid, 0), idx + 1)
        out.append(dict(rec, task_id=tid))
    return list(latest_by_key(out).values())


def decoding_summary(samples: list[dict]) -> dict | None:
    """Tokens per forward of the generation: completion tokens over forward passes, both summed over
    the batches (a batch's forwards are shared by its rows: each sample carries ``nfe / batch_rows``
    of them). At ``--batch-size 1`` this is each decode's own ratio, pooled. None when the samples
    predate the ``tokens`` field (or came from another tool)."""
    rows = [s for s in samples if isinstance(s.get("tokens"), int) and s.get("batch_rows")]
    if not rows:
        return None
    forwards = sum(float(s.get("nfe") or 0) / int(s["batch_rows"]) for s in rows)
    tokens = sum(int(s["tokens"]) for s in rows)
    return {"samples": len(rows), "completion_tokens": tokens, "forwards": round(forwards, 3),
            "tokens_per_forward": round(tokens / forwards, 4) if forwards else None}


def summarize(tasks: Sequence[Task], outcomes: Sequence[dict], ks: Iterable[int]) -> dict:
    """pass@k (base and plus for EvalPlus) and per-task outcomes from executed samples."""
    by_task: dict[str, list[dict]] = {t.task_id: [] for t in tasks}
    for o in outcomes:
        if o["task_id"] in by_task:
            by_task[o["task_id"]].append(o)
    scored = [t for t in tasks if by_task[t.task_id]]
    unscored = [t.task_id for t in tasks if not by_task[t.task_id]]
    plus = any(t.has_plus for t in scored)
    ks = list(ks)
    n = [len(by_task[t.task_id]) for t in scored]
    c = [sum(1 for o in by_task[t.task_id] if o.get("passed")) for t in scored]
    per_task = {}
    for t in scored:
        recs = sorted(by_task[t.task_id], key=lambda o: o.get("sample_idx", 0))
        entry = {"n": len(recs), "correct": sum(1 for o in recs if o.get("passed")),
                 "statuses": [o["status"] for o in recs],
                 "isolation": [o.get("isolation") or None for o in recs]}  # None: nothing ran (gen_error, ...)
        if plus:
            entry["base_correct"] = sum(1 for o in recs if o.get("base_passed"))
            entry["plus_correct"] = sum(1 for o in recs if o.get("plus_passed"))
        failing = [o for o in recs if not o.get("passed")]
        if failing:
            entry["first_failure"] = {"sample_idx": failing[0].get("sample_idx"), "status": failing[0]["status"],
                                      "reason": failing[0].get("reason", "")}
        per_task[t.task_id] = entry
    status_counts: dict[str, int] = {}
    for o in outcomes:
        status_counts[o["status"]] = status_counts.get(o["status"], 0) + 1
    out = {
        "pass@k": mean_pass_at_k(n, c, ks),
        # percentile bootstrap over tasks (passk.py): how far the score moves on another draw of tasks
        "pass@k_ci": pass_at_k_ci(n, c, ks),
        "ci": {"method": "percentile bootstrap over tasks", "confidence": CI_CONFIDENCE,
               "n_resamples": CI_RESAMPLES, "seed": CI_SEED},
        "n_tasks": len(scored),
        "n_samples_per_task": sorted(set(n)) if n else [],
        "k_requested": sorted(set(ks)),
        "k_reported": reportable_ks(ks, n),
        "statuses": status_counts,
        "tasks": per_task,
    }
    if plus:
        base_c = [sum(1 for o in by_task[t.task_id] if o.get("base_passed")) for t in scored]
        out["pass@k_base"] = mean_pass_at_k(n, base_c, ks)
        out["pass@k_base_ci"] = pass_at_k_ci(n, base_c, ks)
        out["pass@k_plus"] = out["pass@k"]
    if unscored:
        out["unscored_tasks"] = unscored
    return out


def write_json(path: str | Path, data: dict) -> Path:
    from diffucode.fileio import atomic_write_text  # unique temp name, fsync, os.replace

    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def format_summary(results: dict) -> str:
    """A one-screen table: the scores, then where the failures came from."""
    name = results.get("benchmark", "?")
    lines = []
    title = f"diffucode eval: {name}"
    model = results.get("model")
    if model:
        title += f"  model={model}"
    lines.append(title)
    rows = []
    if "pass@k_base" in results:
        rows.append(("base tests", results["pass@k_base"]))
        rows.append(("base + plus", results["pass@k_plus"]))
    else:
        rows.append(("tests", results.get("pass@k", {})))
    ks = sorted({k for _, d in rows for k in d}, key=lambda s: int(s.split("@")[1]))
    width = max(len(r[0]) for r in rows) + 2
    lines.append("-" * (width + 11 * max(1, len(ks))))
    lines.append(" " * width + "".join(f"{k:>11}" for k in ks))
    for label, d in rows:
        lines.append(f"{label:<{width}}" + "".join(f"{100 * d[k]:>10.2f}%" for k in ks))
    if not ks:
        lines.append("(no pass@k: fewer samples per task than every requested k)")
    lines.append("-" * (width + 11 * max(1, len(ks))))
    ci = results.get("pass@k_ci") or {}
    if ci and ks:
        conf = 100 * (results.get("ci") or {}).get("confidence", CI_CONFIDENCE)
        lines.append("  ".join(f"{k} {100 * results['pass@k'][k]:.1f}% [{conf:.0f}% CI {100 * ci[k][0]:.1f}-"
                               f"{100 * ci[k][1]:.1f}]" for k in ks if k in ci and k in results.get("pass@k", {}))
                     + f"   (bootstrap over {results.get('n_tasks', 0)} tasks)")
    ns = results.get("n_samples_per_task") or []
    lines.append(f"tasks: {results.get('n_tasks', 0)}   samples per task: {','.join(map(str, ns)) or '-'}"
                 f"   k requested: {','.join(map(str, results.get('k_requested', [])))}")
    st = results.get("statuses") or {}
    if st:
        lines.append("outcomes: " + "  ".join(f"{k}={v}" for k, v in sorted(st.items())))
    dec = results.get("decoding") or {}
    if dec.get("tokens_per_forward"):
        lines.append(f"decoding: {dec['completion_tokens']} completion tokens in {dec['forwards']:g} forwards = "
                     f"{dec['tokens_per_forward']:.2f} tokens per forward")
    tm = results.get("timings") or {}
    if tm:
        parts = [f"{k[:-2]}={v:.1f}s" for k, v in tm.items()
                 if k.endswith("_s") and k != "programs_per_s" and isinstance(v, (int, float))]
        if "programs_per_s" in tm:
            parts.append(f"programs/s={tm['programs_per_s']:.1f}")
        lines.append("time: " + "  ".join(parts))
    sb = results.get("sandbox") or {}
    if sb:
        line = f"sandbox: {sb.get('isolation')}" + ("  (WARNING: " + sb["warning"] + ")" if sb.get("warning") else "")
        by_iso = sb.get("records_by_isolation") or {}
        if len(by_iso) > 1 or (by_iso and sb.get("isolation") not in by_iso):  # earlier runs used another sandbox
            line += "   records: " + ", ".join(f"{k}={v}" for k, v in sorted(by_iso.items()))
        lines.append(line)
    if results.get("unscored_tasks"):
        lines.append(f"not scored (no samples): {len(results['unscored_tasks'])} tasks")
    return "\n".join(lines)
