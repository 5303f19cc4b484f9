"""The engine's two hooks for servers: per-row generators and the per-step callback."""

import pytest
import torch

from diffucode.sampling import GenerationConfig, generate
from diffucode.sampling.engine import row_generators


def test_generators_make_a_row_independent_of_its_place_in_the_batch(dream_model):
    """Row r of a seeded call draws from (seed, r); passing those generators to another call,
    where the same prompt sits at another row, reproduces it."""
    model, tok = dream_model
    cfg = GenerationConfig(max_new_tokens=8, temperature=1.0, seed=3, stop_at_eos=False)
    p = tok("def add(a, b):\n").input_ids
    alone = generate(model, torch.tensor([p]), config=cfg)
    other = tok("x = 1").input_ids
    tok.padding_side = "left"
    enc = tok([tok.decode(other), tok.decode(p)], return_tensors="pt", padding=True)
    assert enc.input_ids[1, -len(p):].tolist() == p
    mine = row_generators(cfg, 1, model.device)
    theirs = row_generators(GenerationConfig(max_new_tokens=8, temperature=1.0, seed=99), 1, model.device)
    both = generate(model, enc.input_ids, enc.attention_mask, cfg, generators=theirs + mine)
    assert both.completions[1].tolist() == alone.completions[0].tolist()
    # without them, the row at index 1 gets the (seed, 1) stream: a different sample
    plain = generate(model, enc.input_ids, enc.attention_mask, cfg)
    assert plain.completions[1].tolist() != alone.completions[0].tolist()


def test_generators_count_is_checked(dream_model):
    model, tok = dream_model
    cfg = GenerationConfig(max_new_tokens=4, temperature=1.0, seed=0, num_return_sequences=2)
    with pytest.raises(ValueError, match="generators: 1 given for 2 output rows"):
        generate(model, torch.tensor([tok("x").input_ids]), config=cfg, generators=row_generators(cfg, 1, "cpu"))


@pytest.mark.parametrize("fixture,kw", [("dream_model", dict(alg="entropy")),
                                        ("block_model", dict(alg="low_confidence", threshold=0.3))])
def test_on_step_sees_every_reveal_and_nothing_else(request, fixture, kw):
    model, tok = request.getfixturevalue(fixture)
    cfg = GenerationConfig(max_new_tokens=8, stop_at_eos=False, **kw)
    tok.padding_side = "left"
    enc = tok(["def add(a, b):\n", "x = 1"], return_tensors="pt", padding=True)
    seen = []
    out = generate(model, enc.input_ids, enc.attention_mask, cfg,
                   on_step=lambda rows, canvas: seen.append((rows.tolist(), canvas.clone())))
    M = model.mask_token_id
    assert seen
    for r in range(2):
        frames = [c[rows.index(r)] for rows, c in seen if r in rows]
        final = out.completions[r]
        # each frame: revealed tokens are the final ones, and the masks only ever shrink
        for a, b in zip(frames, frames[1:]):
            assert ((b == M) <= (a == M)).all()
        for f in frames:
            assert torch.equal(f[f != M], final[f != M])
        assert torch.equal(frames[-1], final)
