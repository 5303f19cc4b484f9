"""Every `diffucode` command in README.md runs as written on a fresh install.

The commands are read from the README's ```bash blocks themselves and split into arguments by
bash (so $'...' quoting, comments and `&&` chains mean what they mean to a user). Each runs in
process, from an empty directory, on the bundled models, with only its lengths made small
(fewer tokens, samples, tasks and steps). The commands that cannot run here are listed below
with the reason, and the test fails if that list and the README disagree.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest

from diffucode.bundled import bundled_model_path
from diffucode.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# Not run, and why. Every other `diffucode` line of the README is run.
SKIP_REASONS = {
    "path/to/": "needs a real checkpoint the user downloads",
    "MbppPlus.jsonl": "needs the EvalPlus data file the user downloads",
    "configs/nano/": "a stage of the nano pipeline: 10-50 min each (tests/test_nano_chain.py runs every stage small)",
    "diffucode serve": "a server that runs until stopped (tests/serving/ start and stop it)",
    "diffucode bench": "a speed benchmark run by hand (tests/test_bench_cli.py runs it small)",
}


def _readme_commands() -> list[list[str]]:
    """argv of every `diffucode` invocation in the README's bash blocks, in order, parsed by bash."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    # each argument as "A<arg>\0" (so an empty argument survives), each command ended by "E\0"
    script = "diffucode() { printf 'A%s\\0' diffucode \"$@\"; printf 'E\\0'; }\n"
    script += "pip() { :; }\npython() { :; }\n"  # the install / test steps around them
    script += "".join(blocks)
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout.decode()
    commands, cur = [], []
    for field in out.split("\0"):
        if field == "E":
            commands.append(cur)
            cur = []
        elif field.startswith("A"):
            cur.append(field[1:])
    return commands


def _skip_reason(argv: list[str]) -> str | None:
    line = " ".join(argv)
    for needle, reason in SKIP_REASONS.items():
        if needle in line:
            return reason
    return None


def _set(argv: list[str], flag: str, value: str) -> list[str]:
    """``flag value`` replaced, or appended when absent."""
    if flag in argv:
        i = argv.index(flag)
        return argv[: i + 1] + [value] + argv[i + 2:]
    return argv + [flag, value]


def _small(argv: list[str]) -> list[str]:
    """The same command with small lengths (and nothing else changed)."""
    cmd = argv[1]
    if cmd == "generate":
        n = int(argv[argv.index("--max-new-tokens") + 1]) if "--max-new-tokens" in argv else 64
        small = int(argv[argv.index("--block-len") + 1]) if "--block-len" in argv else 8  # whole blocks
        argv = _set(argv, "--max-new-tokens", str(min(n, small)))
    elif cmd == "eval":
        argv = _set(argv, "--limit", "1") + ["--no-progress"]
        if "--execution-only" not in argv:
            small = argv[argv.index("--block-len") + 1] if "--block-len" in argv else "8"  # whole blocks
            argv = _set(_set(_set(argv, "--max-new-tokens", small), "--n-samples", "2"), "--batch-size", "2")
            if "--steps" in argv:
                argv = _set(argv, "--steps", small)
            if "--k" in argv:
                argv = _set(argv, "--k", "1,2")
    elif cmd in ("train", "rl"):
        argv = [a for a in argv if not a.startswith("max_steps=")] + ["max_steps=2" if cmd == "train" else "max_steps=1",
                                                                       "logging.progress_bar=false"]
    elif cmd == "analyze":
        argv = _set(argv, "--max-new-tokens", "8")
        if argv[2] == "arness":
            argv = _set(_set(argv, "--limit", "2"), "--temperatures", "0.2,1.0")
    return argv


COMMANDS = _readme_commands()


def test_the_readme_has_the_commands_and_the_skip_list_is_exactly_these():
    assert len(COMMANDS) >= 15
    skipped = [" ".join(a) for a in COMMANDS if _skip_reason(a)]
    # what cannot run here: the two real-checkpoint lines, the nano pipeline stages, serve, bench
    assert sum("path/to/" in s for s in skipped) == 2
    assert all(s.startswith(("diffucode train --config configs/nano/", "diffucode rl --config configs/nano/"))
               for s in skipped if "configs/nano/" in s)
    assert sum(s.startswith(("diffucode serve", "diffucode bench")) for s in skipped) == 2
    assert len(skipped) == 2 + sum("configs/nano/" in s for s in skipped) + 2, skipped
    # every reason is used: the list says exactly why each skipped line is skipped
    for needle in SKIP_REASONS:
        assert any(needle in s for s in skipped), f"{needle!r} matches no README command: drop it from SKIP_REASONS"


def test_every_readme_command_runs_as_written(tmp_path, monkeypatch, capsys):
    if bundled_model_path("nano-mdm") is None:
        pytest.skip("this install has no nano-mdm")
    monkeypatch.chdir(tmp_path)  # a fresh directory: nothing but what the commands write
    ran = []
    for argv in COMMANDS:
        if _skip_reason(argv):
            continue
        small = _small(argv)
        rc = main(small[1:])
        out, err = capsys.readouterr()
        assert rc == 0, f"{' '.join(small)} -> exit {rc}\n{err[-2000:]}"
        if "--json" in small:
            rec = json.loads(out.strip().splitlines()[-1])
            assert rec["completion"] is not None
        if small[1] == "generate" and "--json" not in small:
            assert out.strip(), f"{' '.join(small)} printed nothing"
        ran.append(" ".join(argv))
    assert len(ran) >= 10, ran
    assert (tmp_path / "page.html").is_file() and (tmp_path / "runs" / "he" / "results.json").is_file()
