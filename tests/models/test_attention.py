"""Attention patterns: bidirectional really is, block-causal sees exactly its own and earlier
blocks, causal is causal; padded batches equal unpadded rows; the block-causal KV cache is exact."""

import pytest
import torch
from transformers import DynamicCache

from diffucode.models import build_attention_mask, build_tiny_model
from diffucode.models.attention import block_causal_reference


@pytest.fixture(scope="module")
def models():
    return {
        "bidirectional": build_tiny_model(attention="bidirectional", shift=True, hidden_size=32)[0],
        "block_causal": build_tiny_model(attention="block_causal", shift=False, block_len=4, hidden_size=32)[0],
        "causal": build_tiny_model(attention="causal", shift=False, hidden_size=32)[0],
    }


def _perturb_effect(model, n=12, pos=None):
    """Which output positions change when the token at ``pos`` changes."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 300, (1, n), generator=g)
    pos = n - 1 if pos is None else pos
    ids2 = ids.clone()
    ids2[0, pos] = (ids[0, pos] + 7) % 300 + 10
    with torch.no_grad():
        a = model(ids, align=False).logits
        b = model(ids2, align=False).logits
    return ((a - b).abs().amax(-1) > 1e-6)[0].tolist()


def test_bidirectional_first_position_sees_last_token(models):
    changed = _perturb_effect(models["bidirectional"])
    assert all(changed)  # including position 0


def test_block_causal_sees_exactly_own_and_earlier_blocks(models):
    for pos in (1, 5, 9):
        changed = _perturb_effect(models["block_causal"], pos=pos)
        block = pos // 4
        assert changed == [i // 4 >= block for i in range(12)], (pos, changed)


def test_causal(models):
    changed = _perturb_effect(models["causal"], pos=5)
    assert changed == [i >= 5 for i in range(12)]


def test_block_mask_matches_double_loop():
    positions = list(range(10))
    mask = build_attention_mask("block_causal", torch.ones(1, 10), 10, block_len=3)[0, 0]
    assert mask.tolist() == block_causal_reference(positions, 3)


def test_left_padding_hides_pads_and_keeps_rows_finite():
    pad = torch.tensor([[0, 0, 1, 1, 1]])
    m = build_attention_mask("bidirectional", pad, 5)[0, 0]
    assert not m[2:, :2].any() and m[2:, 2:].all()
    assert m.any(-1).all()  # no query row is empty (an empty row makes SDPA return NaN)
    mc = build_attention_mask("causal", pad, 5)[0, 0]
    assert mc[0].tolist() == [True, False, False, False, False]  # a causal pad query falls back to itself
    mb = build_attention_mask("block_causal", pad, 5, block_len=2)[0, 0]
    # real positions 0,1,2 -> blocks 0,0,1 (aligned from the first real token)
    assert mb[2:, 2:].tolist() == [[True, True, False], [True, True, False], [True, True, True]]


@pytest.mark.parametrize("mode", ["bidirectional", "block_causal", "causal"])
def test_padded_batch_equals_rows(models, mode):
    model = models[mode]
    g = torch.Generator().manual_seed(3)
    rows = [torch.randint(10, 300, (n,), generator=g) for n in (9, 5, 7)]
    N = max(len(r) for r in rows)
    ids = torch.full((3, N), 1)
    att = torch.zeros(3, N, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, N - len(r):] = r
        att[i, N - len(r):] = 1
    with torch.no_grad():
        batched = model(ids, att, align=False).logits
        assert torch.isfinite(batched).all()
        for i, r in enumerate(rows):
            single = model(r[None], align=False).logits[0]
            torch.testing.assert_close(batched[i, N - len(r):], single, atol=1e-5, rtol=1e-4)


def test_block_causal_cache_is_exact_with_padding(models):
    model = models["block_causal"]
    ids = torch.randint(10, 300, (2, 14))
    att = torch.ones(2, 14, dtype=torch.long)
    # Left padding in row 1. The cache is exact when the cached prefix ends on a block boundary of
    # every row: with 4 pads and block_len 4, row 1's blocks start at indices 4, 8, ... like row 0's.
    att[1, :4] = 0
    with torch.no_grad():
        full = model(ids, att).logits
        cache = DynamicCache()
        model(ids[:, :8], att[:, :8], past_key_values=cache, use_cache=True)
        rest = model(ids[:, 8:], att, past_key_values=cache, use_cache=True).logits
    torch.testing.assert_close(rest, full[:, 8:], atol=1e-5, rtol=1e-4)


def test_bad_inputs(models):
    model = models["bidirectional"]
    with pytest.raises(ValueError, match="attention_mask has shape"):
        model(torch.ones(1, 4, dtype=torch.long), torch.ones(1, 5))
    with pytest.raises(ValueError, match="exceeds the model's context"):
        model(torch.ones(1, 2000, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown attention mode"):
        model(torch.ones(1, 4, dtype=torch.long), attention_mode="sideways")


@pytest.mark.parametrize("mode", ["bidirectional", "block_causal"])
def test_logit_positions_select_the_same_logits(models, mode):
    model = models[mode]
    ids = torch.randint(10, 300, (2, 10))
    idx = torch.tensor([0, 3, 4, 9])
    with torch.no_grad():
        full = model(ids).logits
        part = model(ids, logit_positions=idx).logits
        raw_full = model(ids, align=False).logits
        raw_part = model(ids, align=False, logit_positions=idx).logits
    torch.testing.assert_close(part, full[:, idx])
    torch.testing.assert_close(raw_part, raw_full[:, idx])


def test_cache_argument_follows_the_backbones_name_for_it():
    """transformers renamed the backbone's ``past_key_values`` argument to ``cache`` in 5.x (the old
    name warns and is removed in 5.40): the cache goes by whichever name the forward declares."""
    import warnings

    from diffucode.models.diffusion_lm import backbone_cache_kwarg, returned_cache

    class Old(torch.nn.Module):
        def forward(self, input_ids=None, past_key_values=None, use_cache=None):
            return None

    class New(torch.nn.Module):
        def forward(self, input_ids=None, cache=None, use_cache=None):
            return None

    class PeftLike(torch.nn.Module):
        def __init__(self, base):
            super().__init__()
            self.base = base

        def get_base_model(self):
            return self.base

        def forward(self, *args, **kwargs):
            return self.base(*args, **kwargs)

    assert backbone_cache_kwarg(Old()) == "past_key_values"
    assert backbone_cache_kwarg(New()) == "cache"
    assert backbone_cache_kwarg(PeftLike(New())) == "cache"
    assert returned_cache({"logits": 1, "cache": "C"}) == "C"
    assert returned_cache({"logits": 1, "past_key_values": "P"}) == "P"
    assert returned_cache({"logits": 1}) is None

    from diffucode.sampling import GenerationConfig, generate

    model, tok = build_tiny_model(attention="block_causal", shift=False, block_len=4, seed=0)
    ids = tok(["def f(x):\n"], return_tensors="pt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        generate(model, ids.input_ids, ids.attention_mask, GenerationConfig(max_new_tokens=8))  # exact KV cache
    assert not [w for w in caught if "past_key_values" in str(w.message)]
