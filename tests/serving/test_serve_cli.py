"""The real command: `diffucode serve` in its own process on the bundled model, on a free
loopback port; it answers, and stops cleanly on Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

httpx = pytest.importorskip("httpx")

from diffucode.serving.server import free_port  # noqa: E402


@pytest.mark.slow  # a fresh process imports torch and loads the model: 15-45 s on the shared 2-core machine
def test_serve_command_answers_and_stops_on_ctrl_c():
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "diffucode.cli", "serve", "--port", str(port), "--threads", "1",
                             "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                if httpx.get(base + "/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready in 120 s"
            time.sleep(0.2)
        assert httpx.get(base + "/v1/models", timeout=10).json()["data"][0]["id"] == "diffucoder-nano"
        r = httpx.post(base + "/v1/completions", timeout=60,
                       json={"model": "diffucoder-nano", "prompt": "def is_palindrome(s):\n", "max_tokens": 32})
        assert r.status_code == 200, r.text
        assert "return" in r.json()["choices"][0]["text"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130  # the project's exit status for Ctrl-C
        err = proc.stderr.read()
        assert "ready" in err and "Traceback" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_serve_rejects_bad_flags_before_loading_anything():
    proc = subprocess.run([sys.executable, "-m", "diffucode.cli", "serve", "--model", "/nonexistent/model"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--model /nonexistent/model: no such directory" in proc.stderr
    from diffucode.recipes.serve import _check, build_parser

    parser = build_parser()
    args = parser.parse_args(["--model", "nano-mdm"])
    _check(args, parser)  # a bundled name resolves to its directory
    assert (args.model / "config.json").is_file() and args.model.name == "diffucoder-nano-mdm"
    proc = subprocess.run([sys.executable, "-m", "diffucode.cli", "serve", "--max-batch-size", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--max-batch-size must be >= 1" in proc.stderr
