"""Data pipeline: sources (text / JSONL / parquet / globs), packing, SFT encoding and collation."""

import json

import pytest
import torch

from diffucode.data.packing import pack_texts, pack_token_lists
from diffucode.data.sft import SFTExample, collate_sft, encode_messages, load_sft_examples, record_to_messages, sft_row
from diffucode.data.text_datasets import DataError, iter_texts, resolve_source


@pytest.fixture(scope="module")
def tok():
    from diffucode.models import build_tiny_tokenizer

    return build_tiny_tokenizer()


def test_pack_token_lists_hand_example():
    packed = pack_token_lists([[1, 2, 3], [4, 5], [], [6]], max_seq_len=4, eos_id=0, pad_id=9)
    # stream: 1 2 3 0 | 4 5 0 6 | 0  -> the last row has one token: dropped (min_last_row = 2)
    assert packed.input_ids.tolist() == [[1, 2, 3, 0], [4, 5, 0, 6]]
    assert packed.attention_mask.tolist() == [[1] * 4, [1] * 4]
    assert packed.num_documents == 3
    packed = pack_token_lists([[1, 2, 3], [4, 5, 6, 7]], max_seq_len=3, eos_id=0, pad_id=9)
    # stream: 1 2 3 | 0 4 5 | 6 7 0 -> exactly three rows
    assert packed.input_ids.tolist() == [[1, 2, 3], [0, 4, 5], [6, 7, 0]]
    packed = pack_token_lists([[1, 2, 3, 4]], max_seq_len=3, eos_id=0, pad_id=9)
    # stream: 1 2 3 | 4 0 -> the partial row is kept and padded
    assert packed.input_ids.tolist() == [[1, 2, 3], [4, 0, 9]]
    assert packed.attention_mask.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert packed.num_tokens == 5


def test_pack_texts_roundtrip(tok):
    texts = ["def f(x):\n    return x\n", "print('hi')\n"]
    packed = pack_texts(texts, tok, max_seq_len=8)
    flat = packed.input_ids[packed.attention_mask.bool()].tolist()
    eos = tok.eos_token_id
    docs, cur = [], []
    for t in flat:
        if t == eos:
            docs.append(tok.decode(cur))
            cur = []
        else:
            cur.append(t)
    assert docs == texts


def test_sources_jsonl_text_glob_and_dir(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "one"}) + "\n\n" + json.dumps({"text": "two"}) + "\n")
    (tmp_path / "b.py").write_text("x = 1\n")
    (tmp_path / "c.json").write_text(json.dumps([{"text": "three"}]))
    (tmp_path / "skip.bin").write_bytes(b"\x00\x01")
    assert list(iter_texts([str(tmp_path / "a.jsonl")])) == ["one", "two"]
    assert list(iter_texts([str(tmp_path)])) == ["one", "two", "x = 1\n", "three"]  # sorted; .bin ignored
    assert list(iter_texts([str(tmp_path / "*.py")])) == ["x = 1\n"]
    # relative paths fall back to the config's directory
    assert resolve_source("b.py", base_dir=tmp_path) == [tmp_path / "b.py"]
    assert resolve_source("someone/some-dataset") == "someone/some-dataset"  # a hub id


def test_malformed_line_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"text": "ok"}) + "\n" + '{"text": "broken\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: malformed JSON"):
        list(iter_texts([str(p)]))
    q = tmp_path / "nofield.jsonl"
    q.write_text(json.dumps({"body": "x"}) + "\n")
    with pytest.raises(DataError, match=r"nofield\.jsonl:1: record has no 'text' field"):
        list(iter_texts([str(q)]))
    with pytest.raises(DataError, match="no such file"):
        list(iter_texts([str(tmp_path / "missing.jsonl")]))
    with pytest.raises(DataError, match="matches no file"):
        list(iter_texts([str(tmp_path / "*.parquet")]))


def test_parquet_source(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["alpha", "beta"]}), str(tmp_path / "d.parquet"))
    assert list(iter_texts([str(tmp_path / "d.parquet")])) == ["alpha", "beta"]


def test_sft_record_formats_and_errors():
    msgs = record_to_messages({"prompt": "q", "response": "a"}, "f:1")
    assert msgs == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    with pytest.raises(DataError, match="f:3: the last message must have role 'assistant'"):
        record_to_messages({"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "q"}]}, "f:3")
    with pytest.raises(DataError, match="f:4: an SFT record needs"):
        record_to_messages({"question": "q"}, "f:4")
    with pytest.raises(DataError, match=r"f:5: messages\[1\]"):
        record_to_messages({"messages": [{"role": "user", "content": "q"}, {"role": "assistant"}]}, "f:5")


def test_sft_encoding_uses_chat_template(tok):
    msgs = [{"role": "user", "content": "add two numbers"}, {"role": "assistant", "content": "def add(a, b): return a + b"}]
    ex = encode_messages(tok, msgs)
    prompt = tok.decode(ex.prompt_ids)
    response = tok.decode(ex.response_ids)
    assert prompt == "<|im_start|>user\nadd two numbers<|im_end|>\n<|im_start|>assistant\n"
    assert response == "def add(a, b): return a + b<|im_end|>\n"
    plain = encode_messages(tok, msgs, chat_template=False)
    assert tok.decode(plain.prompt_ids) == "add two numbers"


def test_collate_pad_to_max_and_random_eos():
    ex = [SFTExample([5, 6], [7, 8, 9], "a"), SFTExample([5], [7], "b")]
    EOS, PAD = 0, 1
    b = collate_sft(ex, max_seq_len=8, eos_id=EOS, pad_id=PAD, pad_mode="pad_to_max")
    assert b["input_ids"].tolist() == [[5, 6, 7, 8, 9, 0, 1, 1], [5, 7, 0, 1, 1, 1, 1, 1]]
    assert b["attention_mask"].tolist() == [[1] * 8, [1] * 8]  # the fill is real and supervised
    assert b["loss_region"].tolist() == [[False, False] + [True] * 6, [False] + [True] * 7]  # prompt never in it
    b = collate_sft(ex, max_seq_len=8, eos_id=EOS, pad_id=PAD, pad_mode="random_eos", n_eos=[2, 4])
    # padded to the longest row (7), not to max_seq_len
    assert b["input_ids"].tolist() == [[5, 6, 7, 8, 9, 0, 0], [5, 7, 0, 0, 0, 0, 1]]
    assert b["attention_mask"].tolist() == [[1] * 7, [1] * 6 + [0]]  # batch padding is not attended
    assert b["loss_region"].tolist() == [[False, False] + [True] * 5, [False] + [True] * 5 + [False]]
    b = collate_sft(ex, max_seq_len=8, eos_id=EOS, pad_id=PAD, pad_mode="random_eos", n_eos=[1, 1], pad_to_multiple=4)
    assert b["input_ids"].shape == (2, 8)  # 6 rounded up to a multiple of 4


def test_sft_row_truncates_response_keeps_one_eos():
    ex = SFTExample([1, 2, 3], [4, 5, 6, 7, 8], "x")
    ids, start = sft_row(ex, max_seq_len=6, eos_id=0, n_eos=4)
    assert ids == [1, 2, 3, 4, 5, 0] and start == 3
    with pytest.raises(DataError, match="x: prompt of 3 tokens"):
        sft_row(ex, max_seq_len=4, eos_id=0)


def test_load_sft_examples_drops_long_prompts(tmp_path, tok):
    p = tmp_path / "sft.jsonl"
    p.write_text(json.dumps({"prompt": "short", "response": "ok"}) + "\n" + json.dumps({"prompt": "x " * 200, "response": "ok"}) + "\n")
    examples, dropped = load_sft_examples([str(p)], tok, max_seq_len=32)
    assert len(examples) == 1 and dropped == 1 and examples[0].where.endswith("sft.jsonl:1")
    p.write_text(json.dumps({"prompt": "short", "response": "ok"}) + "\nnot json\n")
    with pytest.raises(DataError, match=r"sft\.jsonl:2: malformed JSON"):
        load_sft_examples([str(p)], tok, max_seq_len=32)


def test_shipped_tiny_data_reads(tok):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs" / "train" / "data"
    assert len(list(iter_texts([str(root / "tiny_code.jsonl")]))) >= 40
    examples, dropped = load_sft_examples([str(root / "tiny_sft.jsonl")], tok, max_seq_len=96)
    assert len(examples) >= 20 and dropped == 0
    assert all(len(e.response_ids) > 0 for e in examples)
    assert isinstance(torch.tensor(examples[0].prompt_ids), torch.Tensor)


def test_record_can_opt_out_of_chat_template(tmp_path):
    import json

    from diffucode.data.sft import load_sft_examples
    from diffucode.models import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    f = tmp_path / "mixed.jsonl"
    f.write_text(json.dumps({"prompt": "def f(x):\n", "response": "    return x\n"}) + "\n"
                 + json.dumps({"prompt": "def f(x):\n", "response": "    return x\n", "chat_template": False}) + "\n")
    (templated, raw), dropped = load_sft_examples([str(f)], tok, 64, chat_template=True)
    assert dropped == 0
    assert tok.decode(raw.prompt_ids) == "def f(x):\n"
    assert "<|im_start|>" in tok.decode(templated.prompt_ids)
