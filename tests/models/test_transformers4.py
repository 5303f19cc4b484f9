"""What diffucode writes loads under transformers 4.x (what Dream, LLaDA, Fast-dLLM, SDAR and
Stable-DiffCoder pin) with the same logits and token ids. Opt-in: set ``DIFFUCODE_TF4_PYTHON`` to a
Python interpreter that has torch and transformers 4.x, e.g.

    python -m venv --system-site-packages /tmp/tf4 && /tmp/tf4/bin/pip install 'transformers==4.46.2'
    DIFFUCODE_TF4_PYTHON=/tmp/tf4/bin/python python -m pytest tests/models/test_transformers4.py

The 4.x side uses stock classes only (no checkpoint code): ``AutoModelForCausalLM`` / ``AutoTokenizer``
on a ``save_pretrained`` directory, ``Qwen2ForCausalLM`` / ``Qwen2Tokenizer`` on a Dream export, run
under the model's own attention pattern given as an explicit additive mask. The config fields
themselves are checked in the default suite (``test_releases.py``, ``test_export.py``). Runs with the
upstream modeling files (Dream, LLaDA, SDAR) are written up in docs/upstream_parity.md.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffucode.models import build_tiny_model, load_model
from diffucode.models.export import export_model

TF4 = os.environ.get("DIFFUCODE_TF4_PYTHON")
pytestmark = pytest.mark.skipif(
    not TF4, reason="opt-in: set DIFFUCODE_TF4_PYTHON to a python with torch and transformers 4.x")

TEXT = "def add(a, b):\n    return a + b"

# run by the transformers-4.x interpreter: argv = a JSON list of cases; writes <dir>/tf4_out.pt
CHILD = r"""
import json, sys, torch, transformers
assert transformers.__version__.startswith("4."), f"DIFFUCODE_TF4_PYTHON has transformers {transformers.__version__}"
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2ForCausalLM, Qwen2Tokenizer
for case in json.loads(sys.argv[1]):
    d = case["dir"]
    if case["stock"] == "qwen2":
        model, tok = Qwen2ForCausalLM.from_pretrained(d), Qwen2Tokenizer.from_pretrained(d)
    else:
        model, tok = AutoModelForCausalLM.from_pretrained(d), AutoTokenizer.from_pretrained(d)
    model.eval()
    ids = torch.tensor([tok(case["text"]).input_ids])
    n = ids.shape[1]
    blk = torch.arange(n) // (case["block"] or n)
    add = torch.zeros(n, n).masked_fill(blk[:, None] < blk[None, :], float("-inf"))[None, None]
    with torch.no_grad():
        logits = model(ids, attention_mask=add).logits
    torch.save({"version": transformers.__version__, "ids": ids, "logits": logits, "rope_theta": model.config.rope_theta,
                "special": [tok.mask_token_id, tok.eos_token_id, tok.pad_token_id]}, d + "/tf4_out.pt")
"""


def _run_tf4(cases):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    r = subprocess.run([TF4, "-c", CHILD, json.dumps(cases)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


def _check(model, tok, d: Path, rope_theta: float):
    got = torch.load(d / "tf4_out.pt")
    ids = torch.tensor([tok(TEXT).input_ids])
    assert torch.equal(got["ids"], ids), "transformers 4.x tokenizes differently"
    assert got["special"] == [tok.mask_token_id, tok.eos_token_id, tok.pad_token_id]
    assert got["rope_theta"] == rope_theta  # 4.x silently falls back to 10000 without the top-level field
    with torch.no_grad():
        mine = model(ids, align=False).logits  # the backbone's outputs under the model's attention
    assert (got["logits"] - mine).abs().max().item() < 1e-4


def _sharpened(**kw):
    model, tok = build_tiny_model(hidden_size=32, seed=4, **kw)
    model.backbone.config.rope_parameters = {"rope_type": "default", "rope_theta": 500000.0}
    rotary = model.backbone.model.rotary_emb
    model.backbone.model.rotary_emb = type(rotary)(config=model.backbone.config)
    with torch.no_grad():  # attention far from uniform, so the rotary base shows in the logits
        for n, p in model.backbone.named_parameters():
            if "q_proj" in n or "k_proj" in n:
                p.mul_(30)
    return model, tok


def test_saved_and_exported_directories_load_in_transformers4(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    import test_releases as releases

    bidir, tok_b = _sharpened(arch="qwen2", shift=True)
    block, tok_k = _sharpened(arch="llama", shift=False, attention="block_causal", block_len=4)
    bidir.save_pretrained(tmp_path / "bidir", tokenizer=tok_b)
    block.save_pretrained(tmp_path / "block", tokenizer=tok_k)
    releases.write_dream_release(tmp_path / "dream_src", instruct=True)
    dream, tok_d = load_model(tmp_path / "dream_src", verbose=False)
    export_model(dream, tok_d, tmp_path / "dream", "dream")
    _run_tf4([
        {"dir": str(tmp_path / "bidir"), "stock": "auto", "block": None, "text": TEXT},
        {"dir": str(tmp_path / "block"), "stock": "auto", "block": 4, "text": TEXT},
        {"dir": str(tmp_path / "dream"), "stock": "qwen2", "block": None, "text": TEXT},
    ])
    _check(bidir, tok_b, tmp_path / "bidir", 500000.0)
    _check(block, tok_k, tmp_path / "block", 500000.0)
    _check(dream, tok_d, tmp_path / "dream", 1000000.0)
