"""Each objective's loss VALUE against an independent computation written here: the noisy input
built by hand from the objective's mask, the attention pattern by a double loop, log-softmax by
hand, the weights from the schedule's formula. These catch leaks that gradient-direction tests
cannot: a block loss read from the clean half, a noisy input left unmasked, a wrong shift."""

import math

import pytest
import torch

from diffucode.diffusion.schedules import STREAM_T, mdm_time, row_uniform
from diffucode.models import build_tiny_model
from diffucode.training.config import DiffusionConfig
from diffucode.training.objectives import BlockObjective, MDMObjective

torch.set_num_threads(1)


def _batch(tok, B=4, L=12, region_from=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, len(tok) - 1, (B, L), generator=g)
    b = {"input_ids": ids, "attention_mask": torch.ones(B, L, dtype=torch.long), "sample_ids": torch.arange(B)}
    if region_from is not None:
        region = torch.zeros(B, L, dtype=torch.bool)
        region[:, region_from:] = True
        b["loss_region"] = region
    return b


def _nll(logits, targets):
    """-log softmax by hand: logsumexp minus the target's logit."""
    return torch.logsumexp(logits.double(), -1) - logits.double().gather(-1, targets[..., None]).squeeze(-1)


def _mdm_expected(model, prep, b, seed, eps, shift):
    x0, M = b["input_ids"], model.mask_token_id
    x_t = torch.where(prep.masked, torch.full_like(x0, M), x0)
    with torch.no_grad():
        raw = model(x_t, attention_mode="bidirectional", align=False).logits  # [B, L, V] raw outputs
    aligned = torch.cat([raw[:, :1], raw[:, :-1]], 1) if shift else raw  # token j read from output j-1
    t = mdm_time(row_uniform(seed, b["sample_ids"], 1, STREAM_T), eps)  # [B, 1]
    return (_nll(aligned, x0) * prep.masked / t.double()).sum().item()


@pytest.mark.parametrize("region_from", [None, 5], ids=["mdm", "sft"])
def test_mdm_and_sft_loss_values(region_from):
    model, tok = build_tiny_model(hidden_size=32, num_layers=2, shift=True, seed=0)
    seed, eps = 3, 1e-3
    obj = MDMObjective(DiffusionConfig(eps=eps), seed, model.mask_token_id, shift=True)
    b = _batch(tok, region_from=region_from)
    prep = obj.prepare(b, step=None)
    assert 0 < prep.masked.sum() < prep.masked.numel()
    if region_from is not None:
        assert not prep.masked[:, :region_from].any()  # the prompt is never masked
        assert prep.count.item() == 4 * (12 - region_from)  # normalised by the supervisable (response) tokens
    assert not prep.masked[:, 0].any()  # shift: a row's first token has no prediction
    with torch.no_grad():
        got = obj.loss_sum(model, prep).item()
    assert got == pytest.approx(_mdm_expected(model, prep, b, seed, eps, shift=True), rel=1e-4)


def _block_mask_by_loops(L, Bk):
    m = torch.zeros(2 * L, 2 * L, dtype=torch.bool)
    for i in range(2 * L):
        for j in range(2 * L):
            bi, bj = (i % L) // Bk, (j % L) // Bk
            if i < L:  # noisy query: own block's noisy tokens, earlier blocks' clean tokens
                m[i, j] = (j < L and bi == bj) or (j >= L and bj < bi)
            else:  # clean query: clean tokens of blocks <= its own
                m[i, j] = j >= L and bj <= bi
    return m


@pytest.mark.parametrize("region_from", [None, 3], ids=["pretrain", "sft_partial_blocks"])
def test_block_loss_value(region_from):
    Bk, L, seed, eps = 4, 12, 5, 1e-3
    model, tok = build_tiny_model(hidden_size=32, num_layers=2, attention="block_causal", block_len=Bk,
                                  shift=False, arch="llama", seed=1)
    obj = BlockObjective(DiffusionConfig(eps=eps), seed, model.mask_token_id, shift=False, block_len=Bk)
    b = _batch(tok, region_from=region_from)
    prep = obj.prepare(b, step=None)
    x0, M = b["input_ids"], model.mask_token_id
    x0_rows = x0.shape[0]
    x_t = torch.where(prep.masked, torch.full_like(x0, M), x0)
    assert torch.equal(prep.model_inputs["input_ids"][:, :L], x_t)  # the noisy half really is noised
    pos = torch.arange(L).repeat(2)[None].expand(x0_rows, -1)
    mask4 = _block_mask_by_loops(L, Bk)[None, None].expand(x0_rows, 1, -1, -1)
    with torch.no_grad():
        logits = model(torch.cat([x_t, x0], 1), position_ids=pos, attn_mask_4d=mask4).logits[:, :L]
    # weight 1/pi, pi = r + (1 - r)^n / n with r = max(u, 1/B) and n the block's maskable tokens
    r = mdm_time(row_uniform(seed, b["sample_ids"], 1, STREAM_T), eps).clamp(min=1 / Bk).double()  # [B, 1]
    maskable = torch.ones(x0_rows, L, dtype=torch.bool) if region_from is None else b["loss_region"]
    n = torch.stack([maskable[:, (j // Bk) * Bk:(j // Bk + 1) * Bk].sum(1) for j in range(L)], 1).double()
    pi = r + (1 - r) ** n / n
    expected = (_nll(logits, x0) * prep.masked / pi).sum().item()
    with torch.no_grad():
        got = obj.loss_sum(model, prep).item()
    assert got == pytest.approx(expected, rel=1e-4)
    # the loss must not be readable off the clean half (which holds the answers)
    with torch.no_grad():
        clean = model(torch.cat([x_t, x0], 1), position_ids=pos, attn_mask_4d=mask4).logits[:, L:]
    assert abs((_nll(clean, x0) * prep.masked / pi).sum().item() - expected) > 1e-3 * abs(expected)
