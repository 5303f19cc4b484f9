"""Split execution: the candidate answers calls in its sandbox, a judge runs the tests, the parent decides.

    from diffucode.execution import check_job, run_jobs
    run_jobs([check_job(program, test, "f", prelude=prompt)])[0].mode      # 'split'

Three processes per job (see the package docstring for why):

* the **candidate**: a fresh sandboxed process (bwrap, or limits only) that loads the program
  and then only answers calls (``serve`` mode of ``_sandbox_main.py``);
* the **judge**: a process that runs the task's test code (trusted) and never executes
  candidate code; it calls the function under test through a proxy. One judge per worker
  thread, reused across jobs (it holds nothing of a candidate's but decoded plain data), so
  its start-up is paid once per worker, not per program;
* the **parent** (this module): relays each call from the judge to the candidate and each
  reply back (after a size check), times every call and the whole job, kills the candidate
  when a call or the job runs out of time (and starts it again for the next call, at most
  ``MAX_RESTARTS`` times), and turns the judge's verdict into the result, after every
  candidate process is gone.
"""

from __future__ import annotations

import marshal
import os
import selectors
import shutil
import struct
import subprocess
import sys
import tempfile
import time

from diffucode.execution import runner as R
from diffucode.execution import wire
from diffucode.execution.candidate import CandidateBase, Frames
from diffucode.execution.pool import IdlePool
from diffucode.execution.zygote import ForkedCandidate, ZygoteError

MAX_RESTARTS = 3  # candidate restarts per job after a timed-out or killed call
_JUDGE_SRC = R.standalone_source("_judge_main.py")
_JUDGE_CODE = compile(_JUDGE_SRC, "<diffucode-judge>", "exec")
_JUDGE_STUB = (
    "import sys, marshal\n"
    "sys.path.extend(%r)\n"
    "exec(marshal.load(sys.stdin.buffer), {'__name__': '__diffucode_judge__', '__builtins__': __builtins__})\n"
)


def _frame(kind: bytes, payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + kind + payload


# --------------------------------------------------------------------------------------------
# The judge process (one per worker, reused).


class Judge:
    def __init__(self, cfg: R.SandboxConfig):
        argv = ([sys.executable, "-I", "-S", "-B", "-X", "utf8", "-c", _JUDGE_STUB % (R._site_dirs(),)]
                if cfg.python is None else [cfg.python, "-I", "-B", "-X", "utf8", "-c", _JUDGE_STUB % ([],)])
        self.tmpdir = tempfile.mkdtemp(prefix="diffucode-judge-")
        debug = os.environ.get("DIFFUCODE_JUDGE_DEBUG")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=None if debug else subprocess.DEVNULL, cwd=self.tmpdir,
                                     env=dict(R.CLEAN_ENV, HOME=self.tmpdir, TMPDIR=self.tmpdir),
                                     start_new_session=True)
        self.out_fd = self.proc.stdout.fileno()
        os.set_blocking(self.out_fd, False)
        code = _JUDGE_CODE if cfg.python is None else _JUDGE_SRC
        self.proc.stdin.write(marshal.dumps(code))
        self.proc.stdin.flush()
        self.frames = Frames(1 << 31)
        self.healthy = True

    def send(self, kind: bytes, payload: bytes) -> bool:
        # The judge reads whenever the parent may write (strict request / reply), so a
        # blocking write cannot deadlock; a dead judge shows up as BrokenPipe.
        try:
            self.proc.stdin.write(_frame(kind, payload))
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            self.healthy = False
            return False

    def close(self) -> None:
        self.healthy = False
        try:
            os.killpg(self.proc.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def judge_pool(cfg: R.SandboxConfig) -> IdlePool[Judge]:
    """Idle judges for one :func:`~diffucode.execution.runner.run_jobs` call; all killed at its end."""
    return IdlePool(lambda: Judge(cfg))


# --------------------------------------------------------------------------------------------
# The candidate process (fresh per job, restarted after a killed call).


class _Candidate(CandidateBase):
    OWN_FDS = ("req_w", "rep_r")  # (stdin, stdout and stderr belong to the Popen)

    def __init__(self, program: str, setup: str, quiet: bool, cfg: R.SandboxConfig, backend: R._Backend, timeout: float,
                 max_reply: int):
        self._start(backend, max_reply)
        self.tmpdir = None
        self.proc = None
        fds = []
        try:
            limits, drop, self.tmpdir = R._limits_for(cfg, backend, timeout, self.slot)
            r_req, self.req_w = os.pipe()
            self.rep_r, w_rep = os.pipe()
            fds = [r_req, w_rep]
            spec = dict(mode="serve", program=program, setup=setup, quiet=quiet, token="", report_fd=w_rep, request_fd=r_req,
                        budget=timeout, limits=limits, drop=drop, pdeathsig=backend.isolation == "limits-only",
                        preimport=backend.preimport, landlock=R._landlock_for(backend, self.tmpdir))
            self.payload = marshal.dumps((R._BOOTSTRAP_CODE if cfg.python is None else R._BOOTSTRAP_SRC, spec))
            env = dict(R.CLEAN_ENV)
            if self.tmpdir:
                env.update(HOME=self.tmpdir, TMPDIR=self.tmpdir)
            self.proc = subprocess.Popen(backend.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, pass_fds=(w_rep, r_req), cwd=self.tmpdir, env=env,
                                         start_new_session=True)
        except BaseException:
            self.dead = True
            self._close_fds()
            raise
        finally:
            for fd in fds:
                os.close(fd)
        for fd in (self.proc.stdin.fileno(), self.proc.stdout.fileno(), self.proc.stderr.fileno(), self.rep_r,
                   self.req_w):
            os.set_blocking(fd, False)
        self.stdin_fd, self.stdout_fd, self.stderr_fd = (self.proc.stdin.fileno(), self.proc.stdout.fileno(),
                                                         self.proc.stderr.fileno())

    control_fd = None  # (a forked candidate's zygote socket, zygote.py)

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.returncode

    def close_stdin(self) -> None:
        self.proc.stdin.close()

    def exited(self) -> bool:
        return R._exited(self.proc.pid)

    def kill(self, sel: selectors.BaseSelector | None = None) -> None:
        """Kill every process of this candidate and wait until they are gone."""
        self._unregister(sel)
        self.dead = True
        if self.proc is not None and self.proc.returncode is None:
            R._kill_group(self.proc.pid)
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                try:
                    f.close()
                except OSError:
                    pass
        self._close_fds()
        if self.slot is not None:
            R._reap_slot(self.slot, self.backend)
            if self.tmpdir:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
            R._release_slot(self.slot)
            self.slot = None


# --------------------------------------------------------------------------------------------
# One split job.


def _describe_exit(rc: int | None, backend: R._Backend) -> str:
    sig = R._signal_of(rc, backend) if rc is not None else None
    if sig is not None:
        return f"the program was killed by signal {sig} before the tests ran"
    return f"the program exited (code {rc}) before the tests ran"


def run_split(job: R.Job, cfg: R.SandboxConfig, backend: R._Backend, judges: IdlePool,
              zygotes: IdlePool | None = None) -> R.ExecResult:
    timeout = float(job.timeout or cfg.timeout)
    kind = job.mode
    fields = job.fields
    judge_job = {k: v for k, v in fields.items() if k not in ("program", "quiet")}
    judge_job.update(kind=kind, budget=timeout)
    max_reply = max(job.max_report_bytes, 1 << 20)
    out, err = R._Tail(cfg.capture_bytes), R._Tail(cfg.capture_bytes)
    t0 = time.monotonic()
    deadline = t0 + timeout + job.grace
    judge = judges.get()
    cand: _Candidate | ForkedCandidate | None = None
    zyg = None  # this job's fork server (zygotes), if any
    sel = selectors.DefaultSelector()
    partial: dict = {}
    done: dict | None = None
    load_error: dict | None = None
    pending: bytes | None = None  # a call from the judge not yet answered
    call_deadline = None
    restarts = 0
    timed_out = output_exceeded = judge_failed = False
    rc = None

    def start_candidate() -> None:
        nonlocal cand, zyg
        args = (fields["program"], fields.get("setup") or "", bool(fields.get("quiet")), cfg, backend, timeout, max_reply)
        if zygotes is not None:
            if zyg is not None and not zyg.healthy:
                zygotes.put(zyg)  # closes it
                zyg = None
            try:
                if zyg is None:
                    zyg = zygotes.get()
                cand = ForkedCandidate(*args, zygote=zyg)
            except (ZygoteError, OSError):
                cand = None  # no fork server now: a fresh sandbox for this candidate
        if cand is None or cand.dead:
            cand = _Candidate(*args)
        for fd, what in ((cand.stdin_fd, "in"), (cand.stdout_fd, "out"), (cand.stderr_fd, "err"), (cand.rep_r, "rep"),
                         (cand.control_fd, "ctl")):
            if fd is None:
                continue
            sel.register(fd, selectors.EVENT_WRITE if what == "in" else selectors.EVENT_READ, what)
            cand.registered.add(fd)

    def reply(kind_: bytes, payload: bytes = b"") -> None:
        nonlocal pending, call_deadline
        nonlocal judge_failed
        pending, call_deadline = None, None
        if not judge.send(kind_, payload):
            judge_failed = True

    def candidate_gone(reason: str) -> None:
        nonlocal rc, load_error
        if cand is None or cand.dead:
            return
        was_ready = cand.ready
        cand.kill(sel)
        rc = cand.returncode
        if not was_ready and load_error is None:
            load_error = {"type": "ProgramExit", "message": reason or _describe_exit(rc, backend)}
        if pending is not None:
            if load_error is not None and not was_ready:
                reply(b"L", wire.encode(load_error))
            else:
                reply(b"D", wire.encode(reason or "the candidate process died during the call"))

    def forward_call() -> None:
        nonlocal call_deadline
        limit, blob = pending_limit[0], pending
        cand.outbuf += len(blob).to_bytes(4, "big") + blob
        call_deadline = time.monotonic() + limit
        if cand.req_w not in cand.registered:
            sel.register(cand.req_w, selectors.EVENT_WRITE, "req")
            cand.registered.add(cand.req_w)

    pending_limit = [0.0]
    try:
        sel.register(judge.out_fd, selectors.EVENT_READ, "judge")
        if not judge.send(b"J", marshal.dumps(judge_job)):
            judge_failed = True
        else:
            start_candidate()
        while not judge_failed:
            if done is not None and (cand is None or cand.dead or cand.ready):
                break
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            wait = deadline - now
            if call_deadline is not None:
                if now >= call_deadline:
                    cand.kill(sel)  # its state is unknown now: the next call gets a fresh one
                    rc = cand.returncode
                    reply(b"T")
                    continue
                wait = min(wait, call_deadline - now)
            for key, _ in sel.select(min(wait, 0.25)):
                what = key.data
                if what == "judge":
                    try:
                        data = os.read(judge.out_fd, 1 << 20)
                    except BlockingIOError:
                        continue
                    if not data:
                        judge_failed = True
                        break
                    for k, payload in judge.frames.feed(data):
                        if k == b"D":
                            try:
                                d = wire.decode(payload)
                                done = d if isinstance(d, dict) else {"ok": False}
                            except wire.WireError:
                                judge_failed = True
                        elif k == b"P":
                            try:
                                d = wire.decode(payload)
                                if isinstance(d, dict):
                                    partial.update(d)
                            except wire.WireError:
                                pass
                        elif k == b"C" and pending is None and len(payload) >= 8:
                            pending_limit[0] = max(0.001, struct.unpack(">d", payload[:8])[0])
                            pending = payload[8:]
                            if load_error is not None:
                                reply(b"L", wire.encode(load_error))
                            elif cand is None or cand.dead:
                                if restarts >= MAX_RESTARTS:
                                    reply(b"D", wire.encode("the candidate process was restarted too often"))
                                else:
                                    restarts += 1
                                    start_candidate()
                            elif cand.ready:
                                forward_call()
                        else:
                            judge_failed = True
                    continue
                if cand is None or key.fd not in cand.registered:
                    continue
                fd = key.fd
                if what == "ctl":  # the zygote said something (the candidate exited): see exited()
                    if not cand.exited() and not cand.zygote.healthy:
                        candidate_gone("the fork server failed")
                    continue
                if what in ("in", "req"):
                    buf = cand.payload if what == "in" else cand.outbuf
                    start = cand.sent if what == "in" else 0
                    try:
                        n = os.write(fd, buf[start:start + 65536])
                    except BlockingIOError:
                        continue
                    except OSError:
                        n = len(buf) - start
                    if what == "in":
                        cand.sent += n
                        if cand.sent >= len(buf):
                            sel.unregister(fd)
                            cand.registered.discard(fd)
                            cand.close_stdin()
                    else:
                        del cand.outbuf[:n]
                        if not cand.outbuf:
                            sel.unregister(fd)
                            cand.registered.discard(fd)
                    continue
                try:
                    data = os.read(fd, 1 << 16)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if what == "out":
                    if data:
                        out.add(data)
                    else:
                        sel.unregister(fd)
                        cand.registered.discard(fd)
                elif what == "err":
                    if data:
                        err.add(data)
                    else:
                        sel.unregister(fd)
                        cand.registered.discard(fd)
                else:  # rep
                    if not data:
                        candidate_gone("")
                        continue
                    for k, payload in cand.frames.feed(data):
                        if k == b"R" and not cand.ready:
                            cand.ready = True
                            if pending is not None:
                                forward_call()
                        elif k == b"L" and not cand.ready:
                            try:
                                e = wire.decode(payload)
                                load_error = e if isinstance(e, dict) else None
                            except wire.WireError:
                                load_error = None
                            if load_error is None:
                                load_error = {"type": "Error", "message": "the program failed to load"}
                            candidate_gone("")
                        elif k in (b"V", b"E") and pending is not None and cand.ready:
                            reply(k, payload)
                        else:
                            candidate_gone("the candidate broke the call protocol")
                    if cand.frames.too_big:
                        candidate_gone("the reply was larger than the limit")
                if out.total + err.total > cfg.max_output_bytes:
                    output_exceeded = True
                    break
            if output_exceeded:
                break
            if cand is not None and not cand.dead:
                # Exited, but a child it left may hold the pipes open: give the pipes a moment
                # to drain, then the group kill ends it.
                if cand.exited_at is None and cand.exited():
                    cand.exited_at = time.monotonic()
                if cand.exited_at is not None and time.monotonic() - cand.exited_at > 0.2:
                    candidate_gone("")
        # Out of time, over the output limit, or done: the candidate goes first.
        aborted_call = pending is not None
        if cand is not None and not cand.dead:
            cand.kill(sel)
            rc = cand.returncode
        if (timed_out or output_exceeded) and done is None and not judge_failed:
            if aborted_call:
                # The judge is waiting on the call: let it finish its verdict (partial counts).
                reply(b"X")
                grace = time.monotonic() + 1.0
                while done is None and time.monotonic() < grace:
                    if not sel.select(grace - time.monotonic()):
                        break
                    try:
                        data = os.read(judge.out_fd, 1 << 20)
                    except BlockingIOError:
                        continue
                    if not data:
                        break
                    for k, payload in judge.frames.feed(data):
                        if k == b"D":
                            try:
                                done = wire.decode(payload)
                            except wire.WireError:
                                pass
                        elif k == b"P":
                            try:
                                partial.update(wire.decode(payload))
                            except (wire.WireError, TypeError, ValueError):
                                pass
                        elif k == b"C":  # another call: the job is over
                            break
            if done is None:
                judge.healthy = False
    finally:
        sel.close()
        if cand is not None and not cand.dead:
            cand.kill()
        if judge_failed or done is None:
            judge.healthy = False
        judges.put(judge)
        if zyg is not None:
            zygotes.put(zyg)
    duration = time.monotonic() - t0
    details = R._clean(dict(partial))
    if isinstance(done, dict):
        details.update(R._clean(done))
    if load_error is not None and not (isinstance(done, dict) and done.get("phase") == "program"):
        # The program never loaded: nothing the tests computed without it counts.
        load_error = R._clean(load_error)
        details.update({"ok": False, "phase": "program", "error": load_error})
        if kind == "asserts":
            n = len(fields.get("asserts") or [])
            details.update({"results": [False] * n, "passed": 0, "total": n, "timeouts": 0})
    if output_exceeded:
        result = R.ExecResult("failed", f"output limit exceeded (stdout+stderr over {cfg.max_output_bytes} bytes)",
                              details)
    elif load_error is not None:
        result = R.ExecResult(*R._verdict(kind, details), details)
    elif timed_out and not (isinstance(done, dict) and done.get("ok") is True):
        result = R.ExecResult("timeout", f"wall-clock timeout after {timeout:g} s", details)
    elif isinstance(done, dict):
        result = R.ExecResult(*R._verdict(kind, details), details)
    elif judge_failed:
        result = R.ExecResult("error", "the judge process failed", details)
    else:
        result = R.ExecResult("error", "no verdict", details)
    result.stdout, result.stderr = out.text(), err.text()
    result.returncode, result.duration, result.isolation, result.mode = rc, duration, backend.isolation, "split"
    return result
