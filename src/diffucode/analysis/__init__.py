"""Analysis of how a diffusion model writes code (DiffuCoder section 4): AR-ness, the entropy
sink, and pictures of the decode order.

    python -c "from diffucode.analysis import local_arness, global_arness; print(local_arness([0, 2, 1], 1))"

* :mod:`~diffucode.analysis.arness`: local / global AR-ness@k of decode orders (pure Python/numpy).
* :mod:`~diffucode.analysis.sink`: first-step confidence over completion positions (one forward pass).
* :mod:`~diffucode.analysis.sweep`: AR-ness@k and pass@1 against temperature and remasking rule.
* :mod:`~diffucode.analysis.plots`: PNGs (AR-ness vs temperature, confidence curve, decode-order map).
* :mod:`~diffucode.analysis.replay`: a self-contained HTML page replaying a completion step by step.
* :mod:`~diffucode.analysis.trace`: decode one prompt and keep token strings + reveal steps.

The pure parts import eagerly; the torch-based ones (``sink``, ``sweep``, ``trace``,
``prompts``) load on first use, so the metrics stay importable without torch.
"""

from __future__ import annotations

import importlib

from diffucode.analysis.arness import (
    ArnessStats,
    arness_curve,
    arness_stats,
    count_multi_reveal_steps,
    global_arness,
    global_arness_batch,
    local_arness,
    local_arness_batch,
    positions_to_reveal_steps,
    reveal_steps_to_positions,
)
from diffucode.analysis.plots import (
    plot_arness_by_alg,
    plot_arness_vs_temperature,
    plot_confidence_curve,
    plot_decode_order,
)
from diffucode.analysis.replay import render_replay_html, token_strings, write_replay_html

# name -> submodule, for the torch-based parts (PEP 562 lazy attributes)
_LAZY = {
    "SinkResult": "sink",
    "entropy_sink": "sink",
    "first_step_confidence": "sink",
    "SweepConfig": "sweep",
    "arness_sweep": "sweep",
    "Trace": "trace",
    "trace_completion": "trace",
    "load_prompts": "prompts",
}

__all__ = [
    "ArnessStats", "arness_curve", "arness_stats", "count_multi_reveal_steps", "global_arness",
    "global_arness_batch", "local_arness", "local_arness_batch", "positions_to_reveal_steps",
    "reveal_steps_to_positions", "plot_arness_by_alg", "plot_arness_vs_temperature",
    "plot_confidence_curve", "plot_decode_order", "render_replay_html", "token_strings",
    "write_replay_html", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f"diffucode.analysis.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'diffucode.analysis' has no attribute {name!r}")
