"""Prompt sources for the analyses and the left-padded batch they become."""
import json

import pytest

from diffucode.analysis.prompts import encode_prompts, left_pad, load_prompts
from diffucode.models import build_tiny_tokenizer


def test_humaneval_prompts_carry_tests():
    tasks = load_prompts("humaneval", limit=3)
    assert [t["task_id"] for t in tasks] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert all({"prompt", "test", "entry_point"} <= set(t) for t in tasks)


def test_synthetic_prompts():
    pytest.importorskip("diffucode.data.synthetic")
    tasks = load_prompts("synthetic", limit=2)
    assert len(tasks) == 2 and all(t["task_id"].startswith("synthetic/") and t["prompt"] for t in tasks)


def test_prompts_file_and_errors(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"prompt": "a"}) + "\n\n" + json.dumps({"prompt": "b", "task_id": "mine"}) + "\n")
    assert [(t["task_id"], t["prompt"]) for t in load_prompts(prompts_file=f)] == [("p/1", "a"), ("mine", "b")]
    with pytest.raises(ValueError, match="exactly one of"):
        load_prompts("humaneval", prompts_file=f)
    with pytest.raises(ValueError, match="exactly one of"):
        load_prompts()
    with pytest.raises(ValueError, match="--limit must be >= 1"):
        load_prompts("humaneval", limit=0)
    with pytest.raises(ValueError, match="--benchmark must be one of"):
        load_prompts("mbpp")
    with pytest.raises(ValueError, match="no such file"):
        load_prompts(prompts_file=tmp_path / "missing.jsonl")
    f.write_text("{not json\n")
    with pytest.raises(ValueError, match="line 1: not valid JSON"):
        load_prompts(prompts_file=f)


def test_encode_and_left_pad():
    tok = build_tiny_tokenizer()
    rows = encode_prompts(tok, ["def f(x):", "x"])
    ids, mask = left_pad(rows, pad_id=tok.pad_token_id)
    assert ids.shape == mask.shape == (2, len(rows[0]))
    assert ids[1, -len(rows[1]):].tolist() == rows[1] and mask[1].sum().item() == len(rows[1])
    assert (ids[1, : -len(rows[1])] == tok.pad_token_id).all() and mask[0].all()
    (chat,) = encode_prompts(tok, ["hi"], chat=True)
    assert tok.decode(chat) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
