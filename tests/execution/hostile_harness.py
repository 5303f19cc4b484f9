"""What the hostile-program suites (test_hostile.py, test_hostile_split.py) watch from the host:
a loopback listener a program could try to reach, and the processes left under sandbox uids."""

import os
import socket
import threading


class LoopbackListener:
    """A TCP listener on the host's loopback that records whatever any connection sends."""

    def __init__(self, backlog: int = 8):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self.stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
                self.accepted.append(conn.recv(100))
                conn.close()
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def uid_processes(lo: int, hi: int, *, zombies: bool) -> list[int]:
    """Pids of the processes whose uid is in [lo, hi); with ``zombies=False`` an exited process
    that is not reaped yet does not count."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if lo <= os.stat(f"/proc/{name}").st_uid < hi:
                    if not zombies:
                        with open(f"/proc/{name}/stat", "rb") as f:
                            if f.read().rpartition(b")")[2][1:2] == b"Z":
                                continue
                    pids.append(int(name))
            except OSError:
                pass
    return pids
