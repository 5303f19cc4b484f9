"""Decoding speed, side by side on the same weights and prompts (JSON on stdout; run by hand).

    diffucode bench decode --max-new-tokens 64 --prompts 2                     # small CPU run (~1 min)
    diffucode bench decode --model path/to/ckpt --device cuda                  # 256 tokens, a real model
    diffucode bench decode --tiny --hidden 32 --layers 1 --prompts 1 --max-new-tokens 4 \
        --block-len 2 --bc-block-len 2 --repeats 1                             # smoke run (seconds)
    python benchmarks/decode_speed.py ...                                      # the same, as a script

1. The reference configuration (Dream ``entropy``, one token per step, no cache) against each
   fast configuration: confidence-threshold parallel decoding (with no cache, the prefix cache
   and the dual cache), and block-causal decoding with the exact KV cache (the same weights run
   with block-causal attention; one token per step and threshold). For each: tokens/s, NFE,
   tokens per NFE, speed-up over the reference, and how often / how much the output differs
   from the reference (the quality change; a trained model should also be scored on pass@1).
2. Autoregressive decoding of the same backbone with transformers' ``generate`` and its KV
   cache (greedy, exactly ``max_new_tokens`` tokens), tokens/s.

Every configuration decodes exactly ``max_new_tokens`` tokens per prompt (no end-of-text stop),
so tokens/s compares like with like. Prompts: the synthetic test split (``diffucode.data``)
when available, else a fixed list. Without ``--model`` (and no bundled model), or with ``--tiny``,
the weights are an UNTRAINED ``build_tiny_model`` (hidden 256, 4 layers): its predictions are
nearly uniform, so a 0.9 threshold is almost never met; ``--sharpen F`` multiplies its output head
by F so that some predictions are confident (the JSON says which was used). Speed numbers from
such a model measure the decoding machinery, not a trained model's confidence profile.
``--output FILE`` also writes the JSON report to FILE.
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import time

from diffucode.benchmarks import add_output_arg, check_output, emit

# torch is imported inside the functions so that ``--help`` answers at once

FALLBACK_PROMPTS = [
    'def add(a, b):\n    """Return the sum of a and b."""\n',
    'def is_palindrome(s):\n    """Return True if s reads the same backwards."""\n',
    'def fib(n):\n    """Return the n-th Fibonacci number."""\n',
    'def count_vowels(s):\n    """Count the vowels in s."""\n',
    'def max_of(xs):\n    """Return the largest element of xs."""\n',
    'def flatten(xss):\n    """Flatten a list of lists."""\n',
    'def word_count(text):\n    """Return a dict of word frequencies."""\n',
    'def reverse_words(s):\n    """Reverse the order of words in s."""\n',
]


def _prompts(n: int) -> tuple[list[str], str]:
    try:
        from diffucode.data.synthetic import load_split

        tasks = load_split("test", n=n, seed=0)
        if len(tasks) >= n:
            return [t["prompt"] for t in tasks[:n]], "synthetic/test"
    except Exception:  # the data package is optional for this benchmark
        pass
    reps = (n + len(FALLBACK_PROMPTS) - 1) // len(FALLBACK_PROMPTS)
    return (FALLBACK_PROMPTS * reps)[:n], "builtin"


def _load(args):
    from diffucode.models import build_tiny_model, default_model_path, load_model

    import torch

    path = None if args.tiny else (args.model or default_model_path())
    if path is not None:
        model, tok = load_model(path, device=args.device, dtype=args.dtype)
        info = {"source": str(path), "trained": True}
    else:
        model, tok = build_tiny_model(hidden_size=args.hidden, num_layers=args.layers, num_heads=max(1, args.hidden // 64),
                                      num_kv_heads=max(1, args.hidden // 128), max_seq_len=4096, seed=0)
        model.to(args.device)
        info = {"source": f"build_tiny_model(hidden_size={args.hidden}, num_layers={args.layers})", "trained": False}
        if args.sharpen != 1.0:
            with torch.no_grad():
                model.backbone.lm_head.weight.mul_(args.sharpen)
    info.update(
        sharpen=args.sharpen if path is None else None,
        attention=model.attention, shift=model.shift,
        params=sum(p.numel() for p in model.parameters()),
        vocab=model.backbone.get_input_embeddings().num_embeddings,
        dtype=str(model.dtype).replace("torch.", ""),
    )
    return model, tok, info


def _sync(device):
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _run_engine(model, batches, cfg, device):
    from diffucode.sampling import generate

    outs, nfe, seconds = [], 0, 0.0
    for ids, amask in batches:
        _sync(device)
        t0 = time.perf_counter()
        out = generate(model, ids, amask, cfg)
        _sync(device)
        seconds += time.perf_counter() - t0
        nfe += out.nfe
        outs.extend(out.sequences[:, ids.shape[1]:].cpu())
    return outs, nfe, seconds


def _run_ar(model, tok, batches, L, device):
    outs, seconds = [], 0.0
    for ids, amask in batches:
        _sync(device)
        t0 = time.perf_counter()
        seq = model.backbone.generate(ids, attention_mask=amask, max_new_tokens=L, min_new_tokens=L, do_sample=False,
                                      use_cache=True, pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else 0)
        _sync(device)
        seconds += time.perf_counter() - t0
        outs.extend(seq[:, ids.shape[1]:].cpu())
    return outs, seconds


def _diff(outs, ref):
    import torch

    rows = sum(int(not torch.equal(a, b)) for a, b in zip(outs, ref))
    tokens = sum(int((a != b).sum()) for a, b in zip(outs, ref))
    total = sum(a.numel() for a in ref)
    return {"rows_differ": rows / len(ref), "tokens_differ": tokens / total}


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=None, help="model directory (default: bundled model, else an untrained tiny one)")
    p.add_argument("--tiny", action="store_true",
                   help="use the untrained tiny model (--hidden/--layers) even when a bundled model is installed")
    p.add_argument("--device", default=None, help="cpu / cuda / cuda:1 (default: cuda if available, else cpu)")
    p.add_argument("--dtype", default=None, help="float32 / bfloat16 (loaded models)")
    p.add_argument("--hidden", type=int, default=256, help="tiny model width (no --model)")
    p.add_argument("--layers", type=int, default=4, help="tiny model depth (no --model)")
    p.add_argument("--sharpen", type=float, default=1.0, help="untrained model only: scale the output head (see docstring)")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--block-len", type=int, default=32, help="block length of the threshold / cache configurations")
    p.add_argument("--bc-block-len", type=int, default=4, help="block length when the weights run block-causal")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--repeats", type=int, default=3, help="time every configuration this many times; keep the fastest")
    add_output_arg(p)
    args = p.parse_args(argv)
    if args.tiny and args.model:
        p.error("--tiny and --model exclude each other")
    for flag in ("hidden", "layers", "prompts", "batch_size", "max_new_tokens", "block_len", "bc_block_len",
                 "threads", "repeats"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    check_output(p, args.output)

    import torch

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(args.threads)

    from diffucode.sampling import GenerationConfig

    model, tok, model_info = _load(args)
    texts, prompt_source = _prompts(args.prompts)
    tok.padding_side = "left"
    batches = []
    for i in range(0, len(texts), args.batch_size):
        enc = tok(texts[i:i + args.batch_size], return_tensors="pt", padding=True)
        batches.append((enc.input_ids.to(args.device), enc.attention_mask.to(args.device)))
    L = args.max_new_tokens
    n_tokens = L * len(texts)

    block_model = copy.deepcopy(model).set_attention("block_causal", block_len=args.bc_block_len)
    common = dict(max_new_tokens=L, stop_at_eos=False)
    configs = [
        ("reference: entropy, 1 token/step, no cache", model, dict(alg="entropy")),
        (f"threshold {args.threshold}, block {args.block_len}, no cache", model,
         dict(alg="entropy", threshold=args.threshold, block_len=args.block_len)),
        (f"threshold {args.threshold}, block {args.block_len}, prefix cache", model,
         dict(alg="entropy", threshold=args.threshold, block_len=args.block_len, cache="prefix")),
        (f"threshold {args.threshold}, block {args.block_len}, dual cache", model,
         dict(alg="entropy", threshold=args.threshold, block_len=args.block_len, cache="dual")),
        (f"block-causal (block {args.bc_block_len}), exact cache, 1 token/step", block_model, dict(alg="low_confidence")),
        (f"block-causal (block {args.bc_block_len}), exact cache, threshold {args.threshold}", block_model,
         dict(alg="low_confidence", threshold=args.threshold)),
    ]

    # warm-up (first-call allocations, kernel selection) on a short run of every path
    for _, m, kw in configs:
        short = {**kw, "max_new_tokens": min(L, 2 * args.block_len if "block_len" in kw else 8)}
        short.pop("steps", None)
        _run_engine(m, batches[:1], GenerationConfig(stop_at_eos=False, **short), args.device)
    _run_ar(model, tok, batches[:1], 4, args.device)

    results = []
    ref_outs = None
    ref_tps = None
    for name, m, kw in configs:
        runs = [_run_engine(m, batches, GenerationConfig(**common, **kw), args.device) for _ in range(args.repeats)]
        outs, nfe, seconds = min(runs, key=lambda r: r[2])  # greedy: every repeat decodes the same tokens
        tps = n_tokens / seconds
        row = {"config": name, "settings": kw, "tokens_per_s": round(tps, 2), "seconds": round(seconds, 3),
               "nfe_per_prompt": round(nfe / len(batches), 2), "tokens_per_nfe": round(n_tokens / nfe, 3)}
        if ref_outs is None:
            ref_outs, ref_tps = outs, tps
        else:
            row["speedup_vs_reference"] = round(tps / ref_tps, 2)
            row["differs_from_reference"] = _diff(outs, ref_outs)
        results.append(row)

    ar_outs, ar_seconds = min((_run_ar(model, tok, batches, L, args.device) for _ in range(args.repeats)), key=lambda r: r[1])
    ar_tps = n_tokens / ar_seconds
    for row in results:
        row["speedup_vs_autoregressive"] = round(row["tokens_per_s"] / ar_tps, 2)
    best = max(results[1:], key=lambda r: r["tokens_per_s"])
    report = {
        "benchmark": "decode_speed",
        "machine": {"device": args.device, "cpu_threads": args.threads, "torch": torch.__version__,
                    "python": platform.python_version(),
                    "gpu": torch.cuda.get_device_name() if torch.device(args.device).type == "cuda" else None},
        "model": model_info,
        "prompts": {"n": len(texts), "source": prompt_source, "batch_size": args.batch_size},
        "timing": f"fastest of {args.repeats} repeats after a warm-up run",
        "max_new_tokens": L,
        "results": results,
        "autoregressive_hf_generate": {"tokens_per_s": round(ar_tps, 2), "seconds": round(ar_seconds, 3),
                                       "nfe_per_prompt": L, "note": "greedy, KV cache, same backbone, exactly max_new_tokens"},
        "summary": {
            "best_fast_config": best["config"],
            "best_speedup_vs_reference": best["speedup_vs_reference"],
            "best_speedup_vs_autoregressive": best["speedup_vs_autoregressive"],
            "goal_5x_reference_met": best["speedup_vs_reference"] >= 5,
            "goal_faster_than_autoregressive_met": best["speedup_vs_autoregressive"] > 1,
        },
    }
    emit(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
