"""Rewards: TRL-style signatures, the format rules, code reward only for valid answers, and no
code reward for reward-hacking programs (real sandbox)."""
import pytest

from diffucode.rl.rewards import code_reward, extract_code, format_reward, format_score

GOOD = "Here is the code:\n```python\ndef add(a, b):\n    return a + b\n```\n"
TESTS = ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(0, 0) == 1"]


@pytest.mark.parametrize("text,score", [
    (GOOD, 1.0),
    ("```python\nx = 1\n```", 1.0),  # no trailing newline after the fence (cut at EOS)
    ("```python\ndef f(:\n```\n", 0.5),  # fenced but does not parse
    ("def add(a, b):\n    return a + b\n", 0.0),  # no fence
    ("```python\nx = 1\n```\n```python\ny = 2\n```\n", 0.0),  # two blocks
    ("```python\nx = 1\n```\nand some text after", 0.0),  # text after the block
    ("```\nx = 1\n```\n", 0.0),  # not tagged python
])
def test_format_score(text, score):
    assert format_score(text) == score


def test_trl_signature_and_chat_completions():
    chat = [[{"role": "assistant", "content": GOOD}], [{"role": "assistant", "content": "no code"}]]
    assert format_reward(prompts=["p", "p"], completions=chat) == [1.0, 0.0]
    assert extract_code(GOOD) == "def add(a, b):\n    return a + b\n"


def test_code_reward_only_for_valid_format_with_a_fake_runner():
    calls = []

    def runner(program, asserts, timeout):
        calls.append(program)
        return 2 / 3

    comps = [GOOD, "```python\ndef add(:\n```", "no code", GOOD]
    tests = [TESTS, TESTS, TESTS, []]
    out = code_reward(["p"] * 4, comps, test_cases=tests, runner=runner, id=["a"] * 4)
    # valid -> runner's fraction; unparseable / unformatted -> 0 without running; no asserts -> None
    assert out == [pytest.approx(2 / 3), 0.0, 0.0, None]
    assert calls == ["def add(a, b):\n    return a + b\n"]


def test_code_reward_accepts_test_list_and_checks_lengths():
    assert code_reward(None, ["x"], test_list=[TESTS], runner=lambda *a: 1.0) == [0.0]
    with pytest.raises(ValueError, match="test_cases"):
        code_reward(None, ["x"])
    with pytest.raises(ValueError, match="1 completions but 2"):
        code_reward(None, ["x"], test_cases=[TESTS, TESTS])


def _wrap(code: str) -> str:
    return f"```python\n{code}```\n"


HACKS = {
    "sys_exit": "import sys\ndef add(a, b):\n    return 0\nsys.exit(0)\n",
    "os_exit": "import os\ndef add(a, b):\n    return 0\nos._exit(0)\n",
    "raise_systemexit": "def add(a, b):\n    return 0\nraise SystemExit\n",
    "exit_inside_function": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "atexit_exit": "import atexit, os\natexit.register(lambda: os._exit(0))\ndef add(a, b):\n    return 0\n",
    "fake_report_then_exit": "print('passed ' * 50)\nimport sys\nsys.stderr.write('done {}\\n')\ndef add(a, b):\n    return 0\nimport os\nos._exit(0)\n",
    # rebinding a builtin the asserts use: abs() would return 1 and make the first assert pass
    "tamper_builtins": "import builtins\nbuiltins.abs = lambda x: 1\ndef add(a, b):\n    return 0\n",
}
HACK_TESTS = TESTS + ["assert abs(add(-1, 0)) == 1"]


@pytest.fixture(scope="module")
def sandbox():
    return pytest.importorskip("diffucode.execution.checks")


def test_real_sandbox_scores_honest_program(sandbox):
    honest = _wrap("def add(a, b):\n    return a + b\n")
    assert code_reward(None, [honest], test_cases=[TESTS], timeout=10) == [pytest.approx(2 / 3)]


def test_reward_hacking_programs_get_no_code_reward(sandbox):
    names = list(HACKS)
    comps = [_wrap(HACKS[n]) for n in names]
    assert all(format_score(c) == 1.0 for c in comps)  # they all pass the format check
    out = code_reward(None, comps, test_cases=[HACK_TESTS] * len(comps), timeout=10, max_workers=2)
    assert dict(zip(names, out)) == {n: 0.0 for n in names}


def test_always_equal_object_gets_no_reward(sandbox):
    # Closed by split execution: the asserts run in the judge, and only plain data comes back
    # from the candidate's process (an object with a rigged __eq__ cannot be sent).
    code = "class _Yes:\n    def __eq__(self, other):\n        return True\ndef add(a, b):\n    return _Yes()\n"
    assert code_reward(None, [_wrap(code)], test_cases=[TESTS], timeout=10) == [0.0]
