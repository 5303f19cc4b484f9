"""scripts/nano_eval.py: the table's bootstrap intervals and the paired comparison, on results files
written here."""

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def nano_eval(load_script):
    return load_script("nano_eval")


def _row(root: Path, name: str, correct: list[int], n: int = 10) -> Path:
    d = root / name / "eval"
    d.mkdir(parents=True)
    tasks = {f"synthetic/fam{i}/0": {"n": n, "correct": c} for i, c in enumerate(correct)}
    # written without pass@k_ci, as runs from before the intervals were: the table recomputes them
    p1 = sum(correct) / (n * len(correct))
    p10 = sum(c > 0 for c in correct) / len(correct)  # n = 10: pass@10 is "any sample passed"
    d.joinpath("results.json").write_text(json.dumps({"pass@k": {"pass@1": p1, "pass@10": p10}, "tasks": tasks}))
    return root / name


def test_table_shows_intervals(nano_eval, tmp_path, capsys):
    _row(tmp_path, "a", [0, 0, 0, 10])
    nano_eval.main(["table", "--out", str(tmp_path), "--markdown"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| model | pass@1 [95% CI] | pass@10 [95% CI] |")
    # per-task pass@1 (0, 0, 0, 1): the interval [0, 0.75] of test_passk's hand-worked case
    assert lines[2].startswith("| a | 25.0% [0.0-75.0] | 25.0% [0.0-75.0] |")


def test_compare_verdicts(nano_eval, tmp_path, capsys):
    low = _row(tmp_path, "low", [0] * 30)
    high = _row(tmp_path, "high", [5] * 30)
    same = _row(tmp_path, "same", [0] * 30)
    nano_eval.main(["compare", str(high), str(low)])
    assert capsys.readouterr().out.strip().endswith("pass@1 difference +50.0 points [95% CI +50.0 to +50.0] "
                                                    "over 30 tasks: larger than the noise")
    nano_eval.main(["compare", str(same / "eval" / "results.json"), str(low), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["difference"] == 0 and out["ci"] == [0, 0] and out["larger_than_noise"] is False
    with pytest.raises(SystemExit, match="no results.json"):
        nano_eval.main(["compare", str(tmp_path / "missing"), str(low)])
