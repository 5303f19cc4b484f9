"""The PNG pictures are written, readable and not blank; bad input fails clearly."""
import random

import pytest

from diffucode.analysis import (
    plot_arness_by_alg,
    plot_arness_vs_temperature,
    plot_decode_order,
    token_strings,
)
from diffucode.models import build_tiny_tokenizer


def _point(alg, t, pass1=None):
    return {
        "alg": alg, "temperature": t, "pass@1": pass1,
        "local": {"1": {"mean": 1 - t / 2, "std": 0.1}, "4": {"mean": 0.8 - t / 2, "std": 0.05}},
        "global": {"1": {"mean": 0.9 - t / 3, "std": 0.1}, "4": {"mean": 0.95 - t / 4, "std": 0.05}},
    }


def test_arness_plots(tmp_path, png_check):
    pts = [_point(a, t, 0.3) for a in ("entropy", "origin") for t in (0.2, 0.6, 1.0)]
    png_check(plot_arness_vs_temperature(pts, tmp_path / "t.png"))
    png_check(plot_arness_vs_temperature([_point("entropy", 0.2)], tmp_path / "one.png", ks=[1]))
    png_check(plot_arness_by_alg(pts, tmp_path / "alg.png", k=4))
    with pytest.raises(ValueError, match="at least one"):
        plot_arness_vs_temperature([], tmp_path / "x.png")


def test_decode_order_heat_map_of_tiny_tokenizer_tokens(tmp_path, png_check):
    tok = build_tiny_tokenizer()
    code = "def fib(n):\n\tif n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)  # " + "x" * 120 + "\n"
    tokens = token_strings(tok, tok(code).input_ids)
    steps = list(range(1, len(tokens) + 1))
    random.Random(0).shuffle(steps)
    steps[3] = 0  # a never-revealed position is drawn grey, not an error
    png = plot_decode_order(tokens, steps, tmp_path / "sub" / "order.png", prompt="# the prompt\nx = 1\n")
    png_check(png)
    with pytest.raises(ValueError, match="same length"):
        plot_decode_order(tokens, steps[:-1], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="at least one token"):
        plot_decode_order([], [], tmp_path / "bad.png")
