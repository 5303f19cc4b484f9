"""Training objectives for diffusion LMs, as pure torch functions (no I/O, no model classes).

    python -m pytest tests/diffusion -q

* ``schedules``: ``t`` draws, block-truncated rates, mask-rate warm-up, attention annealing,
  and the per-sample seeded uniforms every objective draws its noise from.
* ``masking``: which tokens may be masked, masking them, one forced mask per block, DiffuCoder's
  random truncation and clean prefix.
* ``block``: the ``x_t ++ x0`` block-diffusion layout and mask, annealed causal masks.
* ``losses``: MDM (1/t-weighted ELBO), block diffusion and plain AR losses on aligned logits.
"""

from diffucode.diffusion.block import annealed_attention_mask, block_diffusion_inputs, block_diffusion_mask
from diffucode.diffusion.losses import ar_loss, block_diffusion_loss, mdm_loss, weighted_nll
from diffucode.diffusion.masking import (
    clean_prefix,
    force_one_mask_per_block,
    mask_tokens,
    maskable_positions,
    random_truncation,
)
from diffucode.diffusion.schedules import (
    annealing_fraction,
    block_truncated_rate,
    in_warmup,
    mdm_time,
    mix_seed,
    row_uniform,
    warmup_mask_cap,
    warmup_time,
)

__all__ = [
    "annealed_attention_mask", "annealing_fraction", "ar_loss", "block_diffusion_inputs", "block_diffusion_loss",
    "block_diffusion_mask", "block_truncated_rate", "clean_prefix", "force_one_mask_per_block", "in_warmup",
    "mask_tokens", "maskable_positions", "mdm_loss", "mdm_time", "mix_seed", "random_truncation", "row_uniform",
    "warmup_mask_cap", "warmup_time", "weighted_nll",
]
