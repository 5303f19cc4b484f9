"""`diffucode eval`: generate completions for a code benchmark and score them in the sandbox.

    diffucode eval --benchmark humaneval --tiny --limit 3 --max-new-tokens 32 --output /tmp/he   # smoke test
    diffucode eval --benchmark humaneval --model runs/sft --n-samples 10 --k 1,10 --temperature 0.2
    diffucode eval --benchmark mbpp_plus --data-file MbppPlus-v0.2.0.jsonl.gz --model M --chat
    diffucode eval --benchmark humaneval --execution-only --samples samples.jsonl      # score any EvalPlus file
    diffucode eval --config configs/eval/humaneval_base.yaml decoding.steps=128

One eval at a time per output directory: a second ``diffucode eval`` on the same OUTPUT stops at
once with "another diffucode eval is running in OUTPUT (pid N)" (an exclusive lock on
OUTPUT/.diffucode.lock, dropped by the kernel when the holder exits, even by SIGKILL); rerun it
afterwards and it resumes, redoing nothing. Two halves, each resumable: generation appends to OUTPUT/samples.jsonl batch by batch (rows
already there are not decoded again), execution appends to OUTPUT/executions.jsonl (samples
already scored are not run again). --generation-only / --execution-only run one half. The
end writes OUTPUT/results.json (pass@k, per-task outcomes, decoding config, model, timings,
sandbox) and prints a one-screen summary. Reading order: build config -> load tasks ->
generate -> execute -> summarise.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from diffucode.config import ConfigError, config_to_dict, load_config, save_config
from diffucode.recipes.model_flags import add_model_override_flags, model_overrides
from diffucode.errors import check_output_dir

BENCHMARK_NAMES = ("humaneval", "mbpp", "humaneval_plus", "mbpp_plus", "synthetic",
                   "humaneval_infill_single", "humaneval_infill_multi", "humaneval_infill_span")
ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy", "low_confidence", "random")
MAX_N_SAMPLES = 10_000  # per task; papers report pass@k with n <= 1000
MAX_BATCH_SIZE = 4096
MAX_WORKERS = 1024
MAX_TIMEOUT = 86400.0  # the sandbox's own bound (execution.runner.MAX_TIMEOUT)
UNTRAINED_WARNING = "warning: UNTRAINED tiny model: its completions are random (pass --model PATH for a trained one)"


@dataclass
class Decoding:
    """The decoding flags passed into diffucode.sampling.GenerationConfig."""

    max_new_tokens: int = field(default=256, metadata={"help": "completion length in tokens (masks appended to the prompt)"})
    steps: int | None = field(default=None, metadata={"help": "denoising steps (None: max_new_tokens, one token per step)"})
    alg: Literal["origin", "maskgit_plus", "topk_margin", "entropy", "low_confidence", "random"] = field(
        default="entropy", metadata={"help": "unmasking algorithm"})
    alg_temp: float = field(default=0.0, metadata={"help": "randomise the reveal order (Dream's alg_temp)"})
    temperature: float = field(default=0.0, metadata={"help": "token sampling temperature (0: greedy)"})
    top_p: float | None = field(default=None, metadata={"help": "nucleus sampling mass"})
    top_k: int | None = field(default=None, metadata={"help": "keep the k most likely tokens"})
    block_len: int | None = field(default=None, metadata={"help": "semi-autoregressive block length (block-causal: "
                                                                  "a multiple of the model's decodes in larger blocks)"})
    sub_block_len: int | None = field(default=None, metadata={"help": "decode each block in sub-blocks of this many "
                                                                      "tokens, left to right (Fast-dLLM v2)"})
    refresh_every: int = field(default=1, metadata={"help": "dual cache: full-canvas refresh every K blocks"})
    threshold: float | None = field(default=None, metadata={"help": "parallel decoding confidence threshold (Fast-dLLM)"})
    threshold_floor: Literal["schedule", "one"] = field(
        default="schedule", metadata={"help": "with threshold: a step reveals at least the steps schedule's count "
                                              "(schedule) or one token (one: Fast-dLLM's exact rule)"})
    lookahead: int = field(default=0, metadata={"help": "with threshold: blocks decoded ahead of the current one"})
    cache: Literal["none", "prefix", "dual"] = field(default="none", metadata={"help": "KV cache for bidirectional models"})
    seed: int | None = field(default=0, metadata={"help": "seed; batch b decodes with seed + b (None: unseeded)"})

    def generation_config(self):
        from diffucode.sampling import GenerationConfig

        return GenerationConfig(**dataclasses.asdict(self))


@dataclass
class EvalConfig:
    benchmark: Literal["humaneval", "mbpp", "humaneval_plus", "mbpp_plus", "synthetic", "humaneval_infill_single",
                       "humaneval_infill_multi", "humaneval_infill_span"] = field(
        default="humaneval", metadata={"help": "benchmark to evaluate"})
    infill_length: Literal["budget", "true"] = field(
        default="budget", metadata={"help": "infilling benchmarks: the hole gets max_new_tokens masks (budget; the fill "
                                            "ends at the model's first end token) or the true hole's token count "
                                            "(true: an oracle)"})
    prefix_only: bool = field(default=False, metadata={
        "help": "infilling benchmarks: decode from the prefix alone even on a bidirectional model (what the suffix buys)"})
    model: str | None = field(default=None, metadata={"help": "model directory (default: the bundled model)"})
    tiny: bool = field(default=False, metadata={"help": "use an UNTRAINED tiny model (smoke tests only)"})
    device: str | None = field(default=None, metadata={"help": "cpu / cuda (default: cuda if available)"})
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = field(default="auto", metadata={"help": "weights dtype"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the backbone (opt-in; see the README)"})
    attention: Literal["bidirectional", "block_causal", "causal"] | None = field(
        default=None, metadata={"help": "override the attention the checkpoint implies (default: detected)"})
    logits_shift: bool | None = field(default=None, metadata={"help": "override the logits shift (default: detected)"})
    model_block_len: int | None = field(
        default=None, metadata={"help": "override the block length of a block-causal model (default: from config)"})
    mask_token: str | None = field(default=None, metadata={"help": "override the mask token string (default: detected)"})
    data_file: str | None = field(default=None, metadata={"help": "local benchmark file (JSON/JSONL, .gz ok)"})
    split: str | None = field(default=None, metadata={"help": "MBPP: test|validation|train|prompt|all; synthetic: test|train"})
    limit: int | None = field(default=None, metadata={"help": "only the first N tasks"})
    task_ids: list[str] | None = field(default=None, metadata={"help": "only these task ids (comma-separated)"})
    n_samples: int = field(default=1, metadata={"help": "samples per task"})
    k: list[int] = field(default_factory=lambda: [1, 10, 100], metadata={"help": "pass@k values (reported when k <= n)"})
    output: str | None = field(default=None, metadata={"help": "output directory (default: runs/eval/<benchmark>)"})
    samples: str | None = field(default=None, metadata={"help": "with --execution-only: score this samples file"})
    generation_only: bool = field(default=False, metadata={"help": "generate samples.jsonl and stop"})
    execution_only: bool = field(default=False, metadata={"help": "score existing samples, no model needed"})
    overwrite: bool = field(default=False, metadata={"help": "discard this output directory's samples and results"})
    chat: bool = field(default=False, metadata={"help": "instruct model: chat template, answer from the code block"})
    response_prefix: str | None = field(
        default=None,
        metadata={"help": "chat: text that opens the assistant turn (default: EvalPlus's, which opens a ```python "
                          "fence; '' for models trained to write the fence themselves, like the bundled one)"},
    )
    batch_size: int = field(default=8, metadata={"help": "rows decoded together"})
    continuous_batching: bool = field(
        default=False, metadata={"help": "block-causal / causal models: a finished row leaves the batch and the next "
                                         "one joins at once (rows seeded by (seed, row) instead of per batch)"})
    timeout: float = field(default=10.0, metadata={"help": "seconds per program (HumanEval/MBPP; EvalPlus scales by reference time)"})
    workers: int | None = field(default=None, metadata={"help": "programs run in parallel (default: cores)"})
    isolation: Literal["auto", "require", "none"] = field(
        default="auto", metadata={"help": "sandbox: auto (bwrap; without it, refuse unless allow_unsandboxed) | "
                                          "require | none (limits only)"})
    allow_unsandboxed: bool = field(default=False, metadata={
        "help": "run generated code with resource limits only when bubblewrap is unusable (refused otherwise)"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})
    decoding: Decoding = field(default_factory=Decoding, metadata={"help": "decoding settings"})

    def __post_init__(self):
        if self.execution_only and self.generation_only:
            raise ConfigError("--execution-only and --generation-only exclude each other")
        if self.samples is not None and not self.execution_only:
            raise ConfigError("--samples is read only with --execution-only (generation writes OUTPUT/samples.jsonl)")
        # upper bounds too: --n-samples 1000000000 would build a billion-row plan and appear to hang
        if not 1 <= self.n_samples <= MAX_N_SAMPLES:
            raise ConfigError(f"--n-samples must be between 1 and {MAX_N_SAMPLES}, got {self.n_samples}")
        if not self.k or any(k < 1 for k in self.k):
            raise ConfigError(f"--k must be a comma-separated list of positive integers, got {self.k}")
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ConfigError(f"--batch-size must be between 1 and {MAX_BATCH_SIZE}, got {self.batch_size}")
        if not 0 < self.timeout <= MAX_TIMEOUT:  # also nan and inf
            raise ConfigError(f"--timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}], got {self.timeout}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {self.limit}")
        if self.workers is not None and not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigError(f"--workers must be between 1 and {MAX_WORKERS}, got {self.workers}")
        if self.tiny and self.model:
            raise ConfigError("--tiny and --model exclude each other")
        infill = self.benchmark.startswith("humaneval_infill_")
        if not infill and (self.infill_length != "budget" or self.prefix_only):
            raise ConfigError("--infill-length / --prefix-only apply only to the humaneval_infill_* benchmarks")
        if infill and self.chat:
            raise ConfigError("--chat: the infilling benchmarks use completion prompts (prefix and suffix), not chat")
        if infill and self.infill_length == "true" and self.decoding.block_len is not None:
            raise ConfigError("--block-len cannot be combined with --infill-length true (each hole has its own length, "
                              "which a fixed block length need not divide)")
        if not self.execution_only:
            self.decoding.generation_config()  # --temperature nan etc.: refused before anything is written


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="diffucode eval",
        description="Evaluate a diffusion code model on HumanEval / MBPP / HumanEval+ / MBPP+ / synthetic tasks "
                    "with pass@k; generated programs run in a bubblewrap sandbox.",
        epilog="Flags override --config; `key=value` arguments (e.g. decoding.steps=128) override both. "
               "Outputs: OUTPUT/samples.jsonl (EvalPlus format), executions.jsonl, results.json, config.yaml.",
    )
    S = argparse.SUPPRESS  # unset flags leave the config (file or defaults) alone
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. decoding.steps=128")
    p.add_argument("--config", type=Path, default=S, help="YAML config (configs/eval/*.yaml)")
    b = p.add_argument_group("benchmark")
    b.add_argument("--benchmark", type=lambda x: x.replace("-", "_"), choices=BENCHMARK_NAMES, default=S,
                   help="which benchmark (default humaneval; humaneval_infill_single | _multi | _span: HumanEval "
                        "infilling, see diffucode.evaluation.infilling; '-' may be written for '_')")
    b.add_argument("--infill-length", choices=["budget", "true"], default=S,
                   help="infilling: hole of --max-new-tokens masks, cut at the model's end token (budget, default) or "
                        "of the true hole's token count (true, an oracle)")
    b.add_argument("--prefix-only", action="store_true", default=S,
                   help="infilling: ignore the suffix even on a bidirectional model")
    b.add_argument("--data-file", default=S, help="local benchmark file (HumanEval: bundled; MBPP: mbpp.jsonl or "
                                                   "sanitized-mbpp.json; EvalPlus: HumanEvalPlus/MbppPlus .jsonl.gz)")
    b.add_argument("--split", default=S, help="MBPP split (default test) / synthetic split (default test)")
    b.add_argument("--limit", type=int, default=S, help="only the first N tasks")
    b.add_argument("--task-ids", type=lambda s: [x for x in s.split(",") if x], default=S, help="comma-separated ids")
    m = p.add_argument_group("model")
    m.add_argument("--model", default=S, help="model directory or a bundled model (nano, nano-mdm); default: nano")
    m.add_argument("--tiny", action="store_true", default=S, help="UNTRAINED tiny model (smoke tests)")
    m.add_argument("--device", default=S, help="cpu / cuda (default: cuda if available)")
    m.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"], default=S, help="weights dtype")
    m.add_argument("--compile", action="store_true", default=S,
                   help="torch.compile the backbone (dynamic shapes; the first batches pay the compilation)")
    m.add_argument("--chat", action="store_true", default=S, help="instruct model: chat template + code-block answer")
    add_model_override_flags(m, suppress=True)
    m.add_argument("--response-prefix", default=S, help="chat: text opening the assistant turn (default: EvalPlus's, "
                   "which opens a ```python fence; '' when the model writes the fence itself)")
    r = p.add_argument_group("run")
    r.add_argument("--n-samples", type=int, default=S, help="samples per task (default 1)")
    r.add_argument("--k", type=_int_list, default=S, help="pass@k values, e.g. 1,10 (default 1,10,100; k > n skipped)")
    r.add_argument("--output", default=S, help="output directory (default runs/eval/<benchmark>)")
    r.add_argument("--samples", default=S, help="samples file to score (with --execution-only)")
    r.add_argument("--generation-only", action="store_true", default=S, help="only generate samples.jsonl")
    r.add_argument("--execution-only", action="store_true", default=S, help="only score samples (no model)")
    r.add_argument("--overwrite", action="store_true", default=S, help="start this output directory afresh")
    r.add_argument("--timeout", type=float, default=S, help="seconds per program (default 10)")
    r.add_argument("--workers", type=int, default=S, help="programs in parallel (default: cores)")
    r.add_argument("--require-sandbox", dest="isolation", action="store_const", const="require", default=S,
                   help="refuse to run programs without the bubblewrap sandbox")
    r.add_argument("--no-sandbox", dest="isolation", action="store_const", const="none", default=S,
                   help="resource limits only (no bubblewrap); for machines without namespaces")
    r.add_argument("--allow-unsandboxed", action="store_true", default=S,
                   help="if bubblewrap is unusable, run programs with resource limits only instead of refusing "
                        "(apt-get install bubblewrap gives the sandbox)")
    r.add_argument("--no-progress", dest="progress", action="store_false", default=S, help="no progress bars")
    d = p.add_argument_group("decoding (GenerationConfig)")
    d.add_argument("--max-new-tokens", type=int, default=S,
                   help="completion length (default 256; 256 fits HumanEval/MBPP solutions and is what published diffusion-LM pass@k figures use, while `diffucode generate` defaults to the model's own recommended length (64 for the bundled nano models))")
    d.add_argument("--steps", type=int, default=S, help="denoising steps (default: max-new-tokens)")
    d.add_argument("--alg", choices=ALGS, default=S, help="unmasking algorithm (default entropy)")
    d.add_argument("--alg-temp", type=float, default=S, help="reveal-order temperature (default 0)")
    d.add_argument("--temperature", type=float, default=S, help="token temperature (default 0: greedy)")
    d.add_argument("--top-p", type=float, default=S, help="nucleus sampling mass")
    d.add_argument("--top-k", type=int, default=S, help="keep the k most likely tokens")
    d.add_argument("--threshold", type=float, default=S, help="parallel decoding threshold")
    d.add_argument("--lookahead", type=int, default=S,
                   help="with --threshold: also decode the next N blocks in the same forward passes")
    d.add_argument("--threshold-floor", choices=["schedule", "one"], default=S,
                   help="with --threshold, the least a step reveals: the --steps schedule's count (default) or one token")
    d.add_argument("--block-len", type=int, default=S, help="semi-autoregressive block length")
    d.add_argument("--cache", choices=["none", "prefix", "dual"], default=S, help="KV cache (bidirectional models)")
    d.add_argument("--sub-block-len", type=int, default=S,
                   help="decode each block in sub-blocks of this many tokens, left to right (Fast-dLLM v2)")
    d.add_argument("--refresh-every", type=int, default=S, metavar="K",
                   help="--cache dual: full-canvas refresh at every K-th block only (default 1)")
    d.add_argument("--batch-size", type=int, default=S, help="rows decoded together (default 8)")
    d.add_argument("--continuous-batching", action="store_true", default=S,
                   help="block-causal/causal models: finished rows leave the batch and queued rows join at once")
    d.add_argument("--seed", type=int, default=S, help="seed (default 0; batch b uses seed + b)")
    return p


_DECODING_FLAGS = {f.name for f in dataclasses.fields(Decoding)}


def resolve_config(args: argparse.Namespace) -> EvalConfig:
    flags = {k: v for k, v in vars(args).items() if k not in ("config", "overrides")}
    overrides = list(getattr(args, "overrides", []) or [])
    cfg = load_config(EvalConfig, getattr(args, "config", None), overrides)
    top = {k: v for k, v in flags.items() if k not in _DECODING_FLAGS}
    dec = {k: v for k, v in flags.items() if k in _DECODING_FLAGS}
    try:
        return dataclasses.replace(cfg, decoding=dataclasses.replace(cfg.decoding, **dec), **top)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from e


# ------------------------------------------------------------------------------------------


def _say(msg: str) -> None:
    print(f"diffucode eval: {msg}", file=sys.stderr, flush=True)


def _load_model(cfg: EvalConfig):
    from diffucode.errors import resolve_device

    device = resolve_device(cfg.device)
    import torch

    from diffucode.bundled import resolve_model_path
    from diffucode.models import build_tiny_model, default_model_path, load_model

    if device == "cpu":
        torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    if cfg.tiny:
        _say(UNTRAINED_WARNING)
        model, tok = build_tiny_model()
        return model.to(device).eval(), tok, "tiny-untrained"
    path = resolve_model_path(cfg.model) if cfg.model else default_model_path()
    if path is None:
        raise ConfigError("--model: no model given and no bundled model is installed (diffucode.models."
                          "default_model_path() is None); pass --model PATH, or --tiny for a smoke test")
    dtype = None if cfg.dtype == "auto" else cfg.dtype
    model, tok = load_model(path, dtype=dtype, device=device, **model_overrides(cfg))
    if cfg.compile:
        model.compile_backbone()
    return model.eval(), tok, str(cfg.model or path)


def _task_digest(tasks) -> str:
    h = hashlib.sha256()
    for t in tasks:
        h.update(t.task_id.encode() + b"\0" + t.prompt.encode() + b"\0")
    return h.hexdigest()[:16]


def _response_prefix(cfg: EvalConfig) -> str | None:
    from diffucode.evaluation.prompts import RESPONSE_PREFIX

    if not cfg.chat:
        return None
    return RESPONSE_PREFIX if cfg.response_prefix is None else cfg.response_prefix


def _generate(cfg: EvalConfig, tasks, out_dir: Path) -> dict:
    """Generation half: append new samples to samples.jsonl; returns the generation record."""
    from diffucode.evaluation.generation import check_room, iter_generate
    from diffucode.evaluation.prompts import RESPONSE_PREFIX, chat_message, solution_from_base, solution_from_chat
    from diffucode.evaluation.results import GEN_ERROR, JsonlAppender, read_jsonl, write_json

    gen_cfg = cfg.decoding.generation_config()  # validates the decoding flags before the model loads
    meta_path, samples_path = out_dir / "generation.json", out_dir / "samples.jsonl"
    if cfg.tiny:
        model_id = "tiny-untrained"
    else:
        from diffucode.models import default_model_path

        model_id = str(cfg.model or default_model_path() or "<none>")
    meta = {
        "benchmark": cfg.benchmark, "model": model_id, "chat": cfg.chat,
        "response_prefix": _response_prefix(cfg), "n_samples": cfg.n_samples,
        "batch_size": cfg.batch_size, "generation_config": _jsonable(dataclasses.asdict(gen_cfg)),
        **({"continuous_batching": True} if cfg.continuous_batching else {}),
        "tasks": len(tasks), "task_digest": _task_digest(tasks),
    }
    infill = cfg.benchmark.startswith("humaneval_infill_")
    if infill:
        meta.update(infill_length=cfg.infill_length, prefix_only=cfg.prefix_only)
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        changed = [k for k in meta if old.get(k) != meta[k]]
        if changed:
            raise ConfigError(f"{out_dir}: its samples were generated with different settings ({', '.join(changed)}); "
                              "use --overwrite to start afresh or another --output")
    done = {(r["task_id"], r.get("sample_idx")) for r in read_jsonl(samples_path) if "solution" in r}
    todo = sum(1 for t in tasks for j in range(cfg.n_samples) if (t.task_id, j) not in done)
    if todo == 0:
        _say(f"all {len(tasks) * cfg.n_samples} samples already in {samples_path}")
        return json.loads(meta_path.read_text()) if meta_path.is_file() else meta
    if done:
        _say(f"resuming: {len(tasks) * cfg.n_samples - todo} samples already in {samples_path}, {todo} to go")
    if cfg.decoding.temperature == 0 and cfg.n_samples > 1:
        _say("note: --temperature 0 with --n-samples > 1 decodes identical samples (pass@k for k > 1 is then pass@1)")
    model, tok, _ = _load_model(cfg)
    check_room(model, gen_cfg)  # before anything is written
    write_json(meta_path, meta)
    prompts = [chat_message(t.prompt) if cfg.chat else t.prompt for t in tasks]

    def skip(rows):
        return all((tasks[i].task_id, j) in done for i, j in rows)

    if infill:
        from diffucode.evaluation.infilling import infill_mode, iter_infill

        meta["infill_mode"] = infill_mode(model, cfg.prefix_only)  # suffix | prefix_only: what the model saw
        meta["model_attention"] = model.attention  # bidirectional | block_causal | causal (autoregressive)
        write_json(meta_path, meta)
        why = {"causal": " (autoregressive model: the prefix alone)",
               "block_causal": " (block-causal model: the prefix alone)"}.get(model.attention, "")
        _say(f"infilling: {meta['infill_mode']}{why}, hole length {cfg.infill_length}")
        batches = iter_infill(model, tok, tasks, gen_cfg, cfg.n_samples, cfg.batch_size, length_mode=cfg.infill_length,
                              prefix_only=cfg.prefix_only, skip=skip, progress=cfg.progress)
    else:
        batches = iter_generate(model, tok, prompts, gen_cfg, cfg.n_samples, cfg.batch_size, chat=cfg.chat,
                                response_prefix=_response_prefix(cfg) or "", skip=skip, progress=cfg.progress,
                                continuous=cfg.continuous_batching)
    n_failed = 0
    with JsonlAppender(samples_path) as out:
        for batch in batches:
            # a prompt that cannot be decoded is a failed sample (scored as a failure, with its reason),
            # written like any other so a resume does not try it again
            recs = [{"task_id": tasks[i].task_id, "solution": "", "sample_idx": j, "completion": "", "raw": "",
                     "gen_s": 0.0, "nfe": 0, GEN_ERROR: why} for (i, j), why in sorted(batch.failed.items())]
            if recs and n_failed == 0:
                _say(f"{recs[0]['task_id']}: {recs[0][GEN_ERROR]}; recorded as a failed sample, going on")
            n_failed += len(recs)
            for k, ((i, j), text) in enumerate(zip(batch.rows, batch.texts)):
                t = tasks[i]
                if infill:  # the fill goes between the prefix and the suffix, as the model produced it
                    completion, solution = text, t.prompt + text + t.suffix
                elif cfg.chat:
                    completion, solution = solution_from_chat(text, t.prompt, t.entry_point, _response_prefix(cfg) or "")
                else:
                    completion, solution = solution_from_base(text, t.prompt, t.body_continuation)
                recs.append({"task_id": t.task_id, "solution": solution, "sample_idx": j, "completion": completion,
                             "raw": text, "gen_s": round(batch.seconds / len(batch.rows), 4), "nfe": batch.nfe,
                             "batch_rows": len(batch.rows), "tokens": batch.tokens[k] if batch.tokens else None})
            out.write(recs)
    if n_failed:
        _say(f"{n_failed} sample(s) could not be generated; they count as failures (reason in {samples_path}, "
             f"key {GEN_ERROR!r})")
    return meta


def _jsonable(x):
    return json.loads(json.dumps(x, default=str))


def _execute(cfg: EvalConfig, tasks, samples: list[dict], out_dir: Path,
             isolation_now: str | None = None) -> tuple[list[dict], float, int, dict]:
    """Execution half: score samples without a verified record in executions.jsonl; returns all
    outcomes, the execution wall time, the number of programs run and what the resume did."""
    from diffucode.evaluation.results import SIG, JsonlAppender, RecordSigner, latest_by_key, read_jsonl
    from diffucode.evaluation.scoring import ReferenceOutputs, TaskModes, score_samples, solution_sha
    from diffucode.execution import SandboxConfig

    exec_path = out_dir / "executions.jsonl"
    prior = latest_by_key(read_jsonl(exec_path))
    signer = RecordSigner(out_dir)
    outcomes, todo = [], []
    resume = {"reused": 0, "rerun_unverified": 0, "rerun_unsandboxed": 0}
    for s in samples:
        rec = prior.get((s["task_id"], s["sample_idx"]))
        if rec is None or rec.get("solution_sha") != solution_sha(s["solution"]):
            todo.append(s)  # never scored, or scored for another solution
        elif not signer.verify(rec):
            todo.append(s)  # unsigned (older diffucode), altered, or from another output directory
            resume["rerun_unverified"] += 1
        elif isolation_now == "bwrap" and rec.get("isolation") not in ("bwrap", "", None):
            todo.append(s)  # ran without bubblewrap: its program could have forged records
            resume["rerun_unsandboxed"] += 1
        else:
            outcomes.append({k: v for k, v in rec.items() if k != SIG})
            resume["reused"] += 1
    if prior:
        note = "".join([
            f"; {resume['rerun_unverified']} earlier records failed verification (unsigned, altered or from another "
            "output directory) and run again" if resume["rerun_unverified"] else "",
            f"; {resume['rerun_unsandboxed']} earlier records ran without bubblewrap and run again in it"
            if resume["rerun_unsandboxed"] else ""])
        _say(f"resuming: {len(outcomes)} samples already scored in {exec_path}, {len(todo)} to run{note}")
    sandbox = SandboxConfig(timeout=cfg.timeout, isolation=cfg.isolation, workers=cfg.workers,
                                  allow_unsandboxed=cfg.allow_unsandboxed)
    refs = ReferenceOutputs(out_dir / "reference_outputs.jsonl")
    modes = TaskModes(out_dir / "task_modes.jsonl")
    bar = None
    if cfg.progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="execute", unit="program", dynamic_ncols=True)
    t0 = time.perf_counter()
    with JsonlAppender(exec_path) as out:
        def on_outcome(rec):
            out.write([signer.sign(rec)])
            if bar:
                bar.update(1)

        if any(t.kind == "io" for t in tasks) and todo:
            _say("computing reference outputs (EvalPlus base + plus inputs) in the sandbox")
        new = score_samples(tasks, todo, sandbox=sandbox, timeout=cfg.timeout, workers=cfg.workers, refs=refs,
                            modes=modes, on_outcome=on_outcome) if todo else []
    if bar:
        bar.close()
    wall = time.perf_counter() - t0
    if refs.broken:
        _say(f"WARNING: the reference solution failed for {len(refs.broken)} task(s): "
             + ", ".join(list(refs.broken)[:5]))
    return outcomes + new, wall, len(todo), resume


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from diffucode.fileio import OutOfSpaceError, RunDirLockedError

    try:
        return _main(parser, args)
    except ConfigError as e:
        print(f"diffucode eval: error: {e}", file=sys.stderr)
        return 2
    except (RunDirLockedError, OutOfSpaceError) as e:  # faults of the output directory: one line
        print(f"diffucode eval: error: {e}", file=sys.stderr)
        return 1


def _main(parser, args) -> int:
    from diffucode.evaluation.tasks import DataError, load_benchmark
    from diffucode.fileio import RunDirLock

    t_start = time.perf_counter()
    cfg = resolve_config(args)
    if not cfg.generation_only:  # refuse before generating, not after
        from diffucode.execution import SandboxConfig, SandboxUnavailableError, sandbox_info

        try:
            sandbox_info(SandboxConfig(timeout=cfg.timeout, isolation=cfg.isolation, workers=cfg.workers,
                                       allow_unsandboxed=cfg.allow_unsandboxed))
        except SandboxUnavailableError as e:
            raise ConfigError(str(e)) from e
    out_dir = Path(cfg.output or f"runs/eval/{cfg.benchmark}")
    check_output_dir(out_dir, "--output")
    try:
        tasks = load_benchmark(cfg.benchmark, cfg.data_file, split=cfg.split, limit=cfg.limit,
                               task_ids=cfg.task_ids)
    except DataError as e:
        raise ConfigError(str(e)) from e
    by_id = {t.task_id: t for t in tasks}
    samples_path = Path(cfg.samples) if cfg.samples else out_dir / "samples.jsonl"
    if cfg.execution_only and not samples_path.is_file():
        raise ConfigError(f"--execution-only: no samples file at {samples_path} (pass --samples FILE)")
    out_dir.mkdir(parents=True, exist_ok=True)
    # one eval per output directory: a second one would redo the same samples and race on the files
    with RunDirLock(out_dir, "diffucode eval"):
        return _run_locked(cfg, tasks, by_id, samples_path, out_dir, t_start)


def _run_locked(cfg: EvalConfig, tasks, by_id, samples_path: Path, out_dir: Path, t_start: float) -> int:
    from diffucode.evaluation.results import (decoding_summary, format_summary, load_samples, read_jsonl, summarize,
                                              write_json)
    from diffucode.evaluation.scoring import mode_counts
    from diffucode.execution import SandboxUnavailableError, sandbox_info

    if cfg.overwrite:
        for name in ("samples.jsonl", "executions.jsonl", "results.json", "generation.json"):
            (out_dir / name).unlink(missing_ok=True)
    _say(f"{cfg.benchmark}: {len(tasks)} tasks -> {out_dir}")

    meta = None
    if not cfg.execution_only:
        meta = _generate(cfg, tasks, out_dir)
        save_config(cfg, out_dir / "config.yaml")  # after the resume checks passed
        if cfg.generation_only:
            n = len(read_jsonl(out_dir / "samples.jsonl"))
            _say(f"wrote {out_dir / 'samples.jsonl'} ({n} samples); score it with --execution-only")
            return 0
    elif (out_dir / "generation.json").is_file() and cfg.samples is None:
        meta = json.loads((out_dir / "generation.json").read_text())

    try:
        # a user's file must be whole; the run's own may hold torn lines of an interrupted write
        samples = load_samples(samples_path, by_id, strict=cfg.samples is not None)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(str(e)) from e
    foreign = sorted({s["task_id"] for s in samples} - set(by_id))
    if foreign:
        if cfg.limit is None and cfg.task_ids is None:
            raise ConfigError(f"--samples {samples_path}: task ids not in {cfg.benchmark}: {', '.join(foreign[:5])}")
        samples = [s for s in samples if s["task_id"] in by_id]  # a subset was asked for
    if not samples:
        raise ConfigError(f"{samples_path}: no samples for the selected tasks")
    if cfg.execution_only and cfg.limit is None and cfg.task_ids is None:
        present = {s["task_id"] for s in samples}
        if len(present) < len(tasks):
            _say(f"note: {samples_path} covers {len(present)} of {len(tasks)} {cfg.benchmark} tasks; "
                 "pass@k is over those")
        tasks = [t for t in tasks if t.task_id in present]
    if cfg.execution_only:
        save_config(cfg, out_dir / "config.yaml")  # only once the samples file was accepted
    sandbox_now = sandbox_info_safe(cfg, sandbox_info)  # probed once; also decides which earlier records stand
    try:
        outcomes, wall, n_run, resume = _execute(cfg, tasks, samples, out_dir, sandbox_now.get("isolation"))
    except SandboxUnavailableError as e:
        raise ConfigError(str(e)) from e

    gen_s = sum(float(s.get("gen_s") or 0.0) for s in samples)
    results = {
        "benchmark": cfg.benchmark,
        "model": (meta or {}).get("model") or ("(samples file)" if cfg.samples else None),
        "samples_file": str(samples_path),
        **summarize(tasks, outcomes, cfg.k),
        "generation": meta,
        **({"decoding": dec} if (dec := decoding_summary(samples)) else {}),
        "timings": {
            "generation_s": round(gen_s, 3),
            "execution_s": round(wall, 3),
            "total_s": round(time.perf_counter() - t_start, 3),
            "programs_run": n_run,
            "programs_per_s": round(n_run / wall, 2) if wall > 0 and n_run else 0.0,
        },
        # this run's sandbox, and what every record (earlier runs' included) actually ran under
        "sandbox": {**sandbox_now, "records_by_isolation": _isolation_counts(outcomes)},
        "resume": resume,
        "execution_modes": mode_counts(tasks, outcomes),
        "config": config_to_dict(cfg),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json(out_dir / "results.json", results)
    print(format_summary(results))
    em = results["execution_modes"]
    print(f"execution: {em['split']} tasks split (tests in a separate judge process), {em['in-process']} in-process")
    print(f"results: {out_dir / 'results.json'}")
    return 0


def _isolation_counts(outcomes: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in outcomes:
        key = o.get("isolation") or "none (not run)"
        counts[key] = counts.get(key, 0) + 1
    return counts


def sandbox_info_safe(cfg: EvalConfig, info_fn) -> dict:
    from diffucode.execution import SandboxConfig

    try:
        return info_fn(SandboxConfig(timeout=cfg.timeout, isolation=cfg.isolation, workers=cfg.workers,
                                  allow_unsandboxed=cfg.allow_unsandboxed))
    except Exception as e:  # noqa: BLE001 - only reporting
        return {"isolation": "unknown", "error": str(e)}
