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
    trainer_state.json     step, data position, ...
    checksums.json         size + sha256 of every other file: written last

Atomicity: everything is written into ``.step-00000010.tmp`` and renamed to ``step-00000010``
once complete, so a crash mid-write leaves the previous checkpoints untouched (the stale
``.tmp`` directory is removed at the next start, or at once when the write fails with an
exception). Only complete checkpoints are listed.

Faults on resume (:func:`select_resume_checkpoint`): every file is checked against
``checksums.json``; a damaged checkpoint (a file missing, truncated or changed) is moved aside to
``step-XXXXXXXX.damaged`` and the previous intact one is used, with one log line saying which
and why. No intact checkpoint at all: :class:`CheckpointError` (never a silent restart from step
0). Checkpoints written before checksums existed are used unverified, and the log says so.
Cost: hashing reads the checkpoint once more at each save and at resume (sha256 ran at roughly
240-400 MiB/s on one core of the 2-core CPU this was written on: about 2-3 minutes for a 45 GB
7B checkpoint with its optimiser state).
:meth:`CheckpointManager.load` refuses a checkpoint that lacks a state the run needs (e.g.
``scheduler.pt``: continuing without it would silently restart the learning-rate schedule).

Full disk: before writing, :meth:`CheckpointManager.save` checks that the file system has room
for a checkpoint (the size of the newest one, else weights + optimiser state, plus 10%); a write
that still fails with ENOSPC removes the half-written directory and raises
:class:`~diffucode.fileio.OutOfSpaceError` naming the path and the space needed.

One trainer per directory: :func:`lock_output_dir` holds an exclusive lock on ``output_dir``
(:class:`~diffucode.fileio.RunDirLock`); a second trainer fails at once naming the holder's pid.

FSDP / DeepSpeed: the code paths use accelerate's ``get_state_dict`` / ``save_state`` /
``load_state``; they are not exercised by the CPU test-suite.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffucode.fileio import OutOfSpaceError, RunDirLock, check_free_space, is_out_of_space, out_of_space_message

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
CHECKSUMS = "checksums.json"
_NAME = re.compile(r"^step-(\d{8})$")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used (damaged, or lacking a state the run needs); one-line message."""


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


# -- integrity -----------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != CHECKSUMS)


def dir_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def write_checksums(directory: str | Path) -> Path:
    """``directory/checksums.json``: size and sha256 of every other file in the checkpoint."""
    directory = Path(directory)
    files = {p.relative_to(directory).as_posix(): {"size": p.stat().st_size, "sha256": _sha256(p)}
             for p in _files(directory)}
    path = directory / CHECKSUMS
    _write_json_atomic(path, {"algorithm": "sha256", "files": files})
    return path


def verify_checkpoint(path: str | Path) -> tuple[bool, str]:
    """(usable, why) for one checkpoint directory: every file of ``checksums.json`` present with
    its size and sha256. A checkpoint without ``checksums.json`` (written before they existed) is
    usable but unverified; ``why`` says so."""
    path = Path(path)
    if not (path / STATE_FILE).is_file():
        return False, f"no {STATE_FILE}"
    manifest = path / CHECKSUMS
    if not manifest.is_file():
        return True, "not verified: it has no checksums.json (written by an older diffucode)"
    try:
        files = json.loads(manifest.read_text())["files"]
        if not isinstance(files, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return False, f"{CHECKSUMS} is unreadable"
    for rel, want in sorted(files.items()):
        f = path / rel
        if not f.is_file():
            return False, f"{rel} is missing"
        if f.stat().st_size != want.get("size"):
            return False, f"{rel} has {f.stat().st_size} bytes, {want.get('size')} were written"
        if _sha256(f) != want.get("sha256"):
            return False, f"{rel} does not match its checksum"
    return True, f"checksums of {len(files)} files verified"


def select_resume_checkpoint(output_dir: str | Path, log) -> Path | None:
    """The newest intact checkpoint (see the module docstring); damaged newer ones are moved aside
    to ``*.damaged``. ``log(line)`` gets one line naming the checkpoint used and why. None when
    there are no checkpoints; :class:`CheckpointError` when there are some but none is intact."""
    ckpts = list_checkpoints(output_dir)
    if not ckpts:
        return None
    rejected = []
    for step, path in reversed(ckpts):
        ok, why = verify_checkpoint(path)
        if not ok:
            rejected.append((path, why))
            continue
        moved = []
        for bad, bad_why in rejected:
            aside = bad.with_name(bad.name + ".damaged")
            shutil.rmtree(aside, ignore_errors=True)
            bad.rename(aside)
            moved.append(f"{bad.name} is damaged ({bad_why}; moved to {aside.name})")
        line = f"resuming from {path} ({why})"
        if moved:
            line += "; " + "; ".join(moved)
        log(line)
        return path
    detail = "; ".join(f"{p.name}: {why}" for p, why in rejected)
    raise CheckpointError(f"no intact checkpoint in {checkpoint_root(output_dir)} ({detail}); "
                          "pass overwrite=true to start over")


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
        # every process checks (same numbers everywhere), so all of them stop together
        needed = self.estimate_bytes(model, optimizer, peft_model)
        check_free_space(final, needed, "checkpoint")
        try:
            return self._save(step, final, tmp, model=model, tokenizer=tokenizer, optimizer=optimizer,
                              scheduler=scheduler, trainer_state=trainer_state, peft_model=peft_model, extra=extra)
        except BaseException as e:
            # nothing half-written stays behind (a SIGKILL leaves the .tmp: removed at the next start)
            if self.is_main and not isinstance(e, KeyboardInterrupt):
                shutil.rmtree(tmp, ignore_errors=True)
            if not isinstance(e, OutOfSpaceError) and is_out_of_space(e):
                raise OutOfSpaceError(out_of_space_message(final, needed, "checkpoint")) from e
            raise

    def estimate_bytes(self, model, optimizer=None, peft_model=None) -> int:
        """Disk space one checkpoint needs: the newest one's size, else weights + optimiser state; +10%."""
        ckpts = list_checkpoints(self.output_dir)
        if ckpts:
            n = dir_size(ckpts[-1][1])
        else:
            core = _unwrap(self.accelerator, model)
            params = [p for p in core.parameters() if p.requires_grad] if peft_model is not None else list(core.parameters())
            n = sum(p.numel() * p.element_size() for p in params)
            if optimizer is not None:
                n += sum(v.numel() * v.element_size() for st in optimizer.state.values() for v in st.values()
                         if torch.is_tensor(v))
        return int(n * 1.1) + (1 << 20)

    def _save(self, step, final, tmp, *, model, tokenizer, optimizer, scheduler, trainer_state, peft_model,
              extra) -> Path:
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
            write_checksums(tmp)
            _fsync_dir(tmp)
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
        needs = {"scheduler.pt": "the learning-rate schedule would silently restart from step 0"} if scheduler is not None else {}
        if optimizer is not None and not _is_sharded(acc):
            needs["optimizer.pt"] = "the optimiser's moments would silently restart from zero"
        missing = [(name, why) for name, why in needs.items() if not (path / name).is_file()]
        if missing:
            name, why = missing[0]
            raise CheckpointError(f"{path} has no {name}: resuming from it, {why}; restore the file, delete this "
                                  "checkpoint to resume from an earlier one, or pass overwrite=true to start over")
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
        if scheduler is not None:
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
        # the main process verifies (and moves damaged checkpoints aside); the others get its answer
        answer: list = [None]
        if accelerator.is_main_process:
            remove_incomplete(out)
            try:
                ckpt = select_resume_checkpoint(out, log)
                answer = [("ok", None if ckpt is None else str(ckpt))]
            except CheckpointError as e:
                answer = [("error", str(e))]
        answer = _share(accelerator, answer)
        kind, value = answer[0]
        if kind == "error":
            raise CheckpointError(value)
        if value is None:
            log(f"resume=true but {out} has no checkpoint yet: starting from step 0")
        return None if value is None else Path(value)
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


def _share(accelerator, objects: list) -> list:
    """The main process's ``objects`` on every process (a no-op for one process)."""
    if accelerator is None or accelerator.num_processes == 1:
        return objects
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list(objects, from_process=0)


def lock_output_dir(output_dir: str | Path, accelerator, command: str) -> RunDirLock | None:
    """Hold the run directory's lock on the main process (see the module docstring); a second run on
    the same directory raises :class:`~diffucode.fileio.RunDirLockedError` on every process."""
    from diffucode.fileio import RunDirLockedError

    lock, answer = None, [None]
    if accelerator is None or accelerator.is_main_process:
        lock = RunDirLock(output_dir, command)
        try:
            lock.acquire()
        except RunDirLockedError as e:
            answer = [str(e)]
    answer = _share(accelerator, answer)
    if answer[0] is not None:
        raise RunDirLockedError(answer[0])
    return lock
