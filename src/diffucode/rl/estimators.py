"""Per-token log-likelihood estimators for diffusion policies: coupled-GRPO's core (DiffuCoder, docs/ALGORITHMS.md s.4).

    python -c "import torch; from diffucode.rl import coupled_masks; \
print(coupled_masks(torch.ones(2, 6, dtype=torch.bool), 0.5, torch.Generator().manual_seed(0)))"

A diffusion LM has no cheap exact ``log pi(o_k | c, o_<k)``. GRPO needs one number per completion
token, so it is estimated from forward passes in which some completion tokens are replaced by the
mask token (the prompt never is), reading the log-probability of the clean token at masked
positions (``logits`` are ALIGNED, see ``diffucode.models``: ``logits[:, j]`` is token ``j``'s
distribution, for shift and non-shift models alike).

Estimators (``estimator`` switch; ``K`` = forward passes per completion):

* ``coupled`` (DiffuCoder, K = 3). One ``t ~ U(0.2, 0.8)`` and uniforms ``R`` per completion;
  ``m1 = R < t``, ``m2 = not m1`` over the completion (complementary: every completion token is
  masked in exactly one of them). Passes ``v0`` (whole completion masked), ``v1`` (``m1``),
  ``v2`` (``m2``), and per token::

      logp_k = ( logp_v0(k) + (logp_v1(k) / t  if m1_k else  logp_v2(k) / (1 - t)) ) / 2

* ``decoupled`` (the paper's ablation, K = 3): as ``coupled`` but the two partial masks are drawn
  independently, ``ma = Ra < t`` and ``mb = Rb < 1 - t``, each term kept where its mask is set::

      logp_k = ( logp_v0(k) + [ma_k] logp_va(k) / t + [mb_k] logp_vb(k) / (1 - t) ) / 2

  Every mask has the same marginal law as in ``coupled``, so both estimators have the same
  expectation; they differ only in the coupling (a token gets 0, 1 or 2 partial terms here,
  exactly 1 in ``coupled``), which is what the variance comparison isolates.
* ``full`` (K = 1): ``logp_v0(k)``, the whole completion masked.
* ``d1`` (K = 1): d1/diffu-GRPO's one-pass estimate: ``logp_v0(k)`` with the *prompt* tokens also
  masked independently with probability ``d1_p_mask_prompt`` (0.15 in d1); the only estimator
  that masks prompt tokens (never a row's first real token, which a shift model cannot predict).

Which completion positions are noised (``noise_mask``) is the caller's choice; the recipe noises
the whole generated canvas, post-EOS padding included, as the sampler produced it (and as the
reference code does), and excludes the padding from the *loss* instead. Positions outside
``noise_mask`` get estimate 0.

Randomness: :func:`draw_mask_noise` draws ``t`` and the uniforms of each completion from a
generator seeded by ``(seed, sample id, iteration)``, so a completion's masks do not depend on how
the batch was split over processes or micro-batches, and the old-policy estimate and every inner
update that reuses the seed see identical masks (ratio exactly 1 on the first update).

Departures from the reference code (apple/ml-diffucoder): ``t`` is drawn per completion (the
reference draws one per micro-batch); the padded prompt gets a proper attention mask
(``hide_pads=False`` attends to the pads, as the reference does); the three
passes are run as one batched forward of ``3B`` rows (``batch_passes=False`` runs them one by one
to save memory).

Block-diffusion models (``layout="block"``, chosen automatically for block-causal models by
the recipe): the same masks and combination, but each pass runs on the ``x_t ++ x0`` layout, so a
masked token of block ``b`` is predicted from the clean blocks ``< b`` and its own block's noisy
tokens, the block model's own conditional; derivation, unbiasedness and variance in
``diffucode.rl.block``. ``layout="plain"`` on a block-causal model runs the passes under the
model's own block-causal mask on the noisy sequence (earlier blocks then also partly masked): a
different, more AR-like quantity, kept only as an explicit opt-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch

from diffucode.diffusion.schedules import seeded_generator

Estimator = Literal["coupled", "decoupled", "full", "d1"]
ESTIMATORS: tuple[str, ...] = ("coupled", "decoupled", "full", "d1")
NUM_PASSES = {"coupled": 3, "decoupled": 3, "full": 1, "d1": 1}

# Stream id of the estimator's noise (hashed with seed, sample id and iteration); distinct from
# the training objectives' streams in diffusion.schedules.
STREAM_RL_MASK = 101


def coupled_masks(
    completion_mask: torch.Tensor,  # [B, L] bool: positions that may be masked
    t: float | torch.Tensor,  # float or [B]: mask rate of m1
    generator: torch.Generator | None = None,
    u: torch.Tensor | None = None,  # [B, L] uniforms; drawn from ``generator`` when None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Complementary masks ``m1 = (R < t) & completion_mask``, ``m2 = completion_mask & ~m1``.

    Every position of ``completion_mask`` is True in exactly one of ``(m1, m2)``; positions
    outside it in neither. ``R`` is drawn on the CPU (so a seed gives the same masks on any device)
    unless ``u`` is given.
    """
    cm = completion_mask.bool()
    if cm.dim() != 2:
        raise ValueError(f"completion_mask must be [B, L], got shape {tuple(cm.shape)}")
    B, L = cm.shape
    if u is None:
        u = torch.rand(B, L, generator=generator)
    u = u.to(cm.device)
    t = _as_rows(t, B, cm.device)  # [B, 1]
    m1 = (u < t) & cm  # [B, L]
    m2 = cm & ~m1  # [B, L]
    return m1, m2


def independent_masks(
    completion_mask: torch.Tensor,  # [B, L] bool
    t: float | torch.Tensor,  # float or [B]
    generator: torch.Generator | None = None,
    u: torch.Tensor | None = None,  # [B, L]
    u2: torch.Tensor | None = None,  # [B, L]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``decoupled`` baseline: ``ma = Ra < t`` and ``mb = Rb < 1 - t`` with independent ``Ra, Rb``."""
    cm = completion_mask.bool()
    B, L = cm.shape
    if u is None:
        u = torch.rand(B, L, generator=generator)
    if u2 is None:
        u2 = torch.rand(B, L, generator=generator)
    t = _as_rows(t, B, cm.device)
    ma = (u.to(cm.device) < t) & cm
    mb = (u2.to(cm.device) < 1 - t) & cm
    return ma, mb


def _as_rows(t: float | torch.Tensor, B: int, device) -> torch.Tensor:
    if isinstance(t, torch.Tensor):
        t = t.to(device=device, dtype=torch.float32)
        if t.dim() == 0:
            t = t.expand(B)
        if t.dim() == 2 and t.shape[0] == B:  # per-token rates (per-block t of the block layout)
            return t
        if t.shape != (B,):
            raise ValueError(f"t must be a float, a [B] or a [B, L] tensor with B={B}, got shape {tuple(t.shape)}")
        return t[:, None]
    return torch.full((B, 1), float(t), device=device)


@dataclass
class MaskNoise:
    """The random numbers one estimate needs, per completion (see :func:`draw_mask_noise`)."""

    t: torch.Tensor  # [B] mask rate in [t_min, t_max]
    u: torch.Tensor  # [B, L] uniforms for the first partial mask
    u2: torch.Tensor  # [B, L] uniforms for the second (decoupled) mask
    u_prompt: torch.Tensor  # [B, P] uniforms for d1's prompt masking (right-aligned to the prompt)
    t_block: torch.Tensor | None = None  # [B, nb] per-block rates (block layout, t_per="block"), drawn last


def draw_mask_noise(
    seed: int,
    sample_ids: Sequence[int],
    iteration: int,
    completion_len: int,
    prompt_len: int = 0,
    t_range: tuple[float, float] = (0.2, 0.8),
    n_block_t: int = 0,
) -> MaskNoise:
    """Per-completion noise from a generator seeded by ``(seed, sample_id, iteration)``.

    Row ``b`` depends only on ``(seed, sample_ids[b], iteration)`` and the lengths, never on the
    other rows. Prompt uniforms are drawn right to left from the prompt's end, so left padding
    (which differs between batches) does not change which real prompt token gets which number.
    ``n_block_t > 0`` also draws that many per-block rates (after everything else, so the other
    draws are unchanged): block ``i`` of the completion (its first, possibly partial, block is 0).
    """
    lo, hi = t_range
    if not 0.0 < lo <= hi < 1.0:
        raise ValueError(f"t_range must satisfy 0 < t_min <= t_max < 1, got {t_range}")
    ts, us, u2s, ups, tbs = [], [], [], [], []
    for sid in sample_ids:
        g = seeded_generator(seed, int(sid), int(iteration), STREAM_RL_MASK)
        ts.append(lo + (hi - lo) * torch.rand(1, generator=g))
        us.append(torch.rand(completion_len, generator=g))
        u2s.append(torch.rand(completion_len, generator=g))
        ups.append(torch.rand(prompt_len, generator=g).flip(0))
        tbs.append(lo + (hi - lo) * torch.rand(n_block_t, generator=g))
    B = len(ts)
    return MaskNoise(
        t=torch.cat(ts) if B else torch.zeros(0),
        u=torch.stack(us) if B else torch.zeros(0, completion_len),
        u2=torch.stack(u2s) if B else torch.zeros(0, completion_len),
        u_prompt=torch.stack(ups) if B else torch.zeros(0, prompt_len),
        t_block=(torch.stack(tbs) if B else torch.zeros(0, n_block_t)) if n_block_t > 0 else None,
    )


@dataclass
class MaskPlan:
    """Which tokens each forward pass masks, and the weights that combine the passes."""

    estimator: str
    t: torch.Tensor  # [B], or [B, L] per-token rates (per-block t)
    noise_mask: torch.Tensor  # [B, L] bool: completion positions the estimate covers
    completion_masks: torch.Tensor  # [K, B, L] bool: completion positions masked in pass k
    prompt_masks: torch.Tensor | None = None  # [K, B, P] bool (d1 only)

    def to(self, device) -> "MaskPlan":
        return MaskPlan(
            self.estimator,
            self.t.to(device),
            self.noise_mask.to(device),
            self.completion_masks.to(device),
            None if self.prompt_masks is None else self.prompt_masks.to(device),
        )

    def rows(self, index: torch.Tensor | slice) -> "MaskPlan":
        """The plan restricted to some completions (a micro-batch)."""
        return MaskPlan(
            self.estimator,
            self.t[index],
            self.noise_mask[index],
            self.completion_masks[:, index],
            None if self.prompt_masks is None else self.prompt_masks[:, index],
        )


def plan_masks(
    estimator: str,
    noise_mask: torch.Tensor,  # [B, L] bool
    noise: MaskNoise,
    prompt_mask: torch.Tensor | None = None,  # [B, P] 0/1, needed by d1
    d1_p_mask_prompt: float = 0.15,
    shift: bool = False,
    block_len: int | None = None,
) -> MaskPlan:
    """Build the ``K`` pass masks of ``estimator`` from pre-drawn ``noise``.

    With ``noise.t_block`` (per-block rates, block layout only) each completion token uses its own
    block's rate; blocks are aligned from the row's first real prompt token, so ``prompt_mask``
    and ``block_len`` are needed.
    """
    if estimator not in NUM_PASSES:
        raise ValueError(f"estimator must be one of {list(ESTIMATORS)}, got {estimator!r}")
    nm = noise_mask.bool()
    t = noise.t.to(nm.device).float()
    if noise.t_block is not None:
        if prompt_mask is None or not block_len:
            raise ValueError("per-block t needs prompt_mask and block_len (block alignment)")
        n_p = prompt_mask.to(nm.device).long().sum(1, keepdim=True)  # [B, 1] real prompt tokens
        L = nm.shape[1]
        blk = (n_p + torch.arange(L, device=nm.device)[None]) // block_len - n_p // block_len  # [B, L] from 0
        tb = noise.t_block.to(nm.device).float()
        if int(blk.max()) >= tb.shape[1]:
            raise ValueError(f"per-block t: {tb.shape[1]} rates drawn for {int(blk.max()) + 1} completion blocks")
        t = tb.gather(1, blk)  # [B, L]
    if estimator == "coupled":
        m1, m2 = coupled_masks(nm, t, u=noise.u)
        masks = torch.stack([nm, m1, m2])  # [3, B, L]
    elif estimator == "decoupled":
        ma, mb = independent_masks(nm, t, u=noise.u, u2=noise.u2)
        masks = torch.stack([nm, ma, mb])
    else:
        masks = nm[None].clone()  # [1, B, L]
    prompt_masks = None
    if estimator == "d1":
        if prompt_mask is None:
            raise ValueError("estimator='d1' masks prompt tokens and needs prompt_mask")
        real = prompt_mask.bool()  # [B, P]
        P = real.shape[1]
        u_p = noise.u_prompt.to(real.device)
        if u_p.shape[1] < P:  # more padding than the noise was drawn for: pad on the left
            u_p = torch.cat([torch.ones(u_p.shape[0], P - u_p.shape[1], device=real.device), u_p], dim=1)
        u_p = u_p[:, u_p.shape[1] - P:]
        pm = (u_p < d1_p_mask_prompt) & real
        if shift:  # a shift model has no prediction for a row's first token: never mask it
            first = real & (real.long().cumsum(-1) == 1)
            pm &= ~first
        prompt_masks = pm[None]  # [1, B, P]
    return MaskPlan(estimator, t, nm, masks, prompt_masks)


def combine_logps(plan: MaskPlan, logps: torch.Tensor) -> torch.Tensor:
    """``[K, B, L]`` per-pass log-probs of the clean tokens -> ``[B, L]`` estimate (module docstring)."""
    K = NUM_PASSES[plan.estimator]
    if logps.shape[0] != K:
        raise ValueError(f"estimator {plan.estimator!r} needs {K} passes, got {logps.shape[0]}")
    t = plan.t.to(logps.device, logps.dtype)
    t = t[:, None] if t.dim() == 1 else t  # [B, 1] or [B, L]
    masks = plan.completion_masks
    if plan.estimator == "coupled":
        partial = torch.where(masks[1], logps[1] / t, logps[2] / (1 - t))  # [B, L]
        est = (logps[0] + partial) / 2
    elif plan.estimator == "decoupled":
        zero = torch.zeros_like(logps[0])
        partial = torch.where(masks[1], logps[1] / t, zero) + torch.where(masks[2], logps[2] / (1 - t), zero)
        est = (logps[0] + partial) / 2
    else:
        est = logps[0]
    return torch.where(plan.noise_mask, est, torch.zeros_like(est))


def token_logps(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[targets]``: ``[N, L, V]``, ``[N, L]`` -> ``[N, L]`` (float32)."""
    logits = logits.float()
    picked = logits.gather(-1, targets[..., None]).squeeze(-1)  # [N, L]
    return picked - torch.logsumexp(logits, dim=-1)


def masked_inputs(
    prompt_ids: torch.Tensor,  # [B, P]
    completion_ids: torch.Tensor,  # [B, L]
    plan: MaskPlan,
    mask_token_id: int,
) -> torch.Tensor:
    """``[K*B, P+L]``: the ``K`` noisy copies of ``prompt ++ completion``, pass-major."""
    K = plan.completion_masks.shape[0]
    comp = completion_ids[None].expand(K, -1, -1)  # [K, B, L]
    comp = torch.where(plan.completion_masks, torch.full_like(comp, mask_token_id), comp)
    prm = prompt_ids[None].expand(K, -1, -1)  # [K, B, P]
    if plan.prompt_masks is not None:
        prm = torch.where(plan.prompt_masks, torch.full_like(prm, mask_token_id), prm)
    return torch.cat([prm, comp], dim=2).flatten(0, 1)  # [K*B, P+L]


def estimate_logps(
    model,
    prompt_ids: torch.Tensor,  # [B, P] left-padded
    prompt_mask: torch.Tensor,  # [B, P] 0/1
    completion_ids: torch.Tensor,  # [B, L]
    plan: MaskPlan,
    mask_token_id: int | None = None,
    batch_passes: bool = True,
    hide_pads: bool = True,
    layout: str = "plain",
) -> torch.Tensor:
    """``[B, L]`` per-token log-likelihood estimate of ``completion_ids`` under ``model``.

    ``layout="block"``: a block-diffusion model's passes on the ``x_t ++ x0`` layout
    (:func:`diffucode.rl.block.estimate_logps_block`); ``"plain"``: prompt ++ noisy completion.

    ``model(input_ids, attention_mask=...)`` must return aligned logits (``diffucode.models``).
    The ``K`` passes run as one forward of ``K*B`` rows unless ``batch_passes`` is False. Gradients
    flow when called with grad enabled. ``hide_pads=False`` lets the prompt's left padding be
    attended (and counted in the position ids), as the reference code does.
    """
    if prompt_ids.shape[1] < 1:
        raise ValueError("the prompt must have at least one token (a shift model cannot predict a row's first token)")
    mask_token_id = model.mask_token_id if mask_token_id is None else mask_token_id
    if layout == "block":
        from diffucode.rl.block import estimate_logps_block

        if not hide_pads:
            raise ValueError("the block layout hides the prompt's pads (blocks align from the first real token)")
        return estimate_logps_block(model, prompt_ids, prompt_mask, completion_ids, plan, mask_token_id,
                                    batch_passes=batch_passes)
    if layout != "plain":
        raise ValueError(f"layout must be 'plain' or 'block', got {layout!r}")
    B, P = prompt_ids.shape
    L = completion_ids.shape[1]
    K = plan.completion_masks.shape[0]
    device = prompt_ids.device
    plan = plan.to(device)
    inputs = masked_inputs(prompt_ids, completion_ids, plan, mask_token_id)  # [K*B, P+L]
    pm = prompt_mask.long() if hide_pads else torch.ones_like(prompt_mask, dtype=torch.long)
    attn = torch.cat([pm, torch.ones(B, L, dtype=torch.long, device=device)], dim=1)  # [B, P+L]
    targets = completion_ids
    if batch_passes:
        logits = model(inputs, attention_mask=attn.repeat(K, 1)).logits[:, P:]  # [K*B, L, V]
        lps = token_logps(logits, targets.repeat(K, 1)).view(K, B, L)
    else:
        lps = torch.stack([
            token_logps(model(inputs[k * B:(k + 1) * B], attention_mask=attn).logits[:, P:], targets)
            for k in range(K)
        ])  # [K, B, L]
    return combine_logps(plan, lps)
