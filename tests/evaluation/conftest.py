"""Tiny benchmark files in each supported on-disk format, written by the tests themselves."""

import gzip
import json

import pytest

MBPP_FULL = [
    {"task_id": 11, "text": "Write a function to add two numbers.", "code": "def add_nums(a, b):\r\n    return a + b",
     "test_list": ["assert add_nums(1, 2) == 3", "assert add_nums(-1, 1) == 0"], "test_setup_code": "",
     "challenge_test_list": []},
    {"task_id": 12, "text": "Write a function to compute the square root of a number.",
     "code": "def root(x):\n    return math.sqrt(x)",  # relies on the setup code's import, as some MBPP tasks do
     "test_list": ["assert math.isclose(root(4), 2.0)", "assert root(9) == 3.0"], "test_setup_code": "import math",
     "challenge_test_list": []},
    {"task_id": 601, "text": "Write a function to double a number (a training task).", "code": "def dbl(x):\n    return 2 * x",
     "test_list": ["assert dbl(2) == 4"], "test_setup_code": "", "challenge_test_list": []},
]

MBPP_SANITIZED = [
    {"source_file": "x.py", "task_id": 17, "prompt": "Write a function to find the perimeter of a square.",
     "code": "def square_perimeter(a):\n  return 4 * a", "test_imports": [],
     "test_list": ["assert square_perimeter(10)==40", "assert square_perimeter(5)==20"]},
    {"source_file": "x.py", "task_id": 18, "prompt": "Write a function to sort the characters of a string.",
     "code": "import re\ndef sort_chars(s):\n    return ''.join(sorted(re.sub('', '', s)))",
     "test_imports": ["import re"], "test_list": ["assert sort_chars('cba') == 'abc'"]},
]

HE_PLUS = [
    {"task_id": "HumanEval/2", "entry_point": "truncate_number",
     "prompt": 'def truncate_number(number: float) -> float:\n    """Return the decimal part of a positive number."""\n',
     "canonical_solution": "    return number % 1.0\n",
     "base_input": [[3.5], [1.25]], "plus_input": [[123.456], [0.001], [7.0]], "atol": 0},
    {"task_id": "HumanEval/31", "entry_point": "is_prime",
     "prompt": 'def is_prime(n):\n    """Return true if n is prime."""\n',
     "canonical_solution": "    if n < 2:\n        return False\n    return all(n % d for d in range(2, int(n ** 0.5) + 1))\n",
     "base_input": [[2], [3], [4], [5], [97]], "plus_input": [[1], [0], [91], [7919]], "atol": 0},
    {"task_id": "HumanEval/32", "entry_point": "find_zero",
     "prompt": ("def poly(xs, x):\n    return sum(c * x ** i for i, c in enumerate(xs))\n\n\n"
                'def find_zero(xs: list):\n    """Return a zero of the polynomial with coefficients xs."""\n'),
     "canonical_solution": ("    lo, hi = -1000.0, 1000.0\n    for _ in range(200):\n        mid = (lo + hi) / 2\n"
                            "        if poly(xs, lo) * poly(xs, mid) <= 0:\n            hi = mid\n"
                            "        else:\n            lo = mid\n    return lo\n"),
     # x^3 - 6x^2 + 11x - 6 has zeros 1, 2, 3; 2x + 1 has the zero -0.5
     "base_input": [[[1.0, 2.0]]], "plus_input": [[[-6.0, 11.0, -6.0, 1.0]]], "atol": 1e-4},
]

MBPP_PLUS = [
    {"task_id": "Mbpp/2", "entry_point": "similar_elements",
     "prompt": ('"""\nWrite a function to find the shared elements from the given two lists.\n'
                "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n\"\"\"\n"),
     "canonical_solution": "def similar_elements(test_tup1, test_tup2):\n  return tuple(set(test_tup1) & set(test_tup2))\n",
     # JSON has no tuples: EvalPlus's loader turns these lists back into tuples for Mbpp/2
     "base_input": [[[3, 4, 5, 6], [5, 7, 4, 10]], [[1, 2, 3, 4], [5, 4, 3, 7]]],
     "plus_input": [[[11, 12, 14, 13], [17, 15, 14, 13]]], "atol": 0,
     "test_list": ["assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))"]},
]


def _jsonl(path, records, gz=False):
    text = "".join(json.dumps(r) + "\n" for r in records)
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def mbpp_full_file(tmp_path):
    return _jsonl(tmp_path / "mbpp.jsonl", MBPP_FULL)


@pytest.fixture
def mbpp_sanitized_file(tmp_path):
    p = tmp_path / "sanitized-mbpp.json"
    p.write_text(json.dumps(MBPP_SANITIZED))
    return p


@pytest.fixture
def he_plus_file(tmp_path):
    return _jsonl(tmp_path / "HumanEvalPlus-mini.jsonl.gz", HE_PLUS, gz=True)


@pytest.fixture
def mbpp_plus_file(tmp_path):
    return _jsonl(tmp_path / "MbppPlus-mini.jsonl", MBPP_PLUS)
