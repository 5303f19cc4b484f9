"""PNG pictures of how a diffusion model decodes: AR-ness vs temperature, the L-shaped
first-step confidence curve (entropy sink), and a decode-order heat map of one completion.

    python -c "from diffucode.analysis.plots import plot_decode_order; \
plot_decode_order(['def', ' f', '():', '\\n', '    return', ' 1'], [2, 1, 3, 6, 4, 5], 'order.png')"

Figures are drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas, never through
``pyplot``, so nothing here touches global backend state or needs a display. Each function
writes one PNG and returns its path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["plot_arness_vs_temperature", "plot_arness_by_alg", "plot_confidence_curve", "plot_decode_order"]


def _new_figure(width: float, height: float, layout: str | None = "constrained"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", bbox_inches="tight")
    return path


def _k_keys(points: Sequence[Mapping], kind: str) -> list[int]:
    ks = sorted({int(k) for p in points for k in p.get(kind, {})})
    if not ks:
        raise ValueError(f"no '{kind}' AR-ness values in the sweep points")
    return ks


def plot_arness_vs_temperature(
    points: Sequence[Mapping[str, Any]],
    path: str | Path,
    ks: Sequence[int] | None = None,
    kinds: Sequence[str] = ("local", "global"),
    title: str = "AR-ness vs sampling temperature",
) -> Path:
    """One panel per kind (local / global); one line per (alg, k); error bars = std over samples.

    ``points`` are sweep points as written by :func:`diffucode.analysis.sweep.arness_sweep`:
    ``{"alg", "temperature", "local": {k: {"mean", "std", ...}}, "global": {...}, "pass@1"}``.
    If any point has pass@1, a last panel plots it against temperature too.
    """
    if not points:
        raise ValueError("plot_arness_vs_temperature needs at least one sweep point")
    with_pass = [p for p in points if p.get("pass@1") is not None]
    n_panels = len(kinds) + (1 if with_pass else 0)
    fig = _new_figure(4.2 * n_panels, 3.6)
    axes = fig.subplots(1, n_panels, squeeze=False)[0]
    algs = list(dict.fromkeys(p["alg"] for p in points))
    all_ks = sorted({k for kind in kinds for k in (ks if ks is not None else _k_keys(points, kind))})
    colours = {k: f"C{i % 10}" for i, k in enumerate(all_ks)}  # colour = k
    styles = {a: (["-", "--", ":", "-."][i % 4], "osD^v<>"[i % 7]) for i, a in enumerate(algs)}  # line = alg
    labelled: dict[str, Any] = {}
    for ax, kind in zip(axes, kinds):
        use_ks = list(ks) if ks is not None else _k_keys(points, kind)
        for alg in algs:
            pts = sorted((p for p in points if p["alg"] == alg), key=lambda p: p["temperature"])
            temps = [p["temperature"] for p in pts]
            for k in use_ks:
                stats = [p[kind].get(str(k), p[kind].get(k)) for p in pts]
                mean = [s["mean"] if s else np.nan for s in stats]
                std = [s.get("std", 0.0) if s else 0.0 for s in stats]
                label = f"k={k}" if len(algs) == 1 else f"{alg}, k={k}"
                h = ax.errorbar(temps, mean, yerr=std, color=colours[k], ls=styles[alg][0], marker=styles[alg][1],
                                capsize=3, label=label)
                labelled.setdefault(label, h)
        ax.set_xlabel("temperature")
        ax.set_ylabel(f"{kind} AR-ness@k")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{kind} AR-ness")
        ax.grid(alpha=0.3)
    if with_pass:
        ax = axes[-1]
        for alg in algs:
            pts = sorted((p for p in with_pass if p["alg"] == alg), key=lambda p: p["temperature"])
            h, = ax.plot([p["temperature"] for p in pts], [p["pass@1"] for p in pts], color="k",
                         ls=styles[alg][0], marker=styles[alg][1], label=f"pass@1, {alg}")
            labelled.setdefault(f"pass@1, {alg}", h)
        ax.set_xlabel("temperature")
        ax.set_ylabel("pass@1")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title("pass@1")
        ax.grid(alpha=0.3)
    fig.legend(list(labelled.values()), list(labelled), loc="outside right upper", fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)


def plot_arness_by_alg(
    points: Sequence[Mapping[str, Any]], path: str | Path, k: int = 1, title: str | None = None
) -> Path:
    """Grouped bars: local and global AR-ness@k per remasking ``alg`` (one group per temperature)."""
    if not points:
        raise ValueError("plot_arness_by_alg needs at least one sweep point")
    algs = list(dict.fromkeys(p["alg"] for p in points))
    temps = sorted({p["temperature"] for p in points})
    fig = _new_figure(max(4.5, 1.4 * len(algs) * max(1, len(temps)) / 2 + 2), 3.6)
    ax = fig.subplots()
    width = 0.8 / (2 * len(temps))
    x = np.arange(len(algs))
    for ti, temp in enumerate(temps):
        for ki, kind in enumerate(("local", "global")):
            means, stds = [], []
            for alg in algs:
                match = [p for p in points if p["alg"] == alg and p["temperature"] == temp]
                s = match[0][kind].get(str(k), match[0][kind].get(k)) if match else None
                means.append(s["mean"] if s else np.nan)
                stds.append(s.get("std", 0.0) if s else 0.0)
            off = (2 * ti + ki - (2 * len(temps) - 1) / 2) * width
            ax.bar(x + off, means, width, yerr=stds, capsize=2, label=f"{kind}, T={temp:g}")
    ax.set_xticks(x, algs)
    ax.set_ylabel(f"AR-ness@{k}")
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title or f"AR-ness@{k} by remasking rule")
    return _save(fig, path)


def plot_confidence_curve(
    curves: Mapping[str, Sequence[float]] | Sequence[float],
    path: str | Path,
    std: Mapping[str, Sequence[float]] | Sequence[float] | None = None,
    ylabel: str = "first-step confidence (max prob)",
    title: str = "Entropy sink: confidence over completion positions at step 1",
) -> Path:
    """The L-shaped curve: mean first-step confidence per completion position (band = +-std).

    ``curves`` is one curve ``[L]`` or ``{label: curve}`` to compare models / prompt sets.
    """
    if not isinstance(curves, Mapping):
        curves = {"": curves}
        std = {"": std} if std is not None else None
    fig = _new_figure(6.5, 3.6)
    ax = fig.subplots()
    for label, curve in curves.items():
        y = np.asarray(curve, dtype=float)
        if y.ndim != 1 or y.size == 0:
            raise ValueError(f"confidence curve {label!r} must be 1-D and non-empty, got shape {y.shape}")
        x = np.arange(y.size)
        ax.plot(x, y, label=label or None, lw=1.5)
        if std is not None and std.get(label) is not None:
            s = np.asarray(std[label], dtype=float)
            ax.fill_between(x, np.clip(y - s, 0, 1), np.clip(y + s, 0, 1), alpha=0.2)
    ax.set_xlabel("completion position (0 = right after the prompt)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if any(curves):
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def _printable(text: str) -> str:
    # control characters have no glyph: show them as escapes, like repr() does
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" for c in text)


def plot_decode_order(
    tokens: Sequence[str],
    reveal_steps: Sequence[int],
    path: str | Path,
    prompt: str | None = None,
    title: str = "Decode order: each token coloured by the step it was revealed",
    wrap: int = 100,
    fontsize: float = 9.0,
) -> Path:
    """Heat map of one completion laid out as code; token background = reveal step (viridis).

    Tokens with ``reveal_steps < 1`` (never revealed) are grey. Newlines are drawn as a small
    ``\\u21b5`` cell so that their reveal step shows too; tabs become 4 spaces; lines longer than
    ``wrap`` characters wrap. The last line of ``prompt`` (if given) is drawn in grey first, so
    the completion starts where it does in the file.
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    tokens = [str(t) for t in tokens]
    steps = [int(s) for s in (reveal_steps.tolist() if hasattr(reveal_steps, "tolist") else reveal_steps)]
    if len(tokens) != len(steps):
        raise ValueError(f"tokens ({len(tokens)}) and reveal_steps ({len(steps)}) must have the same length")
    if not tokens:
        raise ValueError("plot_decode_order needs at least one token")
    revealed = [s for s in steps if s >= 1]
    t_max = max(revealed, default=1)
    norm = Normalize(vmin=1, vmax=max(t_max, 2))
    cmap = colormaps["viridis"]

    # Lay the text out on a character grid: cells = (line, col, width, text, colour|None).
    cells: list[tuple[int, int, int, str, Any]] = []
    line, col = 0, 0
    if prompt:
        last = _printable(prompt.replace("\t", "    ").split("\n")[-1])
        if last:
            cells.append((line, 0, len(last), last, None))
            col = len(last)
    for text, step in zip(tokens, steps):
        colour = cmap(norm(step)) if step >= 1 else (0.85, 0.85, 0.85, 1.0)
        parts = [_printable(p) for p in text.replace("\t", "    ").split("\n")]
        for i, part in enumerate(parts):
            while part:
                room = max(1, wrap - col)
                chunk, part = part[:room], part[room:]
                cells.append((line, col, len(chunk), chunk, colour))
                col += len(chunk)
                if part:
                    line, col = line + 1, 0
            if i < len(parts) - 1:  # a newline inside the token
                cells.append((line, col, 1, "\u21b5", colour))
                line, col = line + 1, 0
    n_lines = line + 1
    n_cols = max(max(c + w for _, c, w, _, _ in cells), 10)

    char_w = 0.6 * fontsize / 72  # inches per monospace character
    line_h = 1.45 * fontsize / 72
    # Axes sized in inches so one data unit is exactly one character cell of the font;
    # the colour bar sits at the right edge, the title above (room for both even for short code).
    text_w, text_h = n_cols * char_w, n_lines * line_h
    body_h = max(text_h, 1.2)
    fig_w, fig_h = max(text_w + 1.4, 6.0), body_h + 0.6
    fig = _new_figure(fig_w, fig_h, layout=None)
    ax = fig.add_axes((0.1 / fig_w, (0.2 + body_h - text_h) / fig_h, text_w / fig_w, text_h / fig_h))
    ax.set_xlim(0, n_cols)
    ax.set_ylim(n_lines, 0)
    ax.axis("off")
    for ln, c, w, text, colour in cells:
        if colour is None:  # prompt context
            ax.text(c, ln + 0.5, text, family="monospace", fontsize=fontsize, va="center", color="0.45",
                    parse_math=False)
            continue
        ax.add_patch(Rectangle((c, ln + 0.05), w, 0.9, facecolor=colour, edgecolor="none"))
        lum = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
        ax.text(c, ln + 0.5, text, family="monospace", fontsize=fontsize, va="center",
                color="black" if lum > 0.55 else "white", parse_math=False)
    cax = fig.add_axes(((fig_w - 1.0) / fig_w, 0.2 / fig_h, 0.15 / fig_w, body_h / fig_h))
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax, label="reveal step")
    fig.text(0.1 / fig_w, 1 - 0.12 / fig_h, title, fontsize=10, va="top", ha="left")
    return _save(fig, path)
