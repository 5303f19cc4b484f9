"""Threshold decoding is never slower than the step schedule it adds to (threshold_floor)."""

import pytest
import torch

from diffucode.config import ConfigError
from diffucode.sampling import GenerationConfig, generate

PROMPT = "def add(a, b):\n"


@pytest.mark.parametrize("fixture,kw", [
    ("llada_model", dict(alg="low_confidence", block_len=4)),
    ("block_model", dict(alg="low_confidence")),
    ("llada_model", dict(alg="random", block_len=6, temperature=0.5, seed=1)),
    ("dream_model", dict(alg="topk_margin", block_len=6)),  # Dream's first step reveals nothing: still no extra NFE
    ("block_shift_model", dict(alg="entropy")),
])
def test_unreachable_threshold_is_the_schedule(request, fixture, kw):
    """No candidate of these untrained models reaches p = 0.999, so with the floor the threshold
    adds nothing: the same tokens, order and NFE as the schedule alone. (Block-causal models take
    ceil(steps * B / L) steps per block, so a partial first block can add a few.)"""
    model, tok = request.getfixturevalue(fixture)
    ids = torch.tensor([tok(PROMPT).input_ids])
    for steps in (6, 12):
        plain = generate(model, ids, config=GenerationConfig(max_new_tokens=12, steps=steps, stop_at_eos=False, **kw))
        floor = generate(model, ids, config=GenerationConfig(max_new_tokens=12, steps=steps, threshold=0.999,
                                                             stop_at_eos=False, **kw))
        assert floor.sequences.tolist() == plain.sequences.tolist()
        assert floor.order.tolist() == plain.order.tolist()
        assert floor.nfe == plain.nfe
        if fixture in ("llada_model", "dream_model"):
            assert floor.nfe <= steps


def test_dream_schedule_floor(dream_model):
    """Dream's schedule reveals 0 tokens at its first step; a threshold step always reveals >= 1,
    so with the floor it can only finish sooner."""
    model, tok = dream_model
    ids = torch.tensor([tok(PROMPT).input_ids])
    for steps in (4, 6, 12):
        cfg = GenerationConfig(max_new_tokens=12, steps=steps, alg="topk_margin", block_len=6, stop_at_eos=False)
        plain = generate(model, ids, config=cfg)
        cfg.threshold = 0.999
        floor = generate(model, ids, config=cfg)
        assert floor.num_steps <= plain.num_steps <= steps and floor.nfe <= steps


def test_floor_never_takes_more_steps_than_the_schedule(sharp_model):
    model, tok = sharp_model
    ids = torch.tensor([tok(PROMPT).input_ids])
    for thr in (0.3, 0.7, 0.95, 1.0):
        one = generate(model, ids, config=GenerationConfig(max_new_tokens=16, threshold=thr, block_len=8,
                                                           threshold_floor="one", stop_at_eos=False))
        for steps in (4, 8):
            out = generate(model, ids, config=GenerationConfig(max_new_tokens=16, threshold=thr, block_len=8, steps=steps,
                                                               stop_at_eos=False))
            assert out.num_steps <= steps and out.nfe <= steps
            assert out.nfe <= one.nfe  # the floor only ever adds tokens to a step
        # the default (steps = max_new_tokens): with LLaDA's even split, a floor of one token per
        # step is exactly Fast-dLLM's rule; with Dream's schedule (first step of a block reveals
        # nothing, its logits are reused) it never needs more forwards
        for alg in ("low_confidence", "entropy"):
            kw = dict(max_new_tokens=16, threshold=thr, block_len=8, stop_at_eos=False, alg=alg)
            one = generate(model, ids, config=GenerationConfig(threshold_floor="one", **kw))
            default = generate(model, ids, config=GenerationConfig(**kw))
            if alg == "low_confidence":
                assert default.sequences.tolist() == one.sequences.tolist() and default.nfe == one.nfe
            else:
                assert default.nfe <= one.nfe


def test_steps_with_fastdllm_exact_rule_is_refused():
    with pytest.raises(ConfigError, match="--steps"):
        GenerationConfig(max_new_tokens=16, threshold=0.9, threshold_floor="one", steps=8)
    with pytest.raises(ConfigError, match="--threshold-floor"):
        GenerationConfig(threshold=0.9, threshold_floor="never")
    GenerationConfig(max_new_tokens=16, threshold=0.9, steps=8)  # the floor gives --steps a meaning


def test_lookahead_is_exact_cached_batched_and_fewer_forwards(block_shift_model, sharp_model):
    """Blocks decoded ahead: the exact cache still equals recomputing everything, a padded batch
    equals row by row, and the window reveals more per forward."""
    model, tok = block_shift_model
    prompts = ["def add(a, b):\n    return", "x = 1", "import os\nimport sys\n\nresult = [x * x"]
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True)
    cfg = GenerationConfig(max_new_tokens=12, alg="entropy", threshold=0.5, lookahead=2, stop_at_eos=False)
    cached = generate(model, enc.input_ids, enc.attention_mask, cfg)
    cfg.block_cache = False
    uncached = generate(model, enc.input_ids, enc.attention_mask, cfg)
    assert torch.equal(cached.sequences, uncached.sequences) and cached.nfe == uncached.nfe
    P = enc.input_ids.shape[1]
    for b, p in enumerate(prompts):
        row = torch.tensor([tok(p).input_ids])
        single = generate(model, row, config=cfg)
        assert cached.sequences[b, P:].tolist() == single.sequences[0, row.shape[1]:].tolist()
    sharp, stok = sharp_model
    ids = torch.tensor([stok(PROMPT).input_ids])
    base = dict(max_new_tokens=16, alg="low_confidence", threshold=0.5, block_len=4, stop_at_eos=False)
    nfe = [generate(sharp, ids, config=GenerationConfig(lookahead=k, **base)).nfe for k in (0, 1, 3)]
    assert nfe[2] < nfe[0] and nfe[1] <= nfe[0]


def test_lookahead_needs_a_threshold_and_no_dual_cache():
    with pytest.raises(ConfigError, match="--lookahead"):
        GenerationConfig(lookahead=1)
    with pytest.raises(ConfigError, match="--lookahead"):
        GenerationConfig(lookahead=1, threshold=0.9, block_len=4, cache="dual")
