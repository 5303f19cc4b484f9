"""AdamW with decoupled weight decay, and a linear-warm-up + cosine learning-rate schedule.

    python -c "from diffucode.training.optim import lr_factor; print([round(lr_factor(s, 100, 10, 0.1), 3) for s in (0, 5, 10, 55, 100)])"

Weight decay is not applied to biases, norm weights and other 1-D parameters (the usual
practice; the papers do not say otherwise). The schedule multiplies the peak lr by
``lr_factor(step)``: ``(step + 1) / warmup`` during warm-up, then a cosine from 1 down to
``min_lr_ratio`` at ``max_steps`` (DiffuCoder: cosine to 10%).
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from diffucode.training.config import OptimConfig


def lr_factor(step: int, max_steps: int, warmup_steps: int, min_lr_ratio: float, schedule: str = "cosine") -> float:
    """Multiplier of the peak lr for the optimiser step with index ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(named_params: Iterable[tuple[str, torch.nn.Parameter]], weight_decay: float) -> list[dict]:
    """Two AdamW groups: matrices with weight decay; biases, norms and other 1-D params without."""
    decay, no_decay = [], []
    for name, p in named_params:
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or name.endswith(".bias") else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    groups = param_groups(model.named_parameters(), cfg.weight_decay)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, max_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR stepped once per optimiser step; its state_dict is saved in checkpoints."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, max_steps, cfg.warmup_steps, cfg.min_lr_ratio, cfg.schedule)
    )


def resolve_mixed_precision(choice: str) -> str:
    """``auto`` -> bf16 on a GPU that supports it, else full precision; other values pass through."""
    import torch

    if choice != "auto":
        return choice
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def make_accelerator(cpu: bool, mixed_precision: str, **kwargs):
    """An ``Accelerator`` with this run's precision, also when an earlier run in the same process
    (a notebook, a pipeline script, the test suite) chose another one.

    accelerate keeps one process-wide ``AcceleratorState`` and refuses a second ``Accelerator`` with
    a different ``mixed_precision``; dropping that state (not the ``PartialState`` that holds the
    distributed set-up) lets each run start with its own settings.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(cpu=cpu, mixed_precision=resolve_mixed_precision(mixed_precision), **kwargs)
