"""coupled-GRPO's log-likelihood estimators: complementary masks, the combination formula, batching,
and the variance claim measured on a tiny model (docs/ALGORITHMS.md s.4)."""

import pytest
import torch

from diffucode.rl import ESTIMATORS, combine_logps, coupled_masks, draw_mask_noise, estimate_logps, plan_masks
from diffucode.rl.estimators import MaskNoise, masked_inputs, token_logps

torch.set_num_threads(1)


@pytest.mark.parametrize("t", [0.3, torch.tensor([0.2, 0.5, 0.8])])
def test_masks_are_complementary_over_the_completion(t):
    g = torch.Generator().manual_seed(0)
    cm = torch.rand(3, 40, generator=g) < 0.8  # [B, L] some positions are not maskable
    m1, m2 = coupled_masks(cm, t, generator=g)
    assert m1.dtype == torch.bool and m1.shape == cm.shape
    # every completion token is masked in exactly one of v1, v2; nothing outside the completion
    assert torch.equal(m1 ^ m2, cm)
    assert not (m1 & m2).any()
    assert not (m1 & ~cm).any() and not (m2 & ~cm).any()
    # both masks are non-trivial (rate t in [0.2, 0.8] over 40 tokens)
    assert m1.any(1).all() and m2.any(1).all()


def test_masks_follow_the_drawn_uniforms():
    # m1 = R < t with R the generator's next [B, L] uniforms, drawn here independently; m2 = the rest
    cm = torch.ones(2, 16, dtype=torch.bool)
    cm[1, 12:] = False
    R = torch.rand(2, 16, generator=torch.Generator().manual_seed(7))
    m1, m2 = coupled_masks(cm, 0.5, torch.Generator().manual_seed(7))
    assert torch.equal(m1, (R < 0.5) & cm) and torch.equal(m2, (R >= 0.5) & cm)
    other = coupled_masks(cm, 0.5, torch.Generator().manual_seed(8))[0]
    assert not torch.equal(other, m1)


def test_prompt_is_never_masked_and_v0_masks_the_whole_completion():
    B, P, L, MASK = 2, 5, 6, 99
    prompt = torch.arange(10, 10 + B * P).view(B, P)
    comp = torch.arange(50, 50 + B * L).view(B, L)
    noise_mask = torch.ones(B, L, dtype=torch.bool)
    noise = draw_mask_noise(seed=3, sample_ids=[0, 1], iteration=0, completion_len=L)
    plan = plan_masks("coupled", noise_mask, noise)
    x = masked_inputs(prompt, comp, plan, MASK).view(3, B, P + L)
    assert torch.equal(x[:, :, :P], prompt[None].expand(3, -1, -1))  # prompt untouched in all passes
    assert (x[0, :, P:] == MASK).all()  # v0: whole completion masked
    masked1, masked2 = x[1, :, P:] == MASK, x[2, :, P:] == MASK
    assert torch.equal(masked1 ^ masked2, noise_mask) and not (masked1 & masked2).any()
    # unmasked completion tokens keep their clean ids
    assert torch.equal(x[1, :, P:][~masked1], comp[~masked1])


def test_combined_estimate_matches_the_formula_by_hand():
    # one completion of 4 tokens; the last position is outside the noised region (estimate 0)
    t = torch.tensor([0.25])
    noise_mask = torch.tensor([[True, True, True, False]])
    noise = MaskNoise(t=t, u=torch.tensor([[0.1, 0.9, 0.2, 0.0]]), u2=torch.zeros(1, 4), u_prompt=torch.zeros(1, 0))
    plan = plan_masks("coupled", noise_mask, noise)
    # m1 = u < t = [T, F, T, (F: outside)], m2 = [F, T, F, F]
    assert plan.completion_masks[1].tolist() == [[True, False, True, False]]
    assert plan.completion_masks[2].tolist() == [[False, True, False, False]]
    lp0 = torch.tensor([[-1.0, -2.0, -3.0, -4.0]])
    lp1 = torch.tensor([[-0.5, -9.0, -1.0, -9.0]])
    lp2 = torch.tensor([[-9.0, -0.6, -9.0, -9.0]])
    est = combine_logps(plan, torch.stack([lp0, lp1, lp2]))
    # token 0: m1 -> (-1 + -0.5/0.25)/2 = (-1 - 2)/2 = -1.5
    # token 1: m2 -> (-2 + -0.6/0.75)/2 = (-2 - 0.8)/2 = -1.4
    # token 2: m1 -> (-3 + -1.0/0.25)/2 = (-3 - 4)/2 = -3.5
    # token 3: outside the noised region -> 0
    assert est[0].tolist() == pytest.approx([-1.5, -1.4, -3.5, 0.0])

    # the baselines on the same numbers
    full = combine_logps(plan_masks("full", noise_mask, noise), lp0[None])
    assert full[0].tolist() == pytest.approx([-1.0, -2.0, -3.0, 0.0])
    noise.u2 = torch.tensor([[0.5, 0.9, 0.1, 0.0]])  # mb = u2 < 1 - t = 0.75 -> [T, F, T, F]
    dec = plan_masks("decoupled", noise_mask, noise)
    assert dec.completion_masks[2].tolist() == [[True, False, True, False]]
    est_d = combine_logps(dec, torch.stack([lp0, lp1, lp2]))
    # token 0: a and b -> (-1 + -0.5/0.25 + -9/0.75)/2 = (-1 - 2 - 12)/2 = -7.5
    # token 1: neither  -> -2/2 = -1
    # token 2: a and b -> (-3 - 4 - 12)/2 = -9.5
    assert est_d[0].tolist() == pytest.approx([-7.5, -1.0, -9.5, 0.0])


def test_noise_is_per_sample_and_per_iteration():
    a = draw_mask_noise(5, [10, 11, 12], iteration=0, completion_len=8)
    b = draw_mask_noise(5, [12], iteration=0, completion_len=8)
    c = draw_mask_noise(5, [12], iteration=1, completion_len=8)
    assert torch.equal(a.u[2], b.u[0]) and torch.equal(a.t[2], b.t[0])  # independent of batch composition
    assert not torch.equal(b.u, c.u)
    assert ((a.t >= 0.2) & (a.t <= 0.8)).all()


def test_d1_masks_prompt_but_not_the_first_token_of_a_shift_model():
    B, P, L = 2, 30, 4
    pmask = torch.ones(B, P, dtype=torch.long)
    pmask[1, :5] = 0  # left padding
    noise = draw_mask_noise(0, [0, 1], 0, L, prompt_len=P)
    noise.u_prompt = torch.zeros(B, P)  # every prompt token would be masked
    plan = plan_masks("d1", torch.ones(B, L, dtype=torch.bool), noise, prompt_mask=pmask, d1_p_mask_prompt=0.15, shift=True)
    pm = plan.prompt_masks[0]
    assert not pm[0, 0] and pm[0, 1:].all()
    assert not pm[1, :6].any() and pm[1, 6:].all()  # padding and the first real token stay
    assert plan.completion_masks.shape == (1, B, L) and plan.completion_masks.all()


@pytest.fixture(scope="module")
def tiny():
    from diffucode.models import build_tiny_model

    model, tok = build_tiny_model(hidden_size=32, num_layers=2, seed=0)
    return model, tok


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_batched_passes_equal_one_by_one_and_a_manual_forward(tiny, estimator):
    model, _ = tiny
    g = torch.Generator().manual_seed(1)
    B, P, L = 2, 5, 6
    prompt = torch.randint(10, 300, (B, P), generator=g)
    pmask = torch.ones(B, P, dtype=torch.long)
    pmask[0, :2] = 0
    comp = torch.randint(10, 300, (B, L), generator=g)
    nm = torch.ones(B, L, dtype=torch.bool)
    noise = draw_mask_noise(0, [0, 1], 0, L, prompt_len=P)
    plan = plan_masks(estimator, nm, noise, prompt_mask=pmask, shift=model.shift)
    with torch.no_grad():
        a = estimate_logps(model, prompt, pmask, comp, plan, batch_passes=True)
        b = estimate_logps(model, prompt, pmask, comp, plan, batch_passes=False)
        # manual: each pass separately, log-softmax over the aligned completion logits
        x = masked_inputs(prompt, comp, plan, model.mask_token_id).view(-1, B, P + L)
        attn = torch.cat([pmask, torch.ones(B, L, dtype=torch.long)], 1)
        lps = torch.stack([
            torch.log_softmax(model(x[k], attention_mask=attn).logits[:, P:], -1).gather(-1, comp[..., None])[..., 0]
            for k in range(x.shape[0])
        ])
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(a, combine_logps(plan, lps), atol=1e-5)
    assert torch.isfinite(a).all() and (a < 0).all()


def test_estimate_with_grad_equals_no_grad_estimate(tiny):
    # the old-policy estimate (no grad, rollout time) and the first inner update's estimate
    # (grad on, same masks, same weights) are bitwise equal, so the first ratio is exactly 1
    model, _ = tiny
    g = torch.Generator().manual_seed(2)
    prompt = torch.randint(10, 300, (3, 4), generator=g)
    pmask = torch.ones(3, 4, dtype=torch.long)
    comp = torch.randint(10, 300, (3, 5), generator=g)
    plan = plan_masks("coupled", torch.ones(3, 5, dtype=torch.bool), draw_mask_noise(0, [0, 1, 2], 0, 5))
    with torch.no_grad():
        old = estimate_logps(model, prompt, pmask, comp, plan)
    new = estimate_logps(model, prompt, pmask, comp, plan)
    assert new.requires_grad
    assert torch.equal(torch.exp(new.detach() - old), torch.ones_like(old))


def test_token_logps_is_log_softmax_gather():
    logits = torch.randn(2, 3, 7)
    tg = torch.randint(0, 7, (2, 3))
    ref = torch.log_softmax(logits, -1).gather(-1, tg[..., None])[..., 0]
    assert torch.allclose(token_logps(logits, tg), ref, atol=1e-6)


def test_variance_coupled_below_decoupled_and_mean_matches_monte_carlo_elbo(tiny):
    """Measured, not assumed: on a fixed tiny model and completion, the sequence-level estimate's
    variance over mask seeds is lower for coupled than for decoupled, and the coupled mean matches
    the Monte-Carlo ELBO.

    Target: E[coupled_k] = (lp0_k + E_t[f_k(t) + f_k(1-t)]) / 2 with f_k(s) the expected log-prob
    of token k when it is masked and the others are masked w.p. s; as t ~ U(0.2, 0.8) is symmetric,
    that is lp0_k / 2 + E_t[f_k(t)], and E_t[f_k(t)] = E[1{k masked} lp_k / t] is the usual
    single-mask (1/t-weighted) ELBO term, estimated here from independent single masks.
    """
    model, _ = tiny
    g = torch.Generator().manual_seed(3)
    P, L, S = 4, 12, 96  # prompt, completion, mask seeds
    prompt = torch.randint(10, 300, (1, P), generator=g).expand(S, -1)
    comp = torch.randint(10, 300, (1, L), generator=g).expand(S, -1)
    pmask = torch.ones(S, P, dtype=torch.long)
    nm = torch.ones(S, L, dtype=torch.bool)
    noise = draw_mask_noise(11, list(range(S)), 0, L)
    with torch.no_grad():
        seq = {}
        for est in ("coupled", "decoupled"):
            plan = plan_masks(est, nm, noise)
            seq[est] = estimate_logps(model, prompt, pmask, comp, plan).sum(1).double()  # [S]
        # Monte-Carlo ELBO from single masks (fresh seeds): sum_k 1{masked} lp_k / t
        M = 4 * S
        mc_noise = draw_mask_noise(12, list(range(M)), 0, L)
        single = mc_noise.u < mc_noise.t[:, None]  # [M, L]
        x = torch.cat([prompt[:1].expand(M, -1), torch.where(single, model.mask_token_id, comp[:1].expand(M, -1))], 1)
        lp = token_logps(model(x).logits[:, P:], comp[:1].expand(M, -1))
        elbo = (torch.where(single, lp, torch.zeros_like(lp)) / mc_noise.t[:, None]).sum(1).double()  # [M]
        x0 = torch.cat([prompt[:1], torch.full((1, L), model.mask_token_id)], 1)
        lp0 = token_logps(model(x0).logits[:, P:], comp[:1]).sum().double()
    var_c, var_d = seq["coupled"].var().item(), seq["decoupled"].var().item()
    assert var_c < 0.5 * var_d, (var_c, var_d)
    target = lp0 / 2 + elbo.mean()
    se = (seq["coupled"].var() / S + elbo.var() / M).sqrt()
    assert abs(seq["coupled"].mean() - target) < 4 * se + 1e-3, (seq["coupled"].mean().item(), target.item(), se.item())
    # decoupled has the same expectation (its variance is the only difference)
    se_d = (seq["decoupled"].var() / S + elbo.var() / M).sqrt()
    assert abs(seq["decoupled"].mean() - target) < 4 * se_d + 1e-3
