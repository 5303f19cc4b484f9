"""Typed configs: YAML files -> (nested) dataclasses, plus dotted ``key=value`` overrides.

Every recipe declares its config as a dataclass whose fields carry help text in
``field(metadata={"help": ...})``. ``load_config`` reads a YAML file, applies command-line
overrides (``optim.lr=1e-4``), checks every key and value against the dataclass annotations
and fails with a :class:`ConfigError` that names the key and the file. The resolved config
is written next to a run's outputs with :func:`save_config`; :func:`config_command` is the shared
command line (``--config FILE [--print-config] key=value ...``) of the config-driven recipes.

    cfg = load_config(TrainConfig, "configs/train/ar_tiny.yaml", ["max_steps=3"])
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import re
import typing
from pathlib import Path
from typing import Any, Literal, Sequence, TypeVar, Union, get_args, get_origin

import yaml

from diffucode.errors import UserError

T = TypeVar("T")


class _CoreSchemaLoader(yaml.SafeLoader):
    """YAML with the 1.2 core schema's booleans: only true/false are booleans.

    PyYAML follows YAML 1.1, where ``no``/``off``/``yes``/``on`` are booleans too, so
    ``mixed_precision: no`` (or the override ``mixed_precision=no``) would arrive as ``False``
    and be refused as not one of the choices.
    """


_CoreSchemaLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_CoreSchemaLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def load_yaml(text: str) -> Any:
    """Parse config YAML (booleans are only true/false; see :class:`_CoreSchemaLoader`)."""
    return yaml.load(text, Loader=_CoreSchemaLoader)  # noqa: S506 - a SafeLoader subclass


class ConfigError(UserError, ValueError):
    """A config key or value is wrong; the message names the key and where it came from."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against annotation ``tp`` (coercing int->float, str->Path)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping of {tp.__name__} fields, got {value!r}")
        return _build(tp, value, source, prefix=key + ".")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{source}: '{key}' must be one of {list(choices)}, got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, source)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{source}: '{key}' has a bad value {value!r} (expected {_type_name(tp)})")
    if origin in (list, tuple, Sequence):
        (inner,) = get_args(tp)[:1] or (Any,)
        if isinstance(value, str):  # "1,10" on the command line
            value = [v for v in value.split(",") if v != ""]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{key}' must be a list, got {value!r}")
        out = [_coerce(v, inner, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: '{key}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: '{key}' must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{source}: '{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):  # yaml reads "1e-4" as a string
                try:
                    return float(value)
                except ValueError:
                    pass
            raise ConfigError(f"{source}: '{key}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
            raise ConfigError(f"{source}: '{key}' must be a string, got {value!r}")
        return value
    if tp is Path:
        return Path(value)
    return value


def _build(cls: type[T], data: dict, source: str, prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{source}: unknown key '{prefix}{unknown[0]}' (known keys: {known})")
    kwargs = {name: _coerce(value, hints[name], prefix + name, source) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: {e}") from e


def parse_overrides(overrides: Sequence[str]) -> dict:
    """``["a.b=3", "c=x"]`` -> ``{"a": {"b": 3}, "c": "x"}``; values are read as YAML scalars."""
    tree: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"command line: override '{item}' must look like key=value")
        key, raw = item.split("=", 1)
        value = load_yaml(raw) if raw != "" else ""
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"command line: '{key}' overrides a value that is not a mapping")
        node[parts[-1]] = value
    return tree


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Build ``cls`` from a YAML file (optional) and dotted overrides; validate everything."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not a text (UTF-8) YAML file: undecodable byte at offset {e.start}") from e
        except OSError as e:
            raise ConfigError(f"{path}: cannot read the config file: {e.strerror or e}") from e
        if "\0" in text:
            raise ConfigError(f"{path}: not a text YAML file (it contains NUL bytes)")
        try:
            loaded = load_yaml(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from e
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
        data = loaded
    if overrides:
        source = f"{source} + command-line overrides" if path is not None else "command-line overrides"
        data = _merge(data, parse_overrides(overrides))
    return _build(cls, data, source)


def config_to_dict(cfg: Any) -> dict:
    def convert(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (list, tuple)):
            return [convert(x) for x in v]
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        return v

    return {k: convert(v) for k, v in dataclasses.asdict(cfg).items()}


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically) and return the path."""
    from diffucode.fileio import atomic_write_text  # a unique temp name: concurrent runs never share one

    return atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def config_help(cls: type, prefix: str = "") -> list[tuple[str, str, Any]]:
    """(dotted key, help, default) for every field, for ``--help`` output."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(config_help(tp, prefix + f.name + "."))
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        rows.append((prefix + f.name, f.metadata.get("help", ""), default))
    return rows


def format_config_help(cls: type) -> str:
    lines = ["config keys (set in the YAML file or as key=value):"]
    for key, text, default in config_help(cls):
        lines.append(f"  {key} (default: {default!r})\n      {text}")
    return "\n".join(lines)


def config_command(
    argv: Sequence[str] | None,
    cls: type[T],
    *,
    prog: str,
    description: str,
    examples: Sequence[str],
    config_example: str,
    overrides_example: str,
) -> tuple[T, argparse.Namespace] | int:
    """The command line of a config-driven recipe: ``[--config FILE] [--print-config] [key=value ...]``.

    ``--help`` lists ``examples`` and every config key (:func:`format_config_help`). Returns
    ``(cfg, args)`` to run, or an exit code: 2 for a bad config (one line ``PROG: message`` on
    stderr), 0 after ``--print-config`` printed the resolved config as YAML. No ``--config`` and
    no override is a usage error (argparse exits with 2).

        parsed = config_command(argv, TrainConfig, prog="diffucode train", description="...",
                                examples=["diffucode train --config c.yaml"], config_example="c.yaml",
                                overrides_example="max_steps=10")
        if isinstance(parsed, int):
            return parsed
        cfg, args = parsed
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n" + "".join(f"  {line}\n" for line in examples) + "\n" + format_config_help(cls),
    )
    parser.add_argument("--config", required=False,
                        help=f"YAML config file (e.g. {config_example}), or the name of a shipped one "
                             f"(e.g. {Path(config_example).with_suffix('').as_posix().removeprefix('configs/')})")
    parser.add_argument("overrides", nargs="*", help=f"dotted key=value overrides, e.g. {overrides_example}")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    args = parser.parse_args(argv)
    if args.config is None and not args.overrides:
        parser.error("give --config FILE (and/or key=value overrides)")
    if args.config is not None:  # a file, or the name of a shipped config (nano/01_ar)
        from diffucode.shipped_configs import resolve_config_arg

        args.config = str(resolve_config_arg(args.config))
    try:
        cfg = load_config(cls, args.config, args.overrides)
    except ConfigError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    if args.print_config:
        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        return 0
    return cfg, args
