"""Package a trained model as the bundled default (half precision, tokenizer included).

    python scripts/bundle_model.py --model runs/nano/sft_mdm/final --out src/diffucode/assets/diffucoder-nano

Writes a normal diffucode checkpoint directory in float16 (loaded back as float32 on the CPU),
records the recommended completion length in its config (``diffucode_max_new_tokens``, read by
``diffucode generate`` when ``--max-new-tokens`` is not given), checks that it reloads and
decodes, and refuses to write more than ``--max-mb`` megabytes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="trained checkpoint directory")
    ap.add_argument("--out", required=True, help="destination directory (replaced)")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="recommended completion length")
    ap.add_argument("--max-mb", type=float, default=25.0, help="size limit of the bundle")
    ap.add_argument("--source-note", default="", help="where the model came from (stored in config.json)")
    args = ap.parse_args(argv)

    from diffucode.models import load_model
    from diffucode.sampling import GenerationConfig, generate

    model, tok = load_model(args.model)
    model.config.diffucode_max_new_tokens = args.max_new_tokens
    if args.source_note:
        model.config.diffucode_source = args.source_note
    out = Path(args.out)
    tmp = out.with_name(out.name + ".bundle-tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, tokenizer=tok, dtype=torch.float16)
    for extra in ("generation_config.json",):  # transformers' AR generation defaults do not apply
        (tmp / extra).unlink(missing_ok=True)
    size_mb = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file()) / 2**20
    if size_mb > args.max_mb:
        shutil.rmtree(tmp)
        print(f"bundle is {size_mb:.1f} MB, over --max-mb {args.max_mb}", file=sys.stderr)
        return 1
    reloaded, tok2 = load_model(tmp)
    ids = tok2("def is_palindrome(s):\n", return_tensors="pt").input_ids
    seq = generate(reloaded, ids, config=GenerationConfig(max_new_tokens=16)).sequences
    assert seq.shape[1] == ids.shape[1] + 16
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    print(json.dumps({"out": str(out), "size_mb": round(size_mb, 2), "files": sorted(p.name for p in out.iterdir())}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
