"""Recipe smoke tests on a tiny model (CPU): every parameter trains, exact resume, atomic
checkpoints, NaN handling, LoRA merge, CLI, metrics and loss curve."""

import json
from pathlib import Path

import pytest
import torch

from diffucode.config import load_config
from diffucode.training.checkpoint import list_checkpoints
from diffucode.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs" / "train"
FAST = ["max_steps=3", "batch_size=4", "micro_batch_size=2", "max_seq_len=32", "save_every=0", "eval_every=0",
        "logging.plot=false", "optim.warmup_steps=1"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run(tmp_path, name, *overrides, config=None):
    from diffucode.recipes.train import train

    path = CONFIGS / (config or f"{name}_tiny.yaml")
    seq = ["max_seq_len=96"] if name.startswith("sft") else []  # room for the chat prompts
    cfg = load_config(TrainConfig, path, [f"output_dir={tmp_path / name}", *FAST, *seq, *overrides])
    return train(cfg, config_path=path)


def weights(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))


def initial_weights(**kw) -> dict[str, torch.Tensor]:
    from diffucode.models import build_tiny_model

    model, _ = build_tiny_model(**kw)
    return {k: v.detach().clone() for k, v in model.backbone.state_dict().items()}


@pytest.mark.parametrize("recipe,attention,shift,block_len,arch", [
    ("ar", "causal", True, None, "qwen2"),
    ("mdm", "bidirectional", True, None, "qwen2"),
    ("block", "block_causal", False, 4, "llama"),
    ("sft", "bidirectional", True, None, "qwen2"),
])
def test_three_steps_change_every_parameter(tmp_path, recipe, attention, shift, block_len, arch):
    from diffucode.models import load_model

    result = run(tmp_path, recipe)
    assert result.status == "finished" and result.step == 3
    assert result.last_loss is not None and torch.isfinite(torch.tensor(result.last_loss))
    before = initial_weights(attention=attention, shift=shift, block_len=block_len, arch=arch)
    after = weights(result.final_dir)
    assert set(after) == set(before)
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert not unchanged, unchanged
    model, tok = load_model(result.final_dir)  # saved with the recipe's attention / shift / block_len
    assert (model.attention, model.shift, model.block_len) == (attention, shift, block_len)
    rows = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]
    assert all(isinstance(r["loss"], float) for r in rows if "loss" in r)
    ckpts = list_checkpoints(result.output_dir)
    assert [s for s, _ in ckpts] == [3]
    files = {p.name for p in ckpts[0][1].iterdir()}
    assert {"model", "optimizer.pt", "scheduler.pt", "rng", "trainer_state.json"} <= files
    state = json.loads((ckpts[0][1] / "trainer_state.json").read_text())
    assert state["step"] == 3 and state["samples_seen"] == 12


@pytest.mark.parametrize("recipe,extra", [
    ("mdm", ["diffusion.anneal_steps=3", "diffusion.truncate_fraction=0.5", "diffusion.prefix_fraction=0.5"]),
    ("sft", ["lora.enabled=true", "lora.dropout=0.2", "sft.pad_mode=random_eos", "optim.lr=1e-2",
             "lora.merge_at_end=false"]),
])
def test_resume_matches_uninterrupted_run_exactly(tmp_path, recipe, extra):
    # LoRA dropout draws from the global RNG: the resumed run only matches if RNG state is restored
    steps = ["max_steps=5", "eval_every=2", "data.eval_fraction=0.2"]
    full = run(tmp_path / "full", recipe, *steps, *extra)
    part = run(tmp_path / "part", recipe, *steps, *extra, "stop_after=2")
    assert part.status == "stopped" and part.step == 2 and part.final_dir is None
    resumed = run(tmp_path / "part", recipe, *steps, *extra, "resume=true")
    assert resumed.status == "finished" and resumed.step == 5
    a = full.checkpoint / "model"
    b = resumed.checkpoint / "model"
    wa, wb = (weights(a), weights(b)) if (a / "model.safetensors").exists() else (
        _adapter(a), _adapter(b))
    assert set(wa) == set(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)
    log_a = (full.output_dir / "metrics.jsonl").read_text().splitlines()
    log_b = (resumed.output_dir / "metrics.jsonl").read_text().splitlines()
    strip = lambda lines: [{k: v for k, v in json.loads(x).items() if k != "step_time_s"} for x in lines]
    assert strip(log_a) == strip(log_b)  # same losses, lrs, grad norms, eval losses at every step


def _adapter(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(directory / "adapter_model.safetensors"))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    from diffucode.training import objectives

    original = objectives.MDMObjective.loss_sum
    calls = {"n": 0}

    def poisoned(self, model, prep):
        calls["n"] += 1
        loss = original(self, model, prep)
        return loss * float("nan") if calls["n"] > 4 else loss  # 2 micro-batches per step: step 3 is NaN

    monkeypatch.setattr(objectives.MDMObjective, "loss_sum", poisoned)
    result = run(tmp_path, "mdm", "max_steps=5", "save_every=2")
    assert result.status == "diverged" and result.final_dir is None
    assert [s for s, _ in list_checkpoints(result.output_dir)] == [2]
    assert result.checkpoint.name == "step-00000002"
    err = capsys.readouterr().err
    assert "the loss became nan at step 3" in err and "last good checkpoint" in err and "step-00000002" in err
    assert not (result.output_dir / "final").exists()


def test_crash_during_checkpoint_write_leaves_previous_intact(tmp_path, monkeypatch):
    from diffucode.training import checkpoint

    real_save = torch.save
    state = {"armed": False}

    def flaky_save(obj, f, *a, **k):
        if state["armed"] and str(f).endswith("scheduler.pt"):
            raise OSError("disk full (simulated)")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(checkpoint.torch, "save", flaky_save)
    first = run(tmp_path, "ar", "max_steps=2", "save_every=1", "stop_after=1")
    assert [s for s, _ in list_checkpoints(first.output_dir)] == [1]
    state["armed"] = True
    with pytest.raises(OSError, match="simulated"):
        run(tmp_path, "ar", "max_steps=2", "save_every=1", "resume=true")
    out = first.output_dir
    assert [s for s, _ in list_checkpoints(out)] == [1]  # the half-written step 2 is not listed
    assert not (out / "checkpoints" / ".step-00000002.tmp").exists()  # removed when the write failed
    (out / "checkpoints" / ".step-00000002.tmp" / "model").mkdir(parents=True)  # what a SIGKILL would leave
    state["armed"] = False
    done = run(tmp_path, "ar", "max_steps=2", "save_every=1", "resume=true")
    assert done.status == "finished" and [s for s, _ in list_checkpoints(out)] == [1, 2]
    assert not (out / "checkpoints" / ".step-00000002.tmp").exists()


def test_refuses_to_clobber_checkpoints_without_resume(tmp_path):
    from diffucode.config import ConfigError

    run(tmp_path, "ar", "max_steps=1")
    with pytest.raises(ConfigError, match="resume=true"):
        run(tmp_path, "ar", "max_steps=1")
    assert run(tmp_path, "ar", "max_steps=1", "overwrite=true").status == "finished"


def test_lora_merges_into_a_plain_checkpoint(tmp_path):
    from diffucode.models import load_model

    result = run(tmp_path, "sft_lora", "max_steps=2", "optim.lr=5e-2", config="sft_lora_tiny.yaml")
    assert result.status == "finished"
    after = weights(result.final_dir)
    assert not any("lora" in k for k in after)
    before = initial_weights()
    assert set(after) == set(before)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("q_proj.weight" in k for k in changed)  # adapters merged into the targets
    assert not any("embed_tokens" in k or "norm" in k for k in changed)  # everything else frozen
    model, _ = load_model(result.final_dir)
    assert model.attention == "bidirectional"


def test_cli_writes_metrics_and_loss_curve(tmp_path, capsys):
    from diffucode.recipes.train import main

    out = tmp_path / "cli"
    code = main(["--config", str(CONFIGS / "block_tiny.yaml"), f"output_dir={out}", *FAST[:-2], "logging.plot=true",
                 "diffusion.mask_warmup_steps=2"])
    assert code == 0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and all("loss" in r for r in rows)
    assert [r["mask_warmup"] for r in rows] == [1.0, 1.0, 0.0]
    assert (out / "loss_curve.png").stat().st_size > 1000
    assert (out / "config.yaml").is_file()
    assert main(["--config", str(CONFIGS / "block_tiny.yaml"), "optim.lrr=1"]) == 2
    assert "unknown key 'optim.lrr'" in capsys.readouterr().err


def test_malformed_training_data_is_reported_with_file_and_line(tmp_path, capsys):
    from diffucode.recipes.train import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "def f(): pass"}\n{oops\n')
    code = main(["--config", str(CONFIGS / "ar_tiny.yaml"), f"output_dir={tmp_path / 'o'}", f"data.train=[{bad}]",
                 *FAST])
    assert code == 2
    assert f"{bad}:2: malformed JSON" in capsys.readouterr().err


def test_curriculum_chain_ar_block_sft_and_mdm(tmp_path):
    """The shipped chain configs run end to end: AR -> block (B=4) -> block 16 / SFT, and AR -> MDM."""
    from diffucode.models import load_model

    ar = run(tmp_path, "ar", "max_steps=2")
    block = run(tmp_path, "block_from_ar", "max_steps=2", f"model.init_from={ar.final_dir}",
                config="block_from_ar_tiny.yaml")
    m, _ = load_model(block.final_dir)
    assert (m.attention, m.shift, m.block_len) == ("block_causal", False, 4)
    big = run(tmp_path, "block16", "max_steps=2", f"model.init_from={block.final_dir}",
              config="block16_from_block_tiny.yaml")
    assert load_model(big.final_dir)[0].block_len == 16
    sft = run(tmp_path, "sft_from_block", "max_steps=2", f"model.init_from={block.final_dir}",
              config="sft_from_block_tiny.yaml")
    m, _ = load_model(sft.final_dir)
    assert (m.attention, m.block_len) == ("block_causal", 4)  # SFT keeps the block model
    mdm = run(tmp_path, "mdm_from_ar", "max_steps=2", "diffusion.anneal_steps=2", f"model.init_from={ar.final_dir}",
              config="mdm_from_ar_tiny.yaml")
    m, _ = load_model(mdm.final_dir)
    assert (m.attention, m.shift) == ("bidirectional", True)
    rows = [json.loads(x) for x in (mdm.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["anneal_p"] for r in rows] == [0.0, 0.5]
