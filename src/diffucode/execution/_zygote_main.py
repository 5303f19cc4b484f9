"""The fork server that runs *inside* one bwrap sandbox per worker (stdlib only; see zygote.py).

It is never imported by the parent: ``zygote.py`` compiles this file and starts
``bwrap ... python -c <stub>`` with a unix socket as fd 0; the stub reads this code as one
framed marshal record from the socket and executes it (``__name__`` is
``__diffucode_zygote__``). The bootstrap (``_sandbox_main.py``) comes next on the socket, then
commands, one at a time:

    S <uid> <gid> + 5 descriptors (SCM_RIGHTS)  fork a candidate: its stdin, stdout, stderr,
                                                report and request pipes. Reply: P <pid>.
    K                                           kill the current candidate's uid, reap, wipe
                                                /tmp. Reply: C <wait status of the candidate>.

and it reports ``E <wait status>`` on its own when the candidate exits. This process never runs
candidate code: it only forks, kills and removes files; every decision stays with the parent.
"""


def _zygote(boot):
    import builtins
    import ctypes
    import errno
    import marshal
    import os
    import select
    import shutil
    import signal
    import socket
    import struct
    import sys

    # What the bootstrap imports, loaded once here so each candidate finds it in memory (each
    # fork gets a private copy-on-write image: what a candidate changes stays in its process).
    import _json  # noqa: F401
    import _signal  # noqa: F401
    import math  # noqa: F401
    import resource  # noqa: F401
    import time  # noqa: F401
    # Nothing else: candidates import what they need themselves (pre-importing common stdlib
    # modules measured no faster on HumanEval, and each one is more surface in every child).

    ctl = socket.socket(fileno=0)
    libc = ctypes.CDLL(None, use_errno=True)
    CLONE_NEWIPC = 0x08000000
    boot_code = boot if not isinstance(boot, str) else compile(boot, "<diffucode-sandbox>", "exec")
    pristine = dict(builtins.__dict__)  # this process never runs candidate code: still pristine

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *a: None)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def send(kind, payload=b""):
        ctl.sendall(struct.pack(">I", len(payload)) + kind + payload)

    def become(fds, uid, gid):
        # In the child, still root: own session, the five pipes on 0-4 and nothing else
        # (not the control socket, not the wake pipe), a private IPC namespace (SysV and POSIX
        # queues die with it), default signal handling; then the bootstrap drops to ``uid``
        # and sets the limits before any candidate code runs.
        code = 70
        try:
            signal.set_wakeup_fd(-1)
            for s in (signal.SIGCHLD, signal.SIGPIPE):
                signal.signal(s, signal.SIG_DFL)
            os.setsid()
            tmp = [os.dup(fd) for fd in fds]  # above 4, so the dup2s below cannot clobber them
            for i, fd in enumerate(tmp):
                os.dup2(fd, i)
            os.closerange(5, 1 << 16)
            if libc.unshare(CLONE_NEWIPC) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWIPC)")
            chunks = []
            while True:
                b = os.read(0, 1 << 20)
                if not b:
                    break
                chunks.append(b)
            job = marshal.loads(b"".join(chunks))
            job["report_fd"], job["request_fd"], job["drop"] = 3, 4, [uid, gid]
            code = 0
            exec(boot_code, {"__builtins__": dict(pristine), "__name__": "__diffucode_sandbox__", "_JOB": job})
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            code = 71
        finally:
            os._exit(code)

    def uid_left(uid):
        # This PID namespace's /proc: a handful of entries (init, this process, the candidate's).
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    if os.stat("/proc/" + name).st_uid == uid:
                        with open("/proc/%s/stat" % name, "rb") as f:
                            if f.read().rpartition(b")")[2][1:2] != b"Z":  # a zombie is gone already
                                return True
                except OSError:
                    pass
        return False

    def kill_uid(uid, gid):
        # kill(-1, SIGKILL) *as that uid* reaches every process the uid may signal in this PID
        # namespace: the candidate, its daemons, a fork storm (and nothing of root's). Repeated
        # until /proc shows none of that uid.
        for _ in range(2000):
            reap()
            if not uid_left(uid):
                return True
            pid = os.fork()
            if pid == 0:
                rc = 4
                try:
                    os.setgroups([])
                    os.setgid(gid)
                    os.setuid(uid)
                    os.kill(-1, signal.SIGKILL)
                    rc = 0
                except BaseException:
                    rc = 4
                finally:
                    os._exit(rc)
            while True:
                try:
                    os.waitpid(pid, 0)
                    break
                except InterruptedError:
                    continue
            select.select([], [], [], 0.0005)
        return False

    # What bwrap itself put in the private /tmp before any candidate ran: nothing, or (when the
    # interpreter lives under /tmp, e.g. a virtual environment made there) the read-only bind
    # mount of it and the root-owned directories on the way to it. That skeleton stays;
    # everything else goes after each candidate. Mount points are never entered.
    tmp_dev = os.lstat("/tmp").st_dev

    def tmp_tree():
        entries, stack = set(), ["/tmp"]
        while stack:
            for e in os.scandir(stack.pop()):
                entries.add(e.path)
                if e.is_dir(follow_symlinks=False) and e.stat(follow_symlinks=False).st_dev == tmp_dev:
                    stack.append(e.path)
        return entries

    skeleton = tmp_tree()
    skeleton_dirs = ["/tmp"] + sorted(p for p in skeleton
                                      if os.path.isdir(p) and not os.path.islink(p) and os.lstat(p).st_dev == tmp_dev)

    def wipe_tmp():
        # The candidate could write only here (the rest is read-only, /dev/shm is root's; the
        # skeleton's directories are root's, and /tmp's sticky bit keeps them in place).
        for d in skeleton_dirs:
            for e in os.scandir(d):
                if e.path in skeleton:
                    continue
                try:
                    if e.is_dir(follow_symlinks=False):
                        shutil.rmtree(e.path)  # fd-based, never follows a planted symlink
                    else:
                        os.unlink(e.path)
                except OSError:
                    pass
        try:
            return tmp_tree() == skeleton
        except OSError:
            return False

    child = None
    status = None

    def reap():
        nonlocal status
        if child is not None and status is None:
            try:
                pid, st = os.waitpid(child, os.WNOHANG)
            except ChildProcessError:
                pid, st = child, 9
            if pid:
                status = st
                send(b"E", struct.pack(">i", st))

    send(b"Z")
    while True:
        try:
            ready, _, _ = select.select([ctl, wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            try:
                while os.read(wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
            reap()
        if ctl not in ready:
            continue
        msg, anc, _, _ = ctl.recvmsg(64, socket.CMSG_SPACE(5 * 4))
        if not msg:
            os._exit(0)  # the parent is gone
        fds = []
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds += list(struct.unpack("%di" % (len(data) // 4), data[: len(data) - len(data) % 4]))
        if msg[:1] == b"S" and len(msg) == 9 and len(fds) == 5 and child is None:
            uid, gid = struct.unpack(">II", msg[1:])
            cur = (uid, gid)
            pid = os.fork()
            if pid == 0:
                become(fds, uid, gid)
            for fd in fds:
                os.close(fd)
            child, status = pid, None
            send(b"P", struct.pack(">i", pid))
            reap()
        elif msg[:1] == b"K" and child is not None:
            ok = kill_uid(*cur)
            while status is None:
                try:
                    _, st = os.waitpid(child, 0)
                    status = st
                except InterruptedError:
                    continue
                except ChildProcessError:
                    status = 9
            ok = wipe_tmp() and ok
            send(b"C", struct.pack(">ib", status, 1 if ok else 0))
            child = None
        else:
            for fd in fds:
                os.close(fd)
            os._exit(errno.EPROTO)


if __name__ == "__diffucode_zygote__":
    _zygote(globals().pop("_BOOT"))
