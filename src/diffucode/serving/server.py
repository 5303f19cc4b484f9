"""Run the app under uvicorn: in the foreground (``diffucode serve``) or in a thread (tests, benchmark).

    python -c "
    from diffucode.models import build_tiny_model
    from diffucode.serving.server import ServerThread
    with ServerThread(build_tiny_model, served_name='tiny') as s: print(s.base_url)"
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Callable

from diffucode.serving.app import create_app
from diffucode.serving.worker import DecodeWorker


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def build(load: Callable[[], tuple[Any, Any]], *, served_name: str, max_batch_rows: int = 16, window_s: float = 0.01,
          max_queue: int = 64, max_body_bytes: int = 4 << 20, max_rows_per_request: int = 64,
          default_max_tokens: int | None = None, continuous: bool = True):
    """(app, worker): the worker is started (it loads the model on its own thread)."""
    worker = DecodeWorker(load, max_batch_rows=max_batch_rows, window_s=window_s, max_queue=max_queue,
                          continuous=continuous).start()
    app = create_app(worker, served_name=served_name, max_body_bytes=max_body_bytes,
                     max_rows_per_request=max_rows_per_request, default_max_tokens=default_max_tokens)
    return app, worker


def uvicorn_config(app, host: str, port: int, log_level: str = "warning"):
    import uvicorn

    # one process: the model lives in this process's worker thread; "h11" keeps the dependency plain
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, http="h11", lifespan="off",
                          timeout_graceful_shutdown=5)


class ServerThread:
    """A server on ``host``:``port`` (a free loopback port by default) in a background thread;
    a context manager that waits until the model is loaded and stops everything on exit."""

    def __init__(self, load: Callable[[], tuple[Any, Any]], *, host: str = "127.0.0.1", port: int | None = None,
                 start_timeout: float = 120.0, **opts):
        self.host, self.port = host, port or free_port(host)
        self.app, self.worker = build(load, **opts)
        import uvicorn

        self.server = uvicorn.Server(uvicorn_config(self.app, self.host, self.port))
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # not the main thread
        self._thread = threading.Thread(target=self.server.run, name="diffucode-http", daemon=True)
        self.start_timeout = start_timeout

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> "ServerThread":
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the server on {self.host}:{self.port} did not start")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the server on {self.host}:{self.port} did not start in {self.start_timeout} s")
            time.sleep(0.02)
        if not self.worker.wait_ready(max(0.0, deadline - time.monotonic())):
            err = self.worker.load_error or "timed out"
            self.stop()
            raise RuntimeError(f"the model did not load: {err}")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(15)
        self.worker.stop()

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
