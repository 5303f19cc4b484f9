"""coupled-GRPO: reinforcement learning for diffusion code models (DiffuCoder, docs/ALGORITHMS.md s.4).

    python -m pytest tests/rl -q
    diffucode rl --config configs/rl/coupled_grpo_tiny.yaml

Pure pieces, importable without a model:

* ``estimators``: complementary masks (:func:`coupled_masks`) and the per-token log-likelihood
  estimators (coupled / decoupled / full-mask / d1 one-pass).
* ``block``: the same estimators for block-diffusion models, on the ``x_t ++ x0`` layout
  (derivation in its docstring; ``grpo.layout`` in the recipe).
* ``advantages``: group-mean and leave-one-out baselines, reward weighting.
* ``loss``: the clipped-ratio GRPO loss with the k3 KL penalty.
* ``rewards``: TRL-compatible format and code-execution rewards (execution via the sandbox).
* ``data`` / ``filter``: JSONL prompts with asserts, and the hard-prompt filter.

``rollout`` (imported explicitly: it needs the decoding engine) samples groups of completions.
The training loop itself is the recipe ``diffucode.recipes.rl``.
"""

from diffucode.rl.advantages import group_advantages, group_std, weighted_reward
from diffucode.rl.estimators import (
    ESTIMATORS,
    MaskNoise,
    MaskPlan,
    combine_logps,
    coupled_masks,
    draw_mask_noise,
    estimate_logps,
    independent_masks,
    plan_masks,
    token_logps,
)
from diffucode.rl.filter import select_hard_prompts
from diffucode.rl.loss import GRPOLossOutput, grpo_loss, kl3
from diffucode.rl.rewards import code_reward, extract_code, format_reward

__all__ = [
    "ESTIMATORS", "GRPOLossOutput", "MaskNoise", "MaskPlan", "code_reward", "combine_logps", "coupled_masks",
    "draw_mask_noise", "estimate_logps", "extract_code", "format_reward", "grpo_loss", "group_advantages", "group_std",
    "independent_masks", "kl3", "plan_masks", "select_hard_prompts", "token_logps", "weighted_reward",
]
