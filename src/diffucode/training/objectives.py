"""The training objectives (ar, mdm, block; SFT reuses them) as (prepare, loss) pairs over a micro-batch.

    python -m pytest tests/training/test_objectives.py -q

A micro-batch is a dict of ``input_ids`` / ``attention_mask`` / ``loss_region`` (``[b, L]``)
and ``sample_ids`` (``[b]``: the global position of each row in the data stream). ``prepare``
corrupts it and builds the model inputs; ``loss_sum`` runs the model and returns the
*un-normalised* loss (a sum over supervised tokens). The trainer divides by the number of
supervisable tokens of the whole global batch (``Prepared.count`` summed over micro-batches
and processes), which makes the gradient independent of how the batch was split.

All noise is drawn with ``schedules.row_uniform(seed, sample_ids, ...)``, and the annealed
attention pattern from ``(seed, step)``: the corruption of a sequence is a function of the
sequence's identity and the step only.

Objectives (docs/ALGORITHMS.md section 3):

* ``ar``: next-token cross-entropy, causal attention, raw (unaligned) logits.
* ``mdm``: t ~ U(eps, 1), mask with probability t, weight 1/t; optional attention annealing,
  random truncation and clean prefix (DiffuCoder's adaptation) and mask-rate warm-up.
* ``block``: ``x_t ++ x0`` layout, block-truncated schedule and warm-up (Stable-DiffCoder). Loss
  weight ``1/pi``, ``pi`` a token's real masking probability with the forced mask (unbiased, the
  MDM loss's scale; ``schedules.forced_inclusion_probability``); during the warm-up the truncated
  schedule's mask is thinned by the cap (``schedules.warmup_keep``), so the warm-up starts easy.
* SFT uses ``mdm`` / ``block`` / ``ar`` with ``loss_region`` = the response.
* ``diffusion.certainty_weight`` > 0 adds dParallel's certainty-forcing term to ``mdm`` / ``block``
  (``losses.certainty_loss``); on the model's own decodes that is certainty-forcing distillation.

Eval: ``prepare(batch, step=None)`` gives the final objective (no warm-up, no annealing, no
truncation/prefix tricks), so evaluation losses are comparable across the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from diffucode.diffusion import schedules as S
from diffucode.diffusion.block import annealed_attention_mask, block_diffusion_inputs
from diffucode.diffusion.losses import ar_loss, block_diffusion_loss, certainty_loss, mdm_loss
from diffucode.diffusion.masking import (
    block_ids,
    clean_prefix,
    force_one_mask_per_block,
    mask_tokens,
    maskable_positions,
    random_truncation,
)
from diffucode.training.config import DiffusionConfig


@dataclass
class Prepared:
    model_inputs: dict[str, Any]  # keyword arguments of DiffusionLM.forward
    x0: torch.Tensor  # [b, L] clean ids (the targets)
    masked: torch.Tensor  # [b, L] bool: supervised positions (AR: targets)
    rate: torch.Tensor  # [b, L] the loss weight is 1/rate: the mask rate (MDM), the masking probability pi (block; AR: 1)
    weighted: bool  # 1/rate weighting (False for AR and during the mask-rate warm-up)
    count: torch.Tensor  # scalar float: this micro-batch's share of the loss denominator
    stats: dict[str, float] = field(default_factory=dict)


class Objective:
    """Base class: subclasses implement ``prepare``; ``loss_sum`` is shared by the diffusion ones."""

    name = "base"

    def __init__(self, cfg: DiffusionConfig, seed: int, mask_token_id: int, shift: bool, block_len: int | None = None):
        self.cfg = cfg
        self.seed = seed
        self.mask_token_id = mask_token_id
        self.shift = shift
        self.block_len = block_len

    def prepare(self, batch: dict[str, torch.Tensor], step: int | None) -> Prepared:
        raise NotImplementedError

    def loss_sum(self, model, prep: Prepared) -> torch.Tensor:
        logits = model(**prep.model_inputs).logits  # [b, L, V] aligned
        loss = mdm_loss(logits, prep.x0, prep.masked, prep.rate, normalizer=1.0, weighted=prep.weighted)
        return loss + self._certainty(logits, prep)

    def _certainty(self, logits: torch.Tensor, prep: Prepared) -> torch.Tensor | float:
        """``certainty_weight`` x dParallel's certainty-forcing sum (0 when off); it shares the loss's
        denominator, so the two terms keep their ratio however the batch is split."""
        if not self.cfg.certainty_weight:
            return 0.0
        return self.cfg.certainty_weight * certainty_loss(logits, prep.x0, prep.masked, self.cfg.certainty_temperature)

    # shared pieces -----------------------------------------------------------------------
    def _uniform(self, batch, n: int, stream: int) -> torch.Tensor:
        # eval rows carry negative sample ids, so their noise is fixed and never shared with training rows
        return S.row_uniform(self.seed, batch["sample_ids"], n, stream, device=batch["input_ids"].device)

    def _time(self, batch, step: int | None, n: int = 1, stream: int = S.STREAM_T) -> tuple[torch.Tensor, bool, float]:
        """``[b, n]`` times, whether the loss is weighted, and the warm-up cap in force."""
        u = self._uniform(batch, n, stream)
        if step is not None and S.in_warmup(step, self.cfg.mask_warmup_steps):
            cap = S.warmup_mask_cap(step, self.cfg.mask_warmup_steps, self.cfg.mask_warmup_init)
            return S.warmup_time(u, cap), False, cap
        return S.mdm_time(u, self.cfg.eps), True, 1.0

    @staticmethod
    def _count(weighted: bool, maskable: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        # weighted ELBO: per supervisable token; warm-up: mean CE over the masked tokens
        return (maskable if weighted else masked).sum().float()

    @staticmethod
    def _stats(maskable, masked, rate, weighted, cap) -> dict[str, float]:
        n = maskable.sum().item()
        return {
            "supervisable_tokens": float(n),
            "masked_tokens": float(masked.sum().item()),
            "mask_rate": float(masked.sum().item() / max(n, 1)),
            "t_mean": float(rate[maskable].mean().item()) if n else 0.0,
            "mask_warmup": float(not weighted),
            "mask_cap": float(cap),
        }


class ARObjective(Objective):
    name = "ar"

    def prepare(self, batch, step):
        ids, am = batch["input_ids"], batch["attention_mask"]
        region = batch.get("loss_region")
        real = am.bool()
        target = real if region is None else region.bool() & real
        # token j+1 is a target of the output at j (see losses.ar_loss)
        targets = torch.zeros_like(real)
        targets[:, 1:] = target[:, 1:] & real[:, :-1]
        count = targets.sum().float()
        inputs = {"input_ids": ids, "attention_mask": am, "attention_mode": "causal", "align": False}
        return Prepared(inputs, ids, targets, torch.ones_like(ids, dtype=torch.float), False, count,
                        {"supervisable_tokens": float(count.item())})

    def loss_sum(self, model, prep):
        raw = model(**prep.model_inputs).logits  # [b, L, V] next-token logits
        return ar_loss(raw, prep.x0, target_mask=prep.masked, attention_mask=prep.model_inputs["attention_mask"],
                       normalizer=1.0)


class MDMObjective(Objective):
    """Whole-sequence masked diffusion (LLaDA / Dream / DiffuCoder), bidirectional attention."""

    name = "mdm"

    def prepare(self, batch, step):
        x0, am = batch["input_ids"], batch["attention_mask"]
        B, L = x0.shape
        train = step is not None
        if train and self.cfg.truncate_fraction > 0:
            u = self._uniform(batch, 2, S.STREAM_TRUNCATE)
            am = random_truncation(am, u[:, 0], u[:, 1], self.cfg.truncate_fraction, min_len=2)
        maskable = maskable_positions(am, batch.get("loss_region"), shift=self.shift)  # [B, L]
        if train and self.cfg.prefix_fraction > 0:
            u = self._uniform(batch, 2, S.STREAM_PREFIX)
            maskable = clean_prefix(maskable, u[:, 0], u[:, 1], self.cfg.prefix_fraction)
        t, weighted, cap = self._time(batch, step)  # [B, 1]
        rate = t.expand(B, L)
        x_t, masked = mask_tokens(x0, maskable, rate, self._uniform(batch, L, S.STREAM_TOKENS), self.mask_token_id)
        inputs: dict[str, Any] = {"input_ids": x_t, "attention_mask": am, "align": True}
        p = S.annealing_fraction(step, self.cfg.anneal_steps) if train else 1.0
        if p < 1.0:
            inputs["attn_mask_4d"] = self._annealed_mask(step, p, L, x0.device)[None, None].expand(B, 1, L, L)
        else:
            inputs["attention_mode"] = "bidirectional"
        stats = self._stats(maskable, masked, rate, weighted, cap)
        stats["anneal_p"] = p
        return Prepared(inputs, x0, masked, rate, weighted, self._count(weighted, maskable, masked), stats)

    def _annealed_mask(self, step: int, p: float, L: int, device) -> torch.Tensor:
        """``[L, L]`` pattern of this step: one per optimiser step, shared by the whole global batch
        (see diffusion/block.py); cached so accumulation micro-batches do not redraw it."""
        key = (step, L, str(device))
        if getattr(self, "_anneal_cache", (None,))[0] != key:
            # one generator per query row: the pattern for a shorter batch is the top-left crop of a longer one
            u = torch.stack([torch.rand(L, generator=S.seeded_generator(self.seed, step, S.STREAM_ANNEAL, i))
                             for i in range(L)])  # [L, L]
            self._anneal_cache = (key, annealed_attention_mask(L, p, u, self.cfg.anneal_style).to(device))
        return self._anneal_cache[1]


class BlockObjective(Objective):
    """Block diffusion on ``x_t ++ x0`` with the block-truncated schedule (Stable-DiffCoder)."""

    name = "block"

    def prepare(self, batch, step):
        x0, am = batch["input_ids"], batch["attention_mask"]
        B, L = x0.shape
        blk = self.block_len
        maskable = maskable_positions(am, batch.get("loss_region"), shift=False)  # block models: no shift
        positions = (am.long().cumsum(-1) - 1).clamp(min=0)  # [B, L] the model's convention
        blocks = block_ids(positions, blk)  # [B, L]
        n_u, stream = (-(-L // blk), S.STREAM_BLOCK_T) if self.cfg.block_t_per == "block" else (1, S.STREAM_T)
        warm = step is not None and S.in_warmup(step, self.cfg.mask_warmup_steps)
        if self.cfg.block_truncate:
            # the final schedule's draw; the warm-up cap is applied last, by thinning (S.warmup_keep)
            u = S.mdm_time(self._uniform(batch, n_u, stream), self.cfg.eps)
            cap = S.warmup_mask_cap(step, self.cfg.mask_warmup_steps, self.cfg.mask_warmup_init) if warm else 1.0
            weighted = not warm
        else:
            u, weighted, cap = self._time(batch, step, n_u, stream)
        u = u.gather(1, blocks) if n_u > 1 else u.expand(B, L)  # [B, L]
        rate = S.block_truncated_rate(u, blk) if self.cfg.block_truncate else u.clamp(min=1e-6)  # [B, L]
        _, masked = mask_tokens(x0, maskable, rate, self._uniform(batch, L, S.STREAM_TOKENS), self.mask_token_id)
        weight_rate = rate  # the loss weight is 1 / weight_rate
        if self.cfg.block_truncate:
            masked = force_one_mask_per_block(masked, maskable, blk, self._uniform(batch, L, S.STREAM_PICK), positions)
            if self.cfg.block_weight == "inclusion":
                weight_rate = S.forced_inclusion_probability(rate, maskable, blocks)
            if cap < 1.0:
                masked = masked & S.warmup_keep(self._uniform(batch, L, S.STREAM_WARMUP_KEEP), cap)
                rate = rate * cap  # each token's own-coin masking probability under the warm-up
                weight_rate = rate  # (unused: the warm-up loss is unweighted)
        x_t = torch.where(masked, torch.full_like(x0, self.mask_token_id), x0)
        inputs = block_diffusion_inputs(x_t, x0, am, blk)
        inputs["align"] = True
        stats = self._stats(maskable, masked, rate, weighted, cap)
        return Prepared(inputs, x0, masked, weight_rate, weighted, self._count(weighted, maskable, masked), stats)

    def loss_sum(self, model, prep: Prepared) -> torch.Tensor:
        L = prep.x0.shape[1]
        # logits of the noisy half only: the clean half is context, never a target
        logits = model(**prep.model_inputs, logit_positions=torch.arange(L, device=prep.x0.device)).logits  # [b, L, V]
        loss = block_diffusion_loss(logits, prep.x0, prep.masked, prep.rate, normalizer=1.0, weighted=prep.weighted)
        return loss + self._certainty(logits, prep)


OBJECTIVES = {"ar": ARObjective, "mdm": MDMObjective, "block": BlockObjective}


def build_objective(name: str, cfg: DiffusionConfig, seed: int, model) -> Objective:
    """The objective class for ``name`` (one of ``OBJECTIVES``), configured from the model."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {sorted(OBJECTIVES)}")
    if name == "block" and not model.block_len:
        raise ValueError("the block objective needs a model with block_len (set model.block_len)")
    if name == "block" and model.shift:
        raise ValueError("the block objective trains without the logits shift: set model.shift=false")
    return OBJECTIVES[name](cfg, seed, model.mask_token_id, model.shift, model.block_len)
