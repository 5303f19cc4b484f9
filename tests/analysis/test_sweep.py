"""AR-ness sweeps: the bookkeeping against a scripted stand-in for the engine (known orders and
completions), and the real engine on a tiny model when diffucode.sampling.generate exists."""
import pytest
import torch

from diffucode.analysis import SweepConfig, arness_sweep, plot_arness_vs_temperature
from diffucode.analysis.sweep import cut_at_stop
from diffucode.models import build_tiny_model


def engine_available():
    try:
        from diffucode.sampling import GenerationConfig, generate  # noqa: F401
        return True
    except ImportError:
        return False


def test_sweep_bookkeeping_with_scripted_engine(scripted, toy_task):
    model, tok = build_tiny_model(hidden_size=32, num_layers=1)
    L = 24  # room for the answer, the end token and the text after it (cut off before running)
    cfg = SweepConfig(temperatures=[0.0, 1.0], algs=["entropy", "origin"], ks=[1, 2], max_new_tokens=L,
                      num_samples=2, batch_size=1, ties="left_to_right")
    # pass@1 through the real sandbox (diffucode.execution): 8 tiny programs per setting
    res = arness_sweep(model, tok, [toy_task, dict(toy_task, task_id="toy/1")], cfg, keep_completions=True)
    pts = {(p["alg"], p["temperature"]): p for p in res["points"]}
    assert len(pts) == 4 and res["pass_at_1_note"] is None
    ltr = pts[("entropy", 0.0)]
    assert ltr["num_samples"] == 4 and ltr["pass@1"] == 1.0 and ltr["nfe"] == 2 * L
    stats = ltr["local"]["2"]
    assert (stats["mean"], stats["var"], stats["std"]) == (1.0, 0.0, 0.0)
    # every sample agrees: the interval has zero width, one seed has no spread
    assert stats["ci"] == [1.0, 1.0] and stats["per_prompt"] == [1.0, 1.0]
    assert stats["per_seed"] == [1.0] and stats["seed_std"] is None
    assert ltr["global"]["1"]["mean"] == 1.0 and ltr["multi_reveal_steps"] == 0
    rtl = pts[("entropy", 1.0)]
    assert rtl["pass@1"] == 0.0 and rtl["local"]["1"]["mean"] == 0.0
    assert rtl["global"]["1"]["mean"] == pytest.approx(1 / L) and rtl["global"]["2"]["mean"] == pytest.approx(2 / L)
    # two tokens per step, split left to right: the order is left to right again
    assert pts[("origin", 1.0)]["multi_reveal_steps"] == L / 2 and pts[("origin", 1.0)]["local"]["1"]["mean"] == 1.0
    assert ltr["completions"][0]["completion"] == "    return a + b\n"
    assert ltr["completions"][0]["order"] == list(range(L))
    # without tests (or without a runner) pass@1 is None and the reason is given
    res2 = arness_sweep(model, tok, [{"prompt": "x = "}], SweepConfig(temperatures=[0.0], max_new_tokens=L))
    assert res2["points"][0]["pass@1"] is None and "no 'test'" in res2["pass_at_1_note"]


def test_sweep_config_checks():
    with pytest.raises(ValueError, match="--algs"):
        SweepConfig(algs=["beam"])
    with pytest.raises(ValueError, match="--temperatures"):
        SweepConfig(temperatures=[-1.0])
    with pytest.raises(ValueError, match="--ks"):
        SweepConfig(ks=[0])


def test_cut_at_stop():
    assert cut_at_stop("    return 1\n\ndef g():\n    pass") == "    return 1\n"
    assert cut_at_stop("    return 1\n# done") == "    return 1"
    assert cut_at_stop("    return 1") == "    return 1"


@pytest.mark.skipif(not engine_available(), reason="diffucode.sampling.generate not written yet")
def test_real_engine_sweep_on_tiny_model(tmp_path, png_check, toy_task):
    torch.manual_seed(0)
    model, tok = build_tiny_model(hidden_size=32, num_layers=1)
    L = 8
    cfg = SweepConfig(temperatures=[0.0, 1.0], ks=[1, 2], max_new_tokens=L, top_p=None, pass_at_1=False)
    res = arness_sweep(model, tok, [toy_task, {"prompt": "import os\n"}], cfg)
    for p in res["points"]:
        assert p["num_samples"] == 2 and 0 < p["nfe"] <= L  # one generate() call, at most one step per token
        for kind in ("local", "global"):
            assert 0.0 <= p[kind]["1"]["mean"] <= 1.0
        assert p["local"]["2"]["mean"] <= p["local"]["1"]["mean"]
        assert p["global"]["2"]["mean"] >= p["global"]["1"]["mean"]
    png_check(plot_arness_vs_temperature(res["points"], tmp_path / "arness.png"))
