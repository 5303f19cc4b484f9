"""Print the block objective's realised mask rate through the warm-up of a config, and the
weighted token count per supervisable token of MDM and block losses (the README's figures).

    python scripts/block_schedule_stats.py [configs/nano/02_block.yaml]
"""
import sys

import torch
from diffucode.config import load_config
from diffucode.training.config import TrainConfig, DiffusionConfig
from diffucode.training.objectives import BlockObjective, MDMObjective
cfg = load_config(TrainConfig, sys.argv[1] if len(sys.argv) > 1 else "configs/nano/02_block.yaml")
def rows(B, L, start):
    return {"input_ids": torch.randint(10, 50, (B, L)), "attention_mask": torch.ones(B, L, dtype=torch.long),
            "sample_ids": torch.arange(start, start + B)}
obj = BlockObjective(cfg.diffusion, cfg.seed, 3, False, 4)
for s in (0, 1, 2, 4, 11, 22, 44, 45):
    p = obj.prepare(rows(16, 256, 16 * s), step=s)
    print(f"step {s:2d}: mask_cap {p.stats['mask_cap']:.3f}  realised mask rate {p.masked.float().mean():.4f}")
for name, o in (("mdm", MDMObjective(DiffusionConfig(), 0, 3, False)),
                ("block inclusion", BlockObjective(DiffusionConfig(), 0, 3, False, 4)),
                ("block literal", BlockObjective(DiffusionConfig(block_weight="literal"), 0, 3, False, 4))):
    tot = n = 0.0
    for k in range(20):
        p = o.prepare(rows(500, 64, 500 * k), step=None)
        tot += (p.masked / p.rate).sum().item(); n += p.count.item()
    print(f"{name}: weighted tokens per supervisable token {tot / n:.4f}")
