"""What the two kinds of split-execution candidate share: the frame parser of their report pipe,
and the per-candidate state and clean-up that ``split.run_split`` relies on.

A candidate is either a fresh sandbox (``split._Candidate``) or a process forked by a fork
server (``zygote.ForkedCandidate``); both have the same interface for run_split.
"""

from __future__ import annotations

import os
import selectors

from diffucode.execution import runner as R


class Frames:
    """Incremental parser of ``<len><kind><payload>`` frames, refusing frames over ``limit``."""

    def __init__(self, limit: int):
        self.buf = bytearray()
        self.limit = limit
        self.too_big = False

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self.buf += data
        out = []
        while len(self.buf) >= 5:
            n = int.from_bytes(self.buf[:4], "big")
            if n > self.limit:
                self.too_big = True
                return out
            if len(self.buf) < 5 + n:
                break
            out.append((bytes(self.buf[4:5]), bytes(self.buf[5:5 + n])))
            del self.buf[:5 + n]
        return out


class CandidateBase:
    """The state run_split reads and writes, and how a candidate lets go of its descriptors."""

    OWN_FDS: tuple[str, ...] = ()  # attributes holding descriptors this object must close itself

    def _start(self, backend: R._Backend, max_reply: int) -> None:
        self.slot = R._acquire_slot()  # its own uid (and a host temp dir without bwrap)
        self.backend = backend
        self.dead = False
        self.ready = False
        self.exited_at = None
        self.sent = 0
        self.outbuf = bytearray()
        self.frames = Frames(max_reply)
        self.registered: set[int] = set()
        for name in self.OWN_FDS:
            setattr(self, name, -1)

    def _unregister(self, sel: selectors.BaseSelector | None) -> None:
        if sel is not None:
            for fd in list(self.registered):
                try:
                    sel.unregister(fd)
                except (KeyError, ValueError):
                    pass
            self.registered.clear()

    def _close_fds(self) -> None:
        for name in self.OWN_FDS:
            fd = getattr(self, name, -1)
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, -1)
