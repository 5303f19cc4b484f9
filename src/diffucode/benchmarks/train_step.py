"""Training-step time of the diffusion objectives vs plain AR on the same model and batch.

    diffucode bench train                                    # small model on CPU, prints JSON
    diffucode bench train --hidden 512 --layers 8 --seq-len 512 --device cuda
    diffucode bench train --hidden 32 --layers 1 --heads 1 --batch 1 --seq-len 8 --steps 1 --warmup 0   # smoke run
    python benchmarks/train_step.py ...                      # the same, as a script

One step = corrupt the batch + forward + backward + AdamW update, exactly as the trainer does it
(``training/objectives.py``). Variants on the same model, batch and weights:

* ``ar``: next-token loss, causal attention (the baseline);
* ``mdm``: masked diffusion, bidirectional attention (DiffuCoder after annealing);
* ``mdm_annealing``: masked diffusion during attention annealing (explicit random 4-D mask);
* ``block``: block diffusion on ``x_t ++ x0`` (Stable-DiffCoder, B = 4): the model runs on 2L
  tokens with an explicit block-diffusion mask, so expect roughly 2x the AR step.

Variants run interleaved, step by step. Reports the median and minimum of ``--steps`` timed steps
after ``--warmup`` untimed ones, and each variant's ratios to ``ar``. ``--output FILE`` also writes
the JSON report to FILE. Not a test: run it by hand and paste the JSON with the machine it ran on.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time

from diffucode.benchmarks import add_output_arg, check_output, emit

VARIANTS = ("ar", "mdm", "mdm_annealing", "block")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--hidden", type=int, default=256, help="tiny model width")
    ap.add_argument("--layers", type=int, default=4, help="tiny model depth")
    ap.add_argument("--heads", type=int, default=4, help="attention heads (= key/value heads)")
    ap.add_argument("--batch", type=int, default=8, help="sequences per step")
    ap.add_argument("--seq-len", type=int, default=256, help="tokens per sequence")
    ap.add_argument("--block-len", type=int, default=4, help="block length of the block variant")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 = stable numbers on a shared machine)")
    ap.add_argument("--device", default=None, help="cpu / cuda / cuda:1 (default: cuda if available, else cpu)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {', '.join(VARIANTS)}")
    add_output_arg(ap)
    args = ap.parse_args(argv)
    for flag in ("hidden", "layers", "heads", "batch", "seq_len", "block_len", "steps", "threads"):
        if getattr(args, flag) < 1:
            ap.error(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    if args.warmup < 0:
        ap.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.hidden % args.heads:
        ap.error(f"--hidden {args.hidden} must be a multiple of --heads {args.heads}")
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if not names or unknown:
        ap.error(f"--variants: unknown {unknown or 'empty list'}; choose from {', '.join(VARIANTS)}")
    check_output(ap, args.output)

    import torch

    from diffucode.models import build_tiny_model
    from diffucode.training.config import DiffusionConfig
    from diffucode.training.objectives import ARObjective, BlockObjective, MDMObjective

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(args.threads)

    model, tok = build_tiny_model(attention="bidirectional", shift=True, block_len=args.block_len,
                                  hidden_size=args.hidden, num_layers=args.layers, num_heads=args.heads,
                                  num_kv_heads=args.heads, max_seq_len=2 * args.seq_len, seed=0)
    model.to(args.device).train()
    g = torch.Generator().manual_seed(0)
    B, L = args.batch, args.seq_len
    batch = {"input_ids": torch.randint(10, len(tok), (B, L), generator=g).to(args.device),  # [B, L]
             "attention_mask": torch.ones(B, L, dtype=torch.long, device=args.device),     # [B, L]
             "sample_ids": torch.arange(B)}                                                 # [B]
    mask_id = model.mask_token_id
    # name -> (objective, training step it is evaluated at: 5000 is mid-annealing for mdm_annealing)
    variants = {
        "ar": (ARObjective(DiffusionConfig(), 0, mask_id, True), 1000),
        "mdm": (MDMObjective(DiffusionConfig(), 0, mask_id, True), 1000),
        "mdm_annealing": (MDMObjective(DiffusionConfig(anneal_steps=10_000), 0, mask_id, True), 5000),
        "block": (BlockObjective(DiffusionConfig(), 0, mask_id, False, block_len=args.block_len), 1000),
    }

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    # Interleave the variants step by step (each with its own copy of the model and optimiser), so
    # that load from other processes on a shared machine hits all of them alike.
    states = {}
    for name in names:
        m = copy.deepcopy(model)
        m.shift = name != "block"  # block diffusion trains without the logits shift
        states[name] = (m, torch.optim.AdamW(m.parameters(), lr=1e-4), [])
    last_prep = {}
    for i in range(args.warmup + args.steps):
        for name in names:
            objective, step = variants[name]
            m, opt, times = states[name]
            sync()
            t0 = time.perf_counter()
            prep = objective.prepare(batch, step)
            loss = objective.loss_sum(m, prep) / prep.count
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sync()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
            last_prep[name] = prep
    results = {}
    for name in names:
        times = states[name][2]
        results[name] = {"median_s": round(statistics.median(times), 5), "min_s": round(min(times), 5),
                         "tokens_through_model": int(last_prep[name].model_inputs["input_ids"].numel())}
    if "ar" in results:
        for r in results.values():
            r["median_ratio_to_ar"] = round(r["median_s"] / results["ar"]["median_s"], 3)
            r["min_ratio_to_ar"] = round(r["min_s"] / results["ar"]["min_s"], 3)
    emit({
        "benchmark": "train_step",
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "cpu": platform.processor() or platform.machine(), "threads": args.threads, "torch": torch.__version__,
        "model": {"hidden": args.hidden, "layers": args.layers, "heads": args.heads, "vocab": len(tok),
                  "params": sum(p.numel() for p in model.parameters())},
        "batch": B, "seq_len": L, "block_len": args.block_len, "timed_steps": args.steps,
        "results": results,
    }, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
