"""scripts/rl_curves.py: reward at equal steps and equal wall time, on metrics files written here."""

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def rl_curves(load_script):
    return load_script("rl_curves")


def _run(root: Path, name: str, rewards: list[float], step_time: float) -> Path:
    d = root / name
    d.mkdir()
    rows = [{"step": i + 1, "rewards/code": r, "step_time_s": step_time} for i, r in enumerate(rewards)]
    rows.insert(1, {"event": "checkpoint"})  # non-step rows are ignored
    d.joinpath("metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return d


def test_equal_wall_time_and_paired_steps_by_hand(rl_curves, tmp_path, capsys):
    slow = _run(tmp_path, "slow", [0.0, 0.2, 0.4, 0.6], step_time=20.0)  # 80 s in all
    fast = _run(tmp_path, "fast", [0.1, 0.3, 0.5, 0.7], step_time=10.0)  # 40 s in all
    s = rl_curves.summarize(rl_curves.read_metrics(fast), "rewards/code", wall=40.0)
    assert s["steps"] == 4 and s["wall_s"] == 40.0 and s["mean"] == pytest.approx(0.4)
    # within the fast run's 40 s the slow run finished 2 steps: mean of 0.0 and 0.2
    s = rl_curves.summarize(rl_curves.read_metrics(slow), "rewards/code", wall=40.0)
    assert s["steps_within_wall"] == 2 and s["mean_within_wall"] == pytest.approx(0.1)
    d = rl_curves.paired_steps(rl_curves.read_metrics(fast), rl_curves.read_metrics(slow), "rewards/code")
    assert d["steps"] == 4 and d["difference"] == pytest.approx(0.1)
    assert d["ci"] == pytest.approx([0.1, 0.1]) and d["larger_than_noise"]  # every step differs by exactly 0.1
    assert rl_curves.main([str(slow), str(fast)]) == 0
    out = capsys.readouterr().out
    assert "equal wall time = 40 s" in out and "within 40 s: 2 steps, mean 0.100" in out
    assert "+0.100 [+0.100, +0.100]: larger than the noise" in out


def test_noisy_difference_is_within_noise(rl_curves, tmp_path):
    a = rl_curves.read_metrics(_run(tmp_path, "a", [0.0, 1.0, 0.0, 1.0, 0.0, 1.0], 1.0))
    b = rl_curves.read_metrics(_run(tmp_path, "b", [1.0, 0.0, 1.0, 0.0, 1.0, 0.0], 1.0))
    d = rl_curves.paired_steps(a, b, "rewards/code")
    assert d["difference"] == pytest.approx(0.0) and d["ci"][0] < 0 < d["ci"][1] and not d["larger_than_noise"]


def test_missing_key_and_missing_file_are_named(rl_curves, tmp_path):
    run = _run(tmp_path, "r", [0.1], 1.0)
    with pytest.raises(SystemExit, match="has no 'reward'"):
        rl_curves.main([str(run), "--key", "reward"])
    with pytest.raises(SystemExit, match="no metrics.jsonl"):
        rl_curves.main([str(tmp_path / "nope")])
