"""Pre-training corpus (stdlib + synthetic train tasks) and the byte-level BPE tokenizer: exact
code roundtrips, special tokens, chat template, offline reload, deterministic training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffucode.data.corpus import build_corpus, split_source, stdlib_files
from diffucode.data.synthetic import FAMILIES, full_function, load_split
from diffucode.data.tokenizer import SPECIAL_TOKENS, iter_texts, train_tokenizer

VOCAB = 700  # small vocab: quick to train, still merges indentation and keywords

# Whitespace that code depends on: tabs, runs of spaces, trailing spaces, blank lines with
# spaces, CRLF, a file without a final newline, non-ASCII text, and text that looks like a
# special token without being one.
TRICKY = [
    "def f(x):\n\tif x:  \n        return  x  +1 # é 中文 😀\r\n\n\n   \n",
    "class A :\n    pass\n\n\n\n    \n",
    "x = ' . , ; '\nprint( x ,end='' )",
    "    \n\t\t\n \n",
    "s = '<|mask' + '|>'  # not a special token\n",
    "",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    stats = build_corpus(out, n_synthetic=300, seed=0, max_file_chars=6000, max_stdlib_files=12)
    return out, stats


@pytest.fixture(scope="module")
def tok_dir(corpus, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("tok")
    train_tokenizer(corpus[0], vocab_size=VOCAB, out_dir=out_dir)
    return out_dir


@pytest.fixture(scope="module")
def tok(tok_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tok_dir))


def test_split_source_keeps_text_and_cuts_at_top_level():
    text = "import os\n\n\ndef a():\n    return 1\n\n\nclass B:\n    x = 1\n\n    def m(self):\n        pass\n\n\n" \
        + "def c():\n" + "    y = 2\n" * 40
    pieces = split_source(text, 60)
    assert "".join(pieces) == text
    assert all(len(p) <= 60 for p in pieces)
    # pieces start at a top-level statement, except inside the one block longer than the limit
    assert pieces[0].startswith("import os\n\n\ndef a():") and pieces[1].startswith("class B:")
    assert pieces[2].startswith("def c():")
    assert all(p.startswith("    y = 2\n") for p in pieces[3:])
    assert split_source("short", 100) == ["short"]
    assert "".join(split_source("x" * 250, 100)) == "x" * 250
    with pytest.raises(ValueError, match="max_file_chars"):
        split_source(text, 0)


def test_stdlib_files_skip_tests_and_generated_modules():
    files = stdlib_files()
    assert len(files) > 300
    assert files == sorted(files, key=lambda p: p.as_posix())
    parts = {part for f in files for part in f.parts}
    assert not parts & {"test", "tests", "idlelib", "site-packages", "encodings", "__pycache__"}
    names = {f.name for f in files}
    assert {"json", "os.py"} <= parts | names and not any(n.startswith("_sysconfigdata") for n in names)


def test_build_corpus(corpus, tmp_path):
    path, stats = corpus
    docs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(docs) == stats["docs"] == stats["stdlib_docs"] + stats["synthetic_docs"]
    assert stats["synthetic_docs"] == 300 and stats["stdlib_files"] == 12
    assert all(set(d) == {"text", "source"} and d["text"] for d in docs)
    assert all(len(d["text"]) <= 6000 for d in docs if d["source"].startswith("stdlib/"))
    assert sum(len(d["text"]) for d in docs) == stats["chars"]
    # stdlib files are kept verbatim (pieces reassemble to the file)
    first = stdlib_files()[0]
    rel = "stdlib/" + first.name
    pieces = sorted((d for d in docs if d["source"].split("#")[0] == rel),
                    key=lambda d: int(d["source"].split("#")[1]) if "#" in d["source"] else 0)
    assert "".join(d["text"] for d in pieces) == first.read_text(encoding="utf-8")
    # synthetic documents come from the train split only
    syn = [d for d in docs if d["source"].startswith("synthetic/")]
    assert all(not FAMILIES[d["source"].split("/")[1]].held_out for d in syn)
    train_funcs = {full_function(t) for t in load_split("train", 300)}
    assert {d["text"].split("\n\nassert ")[0] for d in syn} == train_funcs
    test_funcs = {full_function(t) for t in load_split("test")}
    assert not any(d["text"].split("\n\nassert ")[0] in test_funcs for d in syn)
    # deterministic
    again = tmp_path / "again.jsonl"
    build_corpus(again, n_synthetic=300, seed=0, max_file_chars=6000, max_stdlib_files=12)
    assert again.read_bytes() == path.read_bytes()


def test_special_tokens_and_chat_template(tok, tok_dir):
    assert [tok.convert_tokens_to_ids(s) for s in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert (tok.eos_token, tok.pad_token, tok.mask_token) == SPECIAL_TOKENS[:3]
    assert (tok.eos_token_id, tok.pad_token_id, tok.mask_token_id) == (0, 1, 2)
    assert set(SPECIAL_TOKENS) <= set(tok.all_special_tokens)
    assert len(tok) == VOCAB
    # each special token is one id inside text, and is dropped by skip_special_tokens
    ids = tok.encode("a<|mask|><|mask|>b<|endoftext|>", add_special_tokens=False)
    assert ids.count(2) == 2 and ids.count(0) == 1
    assert tok.decode(ids, skip_special_tokens=True) == "ab"
    assert tok.encode("x = 1") == tok.encode("x = 1", add_special_tokens=False)  # no BOS/EOS added
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Write f."}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWrite f.<|im_end|>\n<|im_start|>assistant\n"
    assert not tok.apply_chat_template(msgs, tokenize=False).endswith("assistant\n")
    ids = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert ids.count(3) == 3 and ids.count(4) == 2
    assert (tok_dir / "tokenizer.json").is_file()


def test_roundtrip_is_exact(tok, corpus):
    texts = list(TRICKY)
    texts += [full_function(t) + "\n" + t["test"] for t in load_split("test", 30)]
    texts += [p.read_text(encoding="utf-8") for p in stdlib_files()[12:16]]  # files the tokenizer never saw
    for text in texts:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text
    # indentation is tokenized, not normalized away: 4 and 8 spaces give different ids
    assert tok.encode("    x", add_special_tokens=False) != tok.encode("        x", add_special_tokens=False)
    # the corpus tokenizer compresses code (more than one byte per token on unseen stdlib code)
    sample = texts[-1]
    assert len(tok.encode(sample, add_special_tokens=False)) < 0.6 * len(sample.encode())


def test_training_is_deterministic(corpus, tok_dir, tmp_path):
    """Same corpus -> byte-identical tokenizer.json, also from a fresh process with another hash seed."""
    code = ("import sys; from diffucode.data.tokenizer import train_tokenizer; "
            f"train_tokenizer(sys.argv[1], vocab_size={VOCAB}, out_dir=sys.argv[2])")
    env = dict(os.environ, PYTHONHASHSEED="777")
    out = subprocess.run([sys.executable, "-c", code, str(corpus[0]), str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "tokenizer.json").read_bytes() == (tok_dir / "tokenizer.json").read_bytes()


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(["x = 1"], vocab_size=100)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"txt": "no"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        list(iter_texts(bad))
    assert list(iter_texts(["a = 1", "b = 2"])) == ["a = 1", "b = 2"]
    with pytest.raises(ValueError, match="n_synthetic"):
        build_corpus(tmp_path / "c.jsonl", n_synthetic=-1)


@pytest.mark.slow
def test_full_corpus_and_tokenizer(tmp_path):
    """The shipped recipe (full stdlib + 20k tasks, vocab 4096): tasks fit ~200 tokens."""
    from diffucode.data.corpus import main

    assert main(["--out", str(tmp_path), "--vocab-size", "4096"]) == 0
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["vocab_size"] == 4096 and stats["synthetic_task_tokens"]["max"] <= 200
    assert Path(tmp_path / "tokenizer" / "tokenizer.json").is_file()
