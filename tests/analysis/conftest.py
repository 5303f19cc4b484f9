"""Shared fixtures for the analysis tests: a PNG check, a toy task, and a scripted stand-in for
the decoding engine (known orders and completions) to test the bookkeeping around it."""
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch


def assert_png_has_content(path, min_side=50):
    """The file is a PNG that matplotlib reads back, of a sensible size, and not blank."""
    from matplotlib.image import imread

    path = Path(path)
    assert path.is_file() and path.stat().st_size > 1000, path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = imread(path)  # [H, W, 4] floats
    assert img.ndim == 3 and min(img.shape[:2]) >= min_side, img.shape
    assert img[..., :3].std() > 0.02, "image looks blank"
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 10, "image has almost no drawing in it"


@pytest.fixture
def png_check():
    return assert_png_has_content


TASK = {
    "task_id": "toy/0",
    "prompt": "def add(a, b):\n",
    "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
    "entry_point": "add",
}


@dataclass
class ScriptedConfig:
    max_new_tokens: int = 8
    steps: int = 8
    alg: str = "entropy"
    alg_temp: float = 0.0
    temperature: float = 0.0
    top_p: float | None = None
    top_k: int | None = None
    block_len: int | None = None
    seed: int | None = None
    num_return_sequences: int = 1
    stop_at_eos: bool = True
    return_history: bool = False


def scripted_engine(tok):
    """temperature 0: left to right and a right answer; otherwise right to left and a wrong one.
    alg 'origin' reveals two tokens per step. Like the engine with stop_at_eos=False, text goes on
    after the end token."""

    def generate(model, input_ids, attention_mask=None, config=None):
        L, n = config.max_new_tokens, config.num_return_sequences
        good = config.temperature == 0
        body = tok("    return a + b\n" if good else "    return a - b\n").input_ids
        # after the end token, text that would break the program if it were not cut off
        tail = tok("\nassert 0").input_ids
        body = (body + [tok.eos_token_id] + tail + [tok.eos_token_id] * L)[:L]
        if config.alg == "origin":
            steps = [1 + j // 2 for j in range(L)]
        else:
            steps = list(range(1, L + 1)) if good else list(range(L, 0, -1))
        rows = input_ids.repeat_interleave(n, dim=0)
        seqs = torch.cat([rows, torch.tensor([body] * rows.shape[0])], dim=1)
        order = torch.tensor([steps] * rows.shape[0])
        return SimpleNamespace(sequences=seqs, order=order, nfe=max(steps), history=None)

    return generate


@pytest.fixture
def toy_task():
    return dict(TASK)


@pytest.fixture
def scripted(monkeypatch):
    """Replace diffucode.sampling.generate / GenerationConfig by scripted_engine for one test."""
    import diffucode.sampling
    from diffucode.models import build_tiny_tokenizer

    monkeypatch.setattr(diffucode.sampling, "generate", scripted_engine(build_tiny_tokenizer()), raising=False)
    monkeypatch.setattr(diffucode.sampling, "GenerationConfig", ScriptedConfig, raising=False)
