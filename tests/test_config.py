from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from diffucode.config import ConfigError, load_config, parse_overrides, save_config


@dataclass
class Optim:
    lr: float = field(default=1e-3, metadata={"help": "learning rate"})
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])


@dataclass
class Cfg:
    name: str = "x"
    steps: int = 3
    mode: Literal["a", "b"] = "a"
    flag: bool = False
    limit: Optional[int] = None
    optim: Optim = field(default_factory=Optim)

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError("steps must be >= 1")


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("steps: 5\noptim:\n  lr: 1e-4\n")
    cfg = load_config(Cfg, p, ["mode=b", "optim.betas=[0.5, 0.6]", "limit=7", "flag=true"])
    assert cfg.steps == 5 and cfg.mode == "b" and cfg.flag is True and cfg.limit == 7
    assert cfg.optim.lr == pytest.approx(1e-4) and cfg.optim.betas == [0.5, 0.6]


def test_unknown_key_names_key_and_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optim:\n  lrr: 1\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*unknown key 'optim\.lrr'"):
        load_config(Cfg, p)


@pytest.mark.parametrize("override,pattern", [
    ("steps=abc", "'steps' must be an integer"),
    ("mode=c", "'mode' must be one of"),
    ("flag=3", "'flag' must be true or false"),
    ("steps=0", "steps must be >= 1"),
    ("nonsense", "must look like key=value"),
])
def test_bad_values(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(Cfg, None, [override])


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Cfg, tmp_path / "nope.yaml")


def test_save_roundtrip(tmp_path):
    cfg = load_config(Cfg, None, ["optim.lr=0.5", "name=z"])
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(Cfg, path) == cfg


def test_parse_overrides_nested():
    assert parse_overrides(["a.b.c=1", "a.d=x"]) == {"a": {"b": {"c": 1}, "d": "x"}}


@dataclass
class _PrecisionConfig:
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    resume: bool = False


def test_yaml_1_1_boolean_words_stay_strings(tmp_path):
    """`mixed_precision: no` / `mixed_precision=no` is the string 'no', not YAML 1.1's False."""
    cfg = load_config(_PrecisionConfig, overrides=["mixed_precision=no"])
    assert cfg.mixed_precision == "no"
    path = tmp_path / "c.yaml"
    path.write_text("mixed_precision: no\nresume: true\n")
    cfg = load_config(_PrecisionConfig, path)
    assert cfg.mixed_precision == "no" and cfg.resume is True
    with pytest.raises(ConfigError, match="'resume' must be true or false, got 'yes'"):
        load_config(_PrecisionConfig, overrides=["resume=yes"])
