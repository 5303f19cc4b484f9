"""`diffucode export`: write a model in a public release's on-disk layout (Dream, LLaDA, SDAR), so
the upstream code and tools built on it load it.

    diffucode export --model runs/mdm/final --format dream --out exports/my-dream
    diffucode export --model nano --format sdar --out exports/nano-sdar --force

See ``diffucode.models.export`` for what each format takes and writes.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffucode export",
        description="Write a model in a release's on-disk layout: dream (model_type 'Dream', Qwen2 weights, "
                    "vocab.json + merges.txt tokenizer), llada (model_type 'llada', OLMo-style weight names), "
                    "sdar (model_type 'sdar', Qwen3 weights, block_size). dream takes a Qwen2 backbone, llada a "
                    "Llama (or bias-free Qwen2) one, sdar a Qwen3 one.",
        epilog="A model whose attention/logits shift differ from the family's (dream: bidirectional + shift; llada: "
               "bidirectional, no shift; sdar: block-causal, no shift) is refused unless --force. auto_map names the "
               "upstream modules as the releases do; their .py files are not written (copy them from the release to "
               "run the upstream code). Written to a temporary directory and renamed: nothing half-written.",
    )
    parser.add_argument("--model", required=True, help="source model directory (any format load_model reads) or "
                                                       "a bundled name (nano, nano-mdm)")
    parser.add_argument("--format", required=True, choices=["dream", "llada", "sdar"], help="target release layout")
    parser.add_argument("--out", required=True, help="output directory (must not exist, or be empty)")
    parser.add_argument("--force", action="store_true",
                        help="export even if the model's attention / shift differ from the family's (a warning says "
                             "what changes; the exported model then computes different logits)")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from pathlib import Path

    from diffucode.models import load_model
    from diffucode.models.export import ExportError, export_model

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):  # before the (slow) load
        raise ExportError(f"--out {out}: exists and is not an empty directory (refusing to overwrite)")
    model, tok = load_model(args.model)
    path = export_model(model, tok, out, args.format, force=args.force)
    print(f"diffucode export: wrote {args.format} layout to {path}", file=sys.stderr)
    return 0
