"""Hostile programs are contained, scored as failures, and the harness survives them.

All of them run in one parallel batch (module fixture) with short limits; each test then
checks one program's verdict and that its side effect did not happen.
"""

import os
import sys
import time
from pathlib import Path

import pytest

from diffucode.execution import SandboxConfig, check_job, run_check, run_jobs, sandbox_info
from diffucode.execution import runner

sys.path.insert(0, str(Path(__file__).parent))
from hostile_harness import LoopbackListener, uid_processes  # noqa: E402

pytestmark = pytest.mark.skipif(sandbox_info()["isolation"] != "bwrap",
                                reason="bubblewrap cannot create namespaces here (limits-only fallback)")

T = 1.5  # wall-clock limit for every hostile program
CFG = SandboxConfig(timeout=T, memory_mb=256, max_output_bytes=1 << 20, workers=2)
SECRET = "diffucode-test-secret-7f3a9"
# The function under test is always wrong, so only a forged verdict could pass.
WRONG = "def sq(x):\n    return 0\n"
TEST = "def check(candidate):\n    assert candidate(3) == 9\n"


def _fork_bomb_is_bounded() -> bool:
    # Only with a working process limit (never, e.g., for root inside a user namespace).
    return sandbox_info(CFG)["isolation"] == "bwrap" and runner.get_backend(CFG).nproc_enforced


def _programs(tmp_dir: str, port: int) -> dict[str, str]:
    fork_bomb = {"fork bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"}
    return {
        "infinite loop": "while True:\n    pass\n",
        "sleep forever": "import time\ntime.sleep(1000)\n",
        **(fork_bomb if _fork_bomb_is_bounded() else {}),
        "memory bomb (one block)": "x = bytearray(64 << 30)\n",
        "memory bomb (growing)": "a = []\nwhile True:\n    a.append(bytearray(16 << 20))\n",
        "huge output": "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
        "huge stderr": "import os\nwhile True:\n    os.write(2, b'e' * 65536)\n",
        "fill /tmp": ("for i in range(20):\n    with open(f'/tmp/f{i}', 'wb') as f:\n"
                      "        f.write(b'x' * (8 << 20))\n"),
        "write outside the temp dir": (
            "import os\nhits = []\n"
            f"for path in [{os.path.join(tmp_dir, 'pwned')!r}, '/etc/pwned', {os.path.abspath('pwned.txt')!r}]:\n"
            "    try:\n        open(path, 'w').write('x')\n        hits.append(path)\n    except OSError:\n        pass\n"
            "print('WROTE', hits)\n"
        ),
        "read secrets": (
            "import os\nfound = []\n"
            f"if {SECRET!r} in str(os.environ):\n    found.append('environ')\n"
            f"try:\n    found.append(open({os.path.join(tmp_dir, 'secret.txt')!r}).read())\nexcept OSError:\n    pass\n"
            "print('ENV', sorted(os.environ))\n"
            "print('ROOT', sorted(os.listdir('/root')) if os.path.isdir('/root') else None)\n"
            "print('HOME', sorted(os.listdir('/home')) if os.path.isdir('/home') else None)\n"
            "print('FOUND', found)\n"
        ),
        "network": (
            "import socket\ntry:\n"
            f"    s = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
            "    s.sendall(b'exfiltrated')\n    print('CONNECTED')\n"
            "except OSError as e:\n    print('NO NETWORK', type(e).__name__)\n"
        ),
        "kill the parent": (
            "import os, signal\nout = []\n"
            f"for pid in (os.getppid(), 1, -1, {os.getpid()}):\n"
            "    try:\n        os.kill(pid, signal.SIGKILL)\n        out.append((pid, 'sent'))\n"
            "    except OSError as e:\n        out.append((pid, type(e).__name__))\n"
            "print('KILL', out)\n"
        ),
        "ignore the timeout signals": (
            "import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGXCPU, signal.SIGHUP):\n"
            "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass\n"
        ),
        "detached child": ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)\n"),
    }


def _sandbox_uid_processes() -> list[int]:
    return uid_processes(runner._UID_BASE, runner._UID_BASE + runner._MAX_SLOTS, zombies=True)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    tmp_dir = str(tmp_path_factory.mktemp("hostile"))
    with open(os.path.join(tmp_dir, "secret.txt"), "w") as f:
        f.write(SECRET)
    server = LoopbackListener(backlog=4)
    os.environ["DIFFUCODE_TEST_SECRET"] = SECRET
    try:
        programs = _programs(tmp_dir, server.port)
        jobs = [check_job(WRONG + p, TEST, "sq") for p in programs.values()]
        t0 = time.monotonic()
        results = dict(zip(programs, run_jobs(jobs, CFG)))
        wall = time.monotonic() - t0
    finally:
        del os.environ["DIFFUCODE_TEST_SECRET"]
        server.close()
    return {"results": results, "tmp_dir": tmp_dir, "server": server, "wall": wall}


@pytest.mark.parametrize("name", sorted(_programs("/x", 1)))
def test_hostile_program_is_scored_as_a_failure(outcome, name):
    r = outcome["results"][name]
    assert r.status in ("failed", "timeout", "error"), (name, r.status, r.reason)
    assert r.duration < T + 2.0  # killed on time, whatever it did to signals


def test_endless_programs_time_out(outcome):
    res = outcome["results"]
    for name in ("infinite loop", "sleep forever", "fork bomb", "ignore the timeout signals"):
        if name in res:
            assert res[name].status == "timeout", (name, res[name].reason)
    assert "timeout" in res["infinite loop"].reason


def test_memory_bombs_are_stopped(outcome):
    for name in ("memory bomb (one block)", "memory bomb (growing)"):
        r = outcome["results"][name]
        assert "MemoryError" in r.reason or r.status == "timeout", (name, r.reason)


def test_huge_output_is_cut_off(outcome):
    for name in ("huge output", "huge stderr"):
        r = outcome["results"][name]
        assert r.status == "failed" and "output limit" in r.reason  # killed at the limit, not at the deadline
        assert len(r.stdout) <= CFG.capture_bytes and len(r.stderr) <= CFG.capture_bytes


def test_private_tmp_is_size_limited(outcome):
    r = outcome["results"]["fill /tmp"]
    if r.status == "timeout":  # a loaded machine: writing 64 MB did not fit in T; the limit is what counts here
        prog = _programs("/x", 1)["fill /tmp"]
        r = run_jobs([check_job(WRONG + prog, TEST, "sq")], SandboxConfig(timeout=20, memory_mb=256))[0]
    assert r.status == "error" and ("No space left" in r.reason or "File too large" in r.reason), r.reason


def test_nothing_written_outside_the_private_tmp(outcome):
    r = outcome["results"]["write outside the temp dir"]
    assert "WROTE []" in r.stdout, r.stdout
    assert not os.path.exists(os.path.join(outcome["tmp_dir"], "pwned"))
    assert not os.path.exists("/etc/pwned")
    assert not os.path.exists(os.path.abspath("pwned.txt"))


def test_secrets_are_not_readable(outcome):
    out = outcome["results"]["read secrets"].stdout
    assert SECRET not in out
    assert "FOUND []" in out
    assert "DIFFUCODE_TEST_SECRET" not in out
    # /home is empty; /root shows at most the mount points of a re-exposed interpreter.
    home_line = next(line for line in out.splitlines() if line.startswith("HOME"))
    assert home_line in ("HOME []", "HOME None") or all(
        part in os.path.realpath(os.sys.prefix) for part in eval(home_line[5:]))
    root_line = next(line for line in out.splitlines() if line.startswith("ROOT"))
    visible = eval(root_line[5:]) or []
    for entry in visible:
        assert os.sys.prefix.startswith(f"/root/{entry}") or os.path.realpath(os.sys.executable).startswith(
            f"/root/{entry}"), f"/root/{entry} visible in the sandbox"


def test_no_network(outcome):
    r = outcome["results"]["network"]
    assert "NO NETWORK" in r.stdout and "CONNECTED" not in r.stdout
    assert outcome["server"].accepted == []


def test_cannot_kill_the_harness(outcome):
    r = outcome["results"]["kill the parent"]
    assert "KILL" in r.stdout  # it survived its own attempts (nothing outside its namespace to hit)
    assert r.status == "failed"


def test_no_process_outlives_its_run(outcome):
    # fork bomb and detached children included: every process of every sandbox uid is gone.
    if not runner.get_backend(CFG).drop_uid:
        pytest.skip("programs do not run under their own uid here")
    deadline = time.monotonic() + 3
    while _sandbox_uid_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _sandbox_uid_processes() == []


def test_harness_still_works_afterwards(outcome):
    r = run_check("def sq(x):\n    return x * x\n", TEST, "sq", timeout=5)
    assert r.passed, r.reason
    # the batch ran in parallel: not the sum of all the timeouts
    assert outcome["wall"] < 4 * T + 6
