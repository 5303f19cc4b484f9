"""Run one program in the sandbox and print the result as JSON.

    python -m diffucode.execution "print(1 + 1)"
    python -m diffucode.execution --file prog.py --timeout 3 --require-sandbox
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from diffucode.execution.checks import run_program
from diffucode.execution.runner import SandboxConfig, sandbox_info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m diffucode.execution", description=__doc__.splitlines()[0])
    p.add_argument("program", nargs="?", help="program text (or use --file)")
    p.add_argument("--file", type=Path, help="read the program from this file")
    p.add_argument("--timeout", type=float, default=10.0, help="wall-clock seconds (default 10)")
    p.add_argument("--require-sandbox", action="store_true", help="refuse to run without bubblewrap")
    p.add_argument("--no-sandbox", action="store_true", help="resource limits only (no bubblewrap)")
    args = p.parse_args(argv)
    if (args.program is None) == (args.file is None):
        p.error("give the program text or --file, not both")
    source = args.file.read_text() if args.file else args.program
    iso = "require" if args.require_sandbox else "none" if args.no_sandbox else "auto"
    cfg = SandboxConfig(timeout=args.timeout, isolation=iso)
    r = run_program(source, config=cfg)
    print(json.dumps({"sandbox": sandbox_info(cfg), **r.to_dict()}, indent=2))
    return 0 if r.passed else 1


if __name__ == "__main__":
    sys.exit(main())
