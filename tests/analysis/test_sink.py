"""Entropy sink: the forward pass sees prompt + all-mask completion, confidence is read at the
completion positions, padding does not change it; and its plot is drawn for a tiny model."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from diffucode.analysis import SinkResult, entropy_sink, first_step_confidence, plot_confidence_curve
from diffucode.models import build_tiny_model


class RecordingModel:
    """Logits chosen by hand: at absolute position j the logits are [j, 0, 0, 0]."""

    mask_token_id = 3
    device = torch.device("cpu")
    max_seq_len = 64

    def __init__(self):
        self.calls = []

    def __call__(self, ids, attention_mask=None):
        self.calls.append((ids.clone(), attention_mask.clone()))
        B, q = ids.shape
        logits = torch.zeros(B, q, 4)
        logits[:, :, 0] = torch.arange(q, dtype=torch.float)
        return SimpleNamespace(logits=logits)


def test_first_step_confidence_by_hand():
    model = RecordingModel()
    prompt = torch.tensor([[0, 7, 8], [5, 6, 9]])  # row 0 left-padded (pad id 0)
    pad = torch.tensor([[0, 1, 1], [1, 1, 1]])
    conf, ent = first_step_confidence(model, prompt, gen_len=4, attention_mask=pad)
    ids, am = model.calls[0]
    assert ids.tolist() == [[0, 7, 8, 3, 3, 3, 3], [5, 6, 9, 3, 3, 3, 3]]  # prompt clean, completion all [M]
    assert am.tolist() == [[0, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]]
    # completion position i is absolute position 3 + i: p_max = e^x / (e^x + 3) with x = 3 + i
    expect = [math.exp(3 + i) / (math.exp(3 + i) + 3) for i in range(4)]
    assert conf.shape == (2, 4)
    assert conf[0].tolist() == pytest.approx(expect, rel=1e-5)
    p = torch.softmax(torch.tensor([3.0, 0, 0, 0]), 0)
    assert ent[1, 0].item() == pytest.approx(-(p * p.log()).sum().item(), rel=1e-5)
    with pytest.raises(ValueError, match="exceeds the model's context"):
        first_step_confidence(model, prompt, gen_len=62)
    with pytest.raises(ValueError, match="must be >= 1"):
        first_step_confidence(model, prompt, gen_len=0)


def test_sink_result_summary():
    conf = np.array([[0.9, 0.5, 0.2, 0.1, 0.1, 0.1], [0.7, 0.3, 0.2, 0.1, 0.1, 0.1]])
    res = SinkResult(confidence=conf, entropy=np.ones_like(conf))
    s = res.summary(head=2)
    assert res.num_prompts == 2 and res.gen_len == 6
    assert s["confidence_first"] == pytest.approx(0.8)
    assert s["confidence_head_mean"] == pytest.approx(0.6)  # mean of 0.8, 0.4
    assert s["confidence_tail_mean"] == pytest.approx(0.125)  # mean of 0.2, 0.1, 0.1, 0.1
    assert s["head_to_tail"] == pytest.approx(4.8) and s["argmax_position"] == 0
    d = res.to_dict(per_prompt=True)
    assert d["confidence_std"][0] == pytest.approx(0.1) and len(d["confidence"]) == 2


def test_tiny_model_batched_equals_single_and_plot(tmp_path, png_check):
    torch.manual_seed(0)
    model, tok = build_tiny_model(hidden_size=32, num_layers=1)
    prompts = ["def add(a, b):\n", "import os\nresult = [x * x for x in numbers]\n", "x"]
    batched = entropy_sink(model, tok, prompts, gen_len=12, batch_size=3)
    single = entropy_sink(model, tok, prompts, gen_len=12, batch_size=1)
    assert batched.confidence.shape == (3, 12)
    # left padding is hidden by the attention mask: a padded row equals the row alone
    np.testing.assert_allclose(batched.confidence, single.confidence, atol=1e-5)
    assert np.all((batched.confidence > 0) & (batched.confidence <= 1))
    png = plot_confidence_curve(batched.confidence_mean, tmp_path / "conf.png", std=batched.confidence_std)
    png_check(png)
    png2 = plot_confidence_curve({"a": batched.confidence_mean, "b": single.confidence_mean}, tmp_path / "two.png")
    png_check(png2)
