"""coupled-GRPO for block-diffusion models: the estimator's passes on the ``x_t ++ x0`` layout.

    python -m pytest tests/rl/test_block_estimator.py -q

No reference implementation exists (DiffuCoder's coupled-GRPO is for bidirectional models); this
is our derivation. The masks, the weights and the combination are exactly the bidirectional
estimator's (``estimators.plan_masks`` / ``combine_logps``); only what each pass conditions on
changes, so that it is the block model's own conditional, the one it was trained on
(``diffusion/block.py``) and decodes with (``sampling/engine.py``).

Layout. Blocks are aligned from the row's first real prompt token, as in the engine and the
model (block id = position id // ``B``, position ids counting real tokens), so the completion's
first block may be partial and share its block with the prompt's tail. One forward holds the
clean sequence ``x0 = prompt ++ completion`` and ``K`` noisy copies of the completion's window
(the completion plus the last ``B - 1`` prompt columns, which may share its first block):

* a noisy token of block ``b`` (copy ``c``) sees copy ``c``'s tokens of block ``b`` and the clean
  tokens of blocks ``< b``: never another copy, never a later block;
* a clean token sees the clean tokens of blocks ``<=`` its own (block-causal; keys/values only);
* prompt tokens are clean in every copy (the prompt is context, never masked); both halves
  carry the same position ids; logits are read at the noisy completion columns only, no shift.

So pass ``k``'s logit at completion token ``j`` in block ``b`` is
``p(x_j | x_{<b} clean, block b with pass k's mask)``: the block-diffusion denoiser exactly as
at decoding time. ``v0`` (whole completion masked) gives the block-AR conditional: every
completion token of block ``b`` masked, everything before the block clean.

What the estimator estimates. Fix a completion token ``k`` in block ``b`` and let
``f_k(s) = E[log p(x_k | x_{<b}, k masked, every other completion token of block b masked
independently w.p. s)]``. Given ``t``, ``P(k in m1) = t`` and the other tokens of the block are
in ``m1`` independently w.p. ``t``, so ``E[[k in m1] logp_v1(k) / t] = f_k(t)``; likewise
``E[[k in m2] logp_v2(k) / (1 - t)] = f_k(1 - t)``. Hence, over ``t ~ U(t_min, t_max)``
(symmetric about 1/2 by default, so ``f(t)`` and ``f(1 - t)`` have the same mean)::

    E[logp_k] = ( f_k(1) + E_t[f_k(t) + f_k(1 - t)] ) / 2  =  f_k(1) / 2 + E_t[f_k(t)]

exactly, with no approximation: the estimate is unbiased for this target (tested by enumerating
every mask of every block of a tiny model). ``f_k(1)`` is the block-AR term (``v0``);
``sum_{k in b} f_k(t)`` is the integrand of block ``b``'s masked-diffusion ELBO, whose integral
over ``t in (0, 1)`` bounds ``log p(x_b | x_{<b})`` from below, so summed over the completion the
target is half the block-AR mean-field term plus the block-diffusion (BD3-LM) ELBO integrand
averaged over ``t in [t_min, t_max]``: the same surrogate DiffuCoder uses, one block at a time.
It is not an exact log-likelihood (none is cheap for a diffusion model), and like DiffuCoder's it
is on a ~1.5x scale (weights 1/2 + 1 per token).

Why ``1/t`` is the right weight although the model was trained with the block-truncated
schedule (rate ``max(u, 1/B)`` per block plus a forced mask, weight ``1/pi``). The weight is a
Horvitz-Thompson correction for *the estimator's own* masks: token ``k`` enters ``m1`` with
probability exactly ``t`` (independent Bernoulli draws, no floor, no forcing), so ``1/t`` (and
``1/(1 - t)`` for ``m2``) makes each term unbiased for ``f_k``, whatever schedule trained the
model. The training schedule only decides which contexts the model saw often (blocks at least
``1/B`` masked); it does not enter the expectation. The truncation and the forced mask exist so
that every block carries a training signal; the complementary pair already guarantees that every
completion token is counted exactly once, so neither is needed here, and adding them would break
the complementarity (a forced token would be masked in both ``m1`` and ``m2``) and require
``1/pi`` weights. If the rate differed per block (``t_b``), the weight would have to be the
token's own block's ``1/t_b`` (resp. ``1/(1 - t_b)``), which is what ``t_per="block"``
(``grpo.t_per=block``: one ``t_b ~ U(t_min, t_max)`` per completion block, ``combine_logps`` then
weights each token by its block's rate) does. Both choices have the same per-token expectation (a
token's term depends only on its own block's masks and the marginal law of its rate); they differ
in the variance of the sequence sum (one shared ``t`` correlates the blocks), measured in the tests.

Why the variance is lower than ``decoupled``. Write ``a = logp_v1(k) / t`` when ``k in m1``,
``b = logp_v2(k) / (1 - t)`` when ``k in m2``. Coupled: ``X = I a + (1 - I) b`` with
``I ~ Bern(t)``; decoupled: ``Y = I_a a + I_b b`` with independent ``I_a ~ Bern(t)``,
``I_b ~ Bern(1 - t)``. With the conditional values held fixed, ``Var(Y) - Var(X) = 2 t (1 - t) a b
>= 0``, because ``a, b <= 0`` (log-probabilities) and complementary indicators are perfectly
anti-correlated (antithetic variates): a token never gets 0 or 2 partial terms, which is what makes
the decoupled sum over tokens jumpy. The same holds inside each block, and the ``v0`` term is
deterministic. Measured on a tiny block model in ``tests/rl/test_block_estimator.py``.

Cost. ``batch_passes=True`` puts the ``K`` noisy copies and one shared clean copy in one row of
length ``P + L + K (L + B - 1)``: the clean prefix is computed once instead of ``K`` times.
``batch_passes=False`` runs ``K`` forwards of ``P + L + (L + B - 1)`` (less activation memory),
and is used automatically when the shared row would exceed the model's context
(``max_position_embeddings``). Same numbers up to float rounding (tested).
"""

from __future__ import annotations

import torch

from diffucode.rl.estimators import MaskPlan, combine_logps, token_logps

LAYOUTS = ("auto", "plain", "block")


def max_completion_blocks(L: int, block_len: int) -> int:
    """Most blocks ``L`` completion tokens can touch when the first one may share a block with the prompt."""
    return (L + block_len - 2) // block_len + 1


def resolve_layout(model, layout: str, estimator: str, hide_pads: bool = True) -> str:
    """``plain`` (the bidirectional estimator's passes) or ``block`` (this module) for ``model``.

    ``auto``: ``block`` for a block-causal model, ``plain`` otherwise. Raises ``ValueError`` with a
    one-line reason for combinations that are not supported.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {list(LAYOUTS)}, got {layout!r}")
    attention = getattr(model, "attention", None)
    if layout == "auto":
        layout = "block" if attention == "block_causal" else "plain"
    if layout == "plain":
        return layout
    if attention != "block_causal" or not getattr(model, "block_len", None):
        raise ValueError(f"the block layout needs a block-causal model with a block length; this one is {attention}")
    if getattr(model, "shift", False):
        raise ValueError("the block layout reads the noisy half without a logits shift (as block training does); "
                         "this block-causal model uses the shift: set model.shift=false, or the plain layout")
    if estimator == "d1":
        raise ValueError("estimator d1 masks prompt tokens; the block layout keeps the prompt as clean context "
                         "(use coupled, decoupled or full)")
    if not hide_pads:
        raise ValueError("the block layout aligns blocks from each row's first real token, as the engine does: "
                         "the prompt's pads must be hidden (hide_prompt_pads=true)")
    return layout


def block_pass_inputs(
    prompt_ids: torch.Tensor,  # [B, P] left-padded
    prompt_mask: torch.Tensor,  # [B, P] 0/1
    completion_ids: torch.Tensor,  # [B, L]
    completion_masks: torch.Tensor,  # [K, B, L] bool: completion tokens masked in each pass
    mask_token_id: int,
    block_len: int,
) -> dict[str, torch.Tensor]:
    """One row per completion holding ``K`` noisy windows and the clean sequence (module docstring).

    Returns ``input_ids``, ``attention_mask``, ``position_ids`` (``[B, N]``), ``attn_mask_4d``
    (``[B, 1, N, N]``) and ``logit_positions`` (``[K * L]``, pass-major) with
    ``N = K * W + P + L``, ``W = L + min(P, block_len - 1)``.
    """
    B, P = prompt_ids.shape
    L = completion_ids.shape[1]
    K = completion_masks.shape[0]
    dev = prompt_ids.device
    T = min(P, block_len - 1)  # prompt columns that may share the completion's first block
    W = T + L
    x0 = torch.cat([prompt_ids, completion_ids], dim=1)  # [B, P+L]
    real0 = torch.cat([prompt_mask.long(), torch.ones(B, L, dtype=torch.long, device=dev)], dim=1)  # [B, P+L]
    pos0 = (real0.cumsum(-1) - 1).clamp(min=0)  # [B, P+L] the model's convention: 0 at the first real token
    blk0 = pos0 // block_len
    comp = completion_ids[None].expand(K, -1, -1)  # [K, B, L]
    comp = torch.where(completion_masks.to(dev), torch.full_like(comp, mask_token_id), comp)
    tail = prompt_ids[:, P - T:][None].expand(K, -1, -1)  # [K, B, T] clean prompt tail in every copy
    noisy = torch.cat([tail, comp], dim=2).permute(1, 0, 2).reshape(B, K * W)  # [B, K*W] copy-major
    real_w, pos_w, blk_w = real0[:, P - T:], pos0[:, P - T:], blk0[:, P - T:]  # [B, W]
    blk = torch.cat([blk_w.repeat(1, K), blk0], dim=1)  # [B, N]
    N = K * W + P + L
    copy = torch.cat([torch.arange(K, device=dev).repeat_interleave(W), torch.full((P + L,), -1, device=dev)])  # [N]
    clean = copy < 0  # [N]
    qb, kb = blk[:, :, None], blk[:, None, :]  # [B, N, 1], [B, 1, N]
    qc, kc = clean[None, :, None], clean[None, None, :]
    same_copy = (copy[:, None] == copy[None, :])[None]  # [1, N, N]
    allowed = (
        (~qc & ~kc & same_copy & (kb == qb))  # noisy -> own copy, own block
        | (~qc & kc & (kb < qb))  # noisy -> clean earlier blocks
        | (qc & kc & (kb <= qb))  # clean -> clean, block-causal
    )  # [B, N, N]
    logit_positions = (torch.arange(K, device=dev)[:, None] * W + T + torch.arange(L, device=dev)[None]).flatten()
    return {
        "input_ids": torch.cat([noisy, x0], dim=1),
        "attention_mask": torch.cat([real_w.repeat(1, K), real0], dim=1),
        "position_ids": torch.cat([pos_w.repeat(1, K), pos0], dim=1),
        "attn_mask_4d": allowed[:, None],
        "logit_positions": logit_positions,
    }


def block_pass_logps(
    model,
    prompt_ids: torch.Tensor,  # [B, P]
    prompt_mask: torch.Tensor,  # [B, P]
    completion_ids: torch.Tensor,  # [B, L]
    completion_masks: torch.Tensor,  # [K, B, L]
    mask_token_id: int,
    block_len: int,
) -> torch.Tensor:
    """``[K, B, L]`` log-probabilities of the clean completion tokens in each of the ``K`` passes (one forward)."""
    K, B, L = completion_masks.shape
    inp = block_pass_inputs(prompt_ids, prompt_mask, completion_ids, completion_masks, mask_token_id, block_len)
    logits = model(**inp, align=True).logits  # [B, K*L, V] (logit_positions inside inp)
    lps = token_logps(logits, completion_ids.repeat(1, K))  # [B, K*L]
    return lps.view(B, K, L).permute(1, 0, 2)


def estimate_logps_block(
    model,
    prompt_ids: torch.Tensor,  # [B, P] left-padded
    prompt_mask: torch.Tensor,  # [B, P] 0/1
    completion_ids: torch.Tensor,  # [B, L]
    plan: MaskPlan,
    mask_token_id: int,
    block_len: int | None = None,
    batch_passes: bool = True,
) -> torch.Tensor:
    """``[B, L]`` per-token estimate of a block-diffusion model (module docstring); gradients flow
    when called with grad enabled. ``batch_passes=False``: one forward per pass instead of one in all."""
    if plan.prompt_masks is not None:
        raise ValueError("the block layout never masks the prompt (estimator d1 is not supported)")
    block_len = int(block_len or model.block_len)
    plan = plan.to(prompt_ids.device)
    cm = plan.completion_masks
    K, P, L = cm.shape[0], prompt_ids.shape[1], completion_ids.shape[1]
    W = L + min(P, block_len - 1)
    if batch_passes and P + L + K * W > getattr(model, "max_seq_len", 1 << 30):
        batch_passes = False  # the shared row would exceed the model's context; one pass per forward fits
    if batch_passes:
        lps = block_pass_logps(model, prompt_ids, prompt_mask, completion_ids, cm, mask_token_id, block_len)
    else:
        lps = torch.cat([block_pass_logps(model, prompt_ids, prompt_mask, completion_ids, cm[k:k + 1], mask_token_id,
                                          block_len) for k in range(cm.shape[0])])
    return combine_logps(plan, lps)
