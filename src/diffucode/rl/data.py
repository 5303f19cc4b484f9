"""RL prompt data: JSONL prompts with their test asserts, chat formatting, the per-step prompt order.

    python -c "from diffucode.rl.data import step_prompt_indices; print(step_prompt_indices(10, 0, 4, seed=0))"

A prompt record is one JSON object per line (AceCode-87K's layout)::

    {"id": "...", "question": "Write a function ...", "test_cases": ["assert f(1) == 2", ...], ...}

``test_list`` (MBPP / ``diffucode.data.synthetic``) is accepted for ``test_cases``, and
``task_id`` for ``id`` (a missing id becomes ``"line-<n>"``). Every other column is kept and
handed to reward functions as a keyword argument, TRL-style.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch

from diffucode.data.jsonl import iter_jsonl
from diffucode.diffusion.schedules import seeded_generator

STREAM_RL_ORDER = 102

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."


class DataError(ValueError):
    """A prompt file or record is malformed; the message names the file and line."""


def normalise_record(rec: dict, where: str, index: int) -> dict:
    """Check one prompt record and map the accepted aliases to ``id`` / ``question`` / ``test_cases``."""
    if not isinstance(rec, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    out = dict(rec)
    if "test_cases" not in out and "test_list" in out:
        out["test_cases"] = out["test_list"]
    if "id" not in out:
        out["id"] = str(out["task_id"]) if "task_id" in out else f"line-{index + 1}"
    if not isinstance(out.get("question"), str) or not out["question"].strip():
        raise DataError(f"{where}: missing or empty 'question' (the prompt text)")
    tests = out.get("test_cases", [])
    if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
        raise DataError(f"{where}: 'test_cases' must be a list of assert strings")
    out["test_cases"] = tests
    return out


def load_prompts(path: str | Path, limit: int | None = None) -> list[dict]:
    """Read a JSONL prompt file (see module docstring); blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"prompt file not found: {path}")
    records = []
    for lineno, where, rec in iter_jsonl(path, error_cls=DataError):
        records.append(normalise_record(rec, where, lineno - 1))
        if limit is not None and len(records) >= limit:
            break  # lines after the limit are not read
    if not records:
        raise DataError(f"{path}: no prompts")
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"{path}: duplicate prompt id {dup!r}")
    return records


def write_jsonl(records: Sequence[dict], path: str | Path) -> Path:
    """Write records as JSONL (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    tmp.replace(path)
    return path


def format_prompt(tokenizer, question: str, system_prompt: str | None = DEFAULT_SYSTEM_PROMPT, chat: bool = True) -> str:
    """The text the policy is conditioned on: the chat template with a generation prompt, or the raw question."""
    if not chat:
        return question
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
        {"role": "user", "content": question}
    ]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def step_prompt_indices(num_prompts: int, step: int, prompts_per_step: int, seed: int) -> list[int]:
    """Indices of the prompts of optimiser step ``step`` (0-based).

    The prompts are visited epoch by epoch, each epoch in a fresh permutation seeded by
    ``(seed, epoch)``; a step may straddle two epochs. A pure function of its arguments, so a
    resumed run sees exactly the prompts the uninterrupted run would have.
    """
    if num_prompts < 1:
        raise ValueError("no prompts")
    start = step * prompts_per_step
    out: list[int] = []
    perms: dict[int, list[int]] = {}
    for pos in range(start, start + prompts_per_step):
        epoch, i = divmod(pos, num_prompts)
        if epoch not in perms:
            g = seeded_generator(seed, epoch, STREAM_RL_ORDER)
            perms[epoch] = torch.randperm(num_prompts, generator=g).tolist()
        out.append(perms[epoch][i])
    return out


def reward_columns(records: Sequence[dict], repeat: int, exclude: Sequence[str] = ("question",)) -> dict[str, list[Any]]:
    """Dataset columns as TRL hands them to reward functions: one list per column, each entry repeated
    ``repeat`` times (once per completion of the group). Missing values become None."""
    keys: list[str] = []
    for r in records:
        keys += [k for k in r if k not in keys and k not in exclude]
    return {k: [r.get(k) for r in records for _ in range(repeat)] for k in keys}
