"""Atomic training checkpoints with everything exact resume needs.

    python -c "from diffucode.training.checkpoint import list_checkpoints; print(list_checkpoints('runs/mdm_tiny'))"

Layout of one checkpoint (``output_dir/checkpoints/step-00000010/``)::

    model/                 save_pretrained directory (load_model reads it); for LoRA runs the peft
                           adapter directory (adapter_config.json + adapter_model.safetensors)
    optimizer.pt           optimiser state_dict (single process / DDP)
    scheduler.pt           lr scheduler state_dict
    rng/rank{r}.pt         python / numpy / torch (CPU and CUDA) RNG states of every process
    accelerate_state/      only under FSDP / DeepSpeed: accelerate's sharded model+optimizer state
    extra.pt               optional recipe-specific state (e.g. the RL reference model step)
    trainer_state.json     step, data position, ...: written last

Atomicity: everything is written into ``.step-00000010.tmp`` and renamed to ``step-00000010``
once complete, so a crash mid-write leaves the previous checkpoints untouched (the stale
``.tmp`` directory is removed at the next start). Only complete checkpoints are listed.

FSDP / DeepSpeed: the code paths use accelerate's ``get_state_dict`` / ``save_state`` /
``load_state``; they are not exercised by the CPU test-suite.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^step-(\d{8})$")


def checkpoint_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / CHECKPOINTS


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints as ``(step, path)``, oldest first."""
    root = checkpoint_root(output_dir)
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir() and (p / STATE_FILE).is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    ckpts = list_checkpoints(output_dir)
    return ckpts[-1][1] if ckpts else None


def remove_incomplete(output_dir: str | Path) -> list[Path]:
    """Delete leftovers of interrupted saves (``.step-*.tmp``, ``*.old``); returns what was removed."""
    root = checkpoint_root(output_dir)
    removed = []
    if root.is_dir():
        for p in root.iterdir():
            if p.name.endswith(".tmp") or p.name.endswith(".old"):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


@contextlib.contextmanager
def quiet_hf_progress():
    """Hide transformers' per-save progress bars ("Writing model shards") while saving."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


# -- RNG ---------------------------------------------------------------------------------
def capture_rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- weights -----------------------------------------------------------------------------
def load_safetensors_dir(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of the ``*.safetensors`` files of a directory (sharded or not)."""
    from safetensors.torch import load_file

    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{directory}: no .safetensors files")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


def _is_sharded(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator is not None and accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def _unwrap(accelerator, model):
    return accelerator.unwrap_model(model) if accelerator is not None else model


class CheckpointManager:
    """Save / find / load checkpoints of one run directory (see the module docstring).

    Every process must call :meth:`save` and :meth:`load` (they synchronise); only the main
    process writes shared files. ``model`` is the (possibly accelerate-wrapped) ``DiffusionLM``;
    ``peft_model`` the peft wrapper when LoRA is on (its adapter is what gets saved).
    """

    def __init__(self, output_dir: str | Path, accelerator=None, keep_last: int = 2):
        self.output_dir = Path(output_dir)
        self.root = checkpoint_root(output_dir)
        self.accelerator = accelerator
        self.keep_last = keep_last

    # distributed helpers that also work without accelerate
    @property
    def is_main(self) -> bool:
        return self.accelerator is None or self.accelerator.is_main_process

    @property
    def rank(self) -> int:
        return 0 if self.accelerator is None else self.accelerator.process_index

    def _barrier(self) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()

    def _write_model(self, directory: Path, model, tokenizer, peft_model, full_state) -> None:
        """The checkpoint's save_pretrained directory (adapter only for LoRA; gathered weights under FSDP/DS)."""
        if peft_model is not None:
            peft_model.save_pretrained(str(directory))
            if tokenizer is not None:
                tokenizer.save_pretrained(str(directory))
        elif full_state is not None:
            core = _unwrap(self.accelerator, model)
            core._sync_config()
            backbone_state = {k[len("backbone."):]: v for k, v in full_state.items() if k.startswith("backbone.")}
            core.backbone.save_pretrained(str(directory), state_dict=backbone_state, safe_serialization=True)
            if tokenizer is not None:
                tokenizer.save_pretrained(str(directory))
        else:
            _unwrap(self.accelerator, model).save_pretrained(directory, tokenizer=tokenizer)

    def save(
        self,
        step: int,
        *,
        model,
        tokenizer=None,
        optimizer=None,
        scheduler=None,
        trainer_state: dict | None = None,
        peft_model=None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        final = self.root / f"step-{step:08d}"
        tmp = self.root / f".step-{step:08d}.tmp"
        if self.is_main:
            if tmp.exists():
                shutil.rmtree(tmp)
            (tmp / "rng").mkdir(parents=True)
        self._barrier()

        acc = self.accelerator
        if _is_sharded(acc):
            full_state = acc.get_state_dict(model)  # collective: gathers shards on the main process
            acc.save_state(str(tmp / "accelerate_state"))
        if self.is_main:
            with quiet_hf_progress():
                self._write_model(tmp / "model", model, tokenizer, peft_model, full_state if _is_sharded(acc) else None)
            if optimizer is not None and not _is_sharded(acc):
                torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            if scheduler is not None:
                torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
            if extra:
                torch.save(extra, tmp / "extra.pt")
        self._barrier()
        torch.save(capture_rng_state(), tmp / "rng" / f"rank{self.rank}.pt")
        self._barrier()
        if self.is_main:
            state = dict(trainer_state or {})
            state["step"] = step
            state["world_size"] = 1 if acc is None else acc.num_processes
            _write_json_atomic(tmp / STATE_FILE, state)
            if final.exists():  # re-saving a step (e.g. after a resume): swap, then delete the old one
                old = self.root / f"step-{step:08d}.old"
                final.rename(old)
                tmp.rename(final)
                shutil.rmtree(old)
            else:
                tmp.rename(final)
            _fsync_dir(self.root)
            for _, path in list_checkpoints(self.output_dir)[: -self.keep_last]:
                shutil.rmtree(path, ignore_errors=True)
        self._barrier()
        return final

    def save_final(self, directory: str | Path, *, model, tokenizer=None, peft_model=None, merge_lora: bool = True) -> Path:
        """The run's end product: a plain save_pretrained directory (LoRA adapters merged into the
        weights when ``merge_lora``, else the adapter directory). All processes must call it."""
        directory = Path(directory)
        acc = self.accelerator
        full_state = acc.get_state_dict(model) if _is_sharded(acc) else None  # collective
        self._barrier()
        if self.is_main:
            with quiet_hf_progress():
                if peft_model is not None and merge_lora:
                    core = _unwrap(acc, model)
                    core.backbone = peft_model.merge_and_unload()  # W + (alpha / r) * B @ A, adapters removed
                    core.save_pretrained(directory, tokenizer=tokenizer)
                else:
                    self._write_model(directory, model, tokenizer, peft_model, full_state)
        self._barrier()
        return directory

    def load(
        self,
        path: str | Path,
        *,
        model,
        optimizer=None,
        scheduler=None,
        peft_model=None,
    ) -> dict:
        """Restore weights, optimiser, scheduler and this process's RNG; return trainer_state
        (with ``extra`` added when the checkpoint has one)."""
        path = Path(path)
        state_file = path / STATE_FILE
        if not state_file.is_file():
            raise FileNotFoundError(f"{path}: not a complete checkpoint (no {STATE_FILE})")
        state = json.loads(state_file.read_text())
        acc = self.accelerator
        if _is_sharded(acc):
            acc.load_state(str(path / "accelerate_state"))
        elif peft_model is not None:
            from peft import set_peft_model_state_dict

            result = set_peft_model_state_dict(peft_model, load_safetensors_dir(path / "model"))
            unexpected = getattr(result, "unexpected_keys", [])
            if unexpected:
                raise RuntimeError(f"{path}/model: adapter weights do not match the model: {unexpected[:5]}")
        else:
            core = _unwrap(acc, model)
            weights = load_safetensors_dir(path / "model")
            result = core.backbone.load_state_dict(weights, strict=False)
            tied = getattr(core.config, "tie_word_embeddings", False)
            missing = [k for k in result.missing_keys if not (tied and k == "lm_head.weight") and "rotary_emb" not in k]
            if missing or result.unexpected_keys:
                raise RuntimeError(
                    f"{path}/model does not match the model being trained: missing {missing[:5]}, "
                    f"unexpected {result.unexpected_keys[:5]}"
                )
        if optimizer is not None and not _is_sharded(acc):
            optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
        if scheduler is not None and (path / "scheduler.pt").is_file():
            scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
        rng_file = path / "rng" / f"rank{self.rank}.pt"
        if rng_file.is_file():
            restore_rng_state(torch.load(rng_file, weights_only=True))
        if (path / "extra.pt").is_file():
            state["extra"] = torch.load(path / "extra.pt", weights_only=False)
        self._barrier()
        return state


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def prepare_output_dir(output_dir: str | Path, resume: bool, overwrite: bool, accelerator, log) -> Path | None:
    """Decide between resume and a fresh start (shared by the training and RL recipes).

    resume: drop half-written checkpoints and return the newest complete one (None: start at 0).
    Otherwise refuse an output_dir that already has checkpoints unless ``overwrite`` (then they and
    ``final/`` are deleted). ``log(msg)`` reports a resume with nothing to resume from.
    """
    from diffucode.config import ConfigError

    out = Path(output_dir)
    existing = list_checkpoints(out)
    if resume:
        if accelerator.is_main_process:
            remove_incomplete(out)
        accelerator.wait_for_everyone()
        ckpt = latest_checkpoint(out)
        if ckpt is None:
            log(f"resume=true but {out} has no checkpoint yet: starting from step 0")
        return ckpt
    if existing and not overwrite:
        raise ConfigError(
            f"output_dir {out} already has checkpoints (newest: {existing[-1][1].name}); pass resume=true to continue "
            "or overwrite=true to start over"
        )
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if existing or checkpoint_root(out).exists():
            shutil.rmtree(checkpoint_root(out), ignore_errors=True)
            shutil.rmtree(out / "final", ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    return None
