"""EvalPlus's differential-testing semantics (stdlib only): the output check and the test loop.

    from diffucode.execution.evalplus import evalplus_check
    evalplus_check("set_eq", 0.0, inp=([1, 2],), out=[2, 1], exp=[1, 2])  # True

:func:`evalplus_check`: exact match first, then the task's special oracle, then (for floats,
or where the task sets a tolerance) an allclose comparison of values of the same type.
:func:`evalplus_groups`: "base" inputs first, then "plus" (skipped when base failed), each
group stopping at its first wrong output. The one place these live: both the judge of split
execution (``_judge_main.py``, which compares plain data decoded by wire.py) and the
bootstrap's in-process ``io`` mode (``_sandbox_main.py``, which compares the candidate's own
objects) use them.

Like wire.py, this file is prepended to those two programs (they run with ``-I -S`` and cannot
import diffucode), so it must stay self-contained, and every top-level name is prefixed so as
not to collide with theirs. The math functions it needs are bound when this file runs, before
any candidate code does: a program that later rebinds ``math.isnan`` cannot change a verdict.
"""

from math import isinf as _evalplus_isinf
from math import isnan as _evalplus_isnan
from math import pow as _evalplus_pow
from math import sqrt as _evalplus_sqrt

ORACLES = ("poly_root", "always", "or_zero", "set_eq", "not_none", "pyramid_surface_area", "digit_distance_padded")
# The oracles that read the input: a caller that runs the function in-process must pass a copy
# made before the call (the function may mutate its arguments).
ORACLES_READING_INPUT = ("poly_root", "pyramid_surface_area", "digit_distance_padded")


def _evalplus_num_close(o, e, atol):
    if type(o) is bool or type(e) is bool or not isinstance(o, (int, float)) or not isinstance(e, (int, float)):
        return o == e
    if o == e:
        return True
    if _evalplus_isnan(o) or _evalplus_isnan(e) or _evalplus_isinf(o) or _evalplus_isinf(e):
        return False
    return abs(o - e) <= atol + 1e-07 * abs(e)  # numpy.allclose with rtol=1e-7


def _evalplus_all_close(o, e, atol):
    if isinstance(e, (list, tuple)):
        if not isinstance(o, (list, tuple)) or len(o) != len(e):
            return False
        return all(_evalplus_all_close(x, y, atol) for x, y in zip(o, e))
    return _evalplus_num_close(o, e, atol)


def _evalplus_is_floats(x):
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(i, float) for i in x)
    return False


def _evalplus_poly(xs, x):
    return sum(c * _evalplus_pow(x, i) for i, c in enumerate(xs))


def _evalplus_pyramid_surface_area(base_edge, height):
    # Alternative reading of Mbpp/581: "height" is the perpendicular height.
    slant = _evalplus_sqrt((base_edge / 2) ** 2 + height ** 2)
    return round(base_edge ** 2 + 2 * base_edge * slant)


def _evalplus_digit_distance_padded(a, b):
    # Alternative reading of Mbpp/558: pad the shorter number with leading zeros.
    sa, sb = str(a), str(b)
    width = max(len(sa), len(sb))
    return sum(abs(int(x) - int(y)) for x, y in zip(sa.zfill(width), sb.zfill(width)))


def evalplus_check(oracle, atol_task, inp, out, exp):
    """Whether ``out`` (the function's output on the arguments ``inp``) matches the reference
    output ``exp`` under the task's ``oracle`` (None or one of ORACLES) and tolerance. May raise
    on an output of the wrong kind (the caller counts that as a wrong answer)."""
    try:  # the candidate's own object may have an __eq__ that raises (in-process mode)
        exact = bool(out == exp)
    except BaseException:
        exact = False
    atol = atol_task
    if oracle == "poly_root":
        return abs(_evalplus_poly(inp[0], out)) <= atol
    if oracle == "always":
        return True
    if oracle == "or_zero":
        exact = exact or out == 0
    elif oracle == "set_eq":
        exact = set(out) == set(exp)
    elif oracle == "not_none":
        exact = (out == exp) if isinstance(out, bool) else (exp == (out is not None))
    elif oracle == "pyramid_surface_area":
        exact = exact or abs(out - _evalplus_pyramid_surface_area(*inp)) <= atol
    elif oracle == "digit_distance_padded":
        exact = exact or out == _evalplus_digit_distance_padded(*inp)
    if atol == 0 and _evalplus_is_floats(exp):
        atol = 1e-6
    if not exact and atol != 0:
        if type(out) is not type(exp):
            return False
        return _evalplus_all_close(out, exp, atol)
    return exact


def evalplus_groups(inputs, time_limits, check_one, on_group):
    """Run the groups of ``inputs`` ({"base": [args, ...], "plus": [...]}): ``check_one(group, i,
    time_limit)`` returns None for a right output, else the reason (a dict); ``on_group(group,
    verdict)`` is told each group's verdict as it is decided. Returns {"ok", group: verdict}."""
    payload = {"ok": True}
    for group in ("base", "plus"):
        if group not in inputs:
            continue
        n = len(inputs[group])
        if group == "plus" and not payload.get("base", {"passed": True})["passed"]:
            verdict = {"passed": False, "n": n, "ran": 0, "skipped": "base failed"}
        else:
            verdict = {"passed": True, "n": n, "ran": 0}
            limits = time_limits.get(group) or []
            for i in range(n):
                reason = check_one(group, i, limits[i] if i < len(limits) else 1e9)
                verdict["ran"] = i + 1
                if reason is not None:
                    verdict["passed"] = False
                    verdict["error"] = dict(reason, index=i)
                    break
        payload[group] = verdict
        payload["ok"] = payload["ok"] and verdict["passed"]
        on_group(group, verdict)
    return payload
