"""Benchmark loaders: every supported format, splits, subsets and clear errors."""

import json

import pytest

from diffucode.evaluation.tasks import DataError, load_benchmark, mbpp_plus_inputs


def test_humaneval_bundled():
    tasks = load_benchmark("humaneval")
    assert len(tasks) == 164
    t = tasks[0]
    assert (t.task_id, t.entry_point, t.kind, t.body_continuation) == ("HumanEval/0", "has_close_elements", "check", True)
    assert t.reference.startswith(t.prompt) and "def check(candidate)" in t.test
    assert t.question.startswith("Check if in given list of numbers")


def test_mbpp_full_format_and_splits(mbpp_full_file):
    test = load_benchmark("mbpp", mbpp_full_file)  # default split: test = task ids 11-510
    assert [t.task_id for t in test] == ["Mbpp/11", "Mbpp/12"]
    assert len(load_benchmark("mbpp", mbpp_full_file, split="all")) == 3
    assert [t.task_id for t in load_benchmark("mbpp", mbpp_full_file, split="train")] == ["Mbpp/601"]
    t = test[1]
    assert (t.entry_point, t.kind, t.test_setup, t.body_continuation) == ("root", "asserts", "import math", False)
    assert t.prompt == ('"""\nWrite a function to compute the square root of a number.\n'
                        'assert math.isclose(root(4), 2.0)\n"""\n')
    assert "\r" not in test[0].reference


def test_mbpp_sanitized_format(mbpp_sanitized_file):
    tasks = load_benchmark("mbpp", mbpp_sanitized_file)
    assert [t.entry_point for t in tasks] == ["square_perimeter", "sort_chars"]
    assert tasks[1].test_setup == "import re"


def test_evalplus_formats(he_plus_file, mbpp_plus_file):
    he = load_benchmark("humaneval_plus", he_plus_file)
    assert [t.task_id for t in he] == ["HumanEval/2", "HumanEval/31", "HumanEval/32"]
    assert he[0].kind == "io" and he[0].has_plus and he[0].reference == he[0].prompt + "    return number % 1.0\n"
    assert he[2].oracle == "poly_root" and he[2].atol == 1e-4
    mp = load_benchmark("mbpp_plus", mbpp_plus_file)[0]
    assert mp.oracle == "set_eq" and not mp.body_continuation
    assert mp.base_input[0] == [(3, 4, 5, 6), (5, 7, 4, 10)]  # tuples restored
    assert mp.reference.startswith("def similar_elements")


def test_mbpp_plus_type_restoration():
    assert mbpp_plus_inputs("Mbpp/124", [[1, "1+2j"]]) == [[1.0, 1 + 2j]]
    assert mbpp_plus_inputs("Mbpp/580", [[[1, [2, 3]]]]) == [(((1, (2, 3)),))]
    assert mbpp_plus_inputs("Mbpp/3", [[[1, 2]]]) == [[[1, 2]]]  # untouched


def test_synthetic_tasks():
    tasks = load_benchmark("synthetic", limit=3)
    assert len(tasks) == 3 and all(t.kind == "check" and t.test_list for t in tasks)
    assert tasks[0].task_id.startswith("synthetic/")


def test_subsets():
    assert [t.task_id for t in load_benchmark("humaneval", limit=2)] == ["HumanEval/0", "HumanEval/1"]
    ids = ["HumanEval/5", "HumanEval/3"]
    assert [t.task_id for t in load_benchmark("humaneval", task_ids=ids)] == ids
    with pytest.raises(DataError, match="unknown task id"):
        load_benchmark("humaneval", task_ids=["HumanEval/999"])


def test_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_benchmark("mbpp", tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": 11, "text": "t", "code": "", "test_list": ["assert 1"]}) + "\n{oops\n")
    with pytest.raises(DataError, match=r"bad.jsonl, line 2"):
        load_benchmark("mbpp", bad)
    incomplete = tmp_path / "inc.jsonl"
    incomplete.write_text(json.dumps({"task_id": "HumanEval/0", "prompt": "def f():\n"}) + "\n")
    with pytest.raises(DataError, match="missing field.*canonical_solution"):
        load_benchmark("humaneval_plus", incomplete)
    with pytest.raises(DataError, match="--benchmark must be one of"):
        load_benchmark("nope")
    with pytest.raises(DataError, match="--split"):
        load_benchmark("mbpp", tmp_path / "missing.jsonl", split="dev")
