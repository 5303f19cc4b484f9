"""Fast paths against simple ones: batched == row-by-row (left padding, every cache mode),
early exit changes nothing, order agrees with history, seeds reproduce, AR == transformers."""

import pytest
import torch

from diffucode.sampling import GenerationConfig, generate

PROMPTS = ["def add(a, b):\n    return", "x = 1", "import os\nimport sys\n\nresult = [x * x"]


def _batch(tok, prompts=PROMPTS):
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True)
    return enc.input_ids, enc.attention_mask


def _rows(tok, prompts=PROMPTS):
    return [torch.tensor([tok(p).input_ids]) for p in prompts]


def _dense_rank(order: torch.Tensor) -> list[int]:
    return torch.unique(order, return_inverse=True)[1].tolist()


BATCH_CASES = [
    ("dream_model", dict(alg="entropy")),
    ("dream_model", dict(alg="topk_margin", block_len=4, steps=8, cache="prefix")),
    ("dream_model", dict(alg="maskgit_plus", block_len=4, steps=4, cache="dual")),
    ("llada_model", dict(alg="low_confidence", block_len=4, steps=8, cache="prefix")),
    ("llada_model", dict(alg="low_confidence", block_len=8, cache="dual")),
    ("sharp_model", dict(alg="entropy", threshold=0.7, block_len=4, cache="dual")),
    ("sharp_model", dict(alg="low_confidence", threshold=0.7)),
    ("block_model", dict(alg="low_confidence")),
    ("block_model", dict(alg="low_confidence", threshold=0.3, block_cache=False)),
    ("block_shift_model", dict(alg="entropy", threshold=0.6)),
    ("block_shift_model", dict(alg="low_confidence", steps=4)),
]


@pytest.mark.parametrize("fixture,kw", BATCH_CASES, ids=[f"{f}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for f, kw in BATCH_CASES])
def test_batched_equals_row_by_row(request, fixture, kw):
    model, tok = request.getfixturevalue(fixture)
    cfg = GenerationConfig(max_new_tokens=8, stop_at_eos=False, **kw)
    ids, amask = _batch(tok)
    assert (amask == 0).any()  # really padded
    batched = generate(model, ids, amask, cfg)
    P = ids.shape[1]
    for b, row in enumerate(_rows(tok)):
        single = generate(model, row, config=cfg)
        assert batched.sequences[b, P:].tolist() == single.sequences[0, row.shape[1]:].tolist(), b
        assert batched.sequences[b, :P].tolist() == ids[b].tolist()  # the prompt comes back as given
        # the reveal order within the row is the same; the step numbers are the batch's (a row
        # waits while others finish a block under a threshold, or a block-causal block it has no masks in)
        assert _dense_rank(batched.order[b]) == _dense_rank(single.order[0])
        if kw.get("threshold") is None and fixture != "block_model" and fixture != "block_shift_model":
            assert batched.order[b].tolist() == single.order[0].tolist()


def test_block_causal_cached_equals_uncached_batched(block_shift_model):
    model, tok = block_shift_model
    ids, amask = _batch(tok)
    for kw in (dict(alg="low_confidence"), dict(alg="entropy", threshold=0.5), dict(alg="topk_margin", steps=4)):
        cfg = GenerationConfig(max_new_tokens=11, stop_at_eos=False, **kw)
        cached = generate(model, ids, amask, cfg)
        cfg.block_cache = False
        uncached = generate(model, ids, amask, cfg)
        assert torch.equal(cached.sequences, uncached.sequences), kw
        assert torch.equal(cached.order, uncached.order)
        assert cached.nfe == uncached.nfe  # the commit pass is fused into the next block's first step


def test_causal_model_is_greedy_autoregressive_decoding():
    """A causal shift model decoded by the engine (blocks of one token, KV cache) is greedy AR
    decoding: it must equal transformers' generate on the same backbone."""
    from diffucode.models import build_tiny_model

    model, tok = build_tiny_model(attention="causal", shift=True, hidden_size=32, seed=5)
    prompt = torch.tensor([tok("def add(a, b):\n").input_ids])
    out = generate(model, prompt, config=GenerationConfig(max_new_tokens=10, stop_at_eos=False))
    ar = model.backbone.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=10, min_new_tokens=10,
                                 do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.sequences.tolist() == ar.tolist()
    assert out.order[0].tolist() == list(range(1, 11))


def test_order_is_a_permutation_consistent_with_history(llada_model):
    model, tok = llada_model
    ids, amask = _batch(tok)
    L = 10
    out = generate(model, ids, amask, GenerationConfig(max_new_tokens=L, alg="low_confidence", block_len=5,
                                                       stop_at_eos=False, return_history=True))
    mask = model.mask_token_id
    assert len(out.history) == out.num_steps == L
    for b in range(ids.shape[0]):
        assert sorted(out.order[b].tolist()) == list(range(1, L + 1))  # one token per step
        for k, frame in enumerate(out.history, start=1):
            revealed_now = (frame[b] != mask)
            assert torch.equal(revealed_now, (out.order[b] <= k) & (out.order[b] > 0))
        assert torch.equal(out.history[-1][b], out.sequences[b, ids.shape[1]:])
    # blocks go left to right: everything in block 1 is revealed before anything in block 2
    assert (out.order[:, :5].max(1).values < out.order[:, 5:].min(1).values).all()


@pytest.mark.parametrize("kw", [
    dict(alg="entropy", temperature=0.8, top_p=0.95, block_len=4, seed=3),
    dict(alg="low_confidence", block_len=4, cache="dual", temperature=0.5, seed=3),
    dict(alg="low_confidence", threshold=0.6, seed=0, block_cache=True),
])
def test_early_exit_changes_nothing_but_nfe(eos_after, dream_model, block_model, kw):
    base, tok = block_model if "block_cache" in kw else dream_model
    ids, amask = _batch(tok)
    # every row wants to end at the same position id, 2 to ~20 tokens into its completion
    lens = amask.sum(1)
    model = eos_after(base, cut=int(lens.max()) + 2)
    L = -(-int(lens.max() - lens.min() + 8) // 4) * 4  # a multiple of the block length 4
    cfg = GenerationConfig(max_new_tokens=L, **kw)
    fast = generate(model, ids, amask, cfg)
    cfg.early_exit = False
    slow = generate(model, ids, amask, cfg)
    assert torch.equal(fast.sequences, slow.sequences)
    assert torch.equal(fast.order, slow.order)
    assert fast.nfe < slow.nfe
    P = ids.shape[1]
    for b in range(ids.shape[0]):
        comp = fast.sequences[b, P:].tolist()
        assert base.eos_token_id in comp
        e = comp.index(base.eos_token_id)
        assert all(t == tok.pad_token_id for t in comp[e + 1:])  # trimmed after the end token
        assert (fast.order[b, e + 1:] == 0).all() and (fast.order[b, :e + 1] > 0).all()


def test_stop_token_ids_end_a_completion(dream_model):
    model, tok = dream_model
    prompt = torch.tensor([tok("x = 1").input_ids])
    free = generate(model, prompt, config=GenerationConfig(max_new_tokens=10, stop_at_eos=False)).sequences[0, -10:].tolist()
    stop = free[1]  # pretend the 2nd generated token is a stop token
    ends = {stop, tok.eos_token_id, tok.pad_token_id}
    first = min(i for i, t in enumerate(free) if t in ends)
    expected = free[:first + 1] + [tok.pad_token_id] * (9 - first)
    for early_exit in (True, False):
        out = generate(model, prompt, config=GenerationConfig(max_new_tokens=10, stop_token_ids=[stop], early_exit=early_exit))
        assert out.sequences[0, -10:].tolist() == expected


def test_seeds_reproduce_and_num_return_sequences(dream_model):
    model, tok = dream_model
    ids, amask = _batch(tok, PROMPTS[:2])
    cfg = GenerationConfig(max_new_tokens=8, temperature=1.0, seed=11, num_return_sequences=3, stop_at_eos=False)
    a = generate(model, ids, amask, cfg)
    b = generate(model, ids, amask, cfg)
    assert a.sequences.shape == (6, ids.shape[1] + 8) and a.order.shape == (6, 8)
    assert torch.equal(a.sequences, b.sequences)
    assert torch.equal(a.sequences[:3, :ids.shape[1]], ids[:1].expand(3, -1))  # prompt 0 x 3, then prompt 1 x 3
    assert len({tuple(r) for r in a.sequences[:3].tolist()}) > 1  # samples differ
    cfg.seed = 12
    assert not torch.equal(generate(model, ids, amask, cfg).sequences, a.sequences)
    greedy = generate(model, ids, amask, GenerationConfig(max_new_tokens=8, num_return_sequences=2, stop_at_eos=False))
    assert torch.equal(greedy.sequences[0], greedy.sequences[1])
