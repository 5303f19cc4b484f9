"""Training-step time of the diffusion objectives vs plain AR on the same model and batch.

    python benchmarks/train_step.py                          # small model on CPU, prints JSON
    python benchmarks/train_step.py --hidden 512 --layers 8 --seq-len 512 --device cuda

One step = corrupt the batch + forward + backward + AdamW update, exactly as the trainer does it
(``training/objectives.py``). Variants on the same model, batch and weights:

* ``ar``: next-token loss, causal attention (the baseline);
* ``mdm``: masked diffusion, bidirectional attention (DiffuCoder after annealing);
* ``mdm_annealing``: masked diffusion during attention annealing (explicit random 4-D mask);
* ``block``: block diffusion on ``x_t ++ x0`` (Stable-DiffCoder, B = 4): the model runs on 2L
  tokens with an explicit block-diffusion mask, so expect roughly 2x the AR step.

Variants run interleaved, step by step. Reports the median and minimum of ``--steps`` timed steps
after ``--warmup`` untimed ones, and each variant's ratios to ``ar``. Not a test: run it by hand and paste the JSON with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--block-len", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 = stable numbers on a shared machine)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--variants", default="ar,mdm,mdm_annealing,block")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from diffucode.models import build_tiny_model
    from diffucode.training.config import DiffusionConfig
    from diffucode.training.objectives import ARObjective, BlockObjective, MDMObjective

    model, tok = build_tiny_model(attention="bidirectional", shift=True, block_len=args.block_len,
                                  hidden_size=args.hidden, num_layers=args.layers, num_heads=args.heads,
                                  num_kv_heads=args.heads, max_seq_len=2 * args.seq_len, seed=0)
    model.to(args.device).train()
    g = torch.Generator().manual_seed(0)
    B, L = args.batch, args.seq_len
    batch = {"input_ids": torch.randint(10, len(tok), (B, L), generator=g).to(args.device),
             "attention_mask": torch.ones(B, L, dtype=torch.long, device=args.device),
             "sample_ids": torch.arange(B)}
    mask_id = model.mask_token_id
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
    import copy

    names = args.variants.split(",")
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
    print(json.dumps({
        "benchmark": "train_step",
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "cpu": platform.processor() or platform.machine(), "threads": args.threads, "torch": torch.__version__,
        "model": {"hidden": args.hidden, "layers": args.layers, "heads": args.heads, "vocab": len(tok),
                  "params": sum(p.numel() for p in model.parameters())},
        "batch": B, "seq_len": L, "block_len": args.block_len, "timed_steps": args.steps,
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
