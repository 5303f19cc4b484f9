"""The extraction rules that turn a generation into a program (see prompts.py's docstring)."""

import ast

from diffucode.evaluation.prompts import (
    RESPONSE_PREFIX,
    chat_message,
    cut_at_stop,
    extract_base_completion,
    extract_code_block,
    solution_from_base,
    solution_from_chat,
)

PROMPT = 'def add(a, b):\n    """Add two numbers."""\n'


def test_stop_sequences():
    assert cut_at_stop("    return a + b\n\nprint(add(1, 2))") == "    return a + b\n"
    assert cut_at_stop("    return a + b\nif __name__ == '__main__':\n    pass") == "    return a + b"
    assert cut_at_stop("    return a + b\n```\nSome prose") == "    return a + b"
    assert cut_at_stop("    return a + b<|endoftext|>junk") == "    return a + b"
    assert cut_at_stop("    return a + b\nassert add(1, 2) == 3") == "    return a + b"


def test_body_continuation_keeps_helpers_and_drops_top_level_code():
    gen = ("    return _twice(a) + b\n\n\ndef _twice(x):\n    return 2 * x\n\n"
           "result = add(1, 2)\nfor i in range(3):\n    print(i)\n")
    completion = extract_base_completion(gen, inside_function=True)
    assert completion == "    return _twice(a) + b\n\n\ndef _twice(x):\n    return 2 * x\n"
    ast.parse(PROMPT + completion)  # a complete program


def test_program_completion_keeps_leading_imports_and_constants():
    gen = ("import math\nLIMIT = 10\n\ndef area(r):\n    return math.pi * r * r\n\n"
           "x = area(2)\nassert x > 0\n")
    assert extract_base_completion(gen, inside_function=False) == (
        "import math\nLIMIT = 10\n\ndef area(r):\n    return math.pi * r * r\n")


def test_comments_and_decorators_do_not_end_the_completion():
    gen = "    return a + b\n# helper below\n@staticmethod\ndef h():\n    pass\nh()\n"
    assert extract_base_completion(gen) == "    return a + b\n# helper below\n@staticmethod\ndef h():\n    pass\n"


def test_solution_from_base_is_prompt_plus_completion():
    completion, solution = solution_from_base("    return a + b\nprint(1)", PROMPT)
    assert completion == "    return a + b\n" and solution == PROMPT + completion


def test_chat_answer_is_the_code_block_opened_by_the_prefix():
    gen = "def add(a, b):\n    return a + b\n```\n\nThis function adds.\n```python\nprint(add(1, 2))\n```\n"
    completion, solution = solution_from_chat(gen, PROMPT, "add")
    assert completion == "def add(a, b):\n    return a + b\n"
    assert solution == completion  # it defines the entry point: the block is the whole program


def test_chat_block_without_closing_fence_runs_to_the_end():
    assert extract_code_block(RESPONSE_PREFIX + "def add(a, b):\n    return a + b") == "def add(a, b):\n    return a + b\n"


def test_chat_prefers_the_block_that_defines_the_entry_point():
    text = "Sure.\n```\npip install nothing\n```\nHere:\n```python\ndef add(a, b):\n    return a + b\n```\n"
    assert extract_code_block(text, "add") == "def add(a, b):\n    return a + b\n"
    assert extract_code_block(text) == "pip install nothing\n"  # without an entry point: the first block


def test_chat_without_fence_or_definition():
    assert extract_code_block("x = 1\n") == "x = 1\n"
    completion, solution = solution_from_chat("    return a + b\n```", PROMPT, "add")
    assert completion == "    return a + b\n"
    assert solution == PROMPT + "    return a + b\n"  # a bare body goes after the prompt


def test_chat_message_contains_the_problem_in_a_block():
    msg = chat_message(PROMPT)
    assert "```\n" + PROMPT.strip() + "\n```" in msg
    assert msg.startswith("Please provide a self-contained Python script")
