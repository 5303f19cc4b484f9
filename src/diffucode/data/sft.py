"""Supervised fine-tuning data: chat records -> (prompt, response) token ids -> padded batches.

    python -c "from diffucode.data.sft import record_to_messages; print(record_to_messages({'prompt': 'hi', 'response': 'yo'}, 'x'))"

Records (JSONL, parquet or a Hugging Face dataset; see ``text_datasets``):

* ``{"messages": [{"role": "user", "content": ...}, ..., {"role": "assistant", "content": ...}]}``:
  the last message must be the assistant's; it is the response, everything before is the prompt;
* ``{"prompt": ..., "response": ...}``: one user turn and its answer.

With ``chat_template=True`` the tokenizer's chat template formats the conversation (the prompt
ends with the generation prompt, the response carries the end-of-turn marker). The prompt is
never masked; the response and whatever follows it is the training region.

Two ways to teach the model to stop (docs/ALGORITHMS.md section 3, SFT):

* ``pad_mode="pad_to_max"`` (DiffuCoder): response + EOS, then filled with a pad token up to
  ``max_seq_len``; the fill is real, attended and supervised, so the model learns to write
  padding after its answer.
* ``pad_mode="random_eos"`` (Stable-DiffCoder): response + 1..``max_eos`` EOS tokens (the number is
  drawn per example), then ordinary batch padding that is neither attended nor supervised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from diffucode.data.text_datasets import DataError, iter_records

PadMode = Literal["pad_to_max", "random_eos"]


@dataclass
class SFTExample:
    prompt_ids: list[int]
    response_ids: list[int]  # the answer (and end-of-turn marker); no EOS yet
    where: str  # file:line, for error messages


def _check_message(msg, where: str, i: int) -> dict:
    if not isinstance(msg, dict) or not isinstance(msg.get("role"), str) or not isinstance(msg.get("content"), str):
        raise DataError(f"{where}: messages[{i}] must be an object with string 'role' and 'content', got {msg!r}"[:300])
    return {"role": msg["role"], "content": msg["content"]}


def record_to_messages(rec: dict, where: str) -> list[dict]:
    """Normalise a record to a chat message list ending with the assistant's answer."""
    if "messages" in rec:
        msgs = rec["messages"]
        if not isinstance(msgs, list) or len(msgs) < 2:
            raise DataError(f"{where}: 'messages' must be a list of at least 2 messages")
        msgs = [_check_message(m, where, i) for i, m in enumerate(msgs)]
        if msgs[-1]["role"] != "assistant":
            raise DataError(f"{where}: the last message must have role 'assistant' (it is the response), got '{msgs[-1]['role']}'")
        return msgs
    if "prompt" in rec and "response" in rec:
        if not isinstance(rec["prompt"], str) or not isinstance(rec["response"], str):
            raise DataError(f"{where}: 'prompt' and 'response' must be strings")
        return [{"role": "user", "content": rec["prompt"]}, {"role": "assistant", "content": rec["response"]}]
    raise DataError(f"{where}: an SFT record needs 'messages' or 'prompt' + 'response' (fields: {sorted(rec)})")


def encode_messages(tokenizer, messages: list[dict], where: str = "", chat_template: bool = True) -> SFTExample:
    """Token ids of the prompt (all turns but the last, plus the generation prompt) and the response."""
    if chat_template and getattr(tokenizer, "chat_template", None):
        prompt_text = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
        full_text = tokenizer.apply_chat_template(messages, tokenize=False)
        if not full_text.startswith(prompt_text):
            raise DataError(f"{where}: the chat template does not render the prompt as a prefix of the conversation")
        response_text = full_text[len(prompt_text):]
    elif chat_template:
        raise DataError("the tokenizer has no chat template; set sft.chat_template=false for plain prompt + response")
    else:
        prompt_text = "\n".join(m["content"] for m in messages[:-1])
        response_text = messages[-1]["content"]
    # tokenised separately so no BPE merge crosses the prompt/response boundary
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response_text, add_special_tokens=False)["input_ids"]
    return SFTExample(list(prompt_ids), list(response_ids), where)


def load_sft_examples(
    sources: list[str],
    tokenizer,
    max_seq_len: int,
    chat_template: bool = True,
    hf_split: str = "train",
    base_dir: str | Path | None = None,
) -> tuple[list[SFTExample], int]:
    """Read and tokenise every record; returns ``(examples, dropped)`` where ``dropped`` counts
    examples whose prompt leaves no room for a response in ``max_seq_len``."""
    examples, dropped = [], 0
    for spec in sources:
        for rec, where in iter_records(spec, hf_split=hf_split, base_dir=base_dir):
            # a record may opt out of the chat template ("chat_template": false), so one file can
            # mix instruct conversations with plain completion pairs
            use_template = rec.get("chat_template", chat_template) if isinstance(rec, dict) else chat_template
            ex = encode_messages(tokenizer, record_to_messages(rec, where), where, bool(use_template))
            if len(ex.prompt_ids) + 2 > max_seq_len:  # room for >= 1 response token and an EOS
                dropped += 1
                continue
            examples.append(ex)
    return examples, dropped


def sft_row(ex: SFTExample, max_seq_len: int, eos_id: int, n_eos: int = 1) -> tuple[list[int], int]:
    """``prompt + response + [eos] * n_eos`` cut to ``max_seq_len`` (the response is shortened first,
    and at least one EOS is kept). Returns ``(ids, response_start)``."""
    room = max_seq_len - len(ex.prompt_ids)
    if room < 2:
        raise DataError(f"{ex.where}: prompt of {len(ex.prompt_ids)} tokens leaves no room in max_seq_len={max_seq_len}")
    response = ex.response_ids[: room - 1]
    n_eos = max(1, min(n_eos, room - len(response)))
    return ex.prompt_ids + response + [eos_id] * n_eos, len(ex.prompt_ids)


def collate_sft(
    examples: list[SFTExample],
    max_seq_len: int,
    eos_id: int,
    pad_id: int,
    pad_mode: PadMode = "pad_to_max",
    fill_id: int | None = None,
    n_eos: list[int] | None = None,
    pad_to_multiple: int = 1,
) -> dict[str, torch.Tensor]:
    """Batch of right-padded rows: ``input_ids``, ``attention_mask`` and ``loss_region`` (``[b, L]``).

    ``pad_to_max``: every row is exactly ``max_seq_len`` long; after ``response + EOS`` the row is
    filled with ``fill_id`` (default ``pad_id``), attended and inside the loss region.
    ``random_eos``: ``n_eos[i]`` EOS after the response; rows padded with ``pad_id`` to the longest
    row (rounded up to ``pad_to_multiple``, e.g. the block length), padding outside everything.
    """
    if pad_mode not in ("pad_to_max", "random_eos"):
        raise ValueError(f"pad_mode must be 'pad_to_max' or 'random_eos', got {pad_mode!r}")
    n_eos = n_eos or [1] * len(examples)
    rows = [sft_row(ex, max_seq_len, eos_id, k if pad_mode == "random_eos" else 1) for ex, k in zip(examples, n_eos)]
    if pad_mode == "pad_to_max":
        L = max_seq_len
    else:
        L = max(len(ids) for ids, _ in rows)
        L = min(max_seq_len, -(-L // pad_to_multiple) * pad_to_multiple)
    fill = pad_id if fill_id is None else fill_id
    input_ids = torch.full((len(rows), L), pad_id, dtype=torch.long)
    attention = torch.zeros(len(rows), L, dtype=torch.long)
    region = torch.zeros(len(rows), L, dtype=torch.bool)
    for i, (ids, start) in enumerate(rows):
        n = len(ids)
        input_ids[i, :n] = torch.tensor(ids, dtype=torch.long)
        region[i, start:n] = True
        attention[i, :n] = 1
        if pad_mode == "pad_to_max":
            input_ids[i, n:] = fill
            attention[i, n:] = 1
            region[i, n:] = True
    return {"input_ids": input_ids, "attention_mask": attention, "loss_region": region}
