"""Reading JSON Lines files: one JSON value per line, blank lines skipped, errors naming file and line.

    python -c "from diffucode.data.jsonl import iter_jsonl; print(next(iter_jsonl('configs/train/data/tiny_code.jsonl')))"

Every JSONL reader of the package (training data, benchmark files, RL prompts and pass rates,
analysis prompt files) goes through :func:`iter_jsonl`; each keeps its own error class and its
own wording of the location (``file:line`` or ``--flag FILE, line N``) through the arguments.
Imports nothing from diffucode, so any layer may use it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple


class JsonLine(NamedTuple):
    lineno: int  # 1-based line number in the file (blank lines counted)
    where: str  # the location as the caller words it, e.g. "data.jsonl:3"
    record: Any  # the decoded value (a dict when objects_only=True)


def iter_jsonl(
    path: str | Path,
    *,
    lines: Iterable[str] | None = None,
    error_cls: type[Exception] = ValueError,
    where: str = "{path}:{lineno}",
    bad_json: str = "{where}: not valid JSON: {error}",
    objects_only: bool = False,
) -> Iterator[JsonLine]:
    """Yield ``(lineno, where, record)`` for every non-blank line of a JSONL file, lazily.

    ``path`` is opened as UTF-8 text unless ``lines`` gives the lines already (an open file, or
    ``text.splitlines()`` of a file read whole, e.g. a gzip member); ``path`` then only names the
    file in messages. ``where`` is formatted with ``path`` and ``lineno``; a line that is not JSON
    raises ``error_cls(bad_json)``, formatted with ``where`` and ``error`` (the
    :class:`json.JSONDecodeError`, so ``{error.msg}`` / ``{error.colno}`` work). With
    ``objects_only`` a value that is not a JSON object raises ``error_cls`` too.

    A line is decoded as given (with its newline when read from a file), so the position in a
    decode error is the one ``json.loads`` reports for that string.
    """
    if lines is None:
        with Path(path).open("r", encoding="utf-8") as f:
            yield from iter_jsonl(path, lines=f, error_cls=error_cls, where=where, bad_json=bad_json,
                                  objects_only=objects_only)
        return
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        loc = where.format(path=path, lineno=lineno)
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise error_cls(bad_json.format(where=loc, error=e)) from e
        if objects_only and not isinstance(record, dict):
            raise error_cls(f"{loc}: expected a JSON object, got {type(record).__name__}")
        yield JsonLine(lineno, loc, record)
