"""Hand-worked loss values on tiny tensors: weights, normalisation, shift, AR targets."""

import math

import pytest

import torch

from diffucode.diffusion.losses import ar_loss, block_diffusion_loss, mdm_loss, weighted_nll
from diffucode.diffusion.masking import maskable_positions

LN2, LN3 = math.log(2.0), math.log(3.0)
# logits whose softmax is [1/4, 1/4, 1/2]: -log p = ln4 for tokens 0 and 1, ln2 for token 2
SKEW = torch.log(torch.tensor([1.0, 1.0, 2.0]))
FLAT = torch.zeros(3)  # softmax [1/3, 1/3, 1/3]: -log p = ln3 for every token


def test_mdm_loss_weights_and_normaliser():
    logits = torch.stack([torch.stack([SKEW, FLAT]), torch.stack([SKEW, FLAT])])  # [2, 2, 3]
    x0 = torch.tensor([[2, 0], [0, 2]])
    masked = torch.tensor([[True, False], [True, True]])
    t = torch.tensor([0.5, 0.25])
    # row 0: position 0 masked, target 2 under SKEW -> ln2, weight 1/0.5 = 2          -> 2 ln2
    #        position 1 not masked                                                     -> 0
    # row 1: position 0 masked, target 0 under SKEW -> ln4 = 2 ln2, weight 1/0.25 = 4  -> 8 ln2
    #        position 1 masked, target 2 under FLAT -> ln3, weight 4                  -> 4 ln3
    total = 10 * LN2 + 4 * LN3
    assert torch.isclose(mdm_loss(logits, x0, masked, t, normalizer=4), torch.tensor(total / 4))
    # default normaliser: B * L = 4 positions
    assert torch.isclose(mdm_loss(logits, x0, masked, t), torch.tensor(total / 4))
    assert torch.isclose(mdm_loss(logits, x0, masked, t, normalizer=1.0), torch.tensor(total))
    # unweighted (warm-up): ln2 + 2 ln2 + ln3 over the 3 masked tokens
    unweighted = mdm_loss(logits, x0, masked, t, normalizer=3, weighted=False)
    assert torch.isclose(unweighted, torch.tensor((3 * LN2 + LN3) / 3))


def test_mdm_loss_per_position_rate_and_tensor_normaliser():
    logits = torch.stack([SKEW, SKEW, FLAT])[None]  # [1, 3, 3]
    x0 = torch.tensor([[2, 1, 1]])
    masked = torch.tensor([[True, True, False]])
    rate = torch.tensor([[0.5, 0.25, 0.9]])
    # ln2 / 0.5 + ln4 / 0.25 = 2 ln2 + 8 ln2 = 10 ln2; position 2 unmasked
    got = mdm_loss(logits, x0, masked, rate, normalizer=torch.tensor(5))
    assert torch.isclose(got, torch.tensor(10 * LN2 / 5))


def test_loss_is_zero_with_nothing_masked_but_keeps_graph():
    logits = torch.randn(1, 4, 3, requires_grad=True)
    loss = mdm_loss(logits, torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.bool), torch.ones(1))
    assert loss.item() == 0.0
    loss.backward()  # no error: still attached to the logits
    assert logits.grad is not None and logits.grad.abs().sum() == 0


def test_shift_model_reads_previous_output_and_never_masks_first_token():
    # A shift model's raw output at i predicts token i+1; the contract's aligned logits put it at i+1.
    raw = torch.stack([SKEW, FLAT, SKEW])[None]  # [1, 3, 3] raw backbone outputs
    aligned = torch.cat([raw[:, :1], raw[:, :-1]], dim=1)  # what DiffusionLM(align=True) returns
    x0 = torch.tensor([[1, 2, 0]])
    am = torch.ones(1, 3, dtype=torch.long)
    maskable = maskable_positions(am, shift=True)
    assert maskable.tolist() == [[False, True, True]]  # position 0 has no prediction
    masked = torch.tensor([[False, True, True]])
    # token 1 (=2) read from raw[0] = SKEW -> ln2; token 2 (=0) read from raw[1] = FLAT -> ln3; t = 1
    got = mdm_loss(aligned, x0, masked, torch.ones(1), normalizer=1.0)
    assert torch.isclose(got, torch.tensor(LN2 + LN3))
    # and the AR loss on the raw logits scores the same two predictions (next-token)
    assert torch.isclose(ar_loss(raw, x0, normalizer=1.0), torch.tensor(LN2 + LN3))


def test_shift_first_real_token_with_left_padding():
    am = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    region = torch.tensor([[True, True, True, True], [False, True, True, True]])
    assert maskable_positions(am, shift=True).tolist() == [[False, False, False, True], [False, True, True, True]]
    assert maskable_positions(am, region, shift=False).tolist() == [[False, False, True, True], [False, True, True, True]]


def test_ar_loss_targets_and_mean():
    raw = torch.stack([SKEW, FLAT, SKEW])[None]  # [1, 3, 3]
    ids = torch.tensor([[0, 2, 1]])
    # output 0 predicts ids[1] = 2 under SKEW -> ln2; output 1 predicts ids[2] = 1 under FLAT -> ln3
    assert torch.isclose(ar_loss(raw, ids), torch.tensor((LN2 + LN3) / 2))
    # only the last token as target (e.g. an SFT response of length 1): ln3
    target = torch.tensor([[False, False, True]])
    assert torch.isclose(ar_loss(raw, ids, target_mask=target), torch.tensor(LN3))
    # a padded last token is never a target
    am = torch.tensor([[1, 1, 0]])
    assert torch.isclose(ar_loss(raw, ids, attention_mask=am), torch.tensor(LN2))


def test_block_loss_reads_only_the_noisy_half():
    L = 2
    noisy = torch.stack([SKEW, FLAT])[None]  # [1, 2, 3]
    clean = torch.full((1, L, 3), 1e4) * torch.tensor([1.0, -1.0, 0.0])  # garbage that must be ignored
    logits = torch.cat([noisy, clean], dim=1)  # [1, 2L, 3]
    x0 = torch.tensor([[2, 0]])
    masked = torch.tensor([[True, True]])
    rate = torch.tensor([[0.25, 0.5]])
    # ln2 / 0.25 + ln3 / 0.5 = 4 ln2 + 2 ln3, over 2 tokens
    got = block_diffusion_loss(logits, x0, masked, rate, normalizer=2)
    assert torch.isclose(got, torch.tensor((4 * LN2 + 2 * LN3) / 2))
    assert torch.isclose(block_diffusion_loss(noisy, x0, masked, rate, normalizer=2), got)


def test_weighted_nll_matches_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    targets = torch.randint(0, 7, (2, 5))
    w = torch.rand(2, 5) * (torch.rand(2, 5) > 0.3)
    ref = (torch.nn.functional.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1), reduction="none") * w.reshape(-1)).sum()
    assert torch.allclose(weighted_nll(logits, targets, w), ref, atol=1e-5)


def test_certainty_loss_counts_only_masked_positions_predicted_right():
    from diffucode.diffusion.losses import certainty_loss

    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.5, 0.0]]])  # [1, 4, 3]
    x0 = torch.tensor([[0, 2, 2, 0]])  # right at 0, wrong at 1, right at 2 and 3
    masked = torch.tensor([[True, True, True, False]])  # position 3 is not supervised

    def entropy(row, temp=1.0):
        p = torch.softmax(row / temp, -1)
        return float(-(p * p.log()).sum())

    expected = entropy(logits[0, 0]) + entropy(logits[0, 2])
    assert certainty_loss(logits, x0, masked).item() == pytest.approx(expected, rel=1e-6)
    expected_t = entropy(logits[0, 0], 0.5) + entropy(logits[0, 2], 0.5)
    assert certainty_loss(logits, x0, masked, temperature=0.5).item() == pytest.approx(expected_t, rel=1e-6)
    none_right = certainty_loss(logits, torch.tensor([[1, 0, 0, 1]]), masked)
    assert none_right.item() == 0.0


def test_certainty_loss_gradient_sharpens_right_answers_and_leaves_wrong_ones():
    from diffucode.diffusion.losses import certainty_loss

    logits = torch.tensor([[[1.0, 0.5, 0.0], [0.0, 1.0, 0.2]]], requires_grad=True)
    x0 = torch.tensor([[0, 2]])  # position 0 right, position 1 wrong
    certainty_loss(logits, x0, torch.tensor([[True, True]])).backward()
    g = logits.grad[0]
    assert torch.equal(g[1], torch.zeros(3))  # a wrong prediction gets no push towards certainty
    stepped = logits.detach()[0, 0] - 0.5 * g[0]  # one descent step
    assert torch.softmax(stepped, -1)[0] > torch.softmax(logits.detach()[0, 0], -1)[0]  # the right token gains
