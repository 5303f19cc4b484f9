"""Sandboxed execution of untrusted (model-generated) Python programs. Standalone: imports no
torch and nothing else from diffucode, so evaluation and the RL reward can share it.

    python -m diffucode.execution "print('hello from the sandbox')"

    from diffucode.execution import run_check, run_asserts, run_jobs, check_job
    run_check(prompt + completion, problem["test"], problem["entry_point"], timeout=5).status
    check_job(prompt + completion, test, entry_point, prelude=prompt)   # split (default)
    run_asserts(program, ["assert f(1) == 2", "assert f(2) == 3"], timeout=5).fraction   # RL reward
    run_jobs([check_job(...), ...], workers=8)          # parallel, results in submission order

Split execution (``check``, ``asserts`` and ``io`` jobs, the default; split.py): the verdict
never shares a process with the candidate. The candidate's program runs in a fresh sandboxed
process that only answers calls: arguments in, results out, as plain data (None, bool, int,
float, complex, str, bytes, list, tuple, set, frozenset, dict, nested) through a strict codec
(wire.py) that refuses anything else. The tests run in a separate judge process that never
executes candidate code: ``check(candidate)`` calls a proxy. The parent relays the calls,
times them, and alone decides pass/fail and writes results, after every candidate process
is gone. Frame walks, ``gc``, ``sys.settrace``, patched builtins or shared modules, objects
with a rigged ``__eq__``, forged markers and early exits in the candidate therefore cannot
touch the verdict. Tests that pass functions or objects in, or read printed output, need the
**in-process** mode (``split=False``: tests and program in one sandboxed process, verdict
signed with a per-run token, as below); the evaluation picks the mode per task from its
reference solution and reports how many tasks ran each way. Mutation of list / dict / set
arguments is mirrored back to the tests' objects.

Fork server (zygote.py, ``SandboxConfig.fork_server``): under ``bwrap`` as root, a
``run_jobs`` call with more split jobs than workers keeps one sandbox per worker whose
pre-started interpreter forks each candidate (never running candidate code itself); the child
takes its own uid, IPC namespace and limits before the program runs, and afterwards everything
of that uid is killed and the sandbox's ``/tmp`` emptied. Candidates of one worker then share
that sandbox's ``/tmp`` mount and network namespace one after the other (see zygote.py's threat
analysis).

What each program gets (one process per program, see runner.py):

* ``bwrap`` (bubblewrap): the host root read-only; a private, size-capped, writable ``/tmp``
  (its working directory, gone afterwards); ``/root``, ``/home``, ``/run``, ``/var/tmp``,
  ``/mnt``, ``/media``, ``/srv`` hidden behind empty tmpfs (the interpreter is re-exposed
  read-only if it lives there); no network (an empty network namespace: not even the host's
  loopback); its own PID namespace (it sees and can signal only its own processes; all of
  them die with it); a new session; it dies with its parent. As root, the program runs under
  an unused uid with no capabilities and no_new_privs.
* resource limits: address space, CPU seconds (SIGXCPU, then SIGKILL), processes (per
  program), file size, open files, no core dumps; a wall-clock timeout after which the
  whole process group is killed; stdout/stderr drained continuously, only a tail kept, and
  the program killed past ``max_output_bytes``.
* a minimal clean environment (PATH, HOME=/tmp, locale): no tokens, keys or proxies from
  the caller; ``python -I`` ignores PYTHON* variables and the user site directory.
* a pass must be earned: the verdict is written by the bootstrap that runs in front of the
  program, to a private pipe, prefixed by a random per-run token that never appears in any
  program text, and only after the last test ran. ``exit()``, ``quit()``, ``sys.exit()``,
  ``raise SystemExit``, ``os._exit()``, killing itself, closing or redirecting its output,
  leaving threads or atexit handlers behind: none of these produce a verdict, so none pass.
  Test code runs with a copy of the builtins taken before the program ran, so rebinding
  builtins (``builtins.len = ...``) or shadowing them at module level changes nothing the
  tests compute.

Where ``bwrap`` is missing or cannot create namespaces, programs run with the limits, clean
environment, private temp dir and process-group kill only ("limits-only"); this is printed
once on stderr and reported by :func:`sandbox_info`. ``SandboxConfig(isolation="require")``
refuses to run instead (``diffucode eval --require-sandbox``).

What it does not cover (it is not a VM):

* the kernel is the host's: a kernel exploit escapes; there is no seccomp filter, and the
  whole (read-only) filesystem outside the hidden directories stays readable (``/etc``,
  ``/usr``, the project checkout); a Unix socket on a visible path stays connectable if its
  permissions allow (``/run`` is hidden for that reason).
* memory is limited per process (RLIMIT_AS), not per program: up to ``max_processes`` times
  ``memory_mb`` in total, plus ``tmp_size_mb`` of tmpfs; no cgroup, no I/O or CPU-share limits.
  Timing and cache side channels between programs are not addressed.
* in-process mode only: the checks stop accidents and the known reward hacks, not code
  written to attack this harness from inside the interpreter: a program can find the token in
  the interpreter's memory (frames, ``gc``), jump over asserts with ``sys.settrace``, return
  objects whose ``__eq__`` always says True, or patch modules it shares with the tests
  (``math``). Split mode closes these; a split candidate can still answer with a lookup table
  of the tests' inputs if it can read them, which is why it must not see benchmark data.
* limits-only mode adds: no filesystem, network or PID isolation; as root with an interpreter
  other users cannot read, no uid switch (so no process limit, and the program could signal
  the harness); as a normal user, the program runs as that user. Processes that leave the
  process group (``setsid``) can outlive the run until their CPU limit.
* Linux only (bubblewrap, ``resource`` limits, ``/proc``).
"""

from diffucode.execution.checks import (
    ORACLES,
    AssertResult,
    assert_result,
    asserts_job,
    check_job,
    io_job,
    outputs_job,
    pickle_inputs,
    program_job,
    run_asserts,
    run_asserts_many,
    run_check,
    run_program,
    split_io_job,
    split_outputs_job,
    wire_inputs,
)
from diffucode.execution.runner import (
    STATUSES,
    ExecResult,
    Job,
    SandboxConfig,
    SandboxUnavailableError,
    default_workers,
    run_job,
    run_jobs,
    sandbox_info,
)

__all__ = [
    "ORACLES", "STATUSES", "AssertResult", "ExecResult", "Job", "SandboxConfig", "SandboxUnavailableError",
    "assert_result", "asserts_job", "check_job", "default_workers", "io_job", "outputs_job", "pickle_inputs",
    "program_job", "run_asserts", "run_asserts_many", "run_check", "run_job", "run_jobs", "run_program",
    "sandbox_info", "split_io_job", "split_outputs_job", "wire_inputs",
]
