"""The pure remasking math against hand-worked values."""

import math

import torch

from diffucode.sampling import remasking as R


def test_dream_schedule_256_tokens_256_steps_is_0_1_dots_1_2():
    # ts = linspace(1, 1e-3, 257). Step 0: 1 - s/t = 0.999/256 and 256 * 0.999/256 = 0.999 -> int 0.
    # Step i > 0 with m = 257 - i masks left: t = 1 - 0.999 i/256, s = t - 0.999/256, so
    # m (1 - s/t) = m * 0.999 / (256 - 0.999 i) which is just above 1 -> 1. Two remain for the last step.
    counts = R.dream_schedule(256, 256)
    assert counts == [0] + [1] * 254 + [2]
    assert sum(counts) == 256


def test_dream_schedule_small_hand_checked():
    # 4 tokens, 4 steps: ts = [1, .75025, .5005, .25075, .001]
    # step 0: 4 * (1 - .75025) = 0.999 -> 0; step 1: 4 * (1 - .5005/.75025) = 1.33 -> 1;
    # step 2: 3 * (1 - .25075/.5005) = 1.497 -> 1; step 3 (last): the 2 left.
    assert R.dream_schedule(4, 4) == [0, 1, 1, 2]
    # "2x speed": 256 tokens in 128 steps reveals about 2 per step and everything at the end
    half = R.dream_schedule(256, 128)
    assert sum(half) == 256 and len(half) == 128 and max(half) <= 3


def test_dream_transfer_counts_per_row_and_last_step():
    ts = R.dream_timesteps(4)
    masked = torch.tensor([4, 8, 0])
    assert R.dream_transfer_counts(masked, ts[1], ts[2], last=False).tolist() == [1, 2, 0]  # 8 * .333 = 2.66 -> 2
    assert R.dream_transfer_counts(masked, ts[3], ts[4], last=True).tolist() == [4, 8, 0]


def test_llada_transfer_schedule_even_split_remainder_first():
    # 32 masks / 4 steps = 8 each; 30 = 4*7 + 2 -> the first two steps get 8; 5 = 4*1 + 1 -> [2,1,1,1]
    sched = R.llada_transfer_schedule(torch.tensor([32, 30, 5, 0]), 4)
    assert sched.tolist() == [[8, 8, 8, 8], [8, 8, 7, 7], [2, 1, 1, 1], [0, 0, 0, 0]]
    # block_length == L with steps == L: one per step
    assert R.llada_transfer_schedule(torch.tensor([6]), 6).tolist() == [[1] * 6]


def test_top_p_keeps_the_crossing_token_and_at_least_one():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    # cumulative .5, .8, .95, 1: remove where the mass *before* the token exceeds .7 -> keep 2
    kept = R.top_p_filter(logits, 0.7) > torch.finfo(torch.float32).min
    assert kept.tolist() == [[True, True, False, False]]
    # top_p smaller than the top token: still keeps it
    kept = R.top_p_filter(logits, 0.1) > torch.finfo(torch.float32).min
    assert kept.tolist() == [[True, False, False, False]]


def test_top_k_and_filter_order():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0]])
    kept = R.top_k_filter(logits, 2) > torch.finfo(torch.float32).min
    assert kept.tolist() == [[False, True, True, False]]
    both = R.filter_logits(logits, top_p=0.99, top_k=1)
    assert int(both.argmax()) == 1 and (both > torch.finfo(torch.float32).min).sum() == 1


def test_sample_tokens_greedy_and_seeded():
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    tokens, probs = R.sample_tokens(logits)
    assert tokens.tolist() == [1, 0]
    assert torch.allclose(probs.sum(-1), torch.ones(2))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, _ = R.sample_tokens(logits.repeat(20, 1), temperature=1.0, generator=g1)
    b, _ = R.sample_tokens(logits.repeat(20, 1), temperature=1.0, generator=g2)
    assert torch.equal(a, b) and len(set(a.tolist())) > 1


def test_confidence_scores_hand_values():
    probs = torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.7, 0.2, 0.1, 0.0]])
    tokens = torch.tensor([0, 1])
    assert torch.allclose(R.confidence(probs, tokens, "prob"), torch.tensor([0.25, 0.2]))
    assert torch.allclose(R.confidence(probs, tokens, "margin"), torch.tensor([0.0, 0.5]))
    # negative entropy: uniform over 4 -> -log 4; the surer row scores higher
    ent = R.confidence(probs, tokens, "neg_entropy")
    assert math.isclose(ent[0].item(), -math.log(4), rel_tol=1e-5)
    assert ent[1] > ent[0]


def test_gumbel_argmax_samples_softmax_of_logits_over_temperature():
    # logits (0, log 3): softmax gives p(1) = 0.75 at temperature 1; at temperature 0.5, 9/10
    g = torch.Generator().manual_seed(0)
    logits = torch.tensor([[0.0, math.log(3.0)]]).repeat(4000, 1)
    assert R.gumbel_argmax(logits).tolist() == [1] * 4000
    freq1 = R.gumbel_argmax(logits, 1.0, g).float().mean().item()
    freq05 = R.gumbel_argmax(logits, 0.5, g).float().mean().item()
    assert abs(freq1 - 0.75) < 0.03 and abs(freq05 - 0.9) < 0.02


def test_gumbel_top1_follows_softmax_of_score_over_alg_temp():
    # Gumbel-top-k is Dream's multinomial without replacement: the first pick ~ softmax(score / T)
    g = torch.Generator().manual_seed(1)
    scores = torch.tensor([0.0, 1.0, 2.0])
    target = torch.softmax(scores / 0.5, -1)
    picks = torch.stack([R.gumbel_perturb(scores, 0.5, g).argmax() for _ in range(3000)])
    freq = torch.bincount(picks, minlength=3).float() / 3000
    assert torch.allclose(freq, target.float(), atol=0.03)
    assert R.gumbel_perturb(torch.tensor([float("-inf")]), 0.5, g).item() == float("-inf")


def test_select_top_per_row_counts():
    scores = torch.tensor([[0.1, 0.9, 0.5, float("-inf")], [0.3, 0.2, 0.1, 0.0]])
    sel = R.select_top(scores, torch.tensor([2, 0]))
    assert sel.tolist() == [[False, True, True, False], [False, False, False, False]]


def test_threshold_reveals_at_least_one_per_row_with_candidates():
    cand = torch.tensor([[True, True, True], [True, False, True], [False, False, False]])
    scores = torch.tensor([[0.2, 0.5, 0.1], [0.95, float("-inf"), 0.97], [float("-inf")] * 3])
    probs = torch.tensor([[0.2, 0.5, 0.1], [0.95, 0.99, 0.97], [1.0, 1.0, 1.0]])
    sel = R.select_threshold(scores, probs, cand, 0.9)
    # row 0: nothing reaches 0.9 -> only the best (index 1); row 1: both candidates pass;
    # row 2: no candidates -> nothing, even though its (non-candidate) probabilities are 1
    assert sel.tolist() == [[False, True, False], [True, False, True], [False, False, False]]
    torch.manual_seed(0)
    for _ in range(20):
        c = torch.rand(4, 9) < 0.5
        c[:, 0] = True
        p = torch.rand(4, 9) * 0.5  # all below the threshold
        s = torch.where(c, torch.rand(4, 9), torch.tensor(float("-inf")))
        assert (R.select_threshold(s, p, c, 0.9).sum(1) == 1).all()


def test_origin_reveals_everything_at_the_last_step():
    ts = R.dream_timesteps(3)
    g = torch.Generator().manual_seed(0)
    assert R.select_origin(5, ts[2], ts[3], last=True, generator=g).all()
    draws = torch.stack([R.select_origin(1000, ts[0], ts[1], last=False, generator=g)]).float().mean().item()
    assert abs(draws - (1 - ts[1] / ts[0]).item()) < 0.05  # about one third
