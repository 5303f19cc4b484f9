"""The ``diffucode`` command: a thin, lazy dispatcher to one recipe module per subcommand.

    diffucode --help
    diffucode generate --help

Each recipe module exposes ``main(argv: list[str]) -> int`` and parses its own flags, so a
subcommand's heavy imports (torch, transformers) happen only when it runs.
"""

from __future__ import annotations

import os
import sys

from diffucode import __version__

# name -> (one-line summary, importer). Importers are plain functions, not strings.
def _generate():
    from diffucode.recipes import generate
    return generate


def _train():
    from diffucode.recipes import train
    return train


def _rl():
    from diffucode.recipes import rl
    return rl


def _eval():
    from diffucode.recipes import evaluate
    return evaluate


def _analyze():
    from diffucode.recipes import analyze
    return analyze


def _serve():
    from diffucode.recipes import serve
    return serve


def _bench():
    from diffucode.recipes import bench
    return bench


def _export():
    from diffucode.recipes import export
    return export


COMMANDS = {
    "generate": ("decode a completion (or infill) with a diffusion model", _generate),
    "train": ("train: ar / mdm (DiffuCoder) / block (Stable-DiffCoder) / sft recipes", _train),
    "rl": ("coupled-GRPO reinforcement learning with code-execution rewards", _rl),
    "eval": ("evaluate on HumanEval / MBPP / EvalPlus / synthetic tasks with pass@k", _eval),
    "analyze": ("AR-ness, entropy sink and decode-order pictures", _analyze),
    "serve": ("OpenAI-compatible HTTP server (completions, chat, infilling, streaming)", _serve),
    "export": ("write a model in a release's layout (dream / llada / sdar) for the upstream code", _export),
    "bench": ("speed benchmarks of decoding and training (JSON output)", _bench),
}


def usage() -> str:
    lines = [
        f"diffucode {__version__}: diffusion language models for code",
        "",
        "usage: diffucode <command> [options]    (diffucode <command> --help for its options)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<10} {summary}" for name, (summary, _) in COMMANDS.items()]
    lines += ["", "options:", "  -h, --help     show this message", "  --version      print the version"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] == "--version":
        print(f"diffucode {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"diffucode: unknown command '{name}'\n\n{usage()}", file=sys.stderr)
        return 2
    from diffucode.errors import UserError

    # transformers' per-load "Loading weights" bar says nothing a user needs, on every command;
    # read by huggingface_hub when transformers is first imported (an explicit setting wins)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    module = COMMANDS[name][1]()
    try:
        return int(module.main(rest) or 0)
    except UserError as e:  # every fixable mistake (path, flag, config, checkpoint): one line, no traceback
        print(f"diffucode {name}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("diffucode: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
