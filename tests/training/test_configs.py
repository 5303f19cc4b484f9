"""Every shipped training config validates; accelerate configs are well-formed."""

from pathlib import Path

import pytest
import yaml

from diffucode.config import ConfigError, load_config
from diffucode.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
TRAIN_CONFIGS = sorted((ROOT / "configs" / "train").rglob("*.yaml"))
ACCELERATE_CONFIGS = sorted((ROOT / "configs" / "accelerate").rglob("*.yaml"))


def test_expected_number_of_configs():
    names = {p.name for p in TRAIN_CONFIGS}
    assert {"ar_tiny.yaml", "mdm_tiny.yaml", "block_tiny.yaml", "sft_tiny.yaml"} <= names
    assert len(TRAIN_CONFIGS) >= 10, [p.name for p in TRAIN_CONFIGS]
    assert len(ACCELERATE_CONFIGS) >= 4, [p.name for p in ACCELERATE_CONFIGS]


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_train_config_validates(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# diffucode train --config configs/train/"), "a config starts with the command that runs it"
    cfg = load_config(TrainConfig, path)
    assert cfg.recipe in ("ar", "mdm", "block", "sft")
    # every config understands the common keys
    cfg = load_config(TrainConfig, path, ["output_dir=/tmp/x", "max_steps=3", "save_every=1", "resume=true"])
    assert cfg.max_steps == 3 and cfg.resume is True
    for src in cfg.data.train:  # shipped data must exist (hub ids and model paths are the user's)
        if src.startswith("configs/"):
            assert (ROOT / src).is_file(), src


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_accelerate_config_is_valid(path):
    data = yaml.safe_load(path.read_text())
    assert data["distributed_type"] in ("NO", "MULTI_GPU", "MULTI_CPU", "FSDP", "DEEPSPEED")
    assert isinstance(data.get("num_processes"), int)
    if data["distributed_type"] == "FSDP":
        assert "fsdp_config" in data
    if data["distributed_type"] == "DEEPSPEED":
        assert "deepspeed_config" in data


@pytest.mark.parametrize("override,pattern", [
    (["recipe=block", "model.shift=true"], "trains without the logits shift"),
    (["batch_size=6", "micro_batch_size=4"], "multiple of micro_batch_size"),
    (["recipe=ar", "model.attention=bidirectional"], "recipe 'ar' trains causal"),
    (["data.train=[]"], "data.train is empty"),
    (["stop_after=99", "max_steps=5"], "stop_after"),
    (["diffusion.truncate_fraction=2"], "truncate_fraction"),
    (["recipe=block", "model.shift=false", "diffusion.anneal_steps=5"], "anneal_steps applies to recipe mdm"),
    (["diffusion.certainty_weight=-1"], "certainty_weight must be a finite number >= 0"),
    (["diffusion.certainty_weight=nan"], "certainty_weight must be a finite number >= 0"),
    (["diffusion.certainty_temperature=0"], "certainty_temperature must be a finite number > 0"),
    (["recipe=ar", "diffusion.anneal_steps=0", "diffusion.certainty_weight=1"], "certainty_weight applies to the diffusion losses"),
])
def test_bad_combinations_name_the_flags(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(TrainConfig, ROOT / "configs/train/mdm_tiny.yaml", override)
