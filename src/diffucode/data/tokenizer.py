"""Train a small byte-level BPE tokenizer for code and save it as a normal Hugging Face tokenizer.

    python -m diffucode.data.corpus --out /tmp/dc_data --vocab-size 4096   # corpus + tokenizer
    python -c "from transformers import AutoTokenizer; t = AutoTokenizer.from_pretrained('/tmp/dc_data/tokenizer'); print(t.mask_token)"

Byte-level BPE (``tokenizers``): every byte is in the base alphabet, there is no normalizer and
no clean-up of spaces on decode, so ``decode(encode(code)) == code`` for any text, indentation
and trailing whitespace included. The pre-tokenizer is the Qwen2 split pattern (single digits,
runs of spaces kept apart from the following word so indentation becomes its own tokens).

Special tokens (ids 0-4, in this order): ``<|endoftext|>`` (eos), ``<|pad|>`` (pad), ``<|mask|>``
(the diffusion mask, ``tokenizer.mask_token``), ``<|im_start|>`` / ``<|im_end|>`` (chat turns).
The chat template is Qwen-like: ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` per message, and
``<|im_start|>assistant\\n`` with ``add_generation_prompt=True``.

Training is deterministic: the trainer sees the texts in the order given, and the ``tokenizers``
BPE trainer breaks ties between equally frequent pairs by the pair itself, not by hash order
(checked across processes in tests/data/test_corpus_tokenizer.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
MASK_TOKEN = "<|mask|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN, MASK_TOKEN, IM_START, IM_END)

# Qwen2's pre-tokenizer pattern: contractions, letters (with one leading non-letter), single
# digits, punctuation runs, newlines with their leading spaces, then whitespace runs that are
# not followed by a non-space (so "    return" splits into "   " + " return").
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def iter_texts(source: str | os.PathLike | Iterable) -> Iterator[str]:
    """Texts from a path (``.jsonl`` with a ``"text"`` field per line, or a plain text file), a
    list of paths, or an iterable of strings."""
    if isinstance(source, (str, os.PathLike)):
        source = [source]
    for item in source:
        if isinstance(item, os.PathLike) or (isinstance(item, str) and _is_path(item)):
            path = Path(item)
            if path.suffix == ".jsonl":
                with path.open(encoding="utf-8") as f:
                    for lineno, line in enumerate(f, 1):
                        if not line.strip():
                            continue
                        try:
                            yield json.loads(line)["text"]
                        except (json.JSONDecodeError, KeyError, TypeError) as e:
                            raise ValueError(
                                f"{path}:{lineno}: expected a JSON object with a 'text' field ({e})") from e
            else:
                yield path.read_text(encoding="utf-8")
        elif isinstance(item, str):
            yield item
        else:
            raise TypeError(f"expected a path or a string, got {type(item).__name__}")


def _is_path(s: str) -> bool:
    # a short single-line string naming an existing file is a path; anything else is text
    return "\n" not in s and len(s) < 4096 and Path(s).is_file()


def build_bpe(vocab_size: int):
    """An untrained byte-level BPE ``tokenizers.Tokenizer`` and its trainer."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    return tok, trainer


def wrap(tok) -> "PreTrainedTokenizerFast":  # noqa: F821
    """Wrap a trained ``tokenizers.Tokenizer`` as a transformers fast tokenizer with our specials."""
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        mask_token=MASK_TOKEN,
        additional_special_tokens=[IM_START, IM_END],
        clean_up_tokenization_spaces=False,  # would turn "x ." into "x." and break code roundtrips
        model_max_length=1_000_000,
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf


def train_tokenizer(texts: str | os.PathLike | Iterable, vocab_size: int = 4096,
                    out_dir: str | os.PathLike | None = None) -> "PreTrainedTokenizerFast":  # noqa: F821
    """Train byte-level BPE on ``texts`` (see :func:`iter_texts`) and return a
    ``PreTrainedTokenizerFast``; if ``out_dir`` is given, ``save_pretrained`` it there so that
    ``AutoTokenizer.from_pretrained(out_dir)`` works offline."""
    base = 256 + len(SPECIAL_TOKENS)
    if vocab_size < base:
        raise ValueError(f"vocab_size must be at least {base} (256 bytes + {len(SPECIAL_TOKENS)} special tokens), "
                         f"got {vocab_size}")
    tok, trainer = build_bpe(vocab_size)
    tok.train_from_iterator(iter_texts(texts), trainer=trainer)
    for i, s in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(s) == i, f"special token {s} should have id {i}"
    hf = wrap(tok)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        hf.save_pretrained(str(out_dir))
    return hf
