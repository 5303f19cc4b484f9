"""Reading training data: plain text, JSONL, parquet files and Hugging Face datasets.

    python -c "from diffucode.data.text_datasets import iter_records; print(next(iter_records('configs/train/data/tiny_code.jsonl')))"

A *source* is one string:

* a file: ``.jsonl`` / ``.json`` (one JSON object per line, or a JSON array), ``.parquet``
  (needs ``pyarrow``), or anything else read as plain text (one document per file);
* a directory: a ``datasets.save_to_disk`` directory (has ``dataset_info.json`` / ``state.json``,
  needs ``datasets``), otherwise every data file below it, in sorted order;
* a glob pattern (``data/*.jsonl``);
* anything else is tried as a Hugging Face hub id with ``datasets.load_dataset`` (works only
  where the network does; ``name:config`` selects a configuration).

Records are yielded with a ``where`` string (``file:line`` or ``dataset[index]``) so a bad
record is reported precisely. A malformed JSON line raises :class:`DataError` naming the file
and the line number.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Iterator

from diffucode.data.jsonl import iter_jsonl

TEXT_SUFFIXES = {".txt", ".py", ".md", ".rst", ".c", ".cc", ".cpp", ".h", ".java", ".js", ".ts", ".go", ".rs", ".sh"}
DATA_SUFFIXES = {".jsonl", ".json", ".parquet"} | TEXT_SUFFIXES


class DataError(ValueError):
    """Bad training data; the message names the file and line (or dataset index)."""


def resolve_source(spec: str, base_dir: str | Path | None = None) -> list[Path] | str:
    """Expand one source into files (sorted), or return it unchanged if it is a hub id.

    A relative path is looked up in the current directory first, then in ``base_dir`` (the
    config file's directory), then, for ``configs/...``, among the configs shipped in the package,
    so shipped configs work from anywhere.
    """
    candidates = [Path(spec)]
    if base_dir is not None and not Path(spec).is_absolute():
        candidates.append(Path(base_dir) / spec)
    if spec.startswith("configs/"):  # data shipped with the configs (configs/train/data/...), also after pip install
        from diffucode.shipped_configs import CONFIG_ROOT

        candidates.append(CONFIG_ROOT / spec[len("configs/"):])
    for cand in candidates:
        if any(ch in str(cand) for ch in "*?["):
            files = sorted(Path(p) for p in glob.glob(str(cand), recursive=True) if Path(p).is_file())
            if files:
                return files
            continue
        if cand.is_file():
            return [cand]
        if cand.is_dir():
            if _is_hf_dataset_dir(cand):
                return [cand]
            files = sorted(p for p in cand.rglob("*") if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)
            if not files:
                raise DataError(f"{cand}: directory holds no data files ({', '.join(sorted(DATA_SUFFIXES))})")
            return files
    if any(ch in spec for ch in "*?["):
        raise DataError(f"data source '{spec}': the pattern matches no file")
    looks_local = spec.startswith((".", "/", "~")) or Path(spec).suffix.lower() in DATA_SUFFIXES
    if looks_local:
        raise DataError(f"data source '{spec}': no such file or directory")
    return spec  # a hub id


def _is_hf_dataset_dir(path: Path) -> bool:
    return (path / "dataset_info.json").is_file() or (path / "state.json").is_file() or (path / "dataset_dict.json").is_file()


def _need(module: str, what: str):
    try:
        return __import__(module)
    except ImportError as e:
        raise DataError(f"{what} needs the '{module}' package: pip install {module}") from e


def _iter_json_file(path: Path) -> Iterator[tuple[dict, str]]:
    with path.open("r", encoding="utf-8") as f:
        first = f.read(1)
        while first and first.isspace():
            first = f.read(1)
        f.seek(0)
        if path.suffix.lower() == ".json" and first == "[":
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from e
            for i, rec in enumerate(data):
                where = f"{path}[{i}]"
                if not isinstance(rec, dict):
                    raise DataError(f"{where}: expected a JSON object, got {type(rec).__name__}")
                yield rec, where
            return
        for _, where, rec in iter_jsonl(path, lines=f, error_cls=DataError, objects_only=True,
                                        bad_json="{where}: malformed JSON line ({error.msg} at column {error.colno})"):
            yield rec, where


def _iter_parquet(path: Path) -> Iterator[tuple[dict, str]]:
    _need("pyarrow", f"reading {path}")
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(str(path))
    except Exception as e:  # pyarrow raises several types for corrupt files
        raise DataError(f"{path}: cannot read parquet file: {e}") from e
    for i, rec in enumerate(table.to_pylist()):
        yield rec, f"{path}[row {i}]"


def _iter_hf(spec: str | Path, split: str) -> Iterator[tuple[dict, str]]:
    _need("datasets", f"data source '{spec}'")
    import datasets

    if isinstance(spec, Path):
        ds = datasets.load_from_disk(str(spec))
    else:
        name, _, config = spec.partition(":")
        try:
            ds = datasets.load_dataset(name, config or None, split=split)
        except Exception as e:
            raise DataError(f"data source '{spec}': not a local path, and loading it from the hub failed: {e}") from e
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise DataError(f"{spec}: no split '{split}' (has {sorted(ds)}); set data.hf_split")
        ds = ds[split]
    for i, rec in enumerate(ds):
        yield dict(rec), f"{spec}[{i}]"


def iter_records(
    spec: str, text_field: str = "text", hf_split: str = "train", base_dir: str | Path | None = None
) -> Iterator[tuple[dict, str]]:
    """Yield ``(record, where)`` for every record of a source; plain-text files give
    ``{text_field: whole file}``."""
    resolved = resolve_source(spec, base_dir)
    if isinstance(resolved, str):
        yield from _iter_hf(resolved, hf_split)
        return
    for path in resolved:
        suffix = path.suffix.lower()
        if path.is_dir():
            yield from _iter_hf(path, hf_split)
        elif suffix in (".jsonl", ".json"):
            yield from _iter_json_file(path)
        elif suffix == ".parquet":
            yield from _iter_parquet(path)
        else:
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}: not UTF-8 text ({e})") from e
            yield {text_field: text}, str(path)


def iter_texts(
    sources: list[str], text_field: str = "text", hf_split: str = "train", base_dir: str | Path | None = None
) -> Iterator[str]:
    """Yield the ``text_field`` string of every record of every source (pre-training documents)."""
    for spec in sources:
        for rec, where in iter_records(spec, text_field, hf_split, base_dir):
            if text_field not in rec:
                raise DataError(f"{where}: record has no '{text_field}' field (fields: {sorted(rec)}); set data.text_field")
            text = rec[text_field]
            if not isinstance(text, str):
                raise DataError(f"{where}: field '{text_field}' must be a string, got {type(text).__name__}")
            if text:
                yield text
