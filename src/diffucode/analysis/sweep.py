"""Sweeps: AR-ness@k (and pass@1 when the tasks carry tests) against sampling temperature and
remasking rule, over a benchmark's prompts.

    python -c "from diffucode.models import build_tiny_model; from diffucode.analysis.sweep import *; \
m, t = build_tiny_model(); print(arness_sweep(m, t, [{'prompt': 'def f(x):\\n'}], \
SweepConfig(temperatures=[0.0, 1.0], max_new_tokens=8, pass_at_1=False))['points'][0]['local'])"

Each setting ``(alg, temperature)`` decodes every prompt ``num_samples`` times with one token
per step (``steps = max_new_tokens``, the setup of DiffuCoder section 4.1) through
``diffucode.sampling.generate``, turns the engine's reveal steps into orders
(:func:`~diffucode.analysis.arness.reveal_steps_to_positions`) and reports, for each ``k``,
the mean, variance and std over samples of local and global AR-ness@k.

Error bars (:mod:`~diffucode.analysis.intervals`): every setting can be decoded under several
decoding seeds (``seeds``); each point then keeps the per-prompt values (averaged over samples
and seeds), a percentile bootstrap interval over prompts, and the mean of each seed with their
spread. With two or more temperatures, each one is compared with the first listed by a paired
bootstrap over prompts of the difference (``differences`` in the result).

Departures and choices:

* AR-ness is measured over all ``max_new_tokens`` positions, including those that end up as
  EOS/padding (the engine decodes them too, and early EOS placement is part of how a
  diffusion model writes). ``stop_at_eos`` defaults to False here so the whole trajectory is
  one token per step.
* Steps that reveal several tokens (the reference schedule's last step reveals two; ``origin``
  reveals a random number per step) are ordered by ``ties`` (default ``"random"``, neutral on
  average); the number of such steps per sample is reported as ``multi_reveal_steps``.
* pass@1 is the fraction of samples that pass (the unbiased pass@1 estimator with n samples
  reduces to this mean), computed only for tasks with ``test`` and ``entry_point`` fields, by
  running HumanEval-style checks in the ``diffucode.execution`` sandbox. Base-model
  completions are cut at the end token and at :data:`HUMANEVAL_STOP`; with ``chat`` pass@1 is
  skipped (extracting the code from an answer is ``diffucode eval``'s job).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal, Sequence

import numpy as np

from diffucode.analysis.arness import arness_curve, count_multi_reveal_steps, reveal_steps_to_positions
from diffucode.analysis.intervals import paired_difference, per_prompt_means, prompt_interval, seed_spread
from diffucode.analysis.prompts import encode_prompts, left_pad, pad_id_of

__all__ = ["SweepConfig", "arness_sweep", "decode_orders", "HUMANEVAL_STOP", "cut_at_stop", "sandbox_checker"]

ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy", "low_confidence", "random")

# Stop sequences for base-model HumanEval completions (the usual Codex-paper set).
HUMANEVAL_STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")


@dataclass
class SweepConfig:
    temperatures: list[float] = field(
        default_factory=lambda: [0.2, 0.6, 1.0, 1.2], metadata={"help": "sampling temperatures to sweep (0 = argmax)"}
    )
    algs: list[str] = field(
        default_factory=lambda: ["entropy"], metadata={"help": f"remasking rules to sweep, from {list(ALGS)}"}
    )
    ks: list[int] = field(default_factory=lambda: [1, 2, 4, 8], metadata={"help": "k values of AR-ness@k (>= 1)"})
    max_new_tokens: int = field(default=256, metadata={"help": "completion length L"})
    steps: int | None = field(
        default=None, metadata={"help": "decoding steps; None = max_new_tokens (one token per step, as AR-ness assumes)"}
    )
    alg_temp: float = field(default=0.0, metadata={"help": "randomness of the position choice (Dream alg_temp)"})
    top_p: float | None = field(default=0.95, metadata={"help": "nucleus sampling threshold (None = off)"})
    top_k: int | None = field(default=None, metadata={"help": "top-k sampling (None = off)"})
    num_samples: int = field(default=1, metadata={"help": "completions per prompt and setting"})
    batch_size: int = field(default=8, metadata={"help": "prompts per generate() call"})
    seed: int = field(default=0, metadata={"help": "base seed (each batch and setting derives its own)"})
    seeds: list[int] | None = field(
        default=None,
        metadata={"help": "decoding seeds: every setting is decoded once per seed, for the mean and spread "
                          "across seeds (None = [seed]; replaces seed)"},
    )
    ci_resamples: int = field(default=1000, metadata={"help": "bootstrap resamples of the prompts for the intervals"})
    ci_confidence: float = field(default=0.95, metadata={"help": "confidence level of the bootstrap intervals"})
    ci_seed: int = field(default=0, metadata={"help": "seed of the bootstrap resampling (not of the decoding)"})
    ties: Literal["error", "left_to_right", "random"] = field(
        default="random", metadata={"help": "order of tokens revealed in the same step (see reveal_steps_to_positions)"}
    )
    stop_at_eos: bool = field(
        default=False,
        metadata={"help": "let the engine trim after the end token (AR-ness then covers only the positions before it)"},
    )
    chat: bool = field(default=False, metadata={"help": "wrap prompts in the tokenizer's chat template"})
    pass_at_1: bool = field(default=True, metadata={"help": "run the tasks' tests for pass@1 when they have tests"})
    timeout_s: float = field(default=10.0, metadata={"help": "seconds per test program"})
    workers: int | None = field(default=None, metadata={"help": "test programs run in parallel (None: one per core)"})

    def __post_init__(self) -> None:
        if not self.temperatures:
            raise ValueError("--temperatures needs at least one value")
        if any((not math.isfinite(t)) or t < 0 for t in self.temperatures):
            raise ValueError(f"--temperatures must be finite and >= 0, got {self.temperatures}")
        bad = [a for a in self.algs if a not in ALGS]
        if not self.algs or bad:
            raise ValueError(f"--algs must be a non-empty list from {list(ALGS)}, got {self.algs}")
        if not self.ks or any(int(k) != k or k < 1 for k in self.ks):
            raise ValueError(f"--ks must be integers >= 1, got {self.ks}")
        if self.max_new_tokens < 1:
            raise ValueError(f"--max-new-tokens must be >= 1, got {self.max_new_tokens}")
        if self.steps is not None and not 1 <= self.steps <= self.max_new_tokens:
            raise ValueError(f"--steps must be in [1, max_new_tokens={self.max_new_tokens}], got {self.steps}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"--top-k must be >= 1, got {self.top_k}")
        if self.num_samples < 1 or self.batch_size < 1:
            raise ValueError("--num-samples and --batch-size must be >= 1")
        if self.ties not in ("error", "left_to_right", "random"):
            raise ValueError(f"--ties must be error, left_to_right or random, got {self.ties!r}")
        if self.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {self.seed}")
        if self.seeds is not None:
            if not self.seeds or any(int(s) != s or s < 0 for s in self.seeds):
                raise ValueError(f"--seeds must be a non-empty list of integers >= 0, got {self.seeds}")
            if len(set(self.seeds)) != len(self.seeds):
                raise ValueError(f"--seeds lists a seed twice: {self.seeds}")
            if self.seed != 0:
                raise ValueError(f"give --seed or --seeds, not both (seed={self.seed}, seeds={self.seeds})")
        if len(set(self.temperatures)) != len(self.temperatures):
            raise ValueError(f"--temperatures lists a temperature twice: {self.temperatures}")
        if self.ci_resamples < 1:
            raise ValueError(f"--ci-resamples must be >= 1, got {self.ci_resamples}")
        if not 0 < self.ci_confidence < 1:
            raise ValueError(f"ci_confidence must be in (0, 1), got {self.ci_confidence}")

    @property
    def decode_seeds(self) -> list[int]:
        return list(self.seeds) if self.seeds is not None else [self.seed]


def batch_seed(seed: int, batch_index: int) -> int:
    """The engine seed of one batch under decoding seed ``seed``. Spaced so that no two
    (seed, batch) pairs share a draw; seed 0 gives 0, 1, 2, ... as before ``seeds`` existed."""
    return seed * 100_003 + batch_index


def cut_at_stop(text: str, stops: Sequence[str] = HUMANEVAL_STOP) -> str:
    """Cut a base-model completion at the first stop sequence."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]


def sandbox_checker(workers: int | None = None) -> Callable[[list[tuple[dict, str]], float], list[bool]]:
    """``check(pairs, timeout_s) -> passed`` for ``(task, completion)`` pairs, run in parallel in
    the ``diffucode.execution`` sandbox with the HumanEval layout (program = prompt + completion,
    then the task's ``test``, then ``check(entry_point)``)."""
    from diffucode.execution import check_job, run_jobs

    def check(pairs: list[tuple[dict, str]], timeout_s: float) -> list[bool]:
        jobs = [check_job(t["prompt"] + c, t["test"], t["entry_point"], timeout=timeout_s) for t, c in pairs]
        return [r.passed for r in run_jobs(jobs, workers=workers)]

    return check


def decode_orders(out: Any, ties: str, seed: int) -> tuple[list[list[int]], list[int]]:
    """Orders (positions by step) and multi-reveal-step counts for every row of ``out.order [N, L]``."""
    orders, multi = [], []
    for r, row in enumerate(out.order.detach().cpu().tolist()):
        orders.append(reveal_steps_to_positions(row, ties=ties, seed=seed * 100_003 + r))
        multi.append(count_multi_reveal_steps(row))
    return orders, multi


def arness_sweep(
    model: Any,
    tok: Any,
    tasks: Sequence[dict],
    cfg: SweepConfig,
    checker: Callable[[list[tuple[dict, str]], float], list[bool]] | None = None,
    progress: bool = False,
    keep_completions: bool = False,
) -> dict:
    """Run the sweep; returns ``{"config", "points": [...], "differences": [...], "pass_at_1_note"}``, JSON-ready.

    A point: ``{"alg", "temperature", "seeds", "num_samples" (prompts x samples x seeds), "nfe"
    (forward passes, summed over batches and seeds), "multi_reveal_steps" (mean per sample),
    "local": {"k": stats}, "global": {...}, "pass@1"}`` (pass@1 None when not computed), where
    ``stats`` is ``{"mean", "var", "std"`` (over all samples), ``"ci"`` ([lo, hi], bootstrap over
    prompts), ``"per_seed"`` (mean of each decoding seed), ``"seed_std"`` (their ``ddof=1`` std,
    None for one seed), ``"per_prompt"`` (each prompt's mean over samples and seeds)``}``.
    ``"differences"``: :func:`temperature_differences`. ``checker(pairs, timeout_s) -> list[bool]``
    replaces the sandbox (:func:`sandbox_checker`) that runs the tests of ``(task, completion)`` pairs.
    """
    from diffucode.sampling import GenerationConfig, generate  # the engine (written separately)

    import torch

    if not tasks:
        raise ValueError("arness_sweep needs at least one prompt")
    steps = cfg.steps or cfg.max_new_tokens
    rows = encode_prompts(tok, [t["prompt"] for t in tasks], chat=cfg.chat)
    pad = pad_id_of(model, tok)
    testable = all("test" in t and "entry_point" in t for t in tasks)
    note = None
    if cfg.pass_at_1 and not testable:
        note = "pass@1 skipped: the prompts have no 'test'/'entry_point' fields"
    if cfg.pass_at_1 and testable and checker is None:
        try:
            checker = sandbox_checker(cfg.workers)
        except ImportError as e:
            note = f"pass@1 skipped: diffucode.execution is not available ({e})"
    if cfg.pass_at_1 and testable and cfg.chat:
        # a chat answer needs its code block extracted and the program built around it,
        # which is the evaluation package's job (`diffucode eval`)
        note, testable = "pass@1 skipped with --chat: use `diffucode eval` for instruct models", False
    do_pass = cfg.pass_at_1 and testable and checker is not None

    end_ids = {i for i in (getattr(model, "eos_token_id", None), tok.eos_token_id, tok.pad_token_id) if i is not None}
    settings = [(a, t) for a in cfg.algs for t in cfg.temperatures]
    seeds = cfg.decode_seeds
    bar = None
    if progress:  # ticks once per decoded sample (a setting can take minutes)
        from tqdm import tqdm

        bar = tqdm(total=len(settings) * len(seeds) * len(rows) * cfg.num_samples, desc="AR-ness sweep",
                   unit=" samples")
    points = []
    for si, (alg, temp) in enumerate(settings):
        if bar is not None:
            bar.set_postfix_str(f"{alg} T={temp:g} ({si + 1}/{len(settings)})")
        curves_by_seed: list[list[dict]] = []  # [seed][prompt-major samples]
        multi: list[int] = []
        to_check: list[tuple[dict, str]] = []
        completions: list[dict] = []
        nfe = 0
        batches = [(ds, bi, start) for ds in seeds for bi, start in enumerate(range(0, len(rows), cfg.batch_size))]
        for ds, bi, start in batches:
            if bi == 0:
                curves_by_seed.append([])
            curves = curves_by_seed[-1]
            ids, am = left_pad(rows[start : start + cfg.batch_size], pad)  # [b, P]
            # the same seeds in every setting: settings are compared on paired random draws
            seed = batch_seed(ds, bi)
            gcfg = GenerationConfig(
                max_new_tokens=cfg.max_new_tokens, steps=steps, alg=alg, alg_temp=cfg.alg_temp,
                temperature=temp, top_p=cfg.top_p, top_k=cfg.top_k, seed=seed,
                num_return_sequences=cfg.num_samples, stop_at_eos=cfg.stop_at_eos,
            )
            with torch.no_grad():
                out = generate(model, ids.to(model.device), attention_mask=am.to(model.device), config=gcfg)
            nfe += int(out.nfe)
            if bar is not None:
                bar.update(ids.shape[0] * cfg.num_samples)
            orders, m = decode_orders(out, cfg.ties, seed)
            multi += m
            curves += [arness_curve(o, cfg.ks) for o in orders]
            P = ids.shape[1]
            for r, seq in enumerate(out.sequences.detach().cpu().tolist()):
                task = tasks[start + r // cfg.num_samples]
                gen = seq[P:]
                # with stop_at_eos=False the engine keeps decoding after the end token: cut there
                end = next((j for j, t in enumerate(gen) if t in end_ids), len(gen))
                text = tok.decode(gen[:end], skip_special_tokens=True)
                if not cfg.chat:
                    text = cut_at_stop(text)
                if do_pass:
                    to_check.append((task, text))
                if keep_completions:
                    completions.append({"task_id": task.get("task_id"), "seed": ds, "completion": text,
                                        "order": orders[r]})
        point = {
            "alg": alg,
            "temperature": float(temp),
            "seeds": seeds,
            "num_samples": sum(len(c) for c in curves_by_seed),
            "nfe": nfe,
            "multi_reveal_steps": float(np.mean(multi)),
        }
        for kind in ("local", "global"):
            point[kind] = {str(k): _stats(curves_by_seed, kind, k, len(rows), cfg) for k in cfg.ks}
        # pass@1 with n samples per task = mean pass rate (the unbiased estimator at k = 1)
        point["pass@1"] = float(np.mean(checker(to_check, cfg.timeout_s))) if do_pass else None
        if keep_completions:
            point["completions"] = completions
        points.append(point)
    if bar is not None:
        bar.close()
    return {"config": asdict(cfg), "points": points, "differences": temperature_differences(points, cfg),
            "pass_at_1_note": note}


def _stats(curves_by_seed: list[list[dict]], kind: str, k: int, num_prompts: int, cfg: SweepConfig) -> dict:
    """One (kind, k) of a point: mean / var / std over all samples, then the error bars."""
    per_seed = [np.array([c[kind][k] for c in curves]) for curves in curves_by_seed]  # [seed][samples]
    vals = np.concatenate(per_seed)
    # a prompt's value: its mean over samples and seeds (the prompt is the unit of resampling)
    per_prompt = per_prompt_means(np.stack(per_seed, axis=1).reshape(-1), num_prompts)
    seed_means = [float(v.mean()) for v in per_seed]
    return {
        "mean": float(vals.mean()), "var": float(vals.var()), "std": float(vals.std()),
        "ci": prompt_interval(per_prompt, cfg.ci_resamples, cfg.ci_confidence, cfg.ci_seed),
        "per_seed": seed_means, "seed_std": seed_spread(seed_means), "per_prompt": per_prompt,
    }


def temperature_differences(points: Sequence[dict], cfg: SweepConfig) -> list[dict]:
    """For each alg, each temperature after the first against the first listed (``T_i - T_0``),
    for every kind and k: a paired bootstrap over prompts of the per-prompt differences."""
    out = []
    for alg in cfg.algs:
        by_temp = {p["temperature"]: p for p in points if p["alg"] == alg}
        base = by_temp[float(cfg.temperatures[0])]
        for temp in cfg.temperatures[1:]:
            other = by_temp[float(temp)]
            for kind in ("local", "global"):
                for k in cfg.ks:
                    d = paired_difference(base[kind][str(k)]["per_prompt"], other[kind][str(k)]["per_prompt"],
                                          cfg.ci_resamples, cfg.ci_confidence, cfg.ci_seed)
                    out.append({"alg": alg, "kind": kind, "k": k, "temperature": float(temp),
                                "baseline_temperature": float(cfg.temperatures[0]), **d})
    return out
