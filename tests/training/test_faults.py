"""Training under faults (CPU, tiny model): a damaged newest checkpoint falls back to the previous
intact one (and the resumed run still matches the uninterrupted one exactly), a checkpoint lacking
scheduler.pt is refused, a full disk gives one line naming the path and leaves nothing
half-written, and a second trainer on a locked output_dir is refused naming the holder's pid."""

import errno
import json
import os
from pathlib import Path

import pytest
import torch

from diffucode.config import load_config
from diffucode.fileio import OutOfSpaceError, RunDirLock, RunDirLockedError
from diffucode.training.checkpoint import CheckpointError, list_checkpoints, verify_checkpoint
from diffucode.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "train" / "ar_tiny.yaml"
FAST = ["batch_size=4", "micro_batch_size=2", "max_seq_len=32", "eval_every=0", "logging.plot=false",
        "optim.warmup_steps=1", "max_steps=4", "save_every=1", "logging.progress_bar=false"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run(out, *overrides):
    from diffucode.recipes.train import train

    cfg = load_config(TrainConfig, CONFIG, [f"output_dir={out}", *FAST, *overrides])
    return train(cfg, config_path=CONFIG)


def cli(out, *overrides):
    from diffucode.recipes.train import main

    return main(["--config", str(CONFIG), f"output_dir={out}", *FAST, *overrides])


def weights(ckpt: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(ckpt / "model" / "model.safetensors"))


def flip_byte(path: Path, offset: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip a weight byte", "delete scheduler.pt", "truncate optimizer.pt"])
def test_damaged_newest_checkpoint_falls_back_and_resume_stays_exact(tmp_path, capsys, damage):
    full = run(tmp_path / "full")
    part = run(tmp_path / "part", "stop_after=3")
    assert [s for s, _ in list_checkpoints(part.output_dir)] == [2, 3]
    newest = part.checkpoint
    if damage == "flip a weight byte":
        flip_byte(newest / "model" / "model.safetensors")
    elif damage == "delete scheduler.pt":
        (newest / "scheduler.pt").unlink()
    else:
        f = newest / "optimizer.pt"
        f.write_bytes(f.read_bytes()[:-10])
    assert not verify_checkpoint(newest)[0] and verify_checkpoint(newest.parent / "step-00000002")[0]
    capsys.readouterr()
    resumed = run(tmp_path / "part", "resume=true")
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "resuming from" in x)
    assert "step-00000002 (checksums of" in line and "step-00000003 is damaged" in line
    assert {"flip a weight byte": "model/model.safetensors does not match its checksum",
            "delete scheduler.pt": "scheduler.pt is missing",
            "truncate optimizer.pt": "optimizer.pt has"}[damage] in line
    assert (newest.parent / "step-00000003.damaged").is_dir()  # kept aside for inspection, never listed
    assert resumed.status == "finished" and resumed.step == 4
    wa, wb = weights(full.checkpoint), weights(resumed.checkpoint)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # steps 3-4 redone exactly


def test_no_intact_checkpoint_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    run(out, "stop_after=2")
    for _, ckpt in list_checkpoints(out):
        flip_byte(ckpt / "optimizer.pt")
    capsys.readouterr()
    assert cli(out, "resume=true") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"diffucode train: error: no intact checkpoint in {out / 'checkpoints'} "
                              "(step-00000002: optimizer.pt does not match its checksum; step-00000001:")
    assert [s for s, _ in list_checkpoints(out)] == [1, 2]  # nothing moved or deleted: no silent restart


def test_checkpoint_without_scheduler_state_is_refused(tmp_path, capsys):
    # an old-format checkpoint (no checksums.json) lacking scheduler.pt: resuming from it would
    # silently restart the learning-rate schedule
    out = tmp_path / "run"
    run(out, "stop_after=2", "keep_last=1")
    (ckpt,) = [p for _, p in list_checkpoints(out)]
    (ckpt / "checksums.json").unlink()
    (ckpt / "scheduler.pt").unlink()
    with pytest.raises(CheckpointError, match="has no scheduler.pt: resuming from it, the learning-rate schedule "
                                              "would silently restart"):
        run(out, "resume=true")
    assert "not verified: it has no checksums.json" in capsys.readouterr().err


def test_full_disk_before_a_checkpoint_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from diffucode import fileio

    out = tmp_path / "run"
    run(out, "stop_after=1")
    before = {p.name for p in (out / "checkpoints").iterdir()}
    real = fileio.shutil.disk_usage
    monkeypatch.setattr(fileio.shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    capsys.readouterr()
    assert cli(out, "resume=true") == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"diffucode train: error: no space left to write checkpoint {out / 'checkpoints' / 'step-00000002'}: "
                          "needs about ") and err.endswith("MiB, 1000 B free there")
    assert {p.name for p in (out / "checkpoints").iterdir()} == before


def test_enospc_inside_a_checkpoint_write_removes_it_and_names_the_path(tmp_path, monkeypatch):
    from diffucode.training import checkpoint

    out = tmp_path / "run"
    run(out, "stop_after=1")
    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        if str(f).endswith("optimizer.pt"):
            # what torch reports when the stream writer hits a full disk
            raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0") from OSError(
                errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(OutOfSpaceError, match=rf"no space left to write checkpoint {out / 'checkpoints' / 'step-00000002'}: needs about"):
        run(out, "resume=true")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000001"]
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    assert run(out, "resume=true").status == "finished"


def test_second_trainer_on_a_locked_output_dir_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    with RunDirLock(out, "diffucode train"):
        with pytest.raises(RunDirLockedError):
            run(out)
        assert cli(out) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"diffucode train: error: another diffucode train is running in {out} (pid {os.getpid()}); "
                       "wait for it to finish or use another output directory"]
        assert not (out / "checkpoints").exists() and not (out / "metrics.jsonl").exists()
    assert run(out, "max_steps=1").status == "finished"  # free again once the holder is done
    assert RunDirLock(out, "x").acquire().held  # and train released it on return
