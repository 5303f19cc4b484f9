"""Block-diffusion coupled-GRPO: one shared forward (K noisy windows + one clean copy) vs one
forward per pass, and the plain layout, forward + backward on a small block-causal model (JSON).

    python benchmarks/rl_block_passes.py --batch 4 --prompt-len 64 --completion-len 64
"""

import argparse
import json
import time

import torch

from diffucode.models import build_tiny_model
from diffucode.rl import draw_mask_noise, estimate_logps, plan_masks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--completion-len", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--block-len", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.manual_seed(0)
    m, _ = build_tiny_model(attention="block_causal", shift=False, block_len=a.block_len, hidden_size=a.hidden,
                            num_layers=a.layers, num_heads=4, seed=0)
    B, P, L = a.batch, a.prompt_len, a.completion_len
    prompt, comp = torch.randint(10, 300, (B, P)), torch.randint(10, 300, (B, L))
    pm = torch.ones(B, P, dtype=torch.long)
    plan = plan_masks("coupled", torch.ones(B, L, dtype=torch.bool), draw_mask_noise(0, list(range(B)), 0, L))
    out = {"config": vars(a), "device": "cpu", "threads": torch.get_num_threads(), "median_ms": {}}
    for name, kw in (("block_shared", dict(layout="block", batch_passes=True)),
                     ("block_per_pass", dict(layout="block", batch_passes=False)),
                     ("plain_batched", dict(layout="plain", batch_passes=True))):
        ts = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            estimate_logps(m, prompt, pm, comp, plan, **kw).sum().backward()
            ts.append(time.perf_counter() - t0)
        out["median_ms"][name] = round(sorted(ts)[len(ts) // 2] * 1000, 1)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
