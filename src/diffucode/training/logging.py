"""Run logging: ``metrics.jsonl`` (one JSON object per logged step), optional TensorBoard /
Weights & Biases, and a loss-curve PNG.

    python -c "from diffucode.training.logging import plot_loss_curve; plot_loss_curve('runs/mdm_tiny/metrics.jsonl', 'curve.png')"

Only the main process writes. On resume the log is cut back to the resumed step, so a
resumed run's ``metrics.jsonl`` reads exactly like an uninterrupted run's.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from diffucode.config import ConfigError
from diffucode.training.config import LoggingConfig

METRICS_FILE = "metrics.jsonl"


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line torn by a crash: everything before it is valid
    return out


def _clean(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no nan/inf
    return v


class MetricsLogger:
    """Append-only JSONL metrics (+ TensorBoard / W&B when enabled) for the main process."""

    def __init__(
        self,
        output_dir: str | Path,
        cfg: LoggingConfig | None = None,
        is_main: bool = True,
        resume_step: int | None = None,
        config_dict: dict | None = None,
    ):
        self.cfg = cfg or LoggingConfig()
        self.is_main = is_main
        self.path = Path(output_dir) / METRICS_FILE
        self._tb = None
        self._wandb = None
        self._t0 = time.time()
        if not is_main:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [m for m in read_metrics(self.path) if resume_step is not None and m.get("step", 0) <= resume_step]
        with self.path.open("w") as f:  # rewrite: fresh run, or cut back to the resumed step
            for m in kept:
                f.write(json.dumps(m) + "\n")
        run_name = self.cfg.run_name or Path(output_dir).resolve().name
        if self.cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise ConfigError("logging.tensorboard=true needs the 'tensorboard' package: pip install tensorboard") from e
            self._tb = SummaryWriter(log_dir=str(Path(output_dir) / "tensorboard" / run_name))
        if self.cfg.wandb:
            try:
                import wandb
            except ImportError as e:
                raise ConfigError("logging.wandb=true needs the 'wandb' package: pip install wandb") from e
            self._wandb = wandb.init(project=self.cfg.wandb_project, name=run_name, config=config_dict,
                                     dir=str(output_dir), resume="allow")

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.is_main:
            return
        record = {"step": int(step), **{k: _clean(v) for k, v in metrics.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        numeric = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"}
        if self._tb is not None:
            for k, v in numeric.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(numeric, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def plot_loss_curve(metrics_path: str | Path, png_path: str | Path, title: str | None = None) -> Path | None:
    """Plot ``loss`` (and ``eval_loss`` when present) against ``step``; returns the PNG path,
    or None when there is nothing to plot."""
    rows = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in rows if isinstance(r.get("loss"), (int, float))]
    evals = [(r["step"], r["eval_loss"]) for r in rows if isinstance(r.get("eval_loss"), (int, float))]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train loss", linewidth=1, alpha=0.35 if len(train) >= 100 else 1.0)
        if len(train) >= 100:
            # per-step losses of mixed corpora are noisy; a running mean shows the trend
            window = max(10, len(train) // 50)
            steps, losses = zip(*train)
            smooth = [sum(losses[max(0, i - window + 1):i + 1]) / (i + 1 - max(0, i - window + 1))
                      for i in range(len(losses))]
            ax.plot(steps, smooth, label=f"train loss, mean of {window} steps", linewidth=1.5)
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss", markersize=3)
    warm = [r["step"] for r in rows if r.get("mask_warmup")]
    if warm:
        ax.axvspan(min(warm), max(warm), alpha=0.1, color="gray", label="mask-rate warm-up (unweighted loss)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title or str(Path(metrics_path).parent.name))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    png_path = Path(png_path)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path


def plot_metric_curves(metrics_path: str | Path, png_path: str | Path, keys, title: str | None = None) -> Path | None:
    """One panel per metric in ``keys`` (those the metrics file has), against ``step``; returns
    the PNG path, or None when none of them was logged. Used for RL runs (reward, pass rate, KL, loss)."""
    rows = read_metrics(metrics_path)
    series = {k: [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float))] for k in keys}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(series), 1, figsize=(7, 2.2 * len(series)), sharex=True, squeeze=False)
    for ax, (k, pts) in zip(axes[:, 0], series.items()):
        ax.plot(*zip(*pts), "o-" if len(pts) < 50 else "-", markersize=3, linewidth=1)
        ax.set_ylabel(k)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    axes[0, 0].set_title(title or str(Path(metrics_path).parent.name))
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path
