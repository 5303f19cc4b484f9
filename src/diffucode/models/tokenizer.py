"""Tokenizer helpers: the special tokens diffusion needs, robust loading, and a tiny test tokenizer.

    python -c "from diffucode.models.tokenizer import build_tiny_tokenizer; print(build_tiny_tokenizer())"
"""

from __future__ import annotations

import json
from pathlib import Path

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
MASK_TOKEN = "<|mask|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"

# A Qwen-style chat template over <|im_start|>/<|im_end|> markers.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_TINY_CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "def is_palindrome(s):\n    \"\"\"Return True if s reads the same backwards.\"\"\"\n    return s == s[::-1]\n",
    "for i in range(10):\n    if i % 2 == 0:\n        print(i)\n    else:\n        continue\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n        self.items.append(x)\n",
    "import os\nimport sys\n\nresult = [x * x for x in numbers if x > 0]\nwhile n > 1:\n    n = n // 2\n",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "assert count_vowels('hello') == 2\nassert max_of([1, 5, 3]) == 5\n# comment: sort the list\n",
    "The quick brown fox jumps over the lazy dog. Write a function that returns the sum.\n",
]


def build_tiny_tokenizer(vocab_size: int = 384):
    """A small byte-level BPE tokenizer with every special token the pipeline needs (for tests)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [EOS_TOKEN, PAD_TOKEN, MASK_TOKEN, IM_START, IM_END]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_TINY_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        mask_token=MASK_TOKEN,
        additional_special_tokens=[IM_START, IM_END],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def ensure_mask_token(tokenizer, mask_token: str | None = None) -> bool:
    """Make sure the tokenizer has a mask token; returns True when one was added."""
    if mask_token is not None and mask_token in tokenizer.get_vocab():
        tokenizer.mask_token = mask_token
        return False
    if tokenizer.mask_token is not None and tokenizer.mask_token_id is not None:
        return False
    token = mask_token or MASK_TOKEN
    existed = token in tokenizer.get_vocab()
    tokenizer.add_special_tokens({"mask_token": token})
    return not existed


# Tokenizer classes of released checkpoints that are Qwen2's byte-level BPE under another name
# (Dream / DiffuCoder ship ``DreamTokenizer`` via ``auto_map``; SDAR ships a copy of Qwen2's).
_QWEN2_BPE_CLASSES = ("DreamTokenizer", "Qwen2Tokenizer", "Qwen2TokenizerFast")


def _tokenizer_config(path: Path) -> dict:
    f = path / "tokenizer_config.json"
    if not f.is_file():
        return {}
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{f}: not valid JSON: {e}") from e


def _transformers_knows(class_name: str | None) -> bool:
    """Whether ``class_name`` is a tokenizer class of the installed transformers (no remote code)."""
    if not class_name:
        return True  # AutoTokenizer then goes by the model config / tokenizer.json
    import transformers

    return hasattr(transformers, class_name) or hasattr(transformers, class_name.removesuffix("Fast"))


def check_added_token_ids(tok, path: Path, tcfg: dict) -> None:
    """Every token of ``added_tokens_decoder`` must sit at the id the release gives it: a
    shifted mask or pad id would silently change every decode."""
    wrong = []
    for sid, entry in (tcfg.get("added_tokens_decoder") or {}).items():
        content = entry.get("content") if isinstance(entry, dict) else None
        if content is None:
            continue
        got = tok.convert_tokens_to_ids(content)
        if got != int(sid):
            wrong.append(f"{content!r} is {got}, expected {sid}")
    if wrong:
        raise ValueError(f"{path}: tokenizer ids differ from tokenizer_config.json added_tokens_decoder: "
                         + "; ".join(wrong[:5]))


def load_tokenizer(path: str | Path):
    """The checkpoint's tokenizer, never running code shipped with the checkpoint.

    - a tokenizer class the installed transformers knows (or none named): ``AutoTokenizer``
      with ``trust_remote_code=False``;
    - Dream / DiffuCoder (``DreamTokenizer`` through ``auto_map``, only ``vocab.json`` +
      ``merges.txt``): transformers' ``Qwen2Tokenizer`` built from those files, with the added
      tokens (mask, end of text, DiffuCoder's ``<|dlm_pad|>``, chat markers) at the ids of
      ``added_tokens_decoder``;
    - any other custom class with a ``tokenizer.json``: a ``PreTrainedTokenizerFast`` over it,
      special tokens from the JSON configs.

    The ids of ``added_tokens_decoder`` are checked after loading.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast, Qwen2Tokenizer

    path = Path(path)
    tcfg = _tokenizer_config(path)
    cls_name = tcfg.get("tokenizer_class")
    has_bpe_files = (path / "vocab.json").is_file() and (path / "merges.txt").is_file()
    tj = path / "tokenizer.json"
    if cls_name in ("TokenizersBackend", "PreTrainedTokenizerFast") and tj.is_file():
        # exactly tokenizer.json: AutoTokenizer would pick the model type's class (Qwen2Tokenizer for a
        # qwen2 config) and replace the file's pre-tokenizer with that class's own split rule
        tok = PreTrainedTokenizerFast.from_pretrained(str(path))
    elif _transformers_knows(cls_name):
        tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
    elif cls_name in _QWEN2_BPE_CLASSES and has_bpe_files:
        # Calling the concrete class ignores tokenizer_class/auto_map; it reads vocab.json,
        # merges.txt and tokenizer_config.json (added tokens with their ids, specials, chat template).
        tok = Qwen2Tokenizer.from_pretrained(str(path))
    elif tj.is_file():
        specials: dict = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            f = path / name
            if f.is_file():
                data = json.loads(f.read_text())
                for key in ("bos_token", "eos_token", "pad_token", "unk_token", "mask_token"):
                    value = data.get(key)
                    if isinstance(value, dict):
                        value = value.get("content")
                    if isinstance(value, str):
                        specials.setdefault(key, value)
                if "chat_template" in data and "chat_template" not in specials:
                    specials["chat_template"] = data["chat_template"]
        chat_template = specials.pop("chat_template", None)
        tok = PreTrainedTokenizerFast(tokenizer_file=str(tj), **specials)
        if chat_template:
            tok.chat_template = chat_template
    else:
        raise FileNotFoundError(
            f"{path}: tokenizer class {cls_name!r} needs the checkpoint's own code, which diffucode never runs, and "
            "there is neither a tokenizer.json nor a Qwen2-style vocab.json + merges.txt to build it from"
        )
    if not getattr(tok, "chat_template", None) and (path / "chat_template.jinja").is_file():
        tok.chat_template = (path / "chat_template.jinja").read_text()
    check_added_token_ids(tok, path, tcfg)
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok
