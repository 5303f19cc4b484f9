"""EvalPlus's output check (execution/evalplus.py), on its own and inside both programs that use it:
the judge of split execution and the bootstrap's in-process ``io`` mode."""

import pytest

from diffucode.execution import SandboxConfig, io_job, pickle_inputs, run_jobs, split_io_job, wire
from diffucode.execution.evalplus import ORACLES, evalplus_check

# (oracle, atol, input, expected output, an output it accepts, an output it refuses (None: "always"
# refuses nothing))
CASES = [
    (None, 0.0, (1,), 0.3, 0.1 + 0.2, 0.31),  # floats: allclose at 1e-6
    (None, 0.0, (1,), [1, 2], [1, 2], (1, 2)),  # exact, and the type must match
    ("set_eq", 0.0, ([3, 1, 2],), [1, 2, 3], [3, 2, 1], [1, 2]),
    ("poly_root", 1e-4, ([-4, 0, 1],), 2.0, -2.0, 1.0),  # any root of x^2 - 4
    ("or_zero", 0.0, (5,), 7, 0, 6),
    ("not_none", 0.0, (5,), True, "anything", None),
    ("always", 0.0, (5,), 1, "no", None),
    ("pyramid_surface_area", 0.0, (4, 3), 33, 45, 46),  # 4^2 + 2*4*sqrt(2^2 + 3^2) = 44.8
    ("digit_distance_padded", 0.0, (123, 4), 99, 4, 5),  # 123 vs 004: 1 + 2 + 1
]



def test_every_evalplus_is_covered():
    assert {c[0] for c in CASES} - {None} == set(ORACLES)


@pytest.mark.parametrize("oracle, atol, inp, exp, good, bad", CASES)
def test_evalplus_check(oracle, atol, inp, exp, good, bad):
    assert evalplus_check(oracle, atol, inp, good, exp) is True
    assert evalplus_check(oracle, atol, inp, bad, exp) is (oracle == "always")


def _program(outputs):
    # f returns, for call number i, outputs[i]: one program answers every case in order
    return "_OUT = %r\n_I = [0]\ndef f(*a):\n    _I[0] += 1\n    return _OUT[_I[0] - 1]\n" % (list(outputs),)


@pytest.mark.parametrize("split", [False, True], ids=["in-process", "judge"])
def test_both_programs_use_the_same_check(split):
    jobs = []
    for oracle, atol, inp, exp, good, bad in CASES:
        for out in (good, bad):
            if split:
                jobs.append(split_io_job(_program([out]), "f", {"base": wire.encode([list(inp)])},
                                         {"base": wire.encode([exp])}, atol=atol, oracle=oracle))
            else:
                jobs.append(io_job(_program([out]), "f", pickle_inputs({"base": [inp]}),
                                   pickle_inputs({"base": [exp]}), atol=atol, oracle=oracle))
    rs = run_jobs(jobs, SandboxConfig(timeout=10.0, memory_mb=256, allow_unsandboxed=True), workers=1)
    got = [r.passed for r in rs]
    want = [v for c in CASES for v in (True, c[0] == "always")]
    assert got == want, [(c[0], r.status, r.reason) for c, r in zip(
        [c for c in CASES for _ in (0, 1)], rs)]


@pytest.mark.parametrize("split", [False, True], ids=["in-process", "judge"])
def test_both_programs_run_base_then_plus(split):
    # base [1, 2], plus [3, 4, 5]; f doubles, except on the inputs named in `wrong`
    inputs, expected = {"base": [(1,), (2,)], "plus": [(3,), (4,), (5,)]}, {"base": [2, 4], "plus": [6, 8, 10]}
    jobs = []
    for wrong in ((), (4,), (2,)):
        prog = "def f(x):\n    return -1 if x in %r else 2 * x\n" % (wrong,)
        if split:
            jobs.append(split_io_job(prog, "f", {g: wire.encode([list(a) for a in v]) for g, v in inputs.items()},
                                     {g: wire.encode(v) for g, v in expected.items()}))
        else:
            jobs.append(io_job(prog, "f", pickle_inputs(inputs), pickle_inputs(expected)))
    ok, plus_wrong, base_wrong = (r.details for r in run_jobs(jobs, SandboxConfig(timeout=10.0, allow_unsandboxed=True),
                                                               workers=1))
    assert ok["ok"] and ok["base"]["ran"] == 2 and ok["plus"]["ran"] == 3
    assert not plus_wrong["ok"] and plus_wrong["base"]["passed"]
    assert plus_wrong["plus"]["ran"] == 2 and plus_wrong["plus"]["error"]["index"] == 1  # stops at the first
    assert base_wrong["base"]["error"]["index"] == 1 and base_wrong["plus"]["skipped"] == "base failed"
