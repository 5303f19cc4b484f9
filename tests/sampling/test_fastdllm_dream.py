"""Fast-dLLM's Dream-port rules (``fastdllm_dream``) and the project's rule for exact ties.

The references here are slow one-row loops written from the rules as documented in
``GenerationConfig.fastdllm_dream`` (re-derived from NVlabs/Fast-dLLM dream/model/
generation_utils.py and generation_utils_block.py; no code copied)."""

import pytest
import torch

from diffucode.config import ConfigError
from diffucode.sampling import GenerationConfig, generate
from diffucode.sampling import remasking as R

PROMPT = "def add(a, b):\n"


def _capped_reference(model, prompt, L, steps, tau):
    """Fast-dLLM no-cache confidence_threshold, one row, greedy: each step runs the whole canvas;
    of the cap = L/steps + (refused last step) most probable masked positions, the first is revealed
    and the rest only with probability >= tau; after the nominal last step only the carry-over is left."""
    mask = model.mask_token_id
    x = list(prompt) + [mask] * L
    order = [0] * L
    base, left, i, step = L // steps, 0, 0, 0
    while mask in x[len(prompt):]:
        with torch.no_grad():
            logits = model(torch.tensor([x])).logits[0]  # aligned: row j predicts token j
        logits[:, mask] = float("-inf")  # the engine never proposes the mask token
        probs = torch.softmax(logits, -1)
        masked = [j for j in range(len(prompt), len(x)) if x[j] == mask]
        conf = {j: float(probs[j].max()) for j in masked}
        ranked = sorted(masked, key=lambda j: (-conf[j], j))  # ties: lower index first
        cap = base + left
        take = ranked[:cap]
        keep = [take[0]] + [j for j in take[1:] if conf[j] >= tau]
        refused = len(take) - len(keep)
        left = refused
        if i >= steps - 1 and refused:
            base = 0
        step += 1
        i += 1
        for j in keep:
            x[j] = int(probs[j].argmax())
            order[j - len(prompt)] = step
    return x[len(prompt):], order


@pytest.mark.parametrize("steps,tau", [(4, 0.05), (2, 0.05), (8, 0.3), (4, 0.5)])
def test_no_cache_capped_threshold_matches_reference(sharp_model, steps, tau):
    model, tok = sharp_model
    prompt = tok(PROMPT).input_ids
    cfg = GenerationConfig(max_new_tokens=8, steps=steps, threshold=tau, alg="maskgit_plus", fastdllm_dream=True,
                           stop_at_eos=False)
    out = generate(model, torch.tensor([prompt]), config=cfg)
    ref_tokens, ref_order = _capped_reference(model, prompt, 8, steps, tau)
    assert out.sequences[0, len(prompt):].tolist() == ref_tokens
    assert out.order[0].tolist() == ref_order
    counts = torch.bincount(out.order[0])[1:]
    assert int(counts.max()) <= 8 // steps + int(counts.numel() > 1) * 8  # never more than the cap allows
    assert int(counts[0]) <= 8 // steps


def test_capped_threshold_differs_from_plain_threshold(sharp_model):
    # the cap is the point of the switch: without it, the first step reveals every confident token
    model, tok = sharp_model
    ids = torch.tensor([tok(PROMPT).input_ids])
    kw = dict(max_new_tokens=8, steps=8, threshold=0.3, alg="maskgit_plus", stop_at_eos=False)
    plain = generate(model, ids, config=GenerationConfig(**kw))
    port = generate(model, ids, config=GenerationConfig(**kw, fastdllm_dream=True))
    assert int((port.order[0] == 1).sum()) == 1  # cap 8/8 = 1 on the first step
    assert plain.nfe < port.nfe


@pytest.mark.parametrize("cache", ["prefix", "dual"])
@pytest.mark.parametrize("extra", [dict(threshold=0.05, alg="maskgit_plus"), dict(steps=16, alg="entropy"),
                                   dict(steps=16, alg="origin")])
def test_block_port_writes_each_blocks_first_token_from_the_full_canvas(sharp_model, cache, extra):
    model, tok = sharp_model
    prompt = tok(PROMPT).input_ids
    P = len(prompt)
    kw = dict(max_new_tokens=16, block_len=4, cache=cache, stop_at_eos=False, **extra)
    out = generate(model, torch.tensor([prompt]), config=GenerationConfig(fastdllm_dream=True, **kw))
    comp, order = out.sequences[0, P:].tolist(), out.order[0].tolist()
    mask = model.mask_token_id
    for b in range(0, 16, 4):
        # the block's first column alone is revealed first, by the pass over the canvas as it stood at block start
        assert order[b] == min(order[b:b + 4]) and order.count(order[b]) == 1
        canvas = prompt + [t if o < order[b] else mask for t, o in zip(comp, order)]
        with torch.no_grad():
            logits = model(torch.tensor([canvas])).logits[0, P + b]
        logits[mask] = float("-inf")
        assert comp[b] == int(logits.argmax())
    # the engine's own rules decode these cases differently (the switch is not a no-op) ...
    plain = generate(model, torch.tensor([prompt]), config=GenerationConfig(**kw))
    assert plain.order[0].tolist() != order
    # ... and with a cache the port ranks every non-threshold algorithm by negative entropy
    if "steps" in extra:
        other = generate(model, torch.tensor([prompt]), config=GenerationConfig(fastdllm_dream=True, **{**kw, "alg": "maskgit_plus"}))
        assert other.sequences.tolist() == out.sequences.tolist() and other.order.tolist() == out.order.tolist()


def test_block_port_needs_two_steps_per_block_and_a_bidirectional_dream_alg(sharp_model, block_model):
    model, tok = sharp_model
    ids = torch.tensor([tok(PROMPT).input_ids])
    with pytest.raises(ConfigError, match="--fastdllm-dream"):
        generate(model, ids, config=GenerationConfig(max_new_tokens=8, block_len=4, steps=2, cache="dual",
                                                     fastdllm_dream=True))
    with pytest.raises(ConfigError, match="--fastdllm-dream"):
        GenerationConfig(alg="low_confidence", fastdllm_dream=True)
    bmodel, btok = block_model
    with pytest.raises(ConfigError, match="bidirectional"):
        generate(bmodel, torch.tensor([btok(PROMPT).input_ids]),
                 config=GenerationConfig(max_new_tokens=8, threshold=0.9, fastdllm_dream=True))


# ---------------------------------------------------------------------------------------------
# exact ties: the project's rule is "the lower position first" (torch.topk, which the references
# call, returns tied entries in an order that depends on the tensor size on CPU, e.g. [6, 5, 4]
# for 8 zeros and [0, 1, 2] for 300 zeros, so it cannot be reproduced in general)
# ---------------------------------------------------------------------------------------------
def test_select_rules_break_exact_ties_towards_the_lower_index():
    scores = torch.tensor([[0.2, 0.7, 0.7, 0.1, 0.7]], dtype=torch.float64)
    assert R.select_top(scores, torch.tensor([2])).nonzero()[:, 1].tolist() == [1, 2]
    assert R.select_capped_threshold(scores, torch.tensor([2]), 0.9).nonzero()[:, 1].tolist() == [1]
    neg_ent = R.confidence(torch.full((3, 5), 0.2), torch.zeros(3, dtype=torch.long), "neg_entropy")
    assert neg_ent[0] == neg_ent[1] == neg_ent[2]  # uniform rows tie exactly
    assert R.select_top(neg_ent[None].double(), torch.tensor([1])).nonzero()[:, 1].tolist() == [0]


def test_engine_with_all_positions_tied_decodes_left_to_right(dream_model):
    import copy

    model, tok = dream_model
    tied = copy.deepcopy(model)
    with torch.no_grad():
        tied.backbone.lm_head.weight.zero_()  # every position: uniform logits, identical entropy and top-p set
    for kw in (dict(alg="entropy"), dict(alg="entropy", top_p=0.95, steps=4), dict(alg="maskgit_plus", steps=8)):
        out = generate(tied, tok(PROMPT, return_tensors="pt").input_ids,
                       config=GenerationConfig(max_new_tokens=8, stop_at_eos=False, **kw))
        order = out.order[0].tolist()
        assert order == sorted(order), (kw, order)
