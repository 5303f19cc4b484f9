"""The GRPO loss against hand-computed values, and the group baselines."""
import math

import pytest
import torch

from diffucode.rl import grpo_loss, group_advantages, kl3, weighted_reward


def _batch():
    # ratios rho = exp(logp - old) chosen by hand; old = 0
    ratios = torch.tensor([[1.5, 0.9, 1.0], [0.5, 1.5, 1.0]])
    logp = ratios.log().requires_grad_(True)
    old = torch.zeros(2, 3)
    adv = torch.tensor([1.0, -2.0])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    d = torch.zeros(2, 3)  # ref - logp
    d[0, 0] = -math.log(2.0)
    d[1, 2] = math.log(2.0)
    ref = logp.detach() + d
    return logp, old, adv, mask, ref


def test_loss_by_hand_with_clipping_on_both_sides_and_kl():
    logp, old, adv, mask, ref = _batch()
    out = grpo_loss(logp, old, adv, mask, ref_logp=ref, beta=0.1, clip_eps=0.2)
    # eps = 0.2: clip range [0.8, 1.2]
    # row 0, A = +1: tok0 rho 1.5 -> min(1.5, 1.2) = 1.2 (high clip)   -> -1.2
    #                tok1 rho 0.9 -> min(0.9, 0.9)                     -> -0.9
    #                tok2 outside the loss mask
    # row 1, A = -2: tok0 rho 0.5 -> min(-1.0, 0.8 * -2 = -1.6) = -1.6 (low clip) -> +1.6
    #                tok1 rho 1.5 -> min(-3.0, 1.2 * -2 = -2.4) = -3.0 (unclipped) -> +3.0
    #                tok2 rho 1.0 -> -2 -> +2.0
    # KL3 = e^d - d - 1: d = -ln2 -> 0.5 + ln2 - 1 = 0.193147; d = ln2 -> 2 - ln2 - 1 = 0.306853
    # total = -2.1 + 6.6 + 0.1 * (0.193147 + 0.306853) = 4.55 over 5 tokens -> 0.91
    assert out.loss.item() == pytest.approx(0.91, abs=1e-6)
    assert out.kl[0, 0].item() == pytest.approx(0.5 + math.log(2) - 1, abs=1e-6)
    assert out.stats["tokens"].item() == 5
    assert out.stats["clip_low_sum"].item() == 1 and out.stats["clip_high_sum"].item() == 1
    assert out.stats["clip_sum"].item() == 2
    assert out.stats["kl_sum"].item() == pytest.approx(0.5, abs=1e-6)
    out.loss.backward()
    g = logp.grad
    # clipped tokens pass no policy gradient; only the KL term: beta * (1 - e^d) / 5
    assert g[0, 0].item() == pytest.approx(0.1 * (1 - 0.5) / 5, abs=1e-6)
    assert g[1, 0].item() == pytest.approx(0.0, abs=1e-7)
    # unclipped: d(-rho A)/dlogp = -A rho = 3.0 -> / 5
    assert g[1, 1].item() == pytest.approx(3.0 / 5, abs=1e-6)
    assert g[0, 2].item() == 0.0  # outside the loss mask


def test_normalizer_and_no_reference():
    logp, old, adv, mask, _ = _batch()
    a = grpo_loss(logp, old, adv, mask, clip_eps=0.2)
    b = grpo_loss(logp, old, adv, mask, clip_eps=0.2, normalizer=10)
    assert a.kl is None
    # without KL: total = 4.5; over 5 tokens and over 10
    assert a.loss.item() == pytest.approx(0.9) and b.loss.item() == pytest.approx(0.45)


def test_asymmetric_clip():
    logp, old, adv, mask, _ = _batch()
    out = grpo_loss(logp, old, adv, mask, clip_eps=0.2, clip_eps_high=0.6)
    # row 0 tok0: rho 1.5 < 1.6 now unclipped -> -1.5; total = -1.5 - 0.9 + 6.6 = 4.2
    assert out.loss.item() == pytest.approx(4.2 / 5)


def test_at_ratio_one_the_gradient_is_the_policy_gradient():
    """At the first inner update (old = current, ref = current) the loss is -mean A, and its
    gradient per token is -A_i / N (REINFORCE with the group baseline): the KL term contributes no
    gradient at equality and no clipping applies. (The ratio itself is 1 by construction here;
    that the recipe's old estimate makes it 1 is tested in tests/rl/test_grpo_values.py.)"""
    logp = torch.randn(3, 4, requires_grad=True)
    adv = torch.tensor([0.5, -1.0, 2.0])
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[2, 3] = False
    out = grpo_loss(logp, logp.detach(), adv, mask, ref_logp=logp.detach(), beta=0.5, clip_eps=0.2)
    assert out.loss.item() == pytest.approx(-(0.5 * 4 - 1.0 * 4 + 2.0 * 3) / 11)
    out.loss.backward()
    want = (-adv[:, None] / 11).expand(3, 4) * mask
    assert torch.allclose(logp.grad, want, atol=1e-7)
    assert out.stats["clip_sum"].item() == 0 and out.stats["kl_sum"].item() == 0


def test_kl3_is_nonnegative_and_zero_at_equality():
    x = torch.linspace(-3, 3, 13)
    assert (kl3(x, torch.zeros_like(x)) >= 0).all()
    assert kl3(torch.zeros(2), torch.zeros(2)).tolist() == [0.0, 0.0]


def test_group_mean_and_leave_one_out():
    r = torch.tensor([1.0, 0.0, 0.0, 2.0, 2.0, 2.0])
    assert group_advantages(r, 3).tolist() == pytest.approx([2 / 3, -1 / 3, -1 / 3, 0, 0, 0])
    # leave one out: 1 - mean(0, 0) = 1; 0 - mean(1, 0) = -0.5
    assert group_advantages(r, 3, baseline="leave_one_out").tolist() == pytest.approx([1, -0.5, -0.5, 0, 0, 0])
    # std scaling (off by default): std of (1, 0, 0) = 0.57735
    s = group_advantages(r, 3, scale_std=True, eps=1e-4)
    assert s[0].item() == pytest.approx((2 / 3) / (0.5773503 + 1e-4), rel=1e-5)
    assert s[3:].tolist() == [0.0, 0.0, 0.0]  # a group with equal rewards stays at 0
    with pytest.raises(ValueError, match="multiple of group_size"):
        group_advantages(torch.zeros(5), 3)


def test_weighted_reward_skips_none():
    per_func = torch.tensor([[1.0, 1.0], [float("nan"), 0.5], [0.25, 0.0]])
    assert weighted_reward(per_func, [2.0, 0.5]).tolist() == pytest.approx([2.5, 0.25, 0.5])
