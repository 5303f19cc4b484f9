"""Synthetic task generator: tasks pass their own tests, near-miss solutions fail them,
generation is deterministic, and the test split holds families/constants never seen in train."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections import Counter

import pytest

from diffucode.data.synthetic import (
    DEFAULT_SIZES, FAMILIES, full_function, generate_tasks, held_out_families, load_split, render_body,
    sft_examples, split_combos, split_summary,
)
from diffucode.data.synthetic._core import combo_key

# Runs each program in a fresh namespace in ONE child process (a process per program would blow
# the time budget); a per-program timer stops runaway loops. Prints one bool per program.
_RUNNER = textwrap.dedent(
    """
    import json, signal, sys
    def _alarm(*_):
        raise TimeoutError
    signal.signal(signal.SIGALRM, _alarm)
    results = []
    for src in json.load(sys.stdin):
        signal.setitimer(signal.ITIMER_REAL, 2.0)
        try:
            exec(compile(src, "<task>", "exec"), {"__name__": "__task__"})
            ok = True
        except BaseException:
            ok = False
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        results.append(ok)
    print(json.dumps(results))
    """
)


def run_programs(programs: list[str]) -> list[bool]:
    proc = subprocess.run([sys.executable, "-c", _RUNNER], input=json.dumps(programs), capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def humaneval_program(task: dict, body: str) -> str:
    return task["prompt"] + body + "\n" + task["test"] + f"\ncheck({task['entry_point']})\n"


def mbpp_program(task: dict, body: str) -> str:
    return task["prompt"] + body + "\n" + "\n".join(task["test_list"]) + "\n"


@pytest.fixture(scope="module")
def test_tasks():
    return generate_tasks("test", with_meta=True)


@pytest.fixture(scope="module")
def train_tasks():
    return generate_tasks("train", 2000, seed=0, with_meta=True)


def test_family_catalogue():
    assert len(FAMILIES) >= 30
    cats = Counter(f.category for f in FAMILIES.values())
    assert set(cats) == {"arithmetic", "conditionals", "strings", "lists", "dicts", "loops", "recursion"}
    held = held_out_families()
    assert 4 <= len(held) <= 8
    assert len({FAMILIES[h].category for h in held}) >= 4  # held-out families span several kinds of task
    for f in FAMILIES.values():
        assert len(f.combos) >= 3, f.name
        assert len({combo_key(c) for c in f.combos}) == len(f.combos), f"{f.name}: duplicate combos"
        for c in f.combos:
            # every combination offers several names and phrasings
            assert len(f.pick("func_names", c)) >= 3 and len(f.pick("phrasings", c)) >= 2, f.name
            assert len(f.pick("arg_names", c)) >= 3, f.name
        tr, te = split_combos(f)
        if f.held_out:
            assert not tr and len(te) == len(f.combos)
        else:
            assert tr and te and len(tr) + len(te) == len(f.combos), f.name
    summary = split_summary()
    assert summary["families_per_split"] == {"train": len(FAMILIES) - len(held), "test": len(FAMILIES)}


def test_task_format(test_tasks):
    assert len(test_tasks) == DEFAULT_SIZES["test"] == 200
    for t in test_tasks:
        assert set(t) == {"task_id", "prompt", "canonical_solution", "test", "entry_point", "test_list", "family",
                          "question", "meta"}
        fn = t["entry_point"]
        assert re.fullmatch(rf"synthetic/{t['family']}/\d+", t["task_id"])
        assert t["prompt"].startswith(f"def {fn}(") and t["prompt"].endswith('    """\n')
        assert f">>> {fn}(" in t["prompt"]
        assert t["canonical_solution"].startswith("    ") and t["canonical_solution"].endswith("\n")
        assert t["test"].startswith("def check(candidate):\n")
        assert 3 <= len(t["test_list"]) <= 5
        assert all(a.startswith(f"assert {fn}(") for a in t["test_list"])
        assert t["test"].count("assert candidate(") == len(t["test_list"])
        assert f"`{fn}(" in t["question"]
        # small programs for a tiny model: ~200 tokens of a 4k BPE is ~600 characters of this code
        assert len(t["prompt"] + t["canonical_solution"]) < 600, t["task_id"]
    assert len({t["task_id"] for t in test_tasks}) == len(test_tasks)


def _check_execution(tasks):
    programs, kinds = [], []
    for t in tasks:
        fam = FAMILIES[t["family"]]
        programs += [humaneval_program(t, t["canonical_solution"]), mbpp_program(t, t["canonical_solution"]),
                     humaneval_program(t, "    return None\n")]
        kinds += [("canonical", t["task_id"]), ("canonical_mbpp", t["task_id"]), ("none", t["task_id"])]
        for nb in fam.neighbours(t["meta"]["params"]):
            programs.append(humaneval_program(t, render_body(fam, nb, t["meta"])))
            kinds.append((f"neighbour {combo_key(nb)}", t["task_id"]))
    results = run_programs(programs)
    bad = [(kind, tid) for (kind, tid), ok in zip(kinds, results) if ok != kind.startswith("canonical")]
    assert not bad, bad[:20]
    return len(programs)


def test_canonical_solutions_pass_and_near_misses_fail(test_tasks, train_tasks):
    """Every task: the canonical body passes both test forms; `return None` and the body for every
    neighbouring constant combination (e.g. `x > 3` vs `x >= 3`, `k=2` vs `k=3`) fail."""
    # 300 train tasks cover every seen family (balanced draws) without costing much time
    tasks = test_tasks + train_tasks[:300]
    assert {t["family"] for t in tasks} == set(FAMILIES)
    n = _check_execution(tasks)
    assert n > 4 * len(tasks)


def test_deterministic_and_prefix_stable():
    a = load_split("test", 40, seed=3)
    assert a == load_split("test", 40, seed=3)
    assert a[:25] == load_split("test", 25, seed=3)
    assert a != load_split("test", 40, seed=4)
    tr = load_split("train", 60, seed=0)
    assert tr[:30] == load_split("train", 30, seed=0)
    # A fresh interpreter with another string-hash seed produces the same tasks.
    code = ("import json; from diffucode.data.synthetic import load_split; "
            "print(json.dumps([load_split('test', 40, seed=3), load_split('train', 60)]))")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [a, tr]


def test_test_split_is_held_out(test_tasks, train_tasks):
    held = set(held_out_families())
    train_more = generate_tasks("train", 500, seed=1, with_meta=True)
    train_all = train_tasks + train_more
    train_fams = {t["family"] for t in train_all}
    assert not train_fams & held  # held-out families never appear in train
    assert train_fams == set(FAMILIES) - held
    # every test task of a seen family uses a constant combination absent from train
    train_combos = {(t["family"], combo_key(t["meta"]["params"])) for t in train_all}
    test_seen = [t for t in test_tasks if t["family"] not in held]
    assert test_seen and all((t["family"], combo_key(t["meta"]["params"])) not in train_combos for t in test_seen)
    # ... and the split of combinations is exactly the one split_combos declares
    for t in test_seen:
        assert t["meta"]["params"] in split_combos(FAMILIES[t["family"]])[1]
    for t in train_all:
        assert t["meta"]["params"] in split_combos(FAMILIES[t["family"]])[0]
    # both kinds of held-out task are well represented (2 in 5 from held-out families)
    n_held = sum(t["family"] in held for t in test_tasks)
    assert n_held == 80 and {t["family"] for t in test_tasks if t["family"] in held} == held
    # no test program text appears in train
    train_text = {t["prompt"] + t["canonical_solution"] for t in train_all}
    train_prompts = {t["prompt"] for t in train_all}
    train_code = {full_function(t, docstring=False) for t in train_all}
    for t in test_tasks:
        assert t["prompt"] + t["canonical_solution"] not in train_text
        assert t["prompt"] not in train_prompts
        assert full_function(t, docstring=False) not in train_code
    # tasks within one generated split are distinct
    assert len({t["prompt"] + t["canonical_solution"] for t in train_tasks}) == len(train_tasks)
    assert len({t["prompt"] + t["canonical_solution"] for t in test_tasks}) == len(test_tasks)


def test_sft_examples():
    comp = sft_examples("train", 6, seed=0, style="completion")
    inst = sft_examples("train", 6, seed=0, style="instruct")
    mixed = sft_examples("train", 6, seed=0)
    tasks = load_split("train", 6, seed=0)
    for t, c, i in zip(tasks, comp, inst):
        assert c == {"prompt": t["prompt"], "response": t["canonical_solution"]}
        assert i["prompt"] == t["question"]
        assert i["response"].startswith(f"```python\ndef {t['entry_point']}(") and i["response"].endswith("\n```")
        code = i["response"][len("```python\n"):-len("```")]
        assert code == full_function(t, docstring=False)
    assert mixed[0] == comp[0] and mixed[1] == inst[1]
    with pytest.raises(ValueError, match="style"):
        sft_examples("train", 2, style="chat")
    with pytest.raises(ValueError, match="split"):
        load_split("valid")


def test_tasks_run_in_the_sandbox():
    """The evaluator's sandbox (diffucode.execution) agrees on a few tasks, in both test forms."""
    execution = pytest.importorskip("diffucode.execution")
    if not hasattr(execution, "run_check"):
        pytest.skip("diffucode.execution has no run_check yet")
    for t in load_split("test", 4, seed=1):
        program = t["prompt"] + t["canonical_solution"]
        assert execution.run_check(program, t["test"], t["entry_point"], timeout=20).status == "passed"
        assert execution.run_asserts(program, t["test_list"], timeout=20).fraction == 1.0
        wrong = t["prompt"] + "    return None\n"
        assert execution.run_check(wrong, t["test"], t["entry_point"], timeout=20).status != "passed"
