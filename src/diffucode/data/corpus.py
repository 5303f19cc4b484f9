"""Pre-training corpus for the tiny code models: the running Python's standard library plus the
synthetic *train* tasks, written as JSONL ``{"text": ..., "source": ...}``; and the command that
builds it together with the BPE tokenizer (``diffucode.data.tokenizer``).

    python -m diffucode.data.corpus --out /work/artifacts/data --vocab-size 4096
    # -> /work/artifacts/data/corpus.jsonl, /work/artifacts/data/tokenizer/, /work/artifacts/data/stats.json
    python -m diffucode.data.corpus --out /tmp/dc_small --n-synthetic 500 --max-stdlib-files 20 --vocab-size 512

Standard library: every ``.py`` file under ``sysconfig.get_paths()["stdlib"]`` in sorted path
order, skipping test suites (``test/``, ``tests/``, ``idlelib/``, ``turtledemo/``), installed
packages (``site-packages/``), generated data modules (``encodings/`` codec tables,
``pydoc_data/``, ``_sysconfigdata_*``) and files that are not UTF-8. Files are kept verbatim;
files longer than ``max_file_chars`` are cut into several documents at top-level statement
boundaries (a line that starts in column 0 after a blank line), so no document starts mid-function
unless one top-level block alone is longer than the limit. The stdlib part depends on the Python
version that runs the command (3.11.7 here); record it with the stats.

Synthetic: ``n_synthetic`` tasks of ``load_split("train", n_synthetic, seed)`` (never the test
split), each the full function (prompt + canonical solution), followed by its asserts half of the
time so the corpus also shows how the functions are called.

The documents are shuffled with ``seed`` so any prefix of the file has both sources.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import sysconfig
import time
from pathlib import Path

SKIP_DIRS = frozenset({"test", "tests", "idlelib", "turtledemo", "site-packages", "dist-packages", "__pycache__",
                       "encodings", "pydoc_data", "lib-dynload", "ensurepip"})
SKIP_FILE_PREFIXES = ("_sysconfigdata",)


def stdlib_files(root: str | os.PathLike | None = None) -> list[Path]:
    """The standard library's ``.py`` files we keep, in a fixed (sorted) order."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("config-"))
        for name in sorted(filenames):
            if name.endswith(".py") and not name.startswith(SKIP_FILE_PREFIXES):
                out.append(Path(dirpath) / name)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def split_source(text: str, max_chars: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``max_chars`` characters at top-level statement
    boundaries; a single block longer than the limit is cut at line boundaries (and a single
    line longer than the limit, at the limit). ``"".join(pieces) == text``."""
    if max_chars <= 0:
        raise ValueError(f"max_file_chars must be positive, got {max_chars}")
    if len(text) <= max_chars:
        return [text]
    lines = text.splitlines(keepends=True)
    blocks: list[str] = []  # top-level blocks: a new one starts at column 0 after a blank line
    cur: list[str] = []
    prev_blank = False
    for line in lines:
        starts_block = prev_blank and line[:1] not in ("", " ", "\t", "\n", "\r", "#", ")", "]", "}")
        if starts_block and cur:
            blocks.append("".join(cur))
            cur = []
        cur.append(line)
        prev_blank = line.strip() == ""
    if cur:
        blocks.append("".join(cur))

    def pieces_of(block: str) -> list[str]:
        if len(block) <= max_chars:
            return [block]
        out, buf = [], ""
        for line in block.splitlines(keepends=True):
            while len(line) > max_chars:  # pathological long line
                if buf:
                    out.append(buf)
                    buf = ""
                out.append(line[:max_chars])
                line = line[max_chars:]
            if len(buf) + len(line) > max_chars and buf:
                out.append(buf)
                buf = ""
            buf += line
        if buf:
            out.append(buf)
        return out

    docs: list[str] = []
    buf = ""
    for block in blocks:
        for piece in pieces_of(block):
            if len(buf) + len(piece) > max_chars and buf:
                docs.append(buf)
                buf = ""
            buf += piece
    if buf:
        docs.append(buf)
    return docs


def synthetic_documents(n: int, seed: int = 0) -> list[dict]:
    from diffucode.data.synthetic import full_function, load_split

    docs = []
    rng = random.Random(f"corpus/{seed}")
    for t in load_split("train", n, seed):
        text = full_function(t)
        if rng.random() < 0.5:
            text += "\n\n" + "\n".join(t["test_list"]) + "\n"
        docs.append({"text": text, "source": t["task_id"]})
    return docs


def build_corpus(out_path: str | os.PathLike, include_stdlib: bool = True, n_synthetic: int = 20000, seed: int = 0,
                 max_file_chars: int = 20000, max_stdlib_files: int | None = None,
                 stdlib_root: str | os.PathLike | None = None) -> dict:
    """Write the corpus JSONL to ``out_path`` and return its statistics (documents, characters per
    source, bytes)."""
    if n_synthetic < 0:
        raise ValueError(f"n_synthetic must be >= 0, got {n_synthetic}")
    docs: list[dict] = []
    stats = {"python": sys.version.split()[0], "stdlib_files": 0, "stdlib_skipped_non_utf8": 0,
             "stdlib_docs": 0, "stdlib_chars": 0, "synthetic_docs": 0, "synthetic_chars": 0}
    if include_stdlib:
        root = Path(stdlib_root or sysconfig.get_paths()["stdlib"])
        files = stdlib_files(root)
        if max_stdlib_files is not None:
            files = files[:max_stdlib_files]
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                stats["stdlib_skipped_non_utf8"] += 1
                continue
            if not text.strip():
                continue
            stats["stdlib_files"] += 1
            rel = path.relative_to(root).as_posix()
            for i, piece in enumerate(split_source(text, max_file_chars)):
                docs.append({"text": piece, "source": f"stdlib/{rel}" + (f"#{i}" if i else "")})
                stats["stdlib_docs"] += 1
                stats["stdlib_chars"] += len(piece)
    for d in synthetic_documents(n_synthetic, seed):
        docs.append(d)
        stats["synthetic_docs"] += 1
        stats["synthetic_chars"] += len(d["text"])
    random.Random(seed).shuffle(docs)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    stats.update(path=str(out_path), docs=len(docs), chars=stats["stdlib_chars"] + stats["synthetic_chars"],
                 bytes=out_path.stat().st_size)
    return stats


def token_stats(tok, corpus_path: str | os.PathLike) -> dict:
    """Token counts of the corpus per source, and the length in tokens of the synthetic test
    tasks (prompt + solution), which must fit the tiny models' context."""
    from diffucode.data.synthetic import full_function, load_split

    backend = tok.backend_tokenizer
    n_tokens = {"stdlib": 0, "synthetic": 0}
    chars = 0
    with Path(corpus_path).open(encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    for i in range(0, len(docs), 512):
        batch = docs[i : i + 512]
        for d, enc in zip(batch, backend.encode_batch([d["text"] for d in batch], add_special_tokens=False)):
            n_tokens["stdlib" if d["source"].startswith("stdlib/") else "synthetic"] += len(enc.ids)
            chars += len(d["text"])
    lengths = sorted(len(e.ids) for e in backend.encode_batch([full_function(t) for t in load_split("test")],
                                                               add_special_tokens=False))
    return {"tokens": n_tokens, "chars_per_token": round(chars / max(1, sum(n_tokens.values())), 3),
            "synthetic_task_tokens": {"mean": round(sum(lengths) / len(lengths), 1),
                                      "p95": lengths[int(0.95 * (len(lengths) - 1))], "max": lengths[-1]}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diffucode.data.corpus",
                                     description="Build the pre-training corpus (stdlib + synthetic train tasks) "
                                                 "and train the BPE tokenizer on it.")
    parser.add_argument("--out", required=True, help="output directory: corpus.jsonl, tokenizer/, stats.json")
    parser.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary size, special tokens included")
    parser.add_argument("--n-synthetic", type=int, default=20000, help="number of synthetic train tasks in the corpus")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic tasks and of the document shuffle")
    parser.add_argument("--max-file-chars", type=int, default=20000,
                        help="longer stdlib files are split into documents of at most this size")
    parser.add_argument("--max-stdlib-files", type=int, default=None,
                        help="use only the first N stdlib files (quick runs)")
    parser.add_argument("--no-stdlib", action="store_true", help="synthetic tasks only")
    parser.add_argument("--no-tokenizer", action="store_true", help="only write the corpus")
    args = parser.parse_args(argv)

    out = Path(args.out)
    t0 = time.perf_counter()
    stats = build_corpus(out / "corpus.jsonl", include_stdlib=not args.no_stdlib, n_synthetic=args.n_synthetic,
                         seed=args.seed, max_file_chars=args.max_file_chars, max_stdlib_files=args.max_stdlib_files)
    stats["corpus_seconds"] = round(time.perf_counter() - t0, 2)
    print(f"corpus: {stats['docs']} documents, {stats['chars'] / 1e6:.2f}M chars "
          f"(stdlib {stats['stdlib_files']} files / {stats['stdlib_chars'] / 1e6:.2f}M chars, "
          f"synthetic {stats['synthetic_docs']} tasks / {stats['synthetic_chars'] / 1e6:.2f}M chars) "
          f"in {stats['corpus_seconds']}s -> {stats['path']}")
    if not args.no_tokenizer:
        from diffucode.data.tokenizer import train_tokenizer

        t1 = time.perf_counter()
        tok = train_tokenizer(out / "corpus.jsonl", vocab_size=args.vocab_size, out_dir=out / "tokenizer")
        stats["tokenizer_seconds"] = round(time.perf_counter() - t1, 2)
        stats["vocab_size"] = len(tok)
        stats.update(token_stats(tok, out / "corpus.jsonl"))
        print(f"tokenizer: vocab {len(tok)} in {stats['tokenizer_seconds']}s -> {out / 'tokenizer'}; "
              f"corpus = {sum(stats['tokens'].values()) / 1e6:.2f}M tokens ({stats['chars_per_token']} chars/token); "
              f"synthetic test task prompt+solution tokens: {stats['synthetic_task_tokens']}")
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
