"""Prompt files, the per-step prompt order, and the hard-prompt filter."""
import json

import pytest

from diffucode.rl.data import DataError, load_prompts, reward_columns, step_prompt_indices
from diffucode.rl.filter import mean_and_spread, read_pass_rates, select_hard_prompts


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_load_prompts_aliases_and_columns(tmp_path):
    p = _write(tmp_path / "p.jsonl", [
        {"id": "a", "question": "q1", "test_cases": ["assert 1"], "source": "x"},
        {"task_id": "t/2", "question": "q2", "test_list": ["assert 2"]},
        "",
        {"question": "q3"},
    ])
    recs = load_prompts(p)
    assert [r["id"] for r in recs] == ["a", "t/2", "line-4"]
    assert recs[1]["test_cases"] == ["assert 2"] and recs[2]["test_cases"] == []
    cols = reward_columns(recs[:2], repeat=2)
    assert cols["id"] == ["a", "a", "t/2", "t/2"] and cols["source"] == ["x", "x", None, None]
    assert "question" not in cols


@pytest.mark.parametrize("line,pattern", [
    ("{not json", r"p\.jsonl:2: not valid JSON"),
    (json.dumps({"question": ""}), r"p\.jsonl:2: missing or empty 'question'"),
    (json.dumps({"question": "q", "test_cases": "assert 1"}), r"p\.jsonl:2: 'test_cases' must be a list"),
    (json.dumps({"id": "a", "question": "q"}), "duplicate prompt id 'a'"),
])
def test_load_prompts_errors_name_file_and_line(tmp_path, line, pattern):
    p = _write(tmp_path / "p.jsonl", [{"id": "a", "question": "q"}, line])
    with pytest.raises(DataError, match=pattern):
        load_prompts(p)


def test_step_prompt_order_is_deterministic_and_covers_each_epoch():
    n, per = 5, 3
    seq = [i for s in range(5) for i in step_prompt_indices(n, s, per, seed=1)]  # 15 = 3 epochs
    for e in range(3):
        assert sorted(seq[e * n:(e + 1) * n]) == list(range(n))
    assert step_prompt_indices(n, 3, per, seed=1) == seq[9:12]  # a pure function of the step (resume)
    assert seq != [i for s in range(5) for i in step_prompt_indices(n, s, per, seed=2)]


def test_select_hard_prompts_by_hand():
    # per-model pass rates of 5 prompts across 3 models; (mean, population std):
    rates = {
        "easy": [1.0, 1.0, 0.9],      # mean .967
        "dead": [0.0, 0.0, 0.0],      # mean 0, std 0 -> hard but no spread
        "split": [0.0, 0.6, 0.0],     # mean .2, std .283
        "mid": [0.5, 0.5, 0.2],       # mean .4, std .141
        "wide": [0.0, 1.0, 0.1],      # mean .367, std .450
    }
    assert mean_and_spread([0.0, 0.6, 0.0]) == pytest.approx((0.2, 0.28284), abs=1e-5)
    # bottom 40% by mean: ranks 1-2 = dead (0), split (.2); top 40% by spread: wide (.45), split (.283)
    assert select_hard_prompts(rates, mean_quantile=0.4, spread_quantile=0.4) == ["split"]
    # bottom 60% by mean adds wide (.367)
    assert select_hard_prompts(rates, mean_quantile=0.6, spread_quantile=0.4) == ["split", "wide"]
    # ties are kept: the bottom-20% mean threshold (rank 1 of 5) is 0.1 and both prompts at 0.1 stay
    tied = {"a": [0.0, 0.2], "b": [0.2, 0.0], "c": [0.5, 1.0], "d": [0.2, 0.4], "e": [1.0, 1.0]}
    assert select_hard_prompts(tied, 0.2, 1.0) == ["a", "b"]
    # a prompt all models agree on (spread 0) is never kept, even when the spread threshold is 0
    assert select_hard_prompts({"x": [0.0, 0.0], "y": [0.0, 0.0]}, 1.0, 1.0) == []
    with pytest.raises(ValueError, match="at least two"):
        select_hard_prompts({"a": [0.1]})


def test_read_pass_rates(tmp_path):
    p = _write(tmp_path / "r.jsonl", [{"id": "a", "pass_rates": {"m2": 0.5, "m1": 0.25}},
                                      {"id": "b", "pass_rates": {"m1": 1.0, "m2": 0.0}}])
    rates, models = read_pass_rates(p)
    assert models == ["m1", "m2"] and rates == {"a": [0.25, 0.5], "b": [1.0, 0.0]}
    bad = _write(tmp_path / "bad.jsonl", [{"id": "a", "pass_rates": {"m1": 1.5, "m2": 0.0}}])
    with pytest.raises(DataError, match=r"bad\.jsonl:1: pass rates must lie in \[0, 1\]"):
        read_pass_rates(bad)


def test_filter_command(tmp_path, capsys):
    from diffucode.recipes.rl import main

    prompts = _write(tmp_path / "p.jsonl", [{"id": k, "question": f"q {k}", "test_cases": ["assert True"]}
                                            for k in ["easy", "dead", "split", "mid", "wide"]])
    rates = _write(tmp_path / "r.jsonl", [
        {"id": "easy", "pass_rates": [1.0, 1.0, 0.9]}, {"id": "dead", "pass_rates": [0.0, 0.0, 0.0]},
        {"id": "split", "pass_rates": [0.0, 0.6, 0.0]}, {"id": "mid", "pass_rates": [0.5, 0.5, 0.2]},
        {"id": "wide", "pass_rates": [0.0, 1.0, 0.1]},
    ])
    out = tmp_path / "hard.jsonl"
    assert main(["filter", "--prompts", str(prompts), "--pass-rates", str(rates), "--out", str(out),
                 "--mean-quantile", "0.6", "--spread-quantile", "0.4"]) == 0
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["split", "wide"]
    assert "kept 2 of 5" in capsys.readouterr().err
    # a prompt without pass rates is a clear error
    _write(rates, [{"id": "easy", "pass_rates": [1.0, 0.5]}])
    assert main(["filter", "--prompts", str(prompts), "--pass-rates", str(rates), "--out", str(out)]) == 2
    assert "no pass rates for 4 prompts" in capsys.readouterr().err


@pytest.mark.parametrize("prompt_ids, rate_ids", [
    ([10, 11, 12], [10, 11, 12]),          # integers on both sides (the ids were compared as "10" vs 10)
    ([10, 11, 12], ["10", "11", "12"]),    # a tool that wrote them as strings
    (["10", "11", "12"], [10.0, 11, 12]),  # or as floats
])
def test_filter_ids_compare_by_value(tmp_path, capsys, prompt_ids, rate_ids):
    from diffucode.recipes.rl import main

    prompts = _write(tmp_path / "p.jsonl", [{"id": k, "question": f"q {k}", "test_cases": ["assert True"]}
                                            for k in prompt_ids])
    rates = _write(tmp_path / "r.jsonl", [{"id": rate_ids[0], "pass_rates": [1.0, 1.0]},
                                          {"id": rate_ids[1], "pass_rates": [0.0, 1.0]},
                                          {"id": rate_ids[2], "pass_rates": [0.0, 0.0]}])
    out = tmp_path / "hard.jsonl"
    assert main(["filter", "--prompts", str(prompts), "--pass-rates", str(rates), "--out", str(out),
                 "--mean-quantile", "0.7", "--spread-quantile", "0.4"]) == 0, capsys.readouterr().err
    # the kept record is the prompts file's own, id type included
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [prompt_ids[1]]
