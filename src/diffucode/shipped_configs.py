"""The YAML configs shipped inside the package (``diffucode/configs``, the repository's ``configs/``),
so ``--config`` works after a plain ``pip install``:

    diffucode train --config train/mdm_tiny          # == configs/train/mdm_tiny.yaml of a clone
    diffucode train --config nano/01_ar.yaml

A ``--config`` value that exists as a file is used as is; otherwise it is looked up here.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_ROOT = Path(__file__).resolve().parent / "configs"


def shipped_config_names() -> list[str]:
    """Every shipped config as ``dir/name`` (no ``.yaml``)."""
    if not CONFIG_ROOT.is_dir():
        return []
    return sorted(p.relative_to(CONFIG_ROOT).with_suffix("").as_posix() for p in CONFIG_ROOT.rglob("*.yaml"))


def resolve_config_arg(value: str | Path) -> Path:
    """``--config`` as a file: the path itself if it exists, else the shipped config of that name
    (``nano/01_ar``, ``nano/01_ar.yaml`` or ``configs/nano/01_ar.yaml``). A value matching neither
    is returned unchanged (the config loader names it in its error)."""
    p = Path(value)
    if p.exists():
        return p
    rel = p.as_posix()
    if rel.startswith("configs/"):
        rel = rel[len("configs/"):]
    for cand in (CONFIG_ROOT / rel, CONFIG_ROOT / f"{rel}.yaml"):
        if cand.is_file():
            return cand
    return p


def stage_writing(directory: str | Path) -> str | None:
    """The shipped config whose ``output_dir`` produces ``directory`` (``.../final``), if any."""
    import yaml

    d = Path(directory)
    target = (d.parent if d.name == "final" else d).as_posix().rstrip("/")
    for name in shipped_config_names():
        try:
            data = yaml.safe_load((CONFIG_ROOT / f"{name}.yaml").read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and str(data.get("output_dir", "")).rstrip("/") == target:
            return f"configs/{name}.yaml"
    return None


def check_init_from(init_from: str | None, key: str = "model.init_from") -> None:
    """Refuse, in one line and before anything loads, an ``init_from`` that does not exist,
    naming the stage that writes it when it is a shipped stage's output."""
    if not init_from:
        return
    from diffucode.bundled import BUNDLED, missing_model_hint
    from diffucode.config import ConfigError

    if init_from in BUNDLED or Path(init_from).exists():
        return
    stage = stage_writing(init_from)
    if stage is not None:
        raise ConfigError(f"{key}={init_from}: does not exist: the previous stage has not run; "
                          f"run `diffucode train --config {stage}` (or diffucode rl) first")
    raise ConfigError(f"{key}={init_from}: does not exist ({missing_model_hint(init_from)})")
