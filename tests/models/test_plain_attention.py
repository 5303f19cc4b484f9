"""The mask-free SDPA fast path (attention.py): a plain full / causal pattern reaches SDPA as
``attention_mask=None`` and gives the same logits as the explicit 4-D mask."""

import pytest
import torch

from diffucode.models import build_tiny_model
from diffucode.models.attention import build_attention_mask, plain_pattern


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _spy(model):
    """Record, per attention call, whether SDPA got a mask (a hook registered after ours)."""
    seen = []
    for name, mod in model.backbone.named_modules():
        if name.endswith("self_attn"):
            mod.register_forward_pre_hook(lambda m, a, kw: seen.append(kw.get("attention_mask") is None), with_kwargs=True)
    return seen


def test_plain_pattern_cases():
    ones = torch.ones(2, 8, dtype=torch.long)
    assert plain_pattern("bidirectional", ones, 8) == "full"
    assert plain_pattern("bidirectional", torch.tensor([[0, 1, 1]]), 3) is None  # padding needs the mask
    assert plain_pattern("causal", ones, 8) == "causal"
    assert plain_pattern("causal", ones, 3) is None  # causal queries after a cache: top-left is_causal is wrong
    assert plain_pattern("causal", ones, 1) == "full"
    assert plain_pattern("block_causal", ones, 4, block_len=4) == "full"  # the last block against its prefix
    assert plain_pattern("block_causal", ones, 5, block_len=4) is None  # a clean block + the current one
    assert plain_pattern("block_causal", ones, 2, block_len=4) == "full"


@pytest.mark.parametrize("attention,block_len", [("bidirectional", None), ("block_causal", 4), ("causal", None)])
def test_plain_path_equals_explicit_mask(attention, block_len):
    model, tok = build_tiny_model(attention=attention, block_len=block_len, shift=False, hidden_size=32,
                                  num_heads=4, num_kv_heads=2, seed=1)
    ids = torch.tensor([tok("def add(a, b):\n    return a + b\n").input_ids[:12]])
    q = 1 if attention == "causal" else 4
    seen = _spy(model)
    out = model(ids, use_cache=False)  # whole sequence: full / causal / (block-causal: masked)
    past = model(ids[:, :-q], use_cache=True).past_key_values
    tail = model(ids[:, -q:], past_key_values=past, use_cache=True)  # a block / one token against the cache
    assert seen[-1] is True  # the cached call went mask-free
    if attention != "block_causal":
        assert seen[0] is True
    model.plain_masks = False  # the explicit-mask path
    ref = model(ids, use_cache=False)
    past = model(ids[:, :-q], use_cache=True).past_key_values
    ref_tail = model(ids[:, -q:], past_key_values=past, use_cache=True)
    assert seen[-1] is False
    torch.testing.assert_close(out.logits, ref.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tail.logits, ref_tail.logits, atol=1e-5, rtol=1e-5)
    if attention != "bidirectional":  # exact caches: the cached tail equals the whole-sequence run
        torch.testing.assert_close(tail.logits, ref.logits[:, -q:], atol=1e-4, rtol=1e-4)


def test_marked_mask_is_the_true_mask():
    from diffucode.models.attention import plain_mask

    pad = torch.ones(2, 6, dtype=torch.long)
    for kind, mode, q in (("full", "bidirectional", 6), ("causal", "causal", 6), ("full", "block_causal", 2)):
        assert torch.equal(plain_mask(kind, 2, q, 6, "cpu"), build_attention_mask(mode, pad, q, block_len=4))


def test_compile_backbone_is_opt_in_and_idempotent():
    """``--compile`` wraps the backbone once (lazily: nothing compiles until the first call)."""
    import torch

    from diffucode.models import build_tiny_model

    model, _ = build_tiny_model(hidden_size=32, num_layers=1)
    assert not isinstance(model.backbone, torch._dynamo.eval_frame.OptimizedModule)
    model.compile_backbone()
    wrapped = model.backbone
    assert isinstance(wrapped, torch._dynamo.eval_frame.OptimizedModule)
    assert model.compile_backbone().backbone is wrapped
    assert model.backbone.get_input_embeddings() is not None and model.config is wrapped.config


@pytest.mark.slow
def test_compiled_decode_gives_the_eager_tokens():
    import torch

    from diffucode.models import build_tiny_model
    from diffucode.sampling import GenerationConfig, generate

    model, tok = build_tiny_model(hidden_size=32, num_layers=1, attention="block_causal", block_len=4, seed=0)
    ids = torch.tensor([tok("def f(x):").input_ids])
    cfg = GenerationConfig(max_new_tokens=8, stop_at_eos=False)
    eager = generate(model, ids, config=cfg)
    model.compile_backbone()
    assert generate(model, ids, config=cfg).sequences.tolist() == eager.sequences.tolist()
