"""Each algorithm against the slow one-row reference decoder in conftest.py (token for token,
including seeded sampling, whose draws follow the engine's documented per-row protocol)."""

import pytest
import torch

from diffucode.sampling import GenerationConfig, generate
from diffucode.sampling.engine import row_generators

PROMPT = "def add(a, b):\n"

CASES = [
    # (model fixture, config kwargs)
    ("dream_model", dict(alg="entropy")),  # DiffuCoder's setting: 1 token per step (greedy)
    ("dream_model", dict(alg="entropy", steps=6, top_p=0.95, temperature=0.3)),
    ("dream_model", dict(alg="maskgit_plus", steps=6, temperature=0.8, top_k=20)),
    ("dream_model", dict(alg="topk_margin", block_len=4, steps=6)),
    ("dream_model", dict(alg="origin", steps=5, temperature=1.0)),
    ("dream_model", dict(alg="entropy", alg_temp=0.5, steps=6)),
    ("llada_model", dict(alg="low_confidence", block_len=4, steps=12)),
    ("llada_model", dict(alg="low_confidence", block_len=6, steps=4, temperature=0.7, top_p=0.9)),
    ("llada_model", dict(alg="random", block_len=4, steps=6, temperature=0.5)),
    ("sharp_model", dict(alg="low_confidence", block_len=6, threshold=0.7)),
    ("sharp_model", dict(alg="entropy", threshold=0.7)),
    # the threshold floor: at least the schedule's count per step, and Fast-dLLM's exact rule
    ("sharp_model", dict(alg="low_confidence", block_len=6, threshold=0.95, steps=4)),
    ("sharp_model", dict(alg="entropy", threshold=0.99, steps=6, temperature=0.5, top_p=0.9)),
    ("sharp_model", dict(alg="entropy", threshold=0.7, threshold_floor="one")),
]


@pytest.mark.parametrize("fixture,kw", CASES, ids=[f"{f}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for f, kw in CASES])
def test_engine_matches_reference_loop(request, reference, fixture, kw):
    model, tok = request.getfixturevalue(fixture)
    cfg = GenerationConfig(max_new_tokens=12, seed=7, stop_at_eos=False, **kw)
    prompt = tok(PROMPT).input_ids
    out = generate(model, torch.tensor([prompt]), config=cfg)
    gens = row_generators(cfg, 1, model.device)
    ref_tokens, ref_order, ref_steps = reference(model, prompt, cfg, gen=gens[0] if gens else None)
    assert out.sequences[0, len(prompt):].tolist() == ref_tokens
    assert out.order[0].tolist() == ref_order
    assert out.num_steps == ref_steps
    assert out.nfe <= out.num_steps
    if kw.get("threshold"):
        assert out.nfe < cfg.max_new_tokens  # parallel decoding actually revealed several per step


def test_dream_default_first_step_reveals_nothing_and_is_not_rerun(dream_model):
    model, tok = dream_model
    cfg = GenerationConfig(max_new_tokens=8, alg="entropy", stop_at_eos=False, return_history=True)
    out = generate(model, tok(PROMPT, return_tensors="pt").input_ids, config=cfg)
    mask = model.mask_token_id
    revealed = [int((h[0] != mask).sum()) for h in out.history]
    assert revealed[0] == 0 and revealed[-1] == 8  # Dream's [0, 1, ..., 1, 2]
    assert out.num_steps == 8 and out.nfe == 7  # the unchanged canvas reuses the first logits


@pytest.mark.parametrize("fixture,shift_name", [("block_model", "no shift"), ("block_shift_model", "shift")])
@pytest.mark.parametrize("alg,extra", [("low_confidence", {}), ("entropy", {"steps": 6}), ("low_confidence", {"threshold": 0.6})])
def test_block_causal_matches_reference_loop(request, reference, fixture, shift_name, alg, extra):
    model, tok = request.getfixturevalue(fixture)
    for prompt in (tok("x = 1\n").input_ids, tok("def add(a, b):\n").input_ids):  # partial first blocks
        cfg = GenerationConfig(max_new_tokens=10, alg=alg, stop_at_eos=False, **extra)
        ref_tokens, ref_order, _ = reference(model, prompt, cfg, block_causal=True)
        for block_cache in (True, False):
            cfg.block_cache = block_cache
            out = generate(model, torch.tensor([prompt]), config=cfg)
            assert out.sequences[0, len(prompt):].tolist() == ref_tokens, (len(prompt), block_cache)
            assert out.order[0].tolist() == ref_order


def test_infilling_matches_reference_with_suffix(sharp_model, reference):
    model, tok = sharp_model
    prefix, suffix = tok("def add(a, b):\n").input_ids, tok("\nprint(add(1, 2))\n").input_ids
    cfg = GenerationConfig(max_new_tokens=8, alg="entropy", block_len=4, stop_at_eos=False)
    out = generate(model, torch.tensor([prefix]), config=cfg, suffix_ids=torch.tensor(suffix))
    ref_tokens, ref_order, _ = reference(model, prefix, cfg, suffix=suffix)
    assert out.sequences[0, len(prefix):].tolist() == ref_tokens
    assert out.order[0].tolist() == ref_order
    plain = generate(model, torch.tensor([prefix]), config=cfg)
    assert out.sequences.shape == plain.sequences.shape  # the suffix is context, not output
    assert not torch.equal(out.sequences, plain.sequences)  # ...and it is really attended to
