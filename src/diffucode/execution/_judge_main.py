"""The judge: runs a task's *tests* in a process that never executes candidate code (stdlib only).

It is never imported by the parent. ``split.py`` starts one judge per worker with

    python -I -S -B -X utf8 -c <stub>

whose stub reads this code (with ``wire.py`` prepended) as one marshal record from stdin and
runs it. The judge then serves jobs, one at a time, for as long as its worker lives. Frames
on both pipes are ``<4-byte big-endian length><1-byte kind><payload>``:

parent -> judge: ``J`` a job (marshal of a dict: trusted data only, built by the parent),
  and, to each call the judge made, one reply: ``V`` (wire [value, args after the call]),
  ``E`` (wire {"type", "message"}: the function raised), ``T`` (the call ran out of time),
  ``D`` (wire reason: the candidate process died or broke the protocol), ``L`` (wire
  {"type", "message"}: the program failed to load), ``X`` (abort: the job's time is up).
judge -> parent: ``C`` a call (8-byte double time limit + wire [name, [args], mirror]),
  ``P`` a partial verdict, ``D`` the verdict (both wire dicts).

The tests see the function under test as a proxy: calling it encodes the arguments (plain
data only, see wire.py), the parent forwards them to the candidate's process, and what comes
back is decoded into plain data. Nothing the candidate does can reach this process except
those values, so frame walks, ``gc``, ``sys.settrace``, patched modules and builtins, objects
with a rigged ``__eq__`` and early exits in the candidate cannot touch the verdict. A
candidate that dies, is killed, or times out makes the call raise a BaseException the tests
cannot swallow with ``except Exception``.
"""


def _judge_main():
    import builtins
    import marshal
    import os
    import struct
    import sys
    import time

    stdin = sys.stdin.buffer  # the stub read the code through this buffer: keep using it
    out_fd = os.dup(1)
    # The tests' own prints must not reach the protocol pipe.
    os.dup2(2, 1)
    try:  # a same-uid process must not be able to ptrace this one or read its memory
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0
        ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG = SIGKILL
    except Exception:
        pass
    _enc, _dec = wire_encode, wire_decode  # noqa: F821 - from wire.py, prepended

    def read_exact(n):
        data = stdin.read(n)
        if data is None or len(data) < n:
            os._exit(0)  # the parent is gone
        return data

    def recv():
        head = read_exact(5)
        return head[4:5], read_exact(int.from_bytes(head[:4], "big"))

    def send(kind, payload):
        view = memoryview(len(payload).to_bytes(4, "big") + kind + payload)
        while len(view):
            view = view[os.write(out_fd, view):]

    class CandidateFailure(BaseException):
        """The call produced no value: not catchable by the tests' ``except Exception``."""

    class CallTimeout(CandidateFailure):
        pass

    class Aborted(CandidateFailure):
        pass

    class Died(CandidateFailure):
        pass

    class LoadFailed(CandidateFailure):
        def __init__(self, err):
            super().__init__(err.get("message", ""))
            self.err = err

    class NotSplittable(BaseException):
        """The tests passed something that is not plain data: the task needs in-process mode."""

    class CandidateError(Exception):
        pass

    # Exceptions a test may legitimately expect from the function; anything else (StopIteration
    # above all: it would end a map() early) arrives as CandidateError.
    mapped = {n: getattr(builtins, n) for n in (
        "ValueError", "TypeError", "KeyError", "IndexError", "ZeroDivisionError", "AttributeError", "NameError",
        "NotImplementedError", "RuntimeError", "OverflowError", "AssertionError", "RecursionError", "ArithmeticError",
        "LookupError", "UnboundLocalError", "MemoryError", "UnicodeError", "Exception")}

    def describe(exc):
        if isinstance(exc, CallTimeout):
            return {"type": "Timeout", "message": "the function did not return in time"}
        if isinstance(exc, Aborted):
            return {"type": "Timeout", "message": "the task's time ran out"}
        if isinstance(exc, LoadFailed):
            return exc.err
        msg = str(exc)
        if len(msg) > 300:
            msg = msg[:300] + "..."
        return {"type": type(exc).__name__, "message": msg}

    cur = {"limit": lambda: 1e9, "mirror": False}

    def mirror_into(args, after):
        # The function mutated its (list / dict / set) arguments: do the same to the tests' objects.
        if type(after) is not list or len(after) != len(args):
            return
        for a, b in zip(args, after):
            if type(a) is list and type(b) is list and a != b:
                a[:] = b
            elif type(a) is dict and type(b) is dict and a != b:
                a.clear()
                a.update(b)
            elif type(a) is set and type(b) is set and a != b:
                a.clear()
                a.update(b)

    def call(name, args):
        mirror = cur["mirror"]
        try:
            blob = _enc([name, list(args), mirror])
        except WireError as e:  # noqa: F821
            raise NotSplittable("argument of %s() is not plain data (%s)" % (name, e)) from None
        send(b"C", struct.pack(">d", float(cur["limit"]())) + blob)
        kind, payload = recv()
        if kind == b"V":
            try:
                reply = _dec(payload)
            except WireError as e:  # noqa: F821
                raise Died("undecodable reply: %s" % e) from None
            if type(reply) is not list or len(reply) != 2:
                raise Died("malformed reply")
            if mirror and reply[1] is not None:
                mirror_into(args, reply[1])
            return reply[0]
        if kind == b"E":
            try:
                err = _dec(payload)
                etype, msg = err["type"], err["message"]
                if type(etype) is not str or type(msg) is not str:
                    raise ValueError
            except Exception:
                raise Died("malformed exception reply") from None
            cls = mapped.get(etype)
            if cls is None:
                raise CandidateError("%s: %s" % (etype, msg[:300]))
            raise cls(msg[:300])
        if kind == b"T":
            raise CallTimeout()
        if kind == b"L":
            try:
                err = _dec(payload)
            except Exception:
                err = {"type": "Error", "message": "the program failed to load"}
            raise LoadFailed(err)
        if kind == b"X":
            raise Aborted()
        try:
            reason = _dec(payload)
        except Exception:
            reason = "the candidate process is gone"
        raise Died(reason if type(reason) is str else "the candidate process is gone")

    class Candidate:
        """What the tests call instead of the function: forwards plain data, returns plain data."""

        __slots__ = ("__name__",)

        def __init__(self, name):
            self.__name__ = name

        def __call__(self, *args, **kwargs):
            if kwargs:
                raise NotSplittable("keyword arguments are not forwarded")
            return call(self.__name__, args)

        def __repr__(self):
            return "<candidate %s>" % self.__name__

    def names_in(code):
        names = set(code.co_names)
        for c in code.co_consts:
            if type(c) is type(code):
                names |= names_in(c)
        return names

    # ---- kinds --------------------------------------------------------------------------

    def run_check(job):
        entry = job["entry_point"]
        ns = {"__name__": "__judge__", "__builtins__": builtins}
        if job.get("prelude"):
            # The task's own prompt (trusted): helpers the tests use (poly, encode_cyclic, ...).
            try:
                exec(compile(job["prelude"], "<prompt>", "exec"), ns)
            except Exception:
                pass
        ns[entry] = Candidate(entry)
        try:
            exec(compile(job["test"], "<test>", "exec"), ns)
            exec(compile("check(%s)" % entry, "<check>", "exec"), ns)
        except LoadFailed as e:
            return {"ok": False, "phase": "program", "error": e.err}
        except BaseException as e:
            return {"ok": False, "phase": "test", "error": describe(e)}
        return {"ok": True}

    def run_asserts(job):
        asserts = job["asserts"]
        n = len(asserts)
        t0 = time.perf_counter()
        budget = float(job.get("budget") or 1e9)
        per_assert = float(job.get("per_assert_timeout") or budget)
        ns = {"__name__": "__judge__", "__builtins__": builtins}
        if job.get("setup"):
            try:
                exec(compile(job["setup"], "<setup>", "exec"), ns)
            except BaseException as e:
                return {"ok": False, "phase": "setup", "error": describe(e), "results": [False] * n, "passed": 0,
                        "total": n, "timeouts": 0}
        entry = job.get("entry_point")
        results, first_error, timeouts = [], None, 0
        for i, a in enumerate(asserts):
            left = budget - (time.perf_counter() - t0)
            if left <= 0:
                results.append(False)
                timeouts += 1
                continue
            cur["limit"] = lambda: max(0.001, min(per_assert, budget - (time.perf_counter() - t0)))
            try:
                code = compile(a, "<assert %d>" % i, "exec")
                g = dict(ns)
                for name in names_in(code):
                    if name == entry or (name not in g and not hasattr(builtins, name)):
                        g[name] = Candidate(name)
                exec(code, g)
                results.append(True)
            except LoadFailed as e:
                return {"ok": False, "phase": "program", "error": e.err, "results": [False] * n, "passed": 0,
                        "total": n, "timeouts": 0}
            except BaseException as e:
                results.append(False)
                if isinstance(e, (CallTimeout, Aborted)):
                    timeouts += 1
                if first_error is None:
                    first_error = dict(describe(e), index=i)
                if isinstance(e, (Aborted, NotSplittable)):
                    results += [False] * (n - len(results))
                    break
        passed = sum(1 for r in results if r)
        return {"ok": passed == n, "phase": "test", "error": first_error, "results": results, "passed": passed,
                "total": n, "timeouts": timeouts}

    def run_io(job):
        inputs = {g: _dec(b) for g, b in job["inputs"].items()}
        expected = {g: _dec(b) for g, b in job["expected"].items()}
        entry, oracle = job["entry_point"], job.get("oracle")
        atol_task = float(job.get("atol") or 0.0)
        time_limits = job.get("time_limits") or {}
        proxy = Candidate(entry)
        cur["mirror"] = False  # the inputs are the judge's own copies: nothing to mirror
        def check_one(group, i, limit):
            cur["limit"] = lambda: limit
            inp = inputs[group][i]
            try:
                ok = evalplus_check(oracle, atol_task, inp, proxy(*inp), expected[group][i])  # noqa: F821 - evalplus.py
            except LoadFailed:
                raise
            except BaseException as e:
                return describe(e)
            return None if ok else {"type": "WrongOutput", "message": "input %d: wrong output" % i}

        try:
            return evalplus_groups(inputs, time_limits, check_one,  # noqa: F821 - evalplus.py, prepended
                                   lambda group, verdict: send(b"P", _enc({group: verdict})))
        except LoadFailed as e:
            return {"ok": False, "phase": "program", "error": e.err}

    def run_outputs(job):
        # The reference solution's outputs, as wire bytes per group (and seconds per input).
        inputs = {g: _dec(b) for g, b in job["inputs"].items()}
        proxy = Candidate(job["entry_point"])
        cur["mirror"] = False
        payload = {"ok": True}
        for group in ("base", "plus"):
            if group not in inputs:
                continue
            outs, times = [], []
            for i, inp in enumerate(inputs[group]):
                try:
                    t0 = time.perf_counter()
                    outs.append(proxy(*inp))
                    times.append(time.perf_counter() - t0)
                except LoadFailed as e:
                    return {"ok": False, "phase": "program", "error": e.err}
                except BaseException as e:
                    return {"ok": False, "phase": "test", "error": dict(describe(e), group=group, index=i)}
            payload[group] = _enc(outs)
            payload[group + "_time"] = times
        return payload

    kinds = {"check": run_check, "asserts": run_asserts, "io": run_io, "outputs": run_outputs}
    while True:
        kind, payload = recv()
        if kind != b"J":
            os._exit(3)  # out of step with the parent: it will start a new judge
        job = marshal.loads(payload)
        cur["limit"], cur["mirror"] = (lambda: float(job.get("budget") or 1e9)), bool(job.get("mirror", False))
        try:
            verdict = kinds[job["kind"]](job)
        except BaseException as e:  # a bug here, or undecodable job data: the parent says "error"
            verdict = {"ok": False, "phase": "judge", "error": describe(e)}
        try:
            blob = _enc(verdict)
        except Exception as e:
            blob = _enc({"ok": False, "phase": "judge", "error": {"type": "JudgeError", "message": str(e)}})
        send(b"D", blob)


if __name__ == "__diffucode_judge__":
    _judge_main()
