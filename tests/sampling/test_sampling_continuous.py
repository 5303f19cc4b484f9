"""Continuous batching (sampling/continuous.py): rows leave and join at block boundaries, and every
row decodes exactly what generate() decodes for it."""

import dataclasses

import pytest
import torch

from diffucode.config import ConfigError
from diffucode.sampling import BatchScheduler, GenerationConfig, generate, generate_stream

PROMPTS = ["def add(a, b):\n    return", "x = 1", "import os\nimport sys\n\nresult = [x * x", "for i in range(10):",
           "class Stack:\n    def __init__(self):", "y", "def fib(n):\n    if n < 2:\n        return n\n"]


def _ids(tok):
    return [tok(p).input_ids for p in PROMPTS]


def _together(model, tok, cfg):
    """Row i of one generate() call over all prompts (row-independent per-row seeding)."""
    tok.padding_side = "left"
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    out = generate(model, enc.input_ids, enc.attention_mask, cfg)
    return [out.sequences[i, enc.input_ids.shape[1]:].tolist() for i in range(len(PROMPTS))], out.nfe


CASES = [
    ("block_model", dict(alg="low_confidence")),
    ("block_model", dict(alg="entropy", temperature=0.8, top_p=0.95, seed=3)),
    ("block_shift_model", dict(alg="entropy", threshold=0.5)),
    ("block_shift_model", dict(alg="topk_margin", steps=6)),
]


@pytest.mark.parametrize("fixture,kw", CASES, ids=[f"{f}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for f, kw in CASES])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_stream_equals_generate(request, fixture, kw, batch_size):
    model, tok = request.getfixturevalue(fixture)
    cfg = GenerationConfig(max_new_tokens=12, stop_at_eos=False, **kw)
    want, _ = _together(model, tok, cfg)
    got = dict(generate_stream(model, _ids(tok), cfg, batch_size=batch_size))
    assert sorted(got) == list(range(len(PROMPTS)))
    for i in range(len(PROMPTS)):
        assert got[i].tolist() == want[i], i


def test_causal_model_stream_is_autoregressive():
    from diffucode.models import build_tiny_model

    model, tok = build_tiny_model(attention="causal", shift=True, hidden_size=32, seed=5)
    cfg = GenerationConfig(max_new_tokens=6, stop_at_eos=False)
    got = dict(generate_stream(model, _ids(tok), cfg, batch_size=2))
    for i, p in enumerate(_ids(tok)):
        ar = model.backbone.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                                     max_new_tokens=6, min_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
        assert got[i].tolist() == ar[0, len(p):].tolist()


def test_rows_leave_early_and_new_rows_join(eos_after, block_model):
    """Rows that hit the end token leave; queued prompts take their slots before the batch drains,
    the canvas is compacted, and the outputs are generate()'s (trimmed after the end token)."""
    base, tok = block_model
    model = eos_after(base, cut=9)  # every row wants to end at position id 9
    cfg = GenerationConfig(max_new_tokens=32, alg="low_confidence")
    want, nfe_fixed = _together(model, tok, cfg)
    sched = BatchScheduler(model, cfg, batch_size=2)
    for p in _ids(tok):
        sched.submit(p)
    got, max_rows, widths = {}, 0, []
    while sched.busy:
        finished = sched.step()
        for t, res in finished:
            got[t] = res.tokens.tolist()
        max_rows = max(max_rows, sched.rows + len(finished))  # rows decoded together in this step
        widths.append(sched.x.shape[1])
    assert max_rows == 2 and [got[i] for i in range(len(PROMPTS))] == want
    assert max(widths) < sum(len(p) for p in _ids(tok)) + 32  # leading padding is dropped, not accumulated
    for i in range(len(PROMPTS)):
        assert base.eos_token_id in got[i]


def test_refuses_what_it_does_not_support(dream_model, block_model):
    with pytest.raises(ConfigError, match="block-causal or causal"):
        BatchScheduler(dream_model[0], GenerationConfig())
    with pytest.raises(ConfigError, match="--lookahead"):
        BatchScheduler(block_model[0], GenerationConfig(threshold=0.9, lookahead=1))
    with pytest.raises(ConfigError, match="--block-schedule"):
        BatchScheduler(block_model[0], GenerationConfig(alg="low_confidence", block_schedule="block"))
    sched = BatchScheduler(block_model[0], GenerationConfig(max_new_tokens=4))
    with pytest.raises(ValueError, match="mask token"):
        sched.submit([block_model[0].mask_token_id])


LENGTHS = [5, 12, 3, 9, 16, 1, 7]


@pytest.mark.parametrize("fixture,kw", CASES[:3], ids=["greedy", "sampled", "threshold"])
def test_rows_with_their_own_lengths_equal_generate_alone(request, fixture, kw):
    """submit(max_new_tokens=) gives a row its own completion length; each row is what generate()
    decodes for that prompt alone with that length (the step schedule does not depend on it here)."""
    from diffucode.sampling.engine import row_generators

    model, tok = request.getfixturevalue(fixture)
    cfg = GenerationConfig(max_new_tokens=12, stop_at_eos=False, **kw)
    sched = BatchScheduler(model, cfg, batch_size=3)
    canvases = {}
    sched.on_step = lambda tickets, rows: canvases.update({t: r.tolist() for t, r in zip(tickets, rows)})
    for p, L in zip(_ids(tok), LENGTHS):
        gens = row_generators(cfg, 1, model.device)
        sched.submit(p, None if gens is None else gens[0], max_new_tokens=L)
    got = {t: res.tokens.tolist() for t, res in sched.run()}
    for i, (p, L) in enumerate(zip(_ids(tok), LENGTHS)):
        alone = generate(model, torch.tensor([p]), config=dataclasses.replace(cfg, max_new_tokens=L))
        assert got[i] == alone.completions[0].tolist(), i
        assert canvases[i] == got[i]  # the last canvas streamed is the result


def test_a_short_row_that_joins_late_leaves_first(block_model):
    model, tok = block_model
    cfg = GenerationConfig(max_new_tokens=32, stop_at_eos=False)
    sched = BatchScheduler(model, cfg, batch_size=4)
    long_t = sched.submit(_ids(tok)[0])
    for _ in range(2):
        assert sched.step() == []
    short_t = sched.submit(_ids(tok)[1], max_new_tokens=4)
    order = [t for t, _ in sched.run()]
    assert order == [short_t, long_t]


def test_own_lengths_are_refused_when_they_change_the_schedule(block_model):
    sched = BatchScheduler(block_model[0], GenerationConfig(max_new_tokens=8, steps=4))
    sched.submit([5, 6], max_new_tokens=8)  # 4 steps over 8 tokens: 2 steps per block of 4
    for L in (4, 16):  # 4 and 1 steps per block
        with pytest.raises(ValueError, match="step schedule"):
            sched.submit([5, 6], max_new_tokens=L)


def test_own_lengths_with_early_exit_at_the_end_token(eos_after, block_model):
    base, tok = block_model
    model = eos_after(base, cut=9)
    cfg = GenerationConfig(max_new_tokens=12, alg="low_confidence")
    sched = BatchScheduler(model, cfg, batch_size=3)
    for p, L in zip(_ids(tok), LENGTHS):
        sched.submit(p, max_new_tokens=L)
    got = {t: res.tokens.tolist() for t, res in sched.run()}
    for i, (p, L) in enumerate(zip(_ids(tok), LENGTHS)):
        alone = generate(model, torch.tensor([p]), config=dataclasses.replace(cfg, max_new_tokens=L))
        assert got[i] == alone.completions[0].tolist(), i
    assert sum(base.eos_token_id in row for row in got.values()) >= 3


def test_a_long_prompt_joins_at_the_current_block(block_model):
    """A prompt longer than the running canvas gets room on the left (padding for the running rows)
    and starts decoding in the next step instead of waiting for the batch to reach its length."""
    model, tok = block_model
    cfg = GenerationConfig(max_new_tokens=40, stop_at_eos=False)
    sched = BatchScheduler(model, cfg, batch_size=4)
    short = tok("y").input_ids
    long_ids = tok(PROMPTS[4] + "\n" + PROMPTS[6] + PROMPTS[2]).input_ids
    assert len(long_ids) > len(short) + 3 * 4 + 8  # longer than the canvas after the two steps below
    sched.submit(short)
    for _ in range(2):
        sched.step()
    t = sched.submit(long_ids, max_new_tokens=4)
    steps = 0
    got = {}
    while t not in got:
        got.update({k: r.tokens.tolist() for k, r in sched.step()})
        steps += 1
    assert steps <= 2  # 4 tokens: one block, or two when they straddle a block boundary
    got.update({k: r.tokens.tolist() for k, r in sched.run()})
    assert got[0] == generate(model, torch.tensor([short]), config=cfg).completions[0].tolist()
    assert got[t] == generate(model, torch.tensor([long_ids]),
                              config=dataclasses.replace(cfg, max_new_tokens=4)).completions[0].tolist()
