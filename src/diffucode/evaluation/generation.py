"""Batched completions for benchmark prompts with the diffusion decoding engine.

    python -c "
    from diffucode.models import build_tiny_model
    from diffucode.sampling import GenerationConfig
    from diffucode.evaluation.generation import generate_completions
    m, tok = build_tiny_model()
    print(generate_completions(m, tok, ['def f(x):\\n'], GenerationConfig(max_new_tokens=16), n_samples=2))"

Prompts are tokenized with left padding (the engine's layout), ``n_samples`` rows per prompt
are decoded in batches of ``batch_size`` rows, each generation is cut at its first end token
(eos, pad, ``<|im_end|>`` for chat, ``stop_token_ids``) and decoded without special tokens,
then the extraction rules of :mod:`diffucode.evaluation.prompts` apply. Batches are fixed by
row index (prompt-major), and batch ``b`` is decoded with seed ``config.seed + b``, so a run
that skips finished batches (resume) decodes the others exactly as an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

from diffucode.evaluation.prompts import RESPONSE_PREFIX, extract_base_completion, extract_code_block


@dataclass
class GeneratedBatch:
    rows: list[tuple[int, int]]  # (prompt index, sample index) of each generation
    texts: list[str]  # decoded generations, cut at the first end token
    nfe: int  # forward passes the batch used
    seconds: float  # wall time of the batch
    failed: dict[tuple[int, int], str] = field(default_factory=dict)  # rows of the batch not decoded -> why
    tokens: list[int] = field(default_factory=list)  # completion tokens of each row (see completion_length)


def check_room(model, gen_config) -> None:
    """ConfigError when ``max_new_tokens`` alone fills the model's context."""
    from diffucode.config import ConfigError

    limit, L = int(model.max_seq_len), gen_config.max_new_tokens
    if L >= limit:
        raise ConfigError(f"--max-new-tokens: {L} tokens leave no room for a prompt in the model's context of "
                          f"{limit} tokens")


def prompt_problems(model, tokenizer, texts: Sequence[str], gen_config, add_special_tokens: bool = True) -> dict[int, str]:
    """Prompts that cannot be decoded, by index -> reason (too long for the model's context, or
    empty). Every other prompt fits in any batch: a batch needs its longest prompt +
    ``max_new_tokens`` positions (sampling/engine.py's layouts). Raises ConfigError when
    ``max_new_tokens`` alone leaves no room for any prompt (a setting, not a prompt, is wrong)."""
    check_room(model, gen_config)
    limit, L = int(model.max_seq_len), gen_config.max_new_tokens
    out = {}
    for i, text in enumerate(texts):
        n = len(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])
        if n == 0:
            out[i] = "the prompt is empty (0 tokens)"
        elif n + L > limit:
            out[i] = (f"prompt too long: {n} tokens + max_new_tokens {L} = {n + L} exceeds the model's context of "
                      f"{limit} tokens")
    return out


def chat_prompt(tokenizer, message: str, response_prefix: str = RESPONSE_PREFIX) -> str:
    """The model input for an instruct model: chat template with the user turn, then the
    assistant turn opened with ``response_prefix``."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("--chat: this tokenizer has no chat template; evaluate it as a base model (without --chat)")
    text = tokenizer.apply_chat_template([{"role": "user", "content": message}], tokenize=False,
                                         add_generation_prompt=True)
    return text + response_prefix


def batches_of(n_prompts: int, n_samples: int, batch_size: int) -> list[list[tuple[int, int]]]:
    rows = [(i, j) for i in range(n_prompts) for j in range(n_samples)]
    return [rows[b: b + batch_size] for b in range(0, len(rows), batch_size)]


def _end_ids(tokenizer, gen_config, chat: bool) -> set[int]:
    ids = {tokenizer.eos_token_id, tokenizer.pad_token_id, *gen_config.stop_token_ids}
    if chat:
        im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
            ids.add(im_end)
    return {i for i in ids if i is not None}


def iter_generate(model, tokenizer, prompts: Sequence[str], gen_config, n_samples: int = 1, batch_size: int = 8, *,
                  chat: bool = False, response_prefix: str = RESPONSE_PREFIX,
                  skip: Callable[[list[tuple[int, int]]], bool] | None = None,
                  progress: bool = True, continuous: bool = False) -> Iterator[GeneratedBatch]:
    """Decode every (prompt, sample) row in fixed batches; yields each batch as it finishes.

    ``prompts`` are raw prompts (base) or user messages (``chat=True``: the chat template and
    ``response_prefix`` are applied here). ``skip(rows)`` returning True skips a batch. Rows whose
    prompt cannot be decoded (too long for the context, see :func:`prompt_problems`) are left
    out of their batch and reported in ``GeneratedBatch.failed``: one bad prompt does not stop
    the others, and since the same rows are left out every time, a resumed run decodes the
    remaining rows of a batch exactly as before (batch ``b`` keeps seed ``seed + b``).

    ``continuous=True`` (block-causal / causal models): continuous batching instead of fixed
    batches (``diffucode.sampling.BatchScheduler``): a finished row leaves and the next row takes
    its place at once; yields one single-row batch per finished row. Row ``r`` (prompt-major
    index) draws from the generator seeded by ``(config.seed, r)``, so a resumed run decodes the
    remaining rows exactly as an uninterrupted one.
    """
    import torch

    from diffucode.sampling import generate  # the engine: imported here, evaluation loads without it

    if n_samples < 1 or batch_size < 1:
        raise ValueError(f"n_samples and batch_size must be >= 1, got {n_samples}, {batch_size}")
    texts = [chat_prompt(tokenizer, p, response_prefix) if chat else p for p in prompts]
    end_ids = _end_ids(tokenizer, gen_config, chat)
    extra_stops = sorted(end_ids - {tokenizer.eos_token_id, tokenizer.pad_token_id} - set(gen_config.stop_token_ids))
    problems = prompt_problems(model, tokenizer, texts, gen_config, add_special_tokens=not chat)
    plan = batches_of(len(texts), n_samples, batch_size)
    bar = progress_bar(len(texts) * n_samples, "generate", progress)
    old_side = getattr(tokenizer, "padding_side", "right")
    tokenizer.padding_side = "left"
    if continuous:
        try:
            yield from _iter_continuous(model, tokenizer, texts, gen_config, n_samples, batch_size, chat, end_ids,
                                        extra_stops, skip, bar, problems)
        finally:
            tokenizer.padding_side = old_side
            if bar:
                bar.close()
        return

    def decode(b: int, rows: list[tuple[int, int]]) -> tuple[list[str], int]:
        enc = tokenizer([texts[i] for i, _ in rows], return_tensors="pt", padding=True,
                        add_special_tokens=not chat)  # a chat template writes its own special tokens
        ids = enc["input_ids"].to(model.device)  # [B, P]
        mask = enc["attention_mask"].to(model.device)  # [B, P]
        cfg = dataclasses.replace(
            gen_config, num_return_sequences=1,
            seed=None if gen_config.seed is None else gen_config.seed + b,
            stop_token_ids=list(gen_config.stop_token_ids) + extra_stops,
        )
        with torch.no_grad():
            out = generate(model, ids, mask, cfg)
        gen = out.sequences[:, ids.shape[1]:].tolist()  # [B, L]
        return ([decode_row(tokenizer, row, end_ids) for row in gen], int(out.nfe),
                [completion_length(row, end_ids) for row in gen])

    try:
        yield from run_plan(plan, decode, problems, skip, bar)
    finally:
        tokenizer.padding_side = old_side
        if bar:
            bar.close()


def progress_bar(total: int, desc: str, progress: bool):
    """A tqdm bar (None when ``progress`` is off)."""
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="sample", dynamic_ncols=True)


def run_plan(plan: Sequence[list[tuple[int, int]]],
             decode: Callable[[int, list[tuple[int, int]]], tuple[list[str], int, list[int]]],
             problems: dict[int, str], skip: Callable[[list[tuple[int, int]]], bool] | None,
             bar) -> Iterator[GeneratedBatch]:
    """The fixed-batch loop shared by completions and infilling: batch ``b`` of ``plan`` is
    skipped when ``skip(rows)`` says so, rows whose prompt is in ``problems`` are reported as
    failed (not decoded), and the rest go to ``decode(b, rows) -> (texts, nfe, tokens)``, timed here."""
    for b, rows in enumerate(plan):
        if skip is not None and skip(rows):
            if bar:
                bar.update(len(rows))
            continue
        failed = {(i, j): problems[i] for i, j in rows if i in problems}
        rows = [r for r in rows if r not in failed]
        if not rows:
            if bar:
                bar.update(len(failed))
            yield GeneratedBatch(rows=[], texts=[], nfe=0, seconds=0.0, failed=failed)
            continue
        t0 = time.perf_counter()
        texts, nfe, tokens = decode(b, rows)
        seconds = time.perf_counter() - t0
        if bar:
            bar.update(len(rows) + len(failed))
        yield GeneratedBatch(rows=rows, texts=texts, nfe=nfe, seconds=seconds, failed=failed, tokens=tokens)


def _first_end(row: list[int], end_ids: set[int]) -> int | None:
    return next((k for k, t in enumerate(row) if t in end_ids), None)


def decode_row(tokenizer, row: list[int], end_ids: set[int]) -> str:
    """A generated row as text: cut at its first end token, special tokens dropped."""
    end = _first_end(row, end_ids)
    return tokenizer.decode(row[: len(row) if end is None else end], skip_special_tokens=True)


def completion_length(row: list[int], end_ids: set[int]) -> int:
    """Tokens a row's completion took: up to and including its first end token (the whole row when
    it never ended). What "tokens per forward" counts: the end token is decoded like any other,
    while the positions after it are not part of the answer."""
    end = _first_end(row, end_ids)
    return len(row) if end is None else end + 1


def _iter_continuous(model, tokenizer, texts, gen_config, n_samples, batch_size, chat, end_ids, extra_stops, skip, bar,
                     problems):
    from diffucode.sampling import BatchScheduler
    from diffucode.sampling.continuous import _row_generator

    cfg = dataclasses.replace(gen_config, num_return_sequences=1,
                              stop_token_ids=list(gen_config.stop_token_ids) + extra_stops)
    sched = BatchScheduler(model, cfg, batch_size)
    rows = [(i, j) for i in range(len(texts)) for j in range(n_samples)]
    pending = {}
    for r, (i, j) in enumerate(rows):
        if skip is not None and skip([(i, j)]):
            if bar:
                bar.update(1)
            continue
        if i in problems:  # reported, not decoded (as in the fixed batches)
            if bar:
                bar.update(1)
            yield GeneratedBatch(rows=[], texts=[], nfe=0, seconds=0.0, failed={(i, j): problems[i]})
            continue
        ids = tokenizer(texts[i], add_special_tokens=not chat)["input_ids"]
        gen = None
        if cfg.stochastic and cfg.seed is not None:
            gen = _row_generator(cfg.seed, r, model.device)
        pending[sched.submit(ids, gen)] = (i, j)
    t_last, nfe_last = time.perf_counter(), 0
    for ticket, res in sched.run():
        now = time.perf_counter()
        row = res.tokens.tolist()
        text = decode_row(tokenizer, row, end_ids)
        if bar:
            bar.update(1)
        yield GeneratedBatch(rows=[pending.pop(ticket)], texts=[text], nfe=sched.nfe - nfe_last, seconds=now - t_last,
                             tokens=[completion_length(row, end_ids)])
        t_last, nfe_last = now, sched.nfe


def generate_completions(model, tokenizer, prompts: list[str], gen_config, n_samples: int = 1, batch_size: int = 8,
                         chat: bool = False, progress: bool = True, *, response_prefix: str = RESPONSE_PREFIX,
                         entry_points: Sequence[str | None] | None = None,
                         inside_function: bool | Sequence[bool] = True) -> list[list[str]]:
    """``[prompt][sample]`` completions with the extraction rules applied.

    Base (``chat=False``): the text to append to the prompt, cut at stop sequences and at the
    first top-level non-definition line (``inside_function``: the prompt ends inside the
    function, as in HumanEval; False for MBPP-style prompts). Chat: the code block of the answer
    (``entry_points`` pick the block that defines the function when there are several).
    """
    out: list[list[str]] = [[""] * n_samples for _ in prompts]
    for batch in iter_generate(model, tokenizer, prompts, gen_config, n_samples, batch_size, chat=chat,
                               response_prefix=response_prefix, progress=progress):
        if batch.failed:  # a plain list has no room for a failure: say which prompt and why
            (i, _), why = next(iter(batch.failed.items()))
            raise ValueError(f"prompt {i}: {why}")
        for (i, j), text in zip(batch.rows, batch.texts):
            if chat:
                entry = entry_points[i] if entry_points is not None else None
                out[i][j] = extract_code_block(response_prefix + text, entry)
            else:
                inside = inside_function if isinstance(inside_function, bool) else inside_function[i]
                out[i][j] = extract_base_completion(text, inside)
    return out
