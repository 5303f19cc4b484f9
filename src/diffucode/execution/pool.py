"""Idle helper processes kept for one ``run_jobs`` call: the judges (split.py) and the fork
servers (zygote.py), one per worker in practice, all killed at the call's end."""

from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

T = TypeVar("T")  # has .healthy, .proc (a Popen) and .close()


class IdlePool(Generic[T]):
    def __init__(self, start: Callable[[], T]):
        self.start = start  # makes a new one when none is idle
        self.idle: list[T] = []
        self.lock = threading.Lock()

    def get(self) -> T:
        with self.lock:
            if self.idle:
                return self.idle.pop()
        return self.start()

    def put(self, item: T) -> None:
        """Back to the pool, or closed if it broke or exited (a dead one is never handed out)."""
        if not item.healthy or item.proc.poll() is not None:
            item.close()
            return
        with self.lock:
            self.idle.append(item)

    def close(self) -> None:
        with self.lock:
            items, self.idle = self.idle, []
        for item in items:
            item.close()
