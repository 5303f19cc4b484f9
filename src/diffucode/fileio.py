"""Run-directory file plumbing shared by the recipes: atomic writes, free-space checks, a lock.

    python -c "from diffucode.fileio import atomic_write_text; atomic_write_text('/tmp/x.txt', 'hi')"

* :func:`atomic_write_text` writes to a temp file with a *unique* name in the same directory,
  fsyncs it and ``os.replace``-s it over the target: readers see the old or the new file, never
  half of one, and two processes writing the same file never share a temp name (a fixed
  ``config.yaml.tmp`` made concurrent ``diffucode eval`` runs crash on each other's rename).
* :func:`check_free_space` / :class:`OutOfSpaceError`: one line naming the path, the space needed
  and the space free, instead of whatever the writing library says when the disk fills up
  (torch says ``PytorchStreamWriter failed writing file``). :func:`is_out_of_space` recognises
  ENOSPC / EDQUOT anywhere in an exception's chain.
* :class:`RunDirLock`: an exclusive ``fcntl.flock`` on ``DIR/.diffucode.lock`` held for as long
  as a command works in DIR. A second command on the same directory fails at once with
  :class:`RunDirLockedError` naming the holder's pid and command. The kernel drops the lock when
  the holder exits, however it exits (SIGKILL included), so there is no stale lock to clean
  up; the pid in the file is only for the message. Not covered: network file systems whose
  ``flock`` is local to one machine (two hosts writing one NFS directory are not detected).

Imports only the standard library (config and every recipe may use it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import time
from pathlib import Path

LOCK_FILE = ".diffucode.lock"
_OUT_OF_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class OutOfSpaceError(RuntimeError):
    """Not enough disk space for a write; the message names the path and the sizes."""


class RunDirLockedError(RuntimeError):
    """Another process works in this directory."""


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def free_bytes(path: str | Path) -> int:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def out_of_space_message(path: str | Path, needed: int | None, what: str = "") -> str:
    free = free_bytes(path)
    need = f"needs about {human_bytes(needed)}, " if needed else ""
    return f"no space left to write {what + ' ' if what else ''}{path}: {need}{human_bytes(free)} free there"


def check_free_space(path: str | Path, needed: int, what: str = "") -> None:
    """Raise :class:`OutOfSpaceError` when the file system of ``path`` has less than ``needed`` bytes free."""
    if free_bytes(path) < needed:
        raise OutOfSpaceError(out_of_space_message(path, needed, what))


def is_out_of_space(exc: BaseException) -> bool:
    """Whether ``exc`` (or anything in its cause/context chain) is a full disk or quota."""
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _OUT_OF_SPACE:
            return True
        if "No space left on device" in str(e) or "Disk quota exceeded" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


_UMASK: int | None = None


def _file_mode() -> int:
    """0o666 minus the process umask: what a plain ``open(path, "w")`` would create (mkstemp uses 0o600)."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


def atomic_write_bytes(path: str | Path, data: bytes, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically (unique temp file + fsync + ``os.replace``).

    A full disk raises :class:`OutOfSpaceError` naming ``path``; the temp file never survives a
    failure. ``mode``: the file's permission bits (default: as ``open`` would create it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _file_mode() if mode is None else mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError) and is_out_of_space(e):
            raise OutOfSpaceError(out_of_space_message(path, len(data))) from e
        raise
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8", mode: int | None = None) -> Path:
    return atomic_write_bytes(path, text.encode(encoding), mode=mode)


class RunDirLock:
    """Exclusive lock on a run directory (see the module docstring).

        with RunDirLock(out_dir, "eval"):
            ...   # a second `diffucode eval` on out_dir raises RunDirLockedError meanwhile
    """

    def __init__(self, directory: str | Path, command: str):
        self.directory = Path(directory)
        self.command = command
        self.path = self.directory / LOCK_FILE
        self._fd: int | None = None

    def holder(self) -> tuple[str, str]:
        """(pid, command) written by the current holder, as text ('?' when unreadable)."""
        try:
            parts = self.path.read_text().split(maxsplit=1)
        except OSError:
            parts = []
        return (parts[0] if parts else "?", parts[1].strip() if len(parts) > 1 else "?")

    def acquire(self) -> "RunDirLock":
        import fcntl

        if self._fd is not None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        # The holder writes its pid just after taking the lock (and clears it just before
        # letting go), so a refused caller may read an empty file: look again for a moment,
        # and retry the lock in case it was being released.
        for attempt in range(20):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pid, cmd = self.holder()
                if pid != "?" or attempt == 19:
                    os.close(fd)
                    raise RunDirLockedError(
                        f"another {cmd if cmd != '?' else 'diffucode command'} is running in {self.directory} "
                        f"(pid {pid}); wait for it to finish or use another output directory") from None
                time.sleep(0.05)
            except BaseException:
                os.close(fd)
                raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {self.command}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        import fcntl

        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)  # the pid would be stale once we are gone
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "RunDirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
