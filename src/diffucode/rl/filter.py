"""The hard-prompt filter of DiffuCoder's RL data (docs/ALGORITHMS.md s.4): keep hard, discriminative prompts.

    diffucode rl filter --prompts prompts.jsonl --pass-rates rates.jsonl --out hard.jsonl

Each prompt has a sampled pass rate under each of several reference models (the fraction of the
task's asserts passed, averaged over ``n`` samples; or read from a precomputed file). A prompt is
kept when

* its **mean** pass rate across models is in the bottom ``mean_quantile`` (default 20%) of all
  prompts: it is hard; and
* its **spread** (population std across models) is in the top ``spread_quantile`` (default 40%):
  the models disagree, so it carries signal.

Thresholds are order statistics, and ties are kept: with ``n`` prompts sorted by mean, the
threshold is the value at rank ``ceil(mean_quantile * n)`` and every prompt with a mean ``<=`` it
is in the bottom set (likewise ``>=`` the spread threshold). With many tied pass rates the kept
fraction can therefore exceed the nominal share. A prompt on which all models agree (spread 0,
e.g. all fail) is never kept, even when the spread threshold itself is 0: it cannot tell models
apart (our reading; the paper only says "top 40% spread").

Pass-rate file: JSONL, one line per prompt, ``{"id": ..., "pass_rates": {"model_a": 0.25, ...}}``
(a list of numbers is accepted for ``pass_rates`` too). Every prompt needs rates for the same
models (at least two).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

from diffucode.data.jsonl import iter_jsonl
from diffucode.rl.data import DataError


def id_key(pid) -> str:
    """A prompt id as compared across files: by value, whatever its JSON type (10, 10.0 and "10"
    are the same prompt; a prompts file and a pass-rate file written by different tools often
    disagree on the type)."""
    if isinstance(pid, float) and pid.is_integer():
        return str(int(pid))
    if isinstance(pid, (dict, list)):
        import json

        return json.dumps(pid, sort_keys=True)
    return str(pid)


def mean_and_spread(rates: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation of one prompt's per-model pass rates."""
    n = len(rates)
    if n == 0:
        raise ValueError("no pass rates")
    mean = sum(rates) / n
    var = sum((r - mean) ** 2 for r in rates) / n
    return mean, math.sqrt(var)


def _order_threshold(values: Sequence[float], quantile: float, lowest: bool) -> float:
    n = len(values)
    k = max(1, math.ceil(quantile * n))
    ordered = sorted(values, reverse=not lowest)
    return ordered[k - 1]


def select_hard_prompts(
    pass_rates: Mapping[str, Sequence[float]],  # prompt id -> one pass rate per reference model
    mean_quantile: float = 0.2,
    spread_quantile: float = 0.4,
) -> list[str]:
    """Ids (in input order) of the prompts kept by the filter (module docstring)."""
    if not 0 < mean_quantile <= 1 or not 0 < spread_quantile <= 1:
        raise ValueError(f"quantiles must be in (0, 1], got mean={mean_quantile}, spread={spread_quantile}")
    if not pass_rates:
        return []
    counts = {len(v) for v in pass_rates.values()}
    if len(counts) != 1:
        raise ValueError(f"every prompt needs pass rates for the same number of models, got counts {sorted(counts)}")
    if counts.pop() < 2:
        raise ValueError("the spread criterion needs pass rates from at least two reference models")
    stats = {pid: mean_and_spread(list(map(float, v))) for pid, v in pass_rates.items()}
    mean_thr = _order_threshold([m for m, _ in stats.values()], mean_quantile, lowest=True)
    spread_thr = _order_threshold([s for _, s in stats.values()], spread_quantile, lowest=False)
    return [pid for pid, (m, s) in stats.items() if m <= mean_thr and s >= spread_thr and s > 0]


def read_pass_rates(path: str | Path) -> tuple[dict[str, list[float]], list[str] | None]:
    """Read a pass-rate JSONL file -> (id_key(id) -> rates in a fixed model order, model names or None)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"pass-rate file not found: {path}")
    out: dict[str, list[float]] = {}
    models: list[str] | None = None
    # lines without their newlines (read whole, as this reader always has): decode-error positions stay the same
    for _, where, rec in iter_jsonl(path, lines=path.read_text().splitlines(), error_cls=DataError, objects_only=True):
        pid = rec.get("id", rec.get("task_id"))
        rates = rec.get("pass_rates")
        if pid is None or rates is None:
            raise DataError(f"{where}: each line needs 'id' and 'pass_rates'")
        if isinstance(rates, dict):
            names = sorted(rates)
            if models is None:
                models = names
            elif names != models:
                raise DataError(f"{where}: pass rates for models {names}, but earlier lines have {models}")
            values = [rates[m] for m in names]
        elif isinstance(rates, list):
            values = rates
        else:
            raise DataError(f"{where}: 'pass_rates' must be a mapping model -> rate or a list of rates")
        try:
            values = [float(v) for v in values]
        except (TypeError, ValueError) as e:
            raise DataError(f"{where}: pass rates must be numbers: {e}") from e
        if any(not 0.0 <= v <= 1.0 for v in values):
            raise DataError(f"{where}: pass rates must lie in [0, 1]")
        out[id_key(pid)] = values
    return out, models
