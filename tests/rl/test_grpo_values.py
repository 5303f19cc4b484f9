"""Coupled-GRPO's loss VALUE against an independent computation (passes built and combined by
hand), the recipe's old-policy estimate and KL term checked on a step where the policy has left
the reference, reference mixing, and the reference-compatibility switches changing numbers."""

import json
import math
from pathlib import Path

import pytest
import torch

from diffucode.config import load_config
from diffucode.models import build_tiny_model
from diffucode.recipes.rl import RLConfig, sync_reference, train_rl
from diffucode.rl import draw_mask_noise, estimate_logps, grpo_loss, plan_masks

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "rl" / "coupled_grpo_tiny.yaml"


def _logp_by_hand(model, prompt, comp, masked):
    """log p(clean completion token) at the masked positions of one pass, by hand."""
    M = model.mask_token_id
    x = torch.cat([prompt, torch.where(masked, torch.full_like(comp, M), comp)], 1)
    with torch.no_grad():
        logits = model(x).logits[:, prompt.shape[1]:].double()
    return logits.gather(-1, comp[..., None]).squeeze(-1) - torch.logsumexp(logits, -1)


def test_coupled_grpo_loss_value():
    policy, tok = build_tiny_model(hidden_size=32, num_layers=2, seed=0)
    ref, _ = build_tiny_model(hidden_size=32, num_layers=2, seed=1)
    old, _ = build_tiny_model(hidden_size=32, num_layers=2, seed=2)
    g = torch.Generator().manual_seed(0)
    B, P, L = 3, 4, 6
    prompt = torch.randint(10, 300, (B, P), generator=g)
    comp = torch.randint(10, 300, (B, L), generator=g)
    loss_mask = torch.ones(B, L, dtype=torch.bool)
    loss_mask[2, 4:] = False  # post-EOS padding: noised, not in the loss
    adv = torch.tensor([1.0, -0.5, 0.25])
    noise = draw_mask_noise(7, [0, 1, 2], 0, L)
    plan = plan_masks("coupled", torch.ones(B, L, dtype=torch.bool), noise)
    ones = torch.ones(B, P, dtype=torch.long)
    got = grpo_loss(estimate_logps(policy, prompt, ones, comp, plan), estimate_logps(old, prompt, ones, comp, plan).detach(),
                    adv, loss_mask, ref_logp=estimate_logps(ref, prompt, ones, comp, plan).detach(), beta=0.3,
                    clip_eps=0.2).loss.item()

    # by hand: m1 = u < t, m2 its complement; estimate = (full + (m1 ? v1/t : v2/(1-t))) / 2
    t = noise.t.double()[:, None]
    m1 = noise.u < noise.t[:, None]

    def est(model):
        full = _logp_by_hand(model, prompt, comp, torch.ones(B, L, dtype=torch.bool))
        v1, v2 = _logp_by_hand(model, prompt, comp, m1), _logp_by_hand(model, prompt, comp, ~m1)
        return (full + torch.where(m1, v1 / t, v2 / (1 - t))) / 2

    lp, lo, lr = est(policy), est(old), est(ref)
    total = 0.0
    for i in range(B):
        for k in range(L):
            if not loss_mask[i, k]:
                continue
            rho = math.exp(lp[i, k] - lo[i, k])
            a = adv[i].item()
            d = (lr[i, k] - lp[i, k]).item()  # a float: pytest.approx (9.2) refuses a 0-d tensor
            total += -min(rho * a, min(max(rho, 0.8), 1.2) * a) + 0.3 * (math.exp(d) - d - 1)
    assert got == pytest.approx(total / loss_mask.sum().item(), rel=1e-4, abs=1e-6)


def _varied_reward(prompts, completions, completion_ids, **columns):  # TRL signature
    return [(sum(ids) % 7) / 7 for ids in completion_ids]  # differs within a group: nonzero advantages


def _run(tmp_path, name, *overrides):
    cfg = load_config(RLConfig, TINY, [f"output_dir={tmp_path / name}", "save_every=0", "logging.progress_bar=false",
                                       "rollout.max_new_tokens=8", "rollout.steps=8", "prompts_per_step=1",
                                       "logging.log_every=1", "reward.funcs=[format]", "reward.weights=[1.0]", *overrides])
    train_rl(cfg, reward_funcs=[_varied_reward])
    return [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]


def test_second_step_old_estimate_is_the_policy_and_kl_is_in_the_loss(tmp_path):
    """mu = 1 and no reference re-sync: on step 2 the policy has moved away from the reference.
    The only update's ratio must still be exactly 1 (the old-policy estimate is the policy at the
    rollout weights, not the reference), the KL must be positive, and it must be in the loss: at
    step 1 the KL gradient is exactly zero (policy == reference), so runs with beta 0.1 and 0.2
    reach step 2 with the same weights and rollouts, and their step-2 losses differ by 0.1 * KL."""
    common = ["max_steps=2", "grpo.mu=1", "grpo.ref_sync_every=0", "optim.lr=1e-2"]
    a = _run(tmp_path, "a", *common, "grpo.beta=0.1")
    b = _run(tmp_path, "b", *common, "grpo.beta=0.2")
    assert a[0]["kl"] == 0.0 and a[0]["kl_full_mask"] == 0.0  # step 1: the reference is the policy
    s2a, s2b = a[1], b[1]
    assert s2a["ratio"] == 1.0 and s2b["ratio"] == 1.0
    assert s2a["kl"] > 1e-6 and s2a["kl_full_mask"] > 1e-6
    assert s2b["kl"] == pytest.approx(s2a["kl"], rel=1e-5)  # same weights, same rollouts
    assert s2b["loss"] - s2a["loss"] == pytest.approx(0.1 * s2a["kl"], rel=1e-3, abs=1e-9)


def test_sync_reference_mixes():
    policy, _ = build_tiny_model(hidden_size=32, num_layers=1, seed=0)
    ref, _ = build_tiny_model(hidden_size=32, num_layers=1, seed=1)
    want = {k: 0.6 * p + 0.4 * r for (k, p), r in zip(policy.state_dict().items(), ref.state_dict().values())}
    sync_reference(ref, policy, 0.6)
    for k, v in ref.state_dict().items():
        assert torch.allclose(v, want[k], atol=1e-7), k
    sync_reference(ref, policy, 1.0)
    assert all(torch.equal(v, policy.state_dict()[k]) for k, v in ref.state_dict().items())


def test_hide_prompt_pads_changes_only_padded_rows():
    model, _ = build_tiny_model(hidden_size=32, num_layers=2, seed=0)
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(10, 300, (2, 5), generator=g)
    pmask = torch.ones(2, 5, dtype=torch.long)
    pmask[1, :2] = 0  # row 1 is left-padded
    comp = torch.randint(10, 300, (2, 4), generator=g)
    plan = plan_masks("coupled", torch.ones(2, 4, dtype=torch.bool), draw_mask_noise(0, [0, 1], 0, 4))
    with torch.no_grad():
        hidden = estimate_logps(model, prompt, pmask, comp, plan)
        seen = estimate_logps(model, prompt, pmask, comp, plan, hide_pads=False)
    assert torch.allclose(hidden[0], seen[0], atol=1e-6)
    assert not torch.allclose(hidden[1], seen[1], atol=1e-4)
