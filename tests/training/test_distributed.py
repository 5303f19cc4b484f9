"""Two CPU processes (gloo, DDP) train the same model as one process with the same global batch."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from diffucode.config import load_config
from diffucode.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "train" / "mdm_tiny.yaml"
# global batch 4: one process runs 2 micro-batches of 2 (accumulation), two processes 1 each.
# Annealing, truncation and clean prefixes on: their noise must not depend on the split either.
OVERRIDES = ["max_steps=3", "batch_size=4", "micro_batch_size=2", "max_seq_len=32", "save_every=0", "eval_every=0",
             "logging.plot=false", "diffusion.anneal_steps=2", "diffusion.truncate_fraction=0.3",
             "diffusion.prefix_fraction=0.3", "data.eval_fraction=0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(out: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_train_the_same_model_as_one(tmp_path):
    from safetensors.torch import load_file

    from diffucode.recipes.train import train

    two = tmp_path / "two"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           "-m", "diffucode.cli", "train", "--config", str(CONFIG), f"output_dir={two}", *OVERRIDES]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es) x 1 accumulation x 2 = batch 4" in proc.stderr

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = train(load_config(TrainConfig, CONFIG, [f"output_dir={tmp_path / 'one'}", *OVERRIDES]), CONFIG)
    finally:
        torch.set_num_threads(n)
    assert one.status == "finished"

    a = load_file(str(one.final_dir / "model.safetensors"))
    b = load_file(str(two / "final" / "model.safetensors"))
    assert set(a) == set(b)
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-5, worst  # equal up to float summation order
    assert torch.allclose(torch.tensor(_losses(one.output_dir)), torch.tensor(_losses(two)), rtol=1e-5)
