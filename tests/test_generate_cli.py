"""`diffucode generate`: prompt sources, JSON output, step animation, infilling, model fallback, errors."""

import io
import json

import pytest
import torch

from diffucode.recipes import generate as cli


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _json(capsys, argv):
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def test_json_output_and_untrained_warning(capsys):
    rec, err = _json(capsys, ["--tiny", "--max-new-tokens", "8", "--json", "--seed", "0", "def f(x):"])
    assert set(rec) >= {"completion", "token_ids", "order", "nfe", "seconds"}
    assert isinstance(rec["completion"], str)
    assert 1 <= len(rec["token_ids"]) <= 8 and len(rec["order"]) == len(rec["token_ids"])
    assert 1 <= rec["nfe"] <= 8 and rec["seconds"] >= 0
    assert "UNTRAINED tiny model: output is random" in err


def test_every_config_flag_reaches_the_engine(capsys):
    rec, _ = _json(capsys, ["--tiny", "--prompt", "x = 1", "--json", "--max-new-tokens", "8", "--steps", "4",
                            "--alg", "low_confidence", "--alg-temp", "0.1", "--temperature", "0.5", "--top-p", "0.9",
                            "--top-k", "50", "--block-len", "4", "--cache", "dual", "--seed", "3", "--eps", "0.01",
                            "--no-stop-at-eos"])
    assert len(rec["token_ids"]) == 8  # no end-of-text cut
    assert rec["num_steps"] == 4
    rec2, _ = _json(capsys, ["--tiny", "--prompt", "x = 1", "--json", "--max-new-tokens", "8", "--threshold", "0.9"])
    assert rec2["nfe"] >= 1


def test_default_model_falls_back_to_tiny_with_a_warning(capsys, monkeypatch):
    import diffucode.bundled

    monkeypatch.setattr(diffucode.bundled, "bundled_model_path", lambda name="nano": None)
    rec, err = _json(capsys, ["--max-new-tokens", "4", "--json", "x"])
    assert rec["model"] == "tiny-untrained"
    assert "no bundled model" in err and "UNTRAINED" in err


def test_model_path_prompt_file_stdin_and_num_return_sequences(capsys, tmp_path, monkeypatch):
    from diffucode.models import build_tiny_model

    model, tok = build_tiny_model(hidden_size=32)
    model.save_pretrained(tmp_path / "m", tokenizer=tok)
    (tmp_path / "p.py").write_text("def add(a, b):\n")
    rec, err = _json(capsys, ["--model", str(tmp_path / "m"), "--prompt-file", str(tmp_path / "p.py"), "--json",
                              "--max-new-tokens", "6", "-n", "2", "--temperature", "1.0", "--seed", "1"])
    assert "UNTRAINED" not in err
    assert rec["model"] == str(tmp_path / "m")
    assert isinstance(rec["completion"], list) and len(rec["completion"]) == 2 and len(rec["order"]) == 2
    assert rec["prompt_tokens"] == len(tok("def add(a, b):\n").input_ids)

    monkeypatch.setattr("sys.stdin", io.StringIO("def g(y):\n"))
    rec, _ = _json(capsys, ["--model", str(tmp_path / "m"), "--json", "--max-new-tokens", "4"])
    assert rec["prompt_tokens"] == len(tok("def g(y):\n").input_ids)


def test_show_steps_prints_plain_frames_when_not_a_tty(capsys):
    assert cli.main(["--tiny", "--max-new-tokens", "6", "--alg", "low_confidence", "--show-steps",
                     "--no-stop-at-eos", "def f(x):"]) == 0
    out = capsys.readouterr().out
    frames = [line for line in out.splitlines() if line.startswith("--- step ")]
    assert len(frames) == 6 and frames[-1] == "--- step 6/6 ---"
    first_frame = out.split("--- step 2/6 ---")[0]
    assert first_frame.count("░") == 5  # one token per step: 5 masks left after step 1
    assert "\x1b[" not in out  # no terminal escapes in a pipe


def test_infilling_and_chat(capsys):
    rec, _ = _json(capsys, ["--tiny", "--json", "--max-new-tokens", "5", "--prompt", "def f(x):\n",
                            "--suffix", "\n    return y\n", "--no-stop-at-eos"])
    assert len(rec["token_ids"]) == 5
    plain, _ = _json(capsys, ["--tiny", "--json", "--max-new-tokens", "4", "hi"])
    chat, _ = _json(capsys, ["--tiny", "--json", "--max-new-tokens", "4", "--chat", "hi"])
    assert chat["prompt_tokens"] > plain["prompt_tokens"]  # the template wraps the prompt


def test_errors_are_clear(capsys):
    assert cli.main(["--tiny", "--max-new-tokens", "4", "--steps", "9", "x"]) == 2
    assert "--steps: 9 steps for 4 tokens" in capsys.readouterr().err
    assert cli.main(["--tiny", "--max-new-tokens", "6", "--block-len", "4", "x"]) == 2
    assert "--block-len: 4 does not divide --max-new-tokens 6" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["--tiny", "--prompt", "a", "b"])
    assert e.value.code == 2
    assert "give the prompt once" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--tiny", "--prompt-file", "/nonexistent/prompt.txt"])
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--tiny", "--alg", "greedy", "x"])


def test_stop_strings_cut_the_text():
    assert cli._cut_at_stops("a = 1\ndef g():\n    pass", ["\ndef ", "\nclass "]) == "a = 1"
    assert cli._cut_at_stops("abc", []) == "abc"
    assert cli._completion_ids(torch.tensor([9, 9, 5, 0, 1, 1]), 2, {0, 1}) == [5, 0]


def test_completion_prompt_ending_a_block_opener_gets_its_newline():
    from diffucode.recipes.generate import complete_block_opener

    assert complete_block_opener("def is_palindrome(s):") == "def is_palindrome(s):\n"
    assert complete_block_opener("import os\n\nclass A(B):") == "import os\n\nclass A(B):\n"
    assert complete_block_opener("    for x in xs:") == "    for x in xs:\n"
    for unchanged in ("def f(x):\n", "x = s[::", "d = {'a':", "def f(x): ", "print('done:')", ""):
        assert complete_block_opener(unchanged) == unchanged


def test_block_opener_newline_is_applied_by_the_cli_unless_raw(capsys):
    def prompt_tokens(*extra):
        assert cli.main(["--tiny", "--max-new-tokens", "2", "--json", *extra, "def f(x):"]) == 0
        return json.loads(capsys.readouterr().out)["prompt_tokens"]

    assert prompt_tokens() == prompt_tokens("--raw-prompt") + 1  # the tiny tokenizer: one token per character


@pytest.mark.parametrize("argv", [["generate", "--help"], ["generate", "--steps", "0", "x"],
                                  ["generate", "--cache", "bogus", "x"], ["generate", "--top-p", "2", "x"]])
def test_help_and_argument_errors_import_no_torch(argv):
    # checked before torch is imported or a model loaded: instant, not seconds
    import subprocess
    import sys

    code = ("import sys\nfrom diffucode.cli import main\n"
            "try:\n    rc = main(sys.argv[1:])\nexcept SystemExit as e:\n    rc = e.code\n"
            "print('TORCH', 'torch' in sys.modules, 'RC', rc)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    assert "TORCH False" in proc.stdout, proc.stdout + proc.stderr
    assert ("RC 0" in proc.stdout) == (argv[-1] == "--help")


def test_progress_counts_forward_passes():
    from diffucode.models import build_tiny_model
    from diffucode.recipes.generate import _Progress
    from diffucode.sampling import GenerationConfig, generate

    model, tok = build_tiny_model()
    ids = tok("def f(x):", return_tensors="pt").input_ids
    progress = _Progress(model, enabled=True)
    out = generate(model, ids, config=GenerationConfig(max_new_tokens=8, early_exit=False))
    assert progress.bar.n == out.nfe > 0
    progress.close()
    generate(model, ids, config=GenerationConfig(max_new_tokens=4))
    assert progress.bar.n == out.nfe  # the hook is gone
