"""Block-diffusion mask vs a double loop; annealed causal masks."""

import pytest
import torch

from diffucode.diffusion.block import annealed_attention_mask, block_diffusion_inputs, block_diffusion_mask


def reference_mask(positions: list[int], block_len: int) -> list[list[bool]]:
    """Double loop straight from the definition (BD3-LM layout, x_t ++ x0)."""
    L = len(positions)
    out = [[False] * (2 * L) for _ in range(2 * L)]
    for qi in range(2 * L):
        q_noisy, q_blk = qi < L, positions[qi % L] // block_len
        for ki in range(2 * L):
            k_noisy, k_blk = ki < L, positions[ki % L] // block_len
            if q_noisy and k_noisy:
                out[qi][ki] = k_blk == q_blk  # own block, noisy
            elif q_noisy and not k_noisy:
                out[qi][ki] = k_blk < q_blk  # earlier blocks, clean
            elif not q_noisy and not k_noisy:
                out[qi][ki] = k_blk <= q_blk  # clean half is block-causal
            else:
                out[qi][ki] = False  # clean never sees noisy
    return out


@pytest.mark.parametrize("L,block_len", [(8, 4), (7, 4), (6, 1), (5, 2), (4, 8)])
def test_block_mask_matches_double_loop(L, block_len):
    got = block_diffusion_mask(None, L, block_len)
    assert got.shape == (1, 1, 2 * L, 2 * L)
    assert got[0, 0].tolist() == reference_mask(list(range(L)), block_len)


def test_block_mask_with_left_padding_positions():
    am = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]])
    x0 = torch.arange(14).view(2, 7)
    inputs = block_diffusion_inputs(x0.clone(), x0, am, block_len=2)
    pos = inputs["position_ids"]
    assert pos[0].tolist() == [0, 0, 0, 1, 2, 3, 4] * 2  # both halves repeat the positions
    assert pos[1].tolist() == list(range(7)) * 2
    for b in range(2):
        assert inputs["attn_mask_4d"][b, 0].tolist() == reference_mask(pos[b, :7].tolist(), 2)
    assert inputs["attention_mask"].tolist() == torch.cat([am, am], 1).tolist()
    assert inputs["input_ids"].shape == (2, 14)


def test_annealed_mask_endpoints_and_fraction():
    L = 64
    u = torch.rand(L, L, generator=torch.Generator().manual_seed(0))
    causal = torch.tril(torch.ones(L, L, dtype=torch.bool))
    assert torch.equal(annealed_attention_mask(L, 0.0, u), causal)
    assert annealed_attention_mask(L, 1.0, u).all()
    m = annealed_attention_mask(L, 0.3, u)
    assert (m | ~causal).all() and (m & causal).sum() == causal.sum()  # causal part always open
    future = ~causal
    assert abs(m[future].float().mean().item() - 0.3) < 0.03
    band = annealed_attention_mask(8, 0.5, style="band")  # width round(0.5 * 7) = 4 (round half to even)
    assert band[0].tolist() == [True] * 5 + [False] * 3
    assert annealed_attention_mask(8, 1.0, style="band").all()
    assert torch.equal(annealed_attention_mask(8, 0.0, style="band"), torch.tril(torch.ones(8, 8, dtype=torch.bool)))
