"""Error bars for AR-ness: the bootstrap interval over prompts, the spread over decoding seeds, the
paired difference of two temperatures, and how `diffucode analyze arness` reports them."""
import dataclasses
import json

import numpy as np
import pytest
import torch

import diffucode.sampling
from diffucode.analysis.intervals import paired_difference, per_prompt_means, prompt_interval, seed_spread
from diffucode.analysis.sweep import SweepConfig, arness_sweep
from diffucode.models import build_tiny_model, build_tiny_tokenizer
from diffucode.recipes.analyze import main

from .conftest import scripted_engine


def test_interval_contains_the_mean_and_is_deterministic_for_a_seed():
    values = np.random.default_rng(0).uniform(0.2, 0.9, size=40).tolist()
    lo, hi = prompt_interval(values, n_resamples=500, seed=3)
    assert lo < float(np.mean(values)) < hi and hi - lo > 0.01
    assert prompt_interval(values, n_resamples=500, seed=3) == [lo, hi]
    assert prompt_interval(values, n_resamples=500, seed=4) != [lo, hi]  # the seed is used


def test_interval_narrows_with_more_prompts_and_is_a_point_when_prompts_agree():
    rng = np.random.default_rng(1)
    few, many = rng.uniform(0, 1, size=10).tolist(), rng.uniform(0, 1, size=400).tolist()
    w_few = np.subtract(*prompt_interval(few)[::-1])
    w_many = np.subtract(*prompt_interval(many)[::-1])
    assert w_many < w_few / 3  # width ~ 1/sqrt(prompts): 6x narrower expected
    assert prompt_interval([0.75] * 16) == [0.75, 0.75]


def test_paired_difference():
    a = np.random.default_rng(2).uniform(0, 1, size=30).tolist()
    same = paired_difference(a, list(a))
    assert same["difference"] == 0.0 and same["ci"] == [0.0, 0.0] and not same["larger_than_noise"]
    # prompts differ a lot from each other but b is a shifted by -0.1 on every prompt: pairing
    # cancels the spread between prompts, so the interval is tight around -0.1
    shifted = paired_difference(a, [v - 0.1 for v in a])
    assert shifted["difference"] == pytest.approx(-0.1) and shifted["ci"] == pytest.approx([-0.1, -0.1])
    assert shifted["larger_than_noise"] and shifted["prompts"] == 30
    with pytest.raises(ValueError, match="same prompts"):
        paired_difference([0.1, 0.2], [0.1])


def test_per_prompt_means_and_seed_spread():
    assert per_prompt_means([1, 0, 0.5, 0.5, 0, 0], 3) == [0.5, 0.5, 0.0]
    with pytest.raises(ValueError, match="do not split into 4 prompts"):
        per_prompt_means([1, 0, 1], 4)
    assert seed_spread([0.5]) is None
    assert seed_spread([0.2, 0.4, 0.6]) == pytest.approx(0.2)  # ddof=1


@pytest.fixture
def seed_parity_engine(scripted, monkeypatch):
    """The scripted engine, writing left to right when the batch's seed is even and right to left
    when it is odd (whatever the temperature), so AR-ness depends on the decoding seed."""
    inner = scripted_engine(build_tiny_tokenizer())
    seen = []  # the engine seed of every generate() call

    def generate(model, input_ids, attention_mask=None, config=None):
        seen.append(config.seed)
        return inner(model, input_ids, attention_mask,
                     dataclasses.replace(config, temperature=0.0 if config.seed % 2 == 0 else 1.0))

    monkeypatch.setattr(diffucode.sampling, "generate", generate)
    return seen


def test_sweep_keeps_prompts_and_seeds_apart(seed_parity_engine):
    model, tok = build_tiny_model(hidden_size=32, num_layers=1)
    tasks = [{"prompt": "def f(x):\n"}, {"prompt": "x = "}]
    # batch_size 1: prompt 0 is batch 0, prompt 1 batch 1; seed s decodes batch b with seed
    # s * 100003 + b, so under seeds 0 and 2 prompt 0 is always even (left to right) and prompt 1
    # always odd (right to left)
    cfg = SweepConfig(temperatures=[0.5, 1.0], ks=[1], max_new_tokens=8, num_samples=2, batch_size=1,
                      seeds=[0, 2], ties="left_to_right", pass_at_1=False, ci_resamples=200)
    res = arness_sweep(model, tok, tasks, cfg)
    s = res["points"][0]["local"]["1"]
    assert res["points"][0]["num_samples"] == 8 and res["points"][0]["seeds"] == [0, 2]
    assert s["per_prompt"] == [1.0, 0.0] and s["per_seed"] == [0.5, 0.5] and s["seed_std"] == 0.0
    assert s["ci"][0] <= s["mean"] <= s["ci"][1]
    # under seeds 0 and 1 each prompt is left to right under one seed only
    seed_parity_engine.clear()
    res = arness_sweep(model, tok, tasks, dataclasses.replace(cfg, seeds=[0, 1]))
    assert res["points"][0]["local"]["1"]["per_prompt"] == [0.5, 0.5]
    # no two (seed, batch) pairs share an engine seed (seed 1 batch 0 must not replay seed 0
    # batch 1); both temperatures use the same ones (paired draws); seed 0 keeps 0, 1, ...
    per_temp = [seed_parity_engine[:4], seed_parity_engine[4:]]
    assert per_temp[0] == per_temp[1] and len(set(per_temp[0])) == 4 and per_temp[0][:2] == [0, 1]
    # the engine ignores the temperature here: identical per-prompt values, difference exactly 0
    d = [x for x in res["differences"] if x["kind"] == "local"]
    assert len(d) == 1 and d[0]["temperature"] == 1.0 and d[0]["baseline_temperature"] == 0.5
    assert d[0]["difference"] == 0.0 and d[0]["ci"] == [0.0, 0.0] and not d[0]["larger_than_noise"]


def test_real_engine_seeds_are_reproducible():
    torch.manual_seed(0)
    model, tok = build_tiny_model(hidden_size=32, num_layers=1)
    tasks = [{"prompt": "def f(x):\n"}, {"prompt": "import os\n"}, {"prompt": "x = 1\n"}]
    cfg = SweepConfig(temperatures=[1.0], ks=[1], max_new_tokens=8, top_p=None, seeds=[0, 1, 2],
                      pass_at_1=False, ci_resamples=200)
    first, again = arness_sweep(model, tok, tasks, cfg), arness_sweep(model, tok, tasks, cfg)
    assert json.dumps(first) == json.dumps(again)
    s = first["points"][0]["global"]["1"]
    assert len(s["per_seed"]) == 3 and len(s["per_prompt"]) == 3 and first["points"][0]["num_samples"] == 9
    assert s["mean"] == pytest.approx(np.mean(s["per_seed"])) == pytest.approx(np.mean(s["per_prompt"]))
    assert s["ci"][0] <= s["mean"] + 1e-12 and s["mean"] <= s["ci"][1] + 1e-12


def test_arness_cli_prints_intervals_and_the_temperature_difference(tmp_path, scripted, capsys):
    f = tmp_path / "p.jsonl"
    f.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ["def f(x):\n", "x = ", "import os\n"]))
    out = tmp_path / "a"
    # the scripted engine writes left to right at T = 0 and right to left otherwise
    assert main(["arness", "--tiny", "--prompts-file", str(f), "--temperatures", "0,1", "--seeds", "0,1,2",
                 "--ks", "1", "--max-new-tokens", "8", "--ci-resamples", "100", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "local@1 1.000 [1.000, 1.000] seed sd 0.000" in text
    assert "T=1 - T=0: local@1 -1.000 [95% paired bootstrap -1.000, -1.000] larger than the noise" in text
    res = json.loads((out / "arness.json").read_text())
    assert res["config"]["seeds"] == [0, 1, 2] and res["config"]["ci_resamples"] == 100
    assert res["points"][1]["local"]["1"]["per_prompt"] == [0.0, 0.0, 0.0]
    assert {(d["kind"], d["larger_than_noise"]) for d in res["differences"]} == {("local", True), ("global", True)}


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0,x"], "--seeds: expected comma-separated integers"),
    (["--seeds", ","], "--seeds must be a non-empty list"),
    (["--seeds", "0,-1"], "--seeds must be a non-empty list of integers >= 0"),
    (["--seeds", "1,1"], "--seeds lists a seed twice"),
    (["--seed", "1", "--seeds", "0,1"], "not allowed with argument --seed"),
    (["--seeds", "0,1", "seed=2"], "give --seed or --seeds, not both"),
    (["--ci-resamples", "0"], "--ci-resamples must be >= 1"),
    (["ci_confidence=1.5"], "ci_confidence must be in (0, 1)"),
    (["--temperatures", "0.2,0.2"], "--temperatures lists a temperature twice"),
])
def test_arness_cli_rejects_bad_error_bar_flags(tmp_path, capsys, argv, message):
    try:  # argparse errors exit; config errors return 2
        # a short sweep, so that a check that is missing fails fast (it writes the output)
        rc = main(["arness", "--tiny", "--benchmark", "synthetic", "--limit", "1", "--max-new-tokens", "4",
                   "--no-pass-at-1", *argv, "--output", str(tmp_path / "o")])
    except SystemExit as e:
        rc = e.code
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
