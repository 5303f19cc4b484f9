"""`diffucode train`: AR, masked diffusion (DiffuCoder), block diffusion (Stable-DiffCoder) and SFT.

    diffucode train --config configs/train/mdm_tiny.yaml                       # ~20 s on a CPU
    diffucode train --config configs/train/block_tiny.yaml max_steps=5 output_dir=runs/try
    accelerate launch --config_file configs/accelerate/ddp.yaml -m diffucode.cli train --config ...

One loop for all four recipes; the recipe only picks the objective (``training/objectives.py``)
and the attention the model is trained and saved with:

| recipe | objective | attention (saved) | shift | from the papers |
|---|---|---|---|---|
| ar    | next-token CE                         | causal        | checkpoint's | the AR stage of the curriculum |
| mdm   | 1/t-weighted masked diffusion          | bidirectional | true  | DiffuCoder adaptation (+ annealing, truncation, clean prefix) |
| block | x_t ++ x0 block diffusion, B = 4       | block_causal  | false | Stable-DiffCoder (block-truncated schedule, mask-rate warm-up) |
| sft   | mdm / block / ar on the response only  | checkpoint's  | checkpoint's | DiffuCoder / Stable-DiffCoder instruction tuning |

The curriculum AR -> block diffusion (B=4) -> larger blocks / bidirectional is a chain of runs:
each stage sets ``model.init_from`` to the previous stage's ``output_dir/final``
(see ``configs/train/*_from_*.yaml``).

Outputs in ``output_dir``: ``config.yaml`` (resolved), ``metrics.jsonl`` (one line per logged
step: step, loss, lr, grad_norm, mask_rate, ...), ``checkpoints/step-XXXXXXXX/`` (model +
optimiser + scheduler + RNG + data position, atomic), ``final/`` (a plain save_pretrained
model; LoRA merged) and ``loss_curve.png``.

Departures from the papers: losses are normalised by the number of supervisable tokens of the
global batch (see ``diffusion/losses.py``); the annealed attention pattern is a random one per
step (``diffusion/block.py``); evaluation uses the final objective (no warm-up or annealing).
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from diffucode.config import ConfigError, config_command, config_to_dict, save_config
from diffucode.training.config import TrainConfig


@dataclass
class TrainResult:
    status: str  # "finished" | "stopped" (stop_after) | "diverged" (nan/inf loss)
    step: int  # optimiser steps completed
    last_loss: float | None
    output_dir: Path
    final_dir: Path | None  # output_dir/final when finished
    checkpoint: Path | None  # newest checkpoint on disk


class TrainingDiverged(RuntimeError):
    pass


def _log(accelerator, msg: str) -> None:
    if accelerator is None or accelerator.is_main_process:
        print(f"diffucode train: {msg}", file=sys.stderr, flush=True)


def _build_model(cfg: TrainConfig):
    """The model to train, with the recipe's attention / shift / block length, and its tokenizer."""
    from diffucode.models import build_tiny_model, load_model, load_tokenizer

    tok_override = load_tokenizer(cfg.tokenizer_path) if cfg.tokenizer_path else None
    if cfg.model.init_from:
        model, tok = load_model(cfg.model.init_from, dtype=cfg.model.dtype)  # a directory or a bundled name
        ckpt_attention, ckpt_shift = model.attention, model.shift
    else:
        ckpt_attention, ckpt_shift = "bidirectional", True
        model = tok = None
    attention = cfg.resolved_attention(ckpt_attention)
    shift = cfg.resolved_shift(ckpt_shift)
    block_len = cfg.model.block_len or (model.block_len if model is not None else None)
    if attention == "block_causal" and not block_len:
        block_len = 4  # Stable-DiffCoder's choice
    if model is None:
        t = cfg.model.tiny
        model, tok = build_tiny_model(
            attention=attention, shift=shift, block_len=block_len, arch=t.arch, hidden_size=t.hidden_size,
            num_layers=t.num_layers, num_heads=t.num_heads, num_kv_heads=t.num_kv_heads,
            max_seq_len=max(1024, 2 * cfg.max_seq_len), tokenizer=tok_override, seed=t.seed,
        )
        if cfg.model.dtype != "float32":
            import torch

            model.to(getattr(torch, cfg.model.dtype))
    else:
        model.set_attention(attention, block_len=block_len, shift=shift)
        if tok_override is not None:
            vocab = model.backbone.get_input_embeddings().num_embeddings
            if len(tok_override) > vocab:
                raise ConfigError(f"tokenizer_path: {len(tok_override)} tokens do not fit the model's {vocab} embeddings")
            tok = tok_override
    need = 2 * cfg.max_seq_len if cfg.recipe == "block" or attention == "block_causal" else cfg.max_seq_len
    if need > model.max_seq_len:
        raise ConfigError(f"max_seq_len={cfg.max_seq_len} needs {need} positions; the model has {model.max_seq_len}")
    return model, tok


def _apply_lora(cfg: TrainConfig, model):
    """Wrap the backbone's layers with LoRA adapters in place; returns the peft model (or None)."""
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig, get_peft_model

    lcfg = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                      target_modules=list(cfg.lora.target_modules), modules_to_save=list(cfg.lora.modules_to_save) or None)
    # get_peft_model injects the adapters into model.backbone's modules in place and freezes the
    # base weights; DiffusionLM keeps calling the same backbone object.
    with warnings.catch_warnings():  # peft calls a transformers API that warns about its own rename
        warnings.simplefilter("ignore", FutureWarning)
        return get_peft_model(model.backbone, lcfg)


def _objective_name(cfg: TrainConfig, model) -> str:
    if cfg.recipe != "sft":
        return cfg.recipe
    if cfg.diffusion.sft_objective != "auto":
        return cfg.diffusion.sft_objective
    return "block" if model.attention == "block_causal" else "mdm"


def _build_data(cfg: TrainConfig, tok, model, base_dir, objective: str):
    """(train source, eval source or None) for the recipe; SFT data for recipe sft, packed text otherwise."""
    from diffucode.data.packing import PackedRows, pack_texts
    from diffucode.data.sft import load_sft_examples
    from diffucode.data.text_datasets import iter_texts
    from diffucode.training.batches import PackedSource, SFTSource

    d = cfg.data
    if cfg.recipe == "sft":
        def load(sources):
            examples, dropped = load_sft_examples(sources, tok, cfg.max_seq_len, cfg.sft.chat_template, d.hf_split, base_dir)
            return examples, dropped

        train_ex, dropped = load(d.train)
        eval_ex = load(d.eval)[0] if d.eval else []
        if not d.eval and d.eval_fraction > 0:
            n_eval = max(1, math.ceil(len(train_ex) * d.eval_fraction))
            train_ex, eval_ex = train_ex[:-n_eval], train_ex[-n_eval:]
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        fill = tok.eos_token_id if cfg.sft.fill_token == "eos" else pad

        def source(examples):
            return SFTSource(examples, cfg.max_seq_len, tok.eos_token_id, pad, cfg.sft.pad_mode, fill, cfg.sft.max_eos,
                             cfg.seed, model.block_len if objective == "block" else 1)

        info = f"{len(train_ex)} SFT examples ({dropped} dropped: prompt too long)"
        if not train_ex:
            raise ConfigError(f"data.train: no usable SFT examples ({dropped} dropped because the prompt leaves no room "
                              f"in max_seq_len={cfg.max_seq_len})")
        return source(train_ex), (source(eval_ex) if eval_ex else None), info

    train_rows = pack_texts(iter_texts(d.train, d.text_field, d.hf_split, base_dir), tok, cfg.max_seq_len, d.add_bos)
    eval_rows = pack_texts(iter_texts(d.eval, d.text_field, d.hf_split, base_dir), tok, cfg.max_seq_len, d.add_bos) if d.eval else None
    if eval_rows is None and d.eval_fraction > 0 and len(train_rows) > 1:
        n_eval = max(1, math.ceil(len(train_rows) * d.eval_fraction))
        ids, am = train_rows.input_ids, train_rows.attention_mask
        eval_rows = PackedRows(ids[-n_eval:], am[-n_eval:], 0, int(am[-n_eval:].sum()))
        train_rows = PackedRows(ids[:-n_eval], am[:-n_eval], train_rows.num_documents, int(am[:-n_eval].sum()))
    if len(train_rows) == 0:
        raise ConfigError(f"data.train: no training rows after tokenising and packing {d.train}")
    info = f"{len(train_rows)} packed rows of {cfg.max_seq_len} tokens ({train_rows.num_tokens} tokens, {train_rows.num_documents} documents)"
    return PackedSource(train_rows), (PackedSource(eval_rows) if eval_rows is not None and len(eval_rows) else None), info


def train(cfg: TrainConfig, config_path: str | Path | None = None) -> TrainResult:
    """Run one training recipe to the end (or to ``stop_after``); see the module docstring."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import set_seed

    t_start = time.time()
    cpu = not torch.cuda.is_available()
    world = PartialState(cpu=cpu).num_processes
    per_process = cfg.batch_size // world
    if cfg.batch_size % world or per_process % cfg.micro_batch_size:
        raise ConfigError(f"batch_size={cfg.batch_size} must be a multiple of micro_batch_size={cfg.micro_batch_size} "
                          f"x {world} processes")
    accum = per_process // cfg.micro_batch_size
    from diffucode.training.optim import make_accelerator

    accelerator = make_accelerator(cpu, cfg.mixed_precision, gradient_accumulation_steps=accum)
    # python / numpy / torch RNGs (LoRA init, dropout); the training noise has its own seeded streams
    set_seed(cfg.seed)
    from diffucode.training.checkpoint import lock_output_dir

    # one trainer per output_dir: a second one fails here, before it touches any file
    lock = lock_output_dir(cfg.output_dir, accelerator, "diffucode train")
    try:
        return _train_locked(cfg, config_path, accelerator, world, accum, t_start)
    finally:
        if lock is not None:
            lock.release()


def _train_locked(cfg: TrainConfig, config_path, accelerator, world: int, accum: int, t_start: float) -> TrainResult:
    import torch
    from tqdm.auto import tqdm

    from diffucode.training.batches import BatchPlan
    from diffucode.training.checkpoint import CheckpointManager, latest_checkpoint, prepare_output_dir
    from diffucode.training.logging import METRICS_FILE, MetricsLogger, plot_loss_curve
    from diffucode.training.objectives import build_objective
    from diffucode.training.optim import build_optimizer, build_scheduler

    out = Path(cfg.output_dir)
    resume_from = prepare_output_dir(cfg.output_dir, cfg.resume, cfg.overwrite, accelerator,
                                     lambda msg: _log(accelerator, msg))
    # -- model, tokenizer, objective, data ---------------------------------------------------
    model, tok = _build_model(cfg)
    peft_model = _apply_lora(cfg, model)
    if cfg.model.gradient_checkpointing:
        model.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    objective_name = _objective_name(cfg, model)
    objective = build_objective(objective_name, cfg.diffusion, cfg.seed, model)
    base_dir = Path(config_path).resolve().parent if config_path else None
    train_src, eval_src, data_info = _build_data(cfg, tok, model, base_dir, objective_name)
    if accelerator.is_main_process:  # only once model and data loaded: a failed start writes nothing
        save_config(cfg, out / "config.yaml")
    plan = BatchPlan(len(train_src), cfg.batch_size, cfg.micro_batch_size, world, accelerator.process_index,
                     cfg.seed, cfg.data.shuffle)

    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.max_steps)  # stepped by us, not by accelerate
    model, optimizer = accelerator.prepare(model, optimizer)
    core = accelerator.unwrap_model(model)
    ckpt = CheckpointManager(out, accelerator, cfg.keep_last)

    start_step = 0
    if resume_from is not None:
        state = ckpt.load(resume_from, model=model, optimizer=optimizer, scheduler=scheduler, peft_model=peft_model)
        if state.get("global_batch") != cfg.batch_size or state.get("seed") != cfg.seed:
            raise ConfigError(f"{resume_from}: saved with batch_size={state.get('global_batch')}, seed={state.get('seed')}; "
                              f"resuming with batch_size={cfg.batch_size}, seed={cfg.seed} would change the data order")
        start_step = int(state["step"])
        _log(accelerator, f"resumed from {resume_from} at step {start_step}")
    metrics = MetricsLogger(out, cfg.logging, accelerator.is_main_process,
                            resume_step=start_step if resume_from is not None else None, config_dict=config_to_dict(cfg))
    n_params = sum(p.numel() for p in core.parameters())
    n_train = sum(p.numel() for p in core.parameters() if p.requires_grad)
    _log(accelerator, f"recipe {cfg.recipe} (objective {objective_name}, attention {core.attention}, shift {core.shift}, "
                      f"block_len {core.block_len}); {n_params:,} parameters ({n_train:,} trainable); {data_info}; "
                      f"{world} process(es) x {accum} accumulation x {cfg.micro_batch_size} = batch {cfg.batch_size}; "
                      f"mixed precision {accelerator.mixed_precision}")

    def trainer_state(step: int, loss: float | None) -> dict:
        return {"step": step, "samples_seen": step * cfg.batch_size, "epoch": plan.epoch(step), "global_batch": cfg.batch_size,
                "seed": cfg.seed, "recipe": cfg.recipe, "objective": objective_name, "loss": loss}

    def save(step: int, loss: float | None) -> Path:
        return ckpt.save(step, model=model, tokenizer=tok, optimizer=optimizer, scheduler=scheduler,
                         trainer_state=trainer_state(step, loss), peft_model=peft_model)

    def evaluate() -> float | None:
        if eval_src is None:
            return None
        model.eval()
        n_rows = len(eval_src)
        total = torch.zeros(2, device=accelerator.device)  # [loss sum, count]
        # the same number of forwards on every process (DDP/FSDP forwards are collective); rows
        # wrap around when the eval set does not divide evenly, so it is a fixed multiset
        n_batches = min(cfg.eval_batches, math.ceil(n_rows / (cfg.micro_batch_size * world)))
        with torch.no_grad():
            for i in range(n_batches):
                start = (i * world + accelerator.process_index) * cfg.micro_batch_size
                rows = [r % n_rows for r in range(start, start + cfg.micro_batch_size)]
                batch = eval_src.collate(rows, [-1 - r for r in rows], accelerator.device)  # negative ids: fixed eval noise
                prep = objective.prepare(batch, None)
                total[0] += objective.loss_sum(model, prep).float()
                total[1] += prep.count
        model.train()
        total = accelerator.reduce(total, "sum")
        return (total[0] / total[1].clamp(min=1)).item()

    # -- the loop -------------------------------------------------------------------------------
    bar = tqdm(total=cfg.max_steps, initial=start_step, desc=f"train {cfg.recipe}", dynamic_ncols=True,
               disable=not (accelerator.is_main_process and cfg.logging.progress_bar))
    last_loss: float | None = None
    last_saved = start_step if resume_from is not None else None
    status = "finished"
    end_step = min(cfg.max_steps, cfg.stop_after or cfg.max_steps)
    step = start_step
    t_prev = time.time()
    try:
        for step in range(start_step, end_step):
            # 1. this process's micro-batches, corrupted (noise depends on sample ids and step only)
            preps = []
            for i in range(plan.accum):
                positions = plan.micro_positions(step, i)
                batch = train_src.collate([plan.row(p) for p in positions], positions, accelerator.device)
                preps.append(objective.prepare(batch, step))
            # 2. the loss denominator of the whole global batch, known before any backward
            local = torch.tensor([sum(float(p.count) for p in preps),
                                  sum(p.stats.get("masked_tokens", 0.0) for p in preps),
                                  sum(p.stats.get("supervisable_tokens", 0.0) for p in preps)],
                                 dtype=torch.float64, device=accelerator.device)
            count, masked_total, supervisable = accelerator.reduce(local, "sum").tolist()
            scale = world * accum / max(count, 1.0)  # DDP averages over processes; accelerate divides by accum
            # 3. forward / backward per micro-batch; gradients sync on the last one
            loss_sum = torch.zeros((), device=accelerator.device)
            for prep in preps:
                with accelerator.accumulate(model):
                    part = objective.loss_sum(model, prep)
                    accelerator.backward(part * scale)
                    loss_sum += part.detach()
            loss = accelerator.reduce(loss_sum, "sum").item() / max(count, 1.0)
            if not math.isfinite(loss):
                raise TrainingDiverged(f"the loss became {loss} at step {step + 1}")
            max_norm = cfg.optim.max_grad_norm if cfg.optim.max_grad_norm > 0 else float("inf")
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), max_norm)  # None under DeepSpeed (it clips itself)
            grad_norm = float(grad_norm) if grad_norm is not None else None
            diverged = grad_norm is not None and not math.isfinite(grad_norm)
            if diverged and accelerator.mixed_precision != "fp16":  # fp16's loss scaler skips such steps itself
                raise TrainingDiverged(f"the gradient norm became {grad_norm} at step {step + 1} (loss {loss:.4f})")
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            last_loss = loss
            done = step + 1

            # 4. log, evaluate, checkpoint
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            eval_due = (cfg.eval_every and done % cfg.eval_every == 0) or done == cfg.max_steps  # and at the end
            eval_loss = evaluate() if eval_due else None
            if done % cfg.logging.log_every == 0 or eval_loss is not None or done == end_step:
                now = time.time()
                s0 = preps[0].stats
                record = {"loss": loss, "lr": lr, "grad_norm": grad_norm, "epoch": plan.epoch(done),
                          "tokens": supervisable, "step_time_s": now - t_prev}
                if objective_name != "ar":
                    record["masked_tokens"] = masked_total
                    record["mask_rate"] = masked_total / max(supervisable, 1.0)
                    for key in ("anneal_p", "mask_cap", "mask_warmup"):
                        if key in s0:
                            record[key] = s0[key]
                if eval_loss is not None:
                    record["eval_loss"] = eval_loss
                metrics.log(done, record)
            t_prev = time.time()
            if cfg.save_every and done % cfg.save_every == 0:
                save(done, loss)
                last_saved = done
        step = end_step
    except TrainingDiverged as e:
        good = latest_checkpoint(out)
        where = f"the last good checkpoint is {good} (continue with resume=true, perhaps with a lower optim.lr)" if good \
            else "no checkpoint was written before it (lower optim.lr or set save_every)"
        _log(accelerator, f"{e}. Stopping without saving; {where}.")
        bar.close()
        metrics.close()
        return TrainResult("diverged", step, last_loss, out, None, good)
    bar.close()

    # -- the end: checkpoint, final model, loss curve ------------------------------------------
    if last_saved != end_step:
        save(end_step, last_loss)
    final_dir = None
    if end_step < cfg.max_steps:
        status = "stopped"
        _log(accelerator, f"stopped after step {end_step} of {cfg.max_steps} (stop_after); continue with resume=true")
    else:
        final_dir = ckpt.save_final(out / "final", model=model, tokenizer=tok, peft_model=peft_model,
                                    merge_lora=cfg.lora.merge_at_end)
    metrics.close()
    if accelerator.is_main_process and cfg.logging.plot:
        plot_loss_curve(out / METRICS_FILE, out / "loss_curve.png", title=f"{cfg.recipe}: {out.name}")
    _log(accelerator, f"{status} at step {end_step} (loss {last_loss if last_loss is None else round(last_loss, 4)}) "
                      f"in {time.time() - t_start:.1f}s; outputs in {out}")
    return TrainResult(status, end_step, last_loss, out, final_dir, latest_checkpoint(out))


def main(argv: list[str]) -> int:
    parsed = config_command(
        argv, TrainConfig,
        prog="diffucode train",
        description="Train a diffusion LM for code: recipes ar, mdm (DiffuCoder-style adaptation), block "
                    "(Stable-DiffCoder-style block diffusion) and sft, on accelerate (DDP / FSDP / DeepSpeed).",
        examples=[
            "diffucode train --config configs/train/mdm_tiny.yaml",
            "diffucode train --config configs/train/block_tiny.yaml max_steps=5 output_dir=runs/try",
            "diffucode train --config configs/train/ar_tiny.yaml resume=true",
            "accelerate launch --config_file configs/accelerate/ddp.yaml -m diffucode.cli train --config ...",
        ],
        config_example="configs/train/mdm_tiny.yaml",
        overrides_example="optim.lr=1e-4 max_steps=10",
    )
    if isinstance(parsed, int):
        return parsed
    cfg, args = parsed
    from diffucode.recipes.run_errors import run_config_recipe

    return run_config_recipe("train", lambda: train(cfg, config_path=args.config), cfg, data_errors=_data_errors)


def _data_errors() -> tuple[type, ...]:
    from diffucode.data.text_datasets import DataError

    return (DataError,)
