"""Teacher trajectories for certainty-forcing distillation: a model's own decodes of SFT prompts.

    python scripts/build_distill_data.py --model nano --sft artifacts/data/sft.jsonl \\
        --out artifacts/data/distill.jsonl --limit 3000

dParallel (Chen et al., 2025) distils a diffusion model into one that decodes in parallel by
training it on *its own* sequential decodes (so what it says does not change) with an extra
term that makes it certain sooner (``diffusion.certainty_weight``, training/objectives.py).
This script writes those decodes: for each SFT record (``scripts/build_nano_data.py``: chat
records ``{"messages": [user, assistant]}`` and completion records ``{"prompt", "response",
"chat_template": false}``) the reference answer is replaced by what the model decodes for the
same prompt, with the decoding the teacher is evaluated with (default: Dream's ``entropy`` rule,
one token per step, greedy, 64 new tokens, the model's own block length and cache). The output
has the input's record shapes, so ``diffucode train`` (recipe ``sft``) reads it unchanged.
Records whose decode is empty are dropped (counted). Written through a temporary file: an
interrupted run leaves no half-written output.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _records(path: Path, limit: int | None) -> list[tuple[str, str, bool]]:
    """``(kind, prompt, chat)`` per usable record: kind ``messages`` or ``prompt``."""
    from diffucode.data.jsonl import iter_jsonl
    from diffucode.data.sft import record_to_messages

    out = []
    for _, where, rec in iter_jsonl(path, error_cls=SystemExit, bad_json="error: {where}: not JSON ({error.msg})",
                                    objects_only=True):
        msgs = record_to_messages(rec, where)
        if "messages" in rec:
            if len(msgs) != 2 or msgs[0]["role"] != "user":
                raise SystemExit(f"error: {where}: a chat record must be one user turn and one answer")
            out.append(("messages", msgs[0]["content"], True))
        else:
            out.append(("prompt", rec["prompt"], bool(rec.get("chat_template", True))))
        if limit is not None and len(out) >= limit:
            break
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="nano", help="teacher: a bundled name (nano, nano-mdm) or a checkpoint dir")
    ap.add_argument("--sft", default="artifacts/data/sft.jsonl", help="SFT JSONL whose prompts are decoded")
    ap.add_argument("--out", default="artifacts/data/distill.jsonl", help="output JSONL (SFT record shapes)")
    ap.add_argument("--limit", type=int, default=None, help="first N records of --sft only")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="tokens decoded per prompt")
    ap.add_argument("--temperature", type=float, default=0.0, help="teacher sampling temperature (0 = greedy)")
    ap.add_argument("--alg", default="entropy", help="unmasking order of the teacher (one token per step)")
    ap.add_argument("--batch-size", type=int, default=32, help="prompts decoded together")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    for flag, v in (("--limit", args.limit), ("--max-new-tokens", args.max_new_tokens), ("--batch-size", args.batch_size)):
        if v is not None and v < 1:
            raise SystemExit(f"error: {flag} must be >= 1, got {v}")
    if not args.temperature >= 0:
        raise SystemExit(f"error: --temperature must be >= 0, got {args.temperature}")
    sft = Path(args.sft)
    if not sft.is_file():
        raise SystemExit(f"error: --sft {sft}: no such file (python scripts/build_nano_data.py writes it)")
    import torch

    from diffucode.evaluation.generation import iter_generate
    from diffucode.fileio import atomic_write_text
    from diffucode.models import load_model
    from diffucode.sampling import GenerationConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    records = _records(sft, args.limit)
    model, tok = load_model(args.model)  # a bundled name or a directory
    model.eval()
    cfg = GenerationConfig(max_new_tokens=args.max_new_tokens, steps=args.max_new_tokens, alg=args.alg,
                           temperature=args.temperature, seed=args.seed)
    answers: dict[int, str] = {}
    nfe, t0 = 0, time.time()
    for chat in (True, False):  # one pass per prompt form: the chat template is applied per call
        idx = [i for i, r in enumerate(records) if r[2] == chat]
        if not idx:
            continue
        prompts = [records[i][1] for i in idx]
        for batch in iter_generate(model, tok, prompts, cfg, 1, args.batch_size, chat=chat, response_prefix="",
                                   progress=not args.no_progress):
            nfe += batch.nfe
            for (i, _), text in zip(batch.rows, batch.texts):
                answers[idx[i]] = text
    lines, empty = [], 0
    for i, (kind, prompt, chat) in enumerate(records):
        text = answers.get(i, "")
        if not text.strip():
            empty += 1
            continue
        if kind == "messages":
            rec = {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}]}
        else:
            rec = {"prompt": prompt, "response": text, "chat_template": chat}
        lines.append(json.dumps(rec) + "\n")
    out = atomic_write_text(args.out, "".join(lines))
    print(json.dumps({"records": len(records), "kept": len(lines), "empty_dropped": empty, "forwards": nfe,
                      "seconds": round(time.time() - t0, 1), "out": str(out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
