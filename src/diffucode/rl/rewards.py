r"""Rewards for code RL: execution (fraction of asserts passing) and answer format (docs/ALGORITHMS.md s.4).

    python -c 'from diffucode.rl.rewards import format_score; print(format_score("```python\nx = 1\n```"))'

Reward functions follow TRL's signature, so any TRL reward function plugs in::

    def my_reward(prompts: list, completions: list, **columns) -> list[float | None]

``prompts`` / ``completions`` are strings (or chat message lists, whose last message's
``content`` is used); ``columns`` holds every dataset column (``test_cases``, ``id``, ...) with one
entry per completion, plus ``completion_ids`` (token id lists). ``None`` means "no reward from
this function for this completion" (it is skipped in the weighted sum).

* :func:`format_reward`: 1.0 if the answer is exactly one fenced ``python`` block (any text
  without fences before it, only whitespace after it) whose code parses; 0.5 if it has that
  shape but does not parse; 0.0 otherwise. (The reference regex also demands a newline after the
  closing fence; completions cut at EOS rarely have one, so trailing whitespace is optional here.)
* :func:`code_reward`: for completions with format reward 1.0, the fraction of the task's
  ``test_cases`` asserts that pass when appended one by one to the extracted code, run in the
  sandbox (``diffucode.execution``); 0.0 for every other completion. The sandbox decides whether
  an assert passed from its own evidence, not from the program's exit status, so a program
  that exits early (``sys.exit(0)``, ``os._exit(0)``) or tampers with its process gets no credit.
  Not covered (a limit of assert-based rewards, the reference's too): an object whose ``__eq__``
  always returns True satisfies ``assert f(x) == y``.

Published weights: code 2.0, format 0.5.
"""

from __future__ import annotations

import ast
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

RewardFunc = Callable[..., list]

# one fenced python block, no other fence anywhere (group 1 = the code)
_FENCED = re.compile(r"(?:(?!```)[\s\S])*?```python[ \t]*\n((?:(?!```)[\s\S])*?)```\s*", re.DOTALL)
_FIRST_BLOCK = re.compile(r"```python[ \t]*\n(.*?)```", re.DOTALL)


def content(x: Any) -> str:
    """The text of a completion or prompt: a string, or the last message of a chat list."""
    if isinstance(x, str):
        return x
    if isinstance(x, (list, tuple)) and x and isinstance(x[-1], dict):
        return str(x[-1].get("content", ""))
    if isinstance(x, dict):
        return str(x.get("content", ""))
    raise TypeError(f"a completion must be a string or a list of chat messages, got {type(x).__name__}")


def extract_code(text: str) -> str:
    """The body of the first fenced ``python`` block, or "" if there is none."""
    m = _FIRST_BLOCK.search(text)
    return m.group(1) if m else ""


def format_score(text: str) -> float:
    """1.0 / 0.5 / 0.0 for one completion (see module docstring)."""
    m = _FENCED.fullmatch(text)
    if not m:
        return 0.0
    try:
        ast.parse(m.group(1))
    except (SyntaxError, ValueError):  # ValueError: null bytes in the source
        return 0.5
    return 1.0


def format_reward(prompts: Sequence[Any] | None, completions: Sequence[Any], **kwargs) -> list[float]:
    """TRL-style format reward (module docstring)."""
    return [format_score(content(c)) for c in completions]


def _run_in_sandbox(items: list[tuple[str, list[str]]], timeout: float, workers: int,
                    allow_unsandboxed: bool = False) -> list[float]:
    from diffucode.execution import SandboxConfig, run_asserts_many

    cfg = SandboxConfig(timeout=timeout, allow_unsandboxed=allow_unsandboxed)
    return [float(r.fraction) for r in run_asserts_many(items, timeout=timeout, workers=workers, config=cfg)]


def code_reward(
    prompts: Sequence[Any] | None,
    completions: Sequence[Any],
    test_cases: Sequence[Sequence[str] | None] | None = None,
    timeout: float = 5.0,
    max_workers: int = 4,
    runner: Callable[[str, Sequence[str], float], float] | None = None,
    allow_unsandboxed: bool = False,
    **kwargs,
) -> list[float]:
    """TRL-style execution reward (module docstring).

    ``runner(program, asserts, timeout) -> fraction passing`` replaces the sandbox (tests); by
    default the programs run in parallel in the sandbox (``run_asserts_many``, ``max_workers``
    processes). A task without asserts gets ``None`` (no code reward for it).
    """
    if test_cases is None:
        test_cases = kwargs.get("test_list")
    if test_cases is None:
        raise ValueError("code_reward needs a 'test_cases' (or 'test_list') column with the task's asserts")
    if len(test_cases) != len(completions):
        raise ValueError(f"{len(completions)} completions but {len(test_cases)} test_cases entries")
    texts = [content(c) for c in completions]
    rewards: list[float | None] = [0.0] * len(texts)
    jobs = []
    for i, (text, tests) in enumerate(zip(texts, test_cases)):
        if not tests:
            rewards[i] = None
            continue
        if format_score(text) < 1.0:  # only a valid answer is executed
            continue
        jobs.append((i, extract_code(text), list(tests)))
    if jobs and runner is None:
        results = _run_in_sandbox([(code, tests) for _, code, tests in jobs], timeout, max(1, max_workers),
                                  allow_unsandboxed)
    elif jobs:
        # a runner usually starts a subprocess, so threads give real parallelism
        with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(jobs)))) as pool:
            results = list(pool.map(lambda j: runner(j[1], j[2], timeout), jobs))
    if jobs:
        for (i, _, _), r in zip(jobs, results):
            rewards[i] = float(r)
    return rewards
