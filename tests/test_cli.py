import subprocess
import sys

import pytest

from diffucode.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ["generate", "train", "rl", "eval", "analyze", "serve", "bench", "export"]:
        assert f"  {name} " in out
    assert len(COMMANDS) == 8


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("diffucode 0.")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_has_help(name):
    # a real process, as a user would run it
    proc = subprocess.run([sys.executable, "-m", "diffucode.cli", name, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"diffucode {name}" in proc.stdout


def test_unknown_command_fails(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
