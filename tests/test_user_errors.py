"""Every model-loading and output-path mistake is one line on stderr and a non-zero exit, in
every command, with nothing written (diffucode.errors.UserError, caught in diffucode.cli.main)."""

import json
import shutil
from pathlib import Path

import pytest

from diffucode.bundled import bundled_model_path
from diffucode.cli import main

NANO = bundled_model_path("nano")


def _bad_models(tmp: Path) -> dict[str, tuple[str, str]]:
    """name -> (--model value, text the message must contain)."""
    empty = tmp / "not_a_model"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    badjson = tmp / "bad_json"
    badjson.mkdir()
    (badjson / "config.json").write_text('{"model_type": "qwen2",')
    noweights = tmp / "no_weights"
    noweights.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(NANO / name, noweights / name)
    afile = tmp / "a_file.bin"
    afile.write_text("x")
    return {
        "missing": (str(tmp / "does" / "not" / "exist"), "does not exist"),
        "hub_id": ("someorg/some-model-7b", "hub id"),
        "not_a_model": (str(empty), "no config.json"),
        "bad_config": (str(badjson), "not valid JSON"),
        "no_weights": (str(noweights), "model.safetensors"),
        "a_file": (str(afile), "is a file"),
    }


def _one_line_error(capsys, rc, *needles):
    err = capsys.readouterr().err.strip()
    assert rc not in (0, None), err
    # eval announces its task count first; everything else must be the one error line
    lines = [ln for ln in err.splitlines() if ln.strip() and " tasks -> " not in ln]
    assert len(lines) == 1, err  # one line, no traceback
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


COMMANDS = {
    "generate": lambda m, out: ["generate", "--model", m, "--max-new-tokens", "4", "def f(x):"],
    "eval": lambda m, out: ["eval", "--benchmark", "synthetic", "--limit", "1", "--n-samples", "1",
                            "--max-new-tokens", "4", "--model", m, "--output", str(out)],
    "analyze arness": lambda m, out: ["analyze", "arness", "--model", m, "--benchmark", "synthetic", "--limit", "1",
                                      "--max-new-tokens", "4", "--temperatures", "0.2", "--output", str(out)],
    "analyze replay": lambda m, out: ["analyze", "replay", "--model", m, "--prompt", "def f(x):",
                                      "--max-new-tokens", "4", "--output", str(out / "page.html")],
    "train": lambda m, out: ["train", "--config", "train/sft_tiny", f"model.init_from={m}", f"output_dir={out}",
                             "max_steps=1"],
    "rl": lambda m, out: ["rl", "--config", "rl/coupled_grpo_tiny", f"model.init_from={m}", f"output_dir={out}",
                          "max_steps=1"],
}
CASES = ["missing", "hub_id", "not_a_model", "bad_config", "no_weights", "a_file"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bad_model_is_one_line(tmp_path, capsys, monkeypatch, command, case):
    monkeypatch.chdir(tmp_path)
    model, needle = _bad_models(tmp_path)[case]
    out = tmp_path / "out"
    rc = main(COMMANDS[command](model, out))
    line = _one_line_error(capsys, rc, needle)
    assert line.startswith("diffucode ")
    # nothing half-written: no outputs (an empty directory at most)
    # (the run-directory lock file of train / rl / eval is no output)
    written = [p for p in out.rglob("*") if p.is_file() and p.name != ".diffucode.lock"] if out.exists() else []
    assert written == [], written


def test_previous_stage_not_run_names_the_stage(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/ here
    rc = main(["train", "--config", "nano/02_mdm"])
    _one_line_error(capsys, rc, "runs/nano/ar_more/final", "configs/nano/01b_ar_more.yaml", "has not run")
    assert not (tmp_path / "runs").exists()
    rc = main(["rl", "--config", "nano/04_grpo_coupled"])
    _one_line_error(capsys, rc, "runs/nano/sft_mdm/final", "configs/nano/03_sft_mdm.yaml")


@pytest.mark.parametrize("argv", [
    ["generate", "--device", "cuda", "--max-new-tokens", "4", "x"],
    ["eval", "--benchmark", "synthetic", "--limit", "1", "--device", "cuda", "--output", "OUT"],
    ["analyze", "replay", "--device", "cuda", "--prompt", "def f(x):", "--output", "OUT/p.html"],
])
def test_cuda_without_cuda(tmp_path, capsys, argv):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    argv = [a.replace("OUT", str(tmp_path / "o")) for a in argv]
    _one_line_error(capsys, main(argv), "--device cuda", "CUDA is not available")


@pytest.mark.parametrize("command", ["eval", "analyze arness", "train", "rl", "analyze replay"])
def test_output_path_that_is_an_existing_file(tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    blocker = tmp_path / "taken"
    blocker.write_text("keep me")
    if command == "analyze replay":  # its output is a file: refuse a directory, or a path under a file
        argv = COMMANDS[command]("nano", blocker)  # taken/page.html
        needle = "is an existing file"
    else:
        argv = COMMANDS[command]("nano", blocker)
        needle = "is an existing file"
    _one_line_error(capsys, main(argv), str(blocker), needle)
    assert blocker.read_text() == "keep me"


def test_replay_output_that_is_a_directory(tmp_path, capsys):
    (tmp_path / "page.html").mkdir()
    argv = ["analyze", "replay", "--prompt", "def f(x):", "--max-new-tokens", "4", "--output", str(tmp_path / "page.html")]
    _one_line_error(capsys, main(argv), "is an existing directory")


def test_bundled_short_names_load():
    from diffucode.models import load_model

    model, _ = load_model("nano")
    assert (model.attention, model.block_len) == ("block_causal", 4)
    if bundled_model_path("nano-mdm") is None:
        pytest.skip("this install has no nano-mdm")
    model, _ = load_model("nano-mdm")
    assert model.attention == "bidirectional"


def test_python_dash_m_diffucode():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "diffucode", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("diffucode "), proc.stderr


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "--config", "train/ar_tiny", "max_steps=1"], "bad.jsonl:2: malformed JSON line"),
        (["rl", "--config", "rl/coupled_grpo_tiny", "max_steps=1"], "bad.jsonl:1: missing or empty 'question'"),
    ],
    ids=["train", "rl"],
)
def test_bad_data_file_is_one_line(tmp_path, capsys, argv, needle):
    """A broken data file is a user mistake: one line naming file:line, exit 2, no traceback."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\nnot json\n')
    key = "data.train=[" + str(bad) + "]" if argv[0] == "train" else f"data.prompts={bad}"
    rc = main(argv + [key, f"output_dir={tmp_path / 'run'}"])
    _one_line_error(capsys, rc, "data error", needle)
