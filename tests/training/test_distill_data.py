"""scripts/build_distill_data.py: the teacher's own decodes replace the answers, record shapes
kept, bad input named by file:line, nothing half-written."""

import json
from pathlib import Path

import pytest

from diffucode.evaluation.generation import iter_generate
from diffucode.models import build_tiny_model, load_model
from diffucode.sampling import GenerationConfig


@pytest.fixture(scope="module")
def script(load_script):
    return load_script("build_distill_data")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    model, tok = build_tiny_model(attention="block_causal", shift=False, block_len=4, hidden_size=32, seed=0)
    out = tmp_path_factory.mktemp("teacher") / "tiny-block"
    model.save_pretrained(out, tokenizer=tok)
    return out


def _sft(path: Path) -> Path:
    recs = [
        {"messages": [{"role": "user", "content": "write f"}, {"role": "assistant", "content": "REFERENCE A"}]},
        {"prompt": "def g(x):\n", "response": "REFERENCE B", "chat_template": False},
        {"messages": [{"role": "user", "content": "write h"}, {"role": "assistant", "content": "REFERENCE C"}]},
    ]
    path.write_text(json.dumps(recs[0]) + "\n\n" + "\n".join(json.dumps(r) for r in recs[1:]) + "\n")
    return path


def test_answers_are_the_teachers_decodes(script, teacher, tmp_path, capsys):
    out = tmp_path / "d.jsonl"
    assert script.main(["--model", str(teacher), "--sft", str(_sft(tmp_path / "sft.jsonl")), "--out", str(out),
                        "--max-new-tokens", "8", "--batch-size", "2", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["records"] == 3 and summary["kept"] + summary["empty_dropped"] == 3
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == summary["kept"] >= 1
    assert not any("REFERENCE" in json.dumps(r) for r in rows)  # every answer replaced
    # the same decoding, run here: the written answers are exactly the teacher's decodes
    model, tok = load_model(teacher, verbose=False)
    cfg = GenerationConfig(max_new_tokens=8, steps=8, alg="entropy", temperature=0.0, seed=0)
    chat = [b.texts for b in iter_generate(model, tok, ["write f", "write h"], cfg, 1, 2, chat=True,
                                           response_prefix="", progress=False)][0]
    assert chat[0] != chat[1]  # distinct decodes (seed 0), so a mix-up of records would show
    base = next(iter_generate(model, tok, ["def g(x):\n"], cfg, 1, 2, progress=False)).texts
    expected = []
    for user, text in (("write f", chat[0]), (None, base[0]), ("write h", chat[1])):
        if text.strip():
            expected.append({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": text}]}
                            if user else {"prompt": "def g(x):\n", "response": text, "chat_template": False})
    assert rows == expected
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_bad_line_is_named_and_nothing_is_written(script, teacher, tmp_path):
    sft = tmp_path / "sft.jsonl"
    sft.write_text(json.dumps({"prompt": "def g(x):\n", "response": "y"}) + "\n{not json\n")
    out = tmp_path / "d.jsonl"
    with pytest.raises(SystemExit, match=r"sft.jsonl:2: not JSON"):
        script.main(["--model", str(teacher), "--sft", str(sft), "--out", str(out), "--no-progress"])
    assert not out.exists()
    with pytest.raises(SystemExit, match="--batch-size must be >= 1"):
        script.main(["--sft", str(sft), "--batch-size", "0"])
    with pytest.raises(SystemExit, match="no such file"):
        script.main(["--sft", str(tmp_path / "missing.jsonl")])
