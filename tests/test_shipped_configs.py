"""Every shipped YAML config (train, rl, eval, nano pipeline) validates against the config class
of the command its first line names."""

from pathlib import Path

import pytest

from diffucode.config import load_config
from diffucode.recipes.evaluate import EvalConfig
from diffucode.recipes.rl import RLConfig
from diffucode.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "accelerate" not in p.parts)
CLASSES = {"train": TrainConfig, "rl": RLConfig, "eval": EvalConfig}


def test_found_every_config():
    # 13 train + 2 rl + 3 eval + 9 nano-pipeline configs at the time of writing
    assert len(CONFIGS) >= 27, [str(p.relative_to(ROOT)) for p in CONFIGS]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_config_validates(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# diffucode "), f"{path}: must start with the command that runs it"
    command = first.split()[2]
    rel = str(path.relative_to(ROOT))
    assert f"--config {rel}" in first, f"{path}: its first line should run this very file"
    cfg = load_config(CLASSES[command], path)
    assert cfg is not None
