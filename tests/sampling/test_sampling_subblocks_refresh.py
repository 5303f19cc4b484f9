"""Larger blocks on block-causal models (SDAR-style), sub-block decoding (Fast-dLLM v2 style) and
the dual cache's refresh policy (``refresh_every``)."""

import copy

import pytest
import torch

from diffucode.config import ConfigError
from diffucode.models import build_tiny_model
from diffucode.sampling import GenerationConfig, generate

PROMPTS = ["def add(a, b):\n", "x = 1\n# sum of a list of numbers\ndef s(xs):\n"]


def _batch(tok):
    tok.padding_side = "left"
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    return enc.input_ids, enc.attention_mask


def _same(a, b):
    assert a.sequences.tolist() == b.sequences.tolist()
    assert a.order.tolist() == b.order.tolist()
    assert a.nfe == b.nfe


@pytest.mark.parametrize("fixture", ["block_model", "block_shift_model"])
@pytest.mark.parametrize("kw", [dict(), dict(steps=8), dict(threshold=0.3), dict(sub_block_len=4, threshold=0.3)])
def test_larger_block_is_the_model_with_that_block(request, fixture, kw):
    """block_len = 8 on a B = 4 model decodes exactly like the same weights switched to B = 8
    (the override is per call: the model itself keeps B = 4)."""
    model, tok = request.getfixturevalue(fixture)
    ids, amask = _batch(tok)
    cfg = GenerationConfig(max_new_tokens=16, stop_at_eos=False, alg="entropy", **kw)
    big = copy.deepcopy(model).set_attention("block_causal", block_len=8)
    over = generate(model, ids, amask, GenerationConfig(**{**cfg.__dict__, "block_len": 8}))
    assert model.block_len == 4
    _same(over, generate(big, ids, amask, cfg))
    # and it is not what B = 4 gives (the test would be empty otherwise)
    assert generate(model, ids, amask, cfg).order.tolist() != over.order.tolist()


@pytest.mark.parametrize("fixture", ["block_model", "block_shift_model"])
@pytest.mark.parametrize("kw", [dict(block_len=8), dict(block_len=16, steps=8), dict(block_len=16, sub_block_len=4),
                                dict(block_len=8, sub_block_len=2, threshold=0.2, steps=8),
                                dict(block_len=16, sub_block_len=8, threshold=0.2)])
def test_larger_blocks_cache_is_exact(request, fixture, kw):
    """With larger blocks and sub-blocks the KV cache of completed blocks is still exact: the
    same tokens, order and forward count as recomputing the whole canvas every step."""
    model, tok = request.getfixturevalue(fixture)
    ids, amask = _batch(tok)
    base = dict(max_new_tokens=16, stop_at_eos=False, alg="entropy", **kw)
    cached = generate(model, ids, amask, GenerationConfig(**base))
    full = generate(model, ids, amask, GenerationConfig(block_cache=False, **base))
    _same(cached, full)


@pytest.mark.parametrize("fixture,kw", [("block_model", dict(block_len=8)), ("block_model", dict()),
                                        ("llada_model", dict(block_len=8)), ("dream_model", dict(block_len=8))])
def test_sub_block_of_the_whole_block_is_plain_decoding(request, fixture, kw):
    model, tok = request.getfixturevalue(fixture)
    ids, amask = _batch(tok)
    bl = kw.get("block_len", 4)
    for extra in (dict(), dict(threshold=0.3), dict(steps=8)):
        base = dict(max_new_tokens=16, stop_at_eos=False, alg="entropy", **kw, **extra)
        _same(generate(model, ids, amask, GenerationConfig(**base)),
              generate(model, ids, amask, GenerationConfig(sub_block_len=bl, **base)))


@pytest.mark.parametrize("fixture,kw", [("block_model", dict(block_len=16)), ("block_shift_model", dict(block_len=8)),
                                        ("llada_model", dict(block_len=16))])
@pytest.mark.parametrize("sub", [1, 4])
def test_sub_blocks_are_decoded_left_to_right(request, fixture, kw, sub):
    """Every token of a sub-block is revealed before any token of the next one; sub-block 1 is
    one token per step, left to right (as many forwards as tokens)."""
    model, tok = request.getfixturevalue(fixture)
    ids, amask = _batch(tok)
    L = 16
    out = generate(model, ids, amask, GenerationConfig(max_new_tokens=L, stop_at_eos=False, alg="entropy",
                                                       sub_block_len=sub, **kw))
    for b in range(len(PROMPTS)):
        o = out.order[b].tolist()
        # sub-blocks are aligned to the blocks: of the canvas (bidirectional: from the completion's start)
        # or of the positions (block-causal: from each row's first token, so a completion starts inside one)
        lead = int(amask[b].sum()) if model.attention == "block_causal" else 0
        unit = [(lead + j) // sub for j in range(L)]
        for i in range(L):
            for j in range(L):
                if unit[j] > unit[i]:
                    assert o[i] < o[j], (b, i, j, o)
    if sub == 1:  # one forward per canvas column holding a completion token of some row
        width = L
        if model.attention == "block_causal":  # rows are placed with whole blocks of left padding
            lens, bl = amask.sum(1), kw["block_len"]
            g = bl * ((lens.max() - lens) // bl) + lens  # each row's completion column
            width = int(g.max() - g.min()) + L
        assert out.nfe == width


def test_sub_block_threshold_reveals_a_confident_sub_block_at_once(block_model, eos_after):
    """Positions the model is sure of (end-of-text after position 6) are revealed a whole
    sub-block per forward; the rest one at a time (threshold floor = one per step)."""
    model, tok = block_model
    ids = torch.tensor([tok("def f(x):\n").input_ids])
    P = ids.shape[1]
    sure = eos_after(model, cut=P + 8)
    out = generate(sure, ids, config=GenerationConfig(max_new_tokens=24, stop_at_eos=False, early_exit=False,
                                                      alg="entropy", block_len=8, sub_block_len=4, threshold=0.9))
    comp = out.completions[0]
    assert (comp[8:] == model.eos_token_id).all()
    o = out.order[0].tolist()
    groups = {}
    for j in range(8, 24):  # the sure positions, by sub-block (sub-blocks of 4 positions from position 0)
        groups.setdefault((P + j) // 4, []).append(o[j])
    for g in groups.values():  # a sure sub-block: one step reveals all of it
        assert len(set(g)) == 1, o
    assert out.nfe <= 8 + len(groups)


def test_sub_block_and_refresh_flags_are_checked():
    with pytest.raises(ConfigError, match="--sub-block-len: must be a positive integer"):
        GenerationConfig(sub_block_len=0)
    with pytest.raises(ConfigError, match="--sub-block-len: does not combine with --lookahead"):
        GenerationConfig(sub_block_len=4, threshold=0.9, lookahead=1)
    with pytest.raises(ConfigError, match="--refresh-every: applies to --cache dual only"):
        GenerationConfig(refresh_every=2, cache="prefix")
    with pytest.raises(ConfigError, match="--refresh-every: must be a positive integer"):
        GenerationConfig(refresh_every=0, cache="dual")


# ---------------------------------------------------------------------------------------------
# dual cache refresh policy
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=[False, True], ids=["llada", "dream"])
def one_layer(request):
    """One layer: a position's keys/values depend only on its own token and position, so the dual
    cache is exact as long as it holds the current tokens' keys/values. A refresh policy that
    forgets to re-encode the completed block gives different tokens here."""
    model, tok = build_tiny_model(hidden_size=32, num_layers=1, attention="bidirectional", shift=request.param,
                                  seed=3)
    with torch.no_grad():
        for p in model.backbone.parameters():
            if p.dim() == 2:
                p.mul_(12.0)
    return model, tok


@pytest.mark.parametrize("K", [1, 2, 3, 10])
@pytest.mark.parametrize("kw", [dict(), dict(steps=8), dict(threshold=0.3)])
def test_dual_cache_refresh_every_k_is_exact_on_one_layer(one_layer, K, kw):
    model, tok = one_layer
    ids, amask = _batch(tok)
    base = dict(max_new_tokens=16, block_len=4, stop_at_eos=False, alg="entropy", **kw)
    ref = generate(model, ids, amask, GenerationConfig(cache="none", **base))
    dual = generate(model, ids, amask, GenerationConfig(cache="dual", refresh_every=K, **base))
    assert dual.sequences.tolist() == ref.sequences.tolist()
    assert dual.order.tolist() == ref.order.tolist()


def test_refresh_every_costs_no_extra_forward_and_differs_on_deep_models(dream_model):
    """K > 1 skips the full-canvas passes: with a fixed schedule the forward count is the same as
    refreshing every block (the completed block rides along in the next block's first forward),
    the forwards are smaller, and on a multi-layer model the tokens may differ (approximate)."""
    model, tok = dream_model
    ids, amask = _batch(tok)
    base = dict(max_new_tokens=16, block_len=4, steps=8, stop_at_eos=False, alg="entropy", cache="dual")
    shapes = {}
    for K in (1, 4):
        seen = []
        hook = model.backbone.register_forward_pre_hook(lambda m, a, k: seen.append(k["input_ids"].shape[1]),
                                                        with_kwargs=True)
        try:
            out = generate(model, ids, amask, GenerationConfig(refresh_every=K, **base))
        finally:
            hook.remove()
        shapes[K] = (out.nfe, seen)
    assert shapes[1][0] == shapes[4][0] == 8
    W = ids.shape[1] + 16
    assert shapes[1][1].count(W) == 4  # a full-canvas pass at every block start
    assert shapes[4][1].count(W) == 1  # only at the first
    assert sum(shapes[4][1]) < sum(shapes[1][1])
