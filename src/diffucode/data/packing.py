"""Tokenise documents and pack them into fixed-length training rows.

    python -c "from diffucode.data.packing import pack_token_lists; print(pack_token_lists([[1, 2, 3], [4, 5]], 4, eos_id=0))"

Pre-training rows are the concatenation of documents, each followed by EOS, cut into rows of
``max_seq_len`` tokens (as in LLaDA / DiffuCoder pre-training: a row may span documents and
attention is not blocked at document boundaries). The last, partial row is kept and padded
(its padding has ``attention_mask`` 0, so it is neither seen nor supervised).

Everything is held in memory as one ``[N, max_seq_len]`` tensor: right for the corpora a
CPU/one-node run tokenises (up to a few hundred million tokens); larger runs should pre-tokenise
to shards (not covered here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch


@dataclass
class PackedRows:
    input_ids: torch.Tensor  # [N, L] long
    attention_mask: torch.Tensor  # [N, L] long, 0 only in the padded tail of the last row
    num_documents: int
    num_tokens: int  # real tokens, EOS separators included

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def tokenize_texts(texts: Iterable[str], tokenizer, batch_size: int = 256) -> Iterable[list[int]]:
    """Token ids of each text (no special tokens added), tokenised in batches for speed."""
    buf: list[str] = []
    for text in texts:
        buf.append(text)
        if len(buf) == batch_size:
            yield from tokenizer(buf, add_special_tokens=False)["input_ids"]
            buf = []
    if buf:
        yield from tokenizer(buf, add_special_tokens=False)["input_ids"]


def pack_token_lists(
    token_lists: Iterable[list[int]],
    max_seq_len: int,
    eos_id: int,
    pad_id: int | None = None,
    bos_id: int | None = None,
    min_last_row: int = 2,
) -> PackedRows:
    """Concatenate ``[bos] + doc + [eos]`` for every document and cut into rows of ``max_seq_len``.

    The final partial row is kept (padded with ``pad_id``, default ``eos_id``) when it has at
    least ``min_last_row`` tokens.
    """
    if max_seq_len < 2:
        raise ValueError(f"max_seq_len must be >= 2, got {max_seq_len}")
    stream: list[int] = []
    n_docs = 0
    for ids in token_lists:
        if not ids:
            continue
        n_docs += 1
        if bos_id is not None:
            stream.append(bos_id)
        stream.extend(ids)
        stream.append(eos_id)
    n_full = len(stream) // max_seq_len
    rem = len(stream) - n_full * max_seq_len
    rows = torch.tensor(stream[: n_full * max_seq_len], dtype=torch.long).view(n_full, max_seq_len)
    mask = torch.ones_like(rows)
    if rem >= min_last_row:
        pad = eos_id if pad_id is None else pad_id
        last = torch.full((1, max_seq_len), pad, dtype=torch.long)
        last[0, :rem] = torch.tensor(stream[n_full * max_seq_len :], dtype=torch.long)
        last_mask = torch.zeros(1, max_seq_len, dtype=torch.long)
        last_mask[0, :rem] = 1
        rows, mask = torch.cat([rows, last]), torch.cat([mask, last_mask])
    return PackedRows(rows, mask, n_docs, int(mask.sum().item()))


def pack_texts(texts: Iterable[str], tokenizer, max_seq_len: int, add_bos: bool = False) -> PackedRows:
    """Tokenise and pack documents with the tokenizer's EOS as the separator."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token; packing needs one as the document separator")
    bos = tokenizer.bos_token_id if add_bos else None
    return pack_token_lists(
        tokenize_texts(texts, tokenizer), max_seq_len, tokenizer.eos_token_id, tokenizer.pad_token_id, bos
    )
