"""Prompts for base and instruct models, and the rules that turn a generation into a program.

    python -c "from diffucode.evaluation.prompts import extract_base_completion as f; print(f('    return 1\\nprint(f())'))"

Base models (completion). The prompt is the task's code prompt (HumanEval: signature and
docstring; MBPP: a docstring with the description and one example assert). The solution
program is ``prompt + completion``, where the completion is the generation cut by two rules:

1. at the first stop sequence (:data:`STOP_SEQUENCES`: a markdown fence, ``if __name__``,
   a top-level ``print(`` or ``assert``, a new top-level docstring, doctest ``>>>``, and
   end-of-text markers that survived decoding);
2. at the first top-level line (column 0) that does not belong to a definition, i.e. that
   is not blank, a comment, a decorator, ``def``/``async def``/``class``, or an import. When
   the prompt stops before the function (MBPP), rule 2 starts after the first definition, so
   imports and constants written before it are kept. Helper functions after the answer are
   kept; usage examples and tests a diffusion model writes into the rest of its window are not.

Instruct models (``chat=True``). The user message asks for a self-contained script in a
markdown code block (:func:`chat_message`), the tokenizer's chat template wraps it, and the
assistant turn is started with :data:`RESPONSE_PREFIX`, which opens a ```` ```python ```` fence.
The answer is the first fenced code block of ``RESPONSE_PREFIX + generation`` (up to its
closing fence, or the end of the text if it never closes); if several blocks exist and a
later one defines the entry point while the first does not, that one. Without any fence the
whole text is the code. If the code does not define the entry point it is taken as a
function body and appended to the prompt (the base-model layout).
"""

from __future__ import annotations

import re

STOP_SEQUENCES = (
    "\n```",
    "\nif __name__",
    "\nprint(",
    "\nassert ",
    "\nassert(",
    '\n"""',
    "\n'''",
    "\n>>>",
    "<|endoftext|>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "</s>",
)
INSTRUCTION = "Please provide a self-contained Python script that solves the following problem in a markdown code block:"
RESPONSE_PREFIX = ("Below is a Python script with a self-contained function that solves the problem and passes "
                   "corresponding tests:\n```python\n")
_DEFINITION_START = ("def ", "async def ", "class ", "@", "import ", "from ", "#")
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:\n```|\Z)", re.S)


def cut_at_stop(text: str, stops: tuple[str, ...] | list[str] = STOP_SEQUENCES) -> str:
    """Rule 1: the text before the earliest stop sequence."""
    cut = len(text)
    for s in stops:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


def cut_at_top_level(text: str, inside_function: bool = True) -> str:
    """Rule 2: drop everything from the first top-level line that is not part of a definition."""
    lines = text.split("\n")
    seen_def = inside_function
    for i, line in enumerate(lines):
        if i == 0 and inside_function:
            continue  # the first line continues the prompt's last line
        if not line.strip() or line[0] in " \t":
            continue
        if line.startswith(_DEFINITION_START):
            if line.startswith(("def ", "async def ", "class ", "@")):
                seen_def = True
            continue
        if seen_def:
            return "\n".join(lines[:i])
    return text


def extract_base_completion(text: str, inside_function: bool = True,
                            stops: tuple[str, ...] | list[str] = STOP_SEQUENCES) -> str:
    """A base model's generation -> the completion appended to the prompt (rules 1 and 2)."""
    return cut_at_top_level(cut_at_stop(text, stops), inside_function).rstrip() + "\n"


def chat_message(task_prompt: str, question: str = "") -> str:
    """The user turn for an instruct model (EvalPlus's wording, the task's code prompt in a block)."""
    problem = task_prompt.strip()
    head = f"{question.strip()}\n\n" if question and question.strip() not in problem else ""
    return f"{head}{INSTRUCTION}\n```\n{problem}\n```\n"


def extract_code_block(text: str, entry_point: str | None = None) -> str:
    """The first fenced code block of ``text`` (see the module docstring), or all of it."""
    blocks = [m.group(2) for m in _FENCE.finditer(text)]
    if not blocks:
        return text.strip("\n") + "\n"
    chosen = blocks[0]
    if entry_point and not _defines(chosen, entry_point):
        chosen = next((b for b in blocks[1:] if _defines(b, entry_point)), chosen)
    return chosen.rstrip() + "\n"


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.M) is not None


def solution_from_chat(generation: str, prompt: str, entry_point: str,
                       response_prefix: str = RESPONSE_PREFIX) -> tuple[str, str]:
    """(completion, solution program) from an instruct model's generation."""
    code = extract_code_block(response_prefix + generation, entry_point)
    if _defines(code, entry_point):
        return code, code
    return code, prompt + code


def solution_from_base(generation: str, prompt: str, inside_function: bool = True) -> tuple[str, str]:
    """(completion, solution program) from a base model's generation."""
    completion = extract_base_completion(generation, inside_function)
    return completion, prompt + completion
