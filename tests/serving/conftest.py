"""Servers for the serving tests: the bundled model, and a tiny bidirectional model (infilling),
each on a free loopback port in a background thread, stopped at the end of the module.

The reference for every answer is the engine called directly, one request at a time
(:func:`decode_alone`), so "batched == one-by-one" is checked against code that never batches
different requests together."""

import pytest
import torch

from diffucode.models import build_tiny_model, default_model_path, load_model
from diffucode.sampling import GenerationConfig, generate
from diffucode.serving.server import ServerThread


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core machine: a second intra-op thread mostly spins
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def nano_server():
    """The bundled block-diffusion model; a 100 ms batching window so concurrent requests meet."""
    with ServerThread(lambda: load_model(default_model_path()), served_name="nano", window_s=0.1,
                      max_batch_rows=16) as server:
        yield server


@pytest.fixture(scope="module")
def mdm_dir(tmp_path_factory):
    """A tiny untrained bidirectional (Dream-layout) model saved as a normal checkpoint."""
    model, tok = build_tiny_model(attention="bidirectional", shift=True, hidden_size=32, seed=0)
    out = tmp_path_factory.mktemp("mdm") / "tiny-mdm"
    model.save_pretrained(out, tokenizer=tok)
    return out


@pytest.fixture(scope="module")
def mdm_server(mdm_dir):
    with ServerThread(lambda: load_model(mdm_dir), served_name="tiny-mdm", window_s=0.1) as server:
        yield server


def client(server):
    from openai import OpenAI

    # no retries: a 429/5xx must show up in the test, not be retried away
    return OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def decode_alone(model, tok, prompt_ids, *, max_tokens, suffix_ids=None, stop_ids=(), n=1, **kw):
    """The texts the engine gives for one request decoded alone (the server's defaults)."""
    cfg = GenerationConfig(max_new_tokens=max_tokens, stop_token_ids=list(stop_ids), num_return_sequences=n,
                           temperature=kw.pop("temperature", 0.0), **kw)
    ids = torch.tensor([prompt_ids])
    suffix = torch.tensor([suffix_ids]) if suffix_ids else None
    out = generate(model, ids, config=cfg, suffix_ids=suffix)
    ends = {model.eos_token_id, model.pad_token_id, *stop_ids}
    texts = []
    for row in out.completions.tolist():
        cut = next((i for i, t in enumerate(row) if t in ends), len(row))
        texts.append(tok.decode(row[:cut], skip_special_tokens=True))
    return texts


@pytest.fixture
def make_client():
    return client


@pytest.fixture
def alone():
    return decode_alone


@pytest.fixture(scope="module")
def block_server(tmp_path_factory):
    """A tiny untrained block-causal model (it never ends early, so a long request stays long)."""
    model, tok = build_tiny_model(attention="block_causal", block_len=4, shift=True, hidden_size=32, seed=0)
    out = tmp_path_factory.mktemp("block") / "tiny-block"
    model.save_pretrained(out, tokenizer=tok)
    with ServerThread(lambda: load_model(out), served_name="tiny-block", window_s=0.01) as server:
        yield server
