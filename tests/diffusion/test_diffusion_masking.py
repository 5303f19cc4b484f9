"""Corruption: measured mask rates, the block-truncated schedule, warm-up cap, DiffuCoder extras."""

import pytest
import torch

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

MASK = 99


@pytest.mark.parametrize("t", [0.05, 0.3, 0.8])
def test_measured_mask_rate_close_to_t(t):
    L = 20000
    x0 = torch.arange(L)[None] % 50
    maskable = torch.ones(1, L, dtype=torch.bool)
    u = row_uniform(0, [7], L, stream=2)
    x_t, masked = mask_tokens(x0, maskable, torch.tensor([t]), u, MASK)
    rate = masked.float().mean().item()
    # binomial std at L = 20000 is at most 0.0035; 4 sigma
    assert abs(rate - t) < 0.015
    assert (x_t[masked] == MASK).all() and (x_t[~masked] == x0[~masked]).all()


def test_mask_tokens_respects_maskable():
    x0 = torch.tensor([[1, 2, 3, 4]])
    maskable = torch.tensor([[False, True, True, False]])
    u = torch.tensor([[0.0, 0.1, 0.9, 0.0]])
    x_t, masked = mask_tokens(x0, maskable, torch.tensor([0.5]), u, MASK)
    assert masked.tolist() == [[False, True, False, False]]
    assert x_t.tolist() == [[1, MASK, 3, 4]]


def test_row_uniform_depends_only_on_sample_id_and_stream():
    a = row_uniform(3, [10, 11, 12], 6, stream=2)
    b = row_uniform(3, [12, 10], 6, stream=2)
    assert torch.equal(a[2], b[0]) and torch.equal(a[0], b[1])
    assert not torch.equal(row_uniform(3, [10], 6, stream=1), a[:1])
    assert not torch.equal(row_uniform(4, [10], 6, stream=2), a[:1])
    # a longer draw extends a shorter one (padding a batch does not change the noise of a token)
    assert torch.equal(row_uniform(3, [10], 40, stream=2)[:, :6], a[:1])
    assert mix_seed(1, 2) != mix_seed(2, 1)


def test_mdm_time_range():
    u = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(mdm_time(u, eps=1e-3), torch.tensor([1e-3, 1e-3 + 0.999 * 0.5, 1.0]))


def test_warmup_cap_follows_formula():
    S, u0 = 100, 1e-3
    for s in [0, 1, 25, 50, 99]:
        assert warmup_mask_cap(s, S, u0) == pytest.approx(u0 + (1 - u0) * s / S)
        assert in_warmup(s, S)
    assert warmup_mask_cap(100, S, u0) == 1.0 and warmup_mask_cap(1000, S, u0) == 1.0
    assert not in_warmup(100, S) and not in_warmup(0, 0)
    assert warmup_mask_cap(5, 0) == 1.0  # no warm-up
    # linear rise: equal increments
    caps = [warmup_mask_cap(s, S, u0) for s in range(0, 100, 10)]
    diffs = [b - a for a, b in zip(caps, caps[1:])]
    assert max(diffs) - min(diffs) < 1e-12
    # the draws respect the cap
    u = row_uniform(0, range(1000), 1, stream=1)[:, 0]
    cap = warmup_mask_cap(30, S, u0)
    t = warmup_time(u, cap)
    assert t.max() <= cap and t.min() >= 0 and t.mean() == pytest.approx(cap / 2, rel=0.1)


def test_block_truncated_rate():
    u = torch.tensor([0.0, 0.1, 0.25, 0.6, 1.0])
    assert torch.allclose(block_truncated_rate(u, 4), torch.tensor([0.25, 0.25, 0.25, 0.6, 1.0]))
    assert block_truncated_rate(u, 4).reciprocal().max() <= 4  # weight at most B


def test_block_truncated_schedule_never_leaves_a_block_unsupervised():
    B, L, blk = 64, 22, 4  # 22 is not a multiple of 4: the last block is partial
    x0 = torch.randint(0, 50, (B, L))
    maskable = torch.ones(B, L, dtype=torch.bool)
    maskable[:, :5] = False  # a "prompt" covering block 0 and part of block 1
    maskable[3, 8:12] = False  # one block of row 3 has nothing to supervise
    ids = list(range(B))
    u = row_uniform(0, ids, 1, 1)[:, 0] * 0.05  # tiny rates: most blocks would get no mask
    rate = block_truncated_rate(u, blk)[:, None].expand(B, L)
    _, masked = mask_tokens(x0, maskable, rate, row_uniform(0, ids, L, 2), MASK)
    forced = force_one_mask_per_block(masked, maskable, blk, row_uniform(0, ids, L, 3))
    assert not (forced & ~maskable).any()
    assert (forced | ~masked).all()  # only adds masks
    for b in range(B):
        for start in range(0, L, blk):
            sl = slice(start, start + blk)
            if maskable[b, sl].any():
                assert forced[b, sl].any(), (b, start)
                if not masked[b, sl].any():  # exactly one forced mask where there was none
                    assert forced[b, sl].sum() == 1
            else:
                assert not forced[b, sl].any()
    # without the floor at 1/B many blocks would have stayed empty: the fix did something
    assert (forced & ~masked).any()


def test_forced_mask_position_is_uniform_over_maskable():
    # one block of 4 tokens, 3 maskable; across many rows the forced position is spread evenly
    n = 3000
    maskable = torch.tensor([[False, True, True, True]]).expand(n, 4)
    masked = torch.zeros(n, 4, dtype=torch.bool)
    forced = force_one_mask_per_block(masked, maskable, 4, row_uniform(1, range(n), 4, 3))
    counts = forced.sum(0).tolist()
    assert counts[0] == 0 and sum(counts) == n
    assert all(abs(c / n - 1 / 3) < 0.04 for c in counts[1:])


def test_random_truncation_hand_example():
    am = torch.ones(3, 10, dtype=torch.long)
    u_sel = torch.tensor([0.001, 0.5, 0.002])
    u_len = torch.tensor([0.0, 0.0, 0.999])
    out = random_truncation(am, u_sel, u_len, fraction=0.01, min_len=2)
    # row 0 selected, shortest length 2; row 1 not selected; row 2 selected, longest length 10
    assert out.sum(-1).tolist() == [2, 10, 10]
    assert out[0].tolist() == [1, 1] + [0] * 8


def test_clean_prefix_hand_example():
    maskable = torch.tensor([[False, True, True, True, True], [True] * 5])
    u_sel = torch.tensor([0.0, 0.9])
    u_len = torch.tensor([0.5, 0.0])
    out = clean_prefix(maskable, u_sel, u_len, fraction=0.01)
    # row 0: 4 maskable tokens, prefix length 1 + floor(0.5 * 3) = 2 of them become clean
    assert out.tolist() == [[False, False, False, True, True], [True] * 5]


def test_annealing_fraction_is_linear():
    assert annealing_fraction(0, 10) == 0.0
    assert annealing_fraction(5, 10) == 0.5
    assert annealing_fraction(10, 10) == 1.0 and annealing_fraction(50, 10) == 1.0
    assert annealing_fraction(0, 0) == 1.0  # no annealing: bidirectional at once


def test_maskable_region_and_padding():
    am = torch.tensor([[1, 1, 1, 0]])
    region = torch.tensor([[False, True, True, True]])
    assert maskable_positions(am, region).tolist() == [[False, True, True, False]]
