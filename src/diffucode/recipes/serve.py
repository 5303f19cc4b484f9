"""`diffucode serve`: an OpenAI-compatible HTTP server for a diffusion code model.

    diffucode serve                                   # the bundled model on http://127.0.0.1:8000/v1
    diffucode serve --model nano-mdm                  # the bundled bidirectional model: suffix infilling
    diffucode serve --model path/to/DiffuCoder-7B-Instruct --port 8001 --max-batch-size 32
    curl -s 127.0.0.1:8000/v1/completions -H 'content-type: application/json' \
        -d '{"model": "diffucoder-nano", "prompt": "def add(a, b):\\n", "max_tokens": 16}'

Arguments are parsed and checked before torch is imported; the model loads on the decoding
thread while the server already answers (503 until it is ready). See
:mod:`diffucode.serving` for the API, the batching and the streaming semantics.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

DEFAULTS_NOTE = """\
endpoints: POST /v1/completions (prompt, suffix for infilling), POST /v1/chat/completions (the
model's chat template), GET /v1/models, GET /health. Request fields: OpenAI's (max_tokens,
temperature, top_p, n, stop, seed, stream, echo) plus the diffusion settings steps, alg,
alg_temp, top_k, threshold, block_len, cache, eps (openai client: extra_body={...}).

defaults for fields a request leaves out: temperature 0 (greedy; OpenAI's default is 1),
max_tokens the model's recommended length (bundled model: 64; else --default-max-tokens or 256)
clipped to the context, alg entropy, one token per step, no cache. Completion prompts are used
exactly as sent.

streaming ("stream": true) sends, as server-sent events, the text that has just become final:
tokens are never re-masked, so everything before the first masked position is final (a block
at a time for block-diffusion models). "stream_canvas": true also sends each step's canvas.

batching (--batching continuous, the default): on block-causal and causal models a request with
compatible settings (same decoding settings apart from the seed and, with one token per step or
a threshold, max_tokens) joins the running batch at its next block and leaves when its own
completion is done, up to --max-batch-size rows. Bidirectional models (and --batching fixed)
gather: requests queued together (within --batch-window-ms) with equal settings and suffix
length are decoded in one batch that runs to its end. Either way a seeded or greedy request
gets the same tokens alone or in any batch. There is no authentication: keep the default
loopback --host unless a proxy in front of it checks who calls."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="diffucode serve",
        description="Serve a diffusion code model over an OpenAI-compatible HTTP API (FastAPI + uvicorn).",
        epilog=DEFAULTS_NOTE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    m = p.add_argument_group("model")
    m.add_argument("--model", help="model directory, or a bundled model: nano (block diffusion, the default) or "
                                   "nano-mdm (bidirectional: suffix infilling)")
    m.add_argument("--tiny", action="store_true", help="an UNTRAINED tiny model (random output; smoke tests)")
    m.add_argument("--served-model-name", help="the name clients pass as 'model' (default: the directory's name)")
    m.add_argument("--device", default=None, help="cpu / cuda / cuda:1 (default: cuda if available)")
    m.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"], help="weights dtype")
    m.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    s = p.add_argument_group("server")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback only)")
    s.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 = any free port)")
    s.add_argument("--max-batch-size", type=int, default=16, help="most rows decoded together (default 16)")
    s.add_argument("--batch-window-ms", type=float, default=10.0,
                   help="how long the oldest queued request waits for companions (default 10 ms)")
    s.add_argument("--batching", choices=["continuous", "fixed"], default="continuous",
                   help="continuous (default): requests join and leave a running batch block by block (block-causal "
                        "and causal models; bidirectional ones always use fixed); fixed: a batch runs to its end "
                        "before the next starts")
    s.add_argument("--max-queue", type=int, default=64, help="requests waiting before new ones get 429 (default 64)")
    s.add_argument("--max-n", type=int, default=64, help="most completions one request may ask for, prompts x n "
                                                         "(default 64)")
    s.add_argument("--max-body-mb", type=float, default=4.0, help="largest request body, MiB (default 4)")
    s.add_argument("--default-max-tokens", type=int, default=None,
                   help="max_tokens when a request gives none (default: the model's recommended length, else 256)")
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level (default info)")
    return p


def _check(args, parser) -> None:
    for name in ("max_batch_size", "max_queue", "max_n"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.batch_window_ms < 0:
        parser.error("--batch-window-ms must be >= 0")
    if args.max_body_mb <= 0:
        parser.error("--max-body-mb must be > 0")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port}: must be in 0..65535")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.default_max_tokens is not None and args.default_max_tokens < 1:
        parser.error("--default-max-tokens must be >= 1")
    if args.model is not None and args.tiny:
        parser.error("give --model or --tiny, not both")
    if args.model is not None:
        from diffucode.bundled import missing_model_hint, resolve_model_path
        from diffucode.errors import UserError

        try:
            args.model = resolve_model_path(args.model)  # "nano", "nano-mdm" or a directory
        except UserError as e:
            parser.error(str(e))
        if not args.model.exists():
            parser.error(f"--model {args.model}: no such directory; {missing_model_hint(args.model)}")


def _loader(args):
    def load():
        import torch

        from diffucode.models import build_tiny_model, default_model_path, load_model

        if args.threads:
            torch.set_num_threads(args.threads)
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if args.tiny:
            model, tok = build_tiny_model()
            return model.to(device).eval(), tok
        path = args.model or default_model_path()
        dtype = None if args.dtype == "auto" else args.dtype
        model, tok = load_model(path, dtype=dtype, device=device)
        return model.eval(), tok

    return load


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check(args, parser)
    if args.model is None and not args.tiny:
        from diffucode.models.loading import default_model_path

        if default_model_path() is None:
            parser.error("--model: no model given and no bundled model is installed; pass --model PATH (or --tiny)")
    name = args.served_model_name or ("tiny-untrained" if args.tiny else
                                      (args.model.resolve().name if args.model else "diffucoder-nano"))
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        print(f"diffucode serve: warning: listening on {args.host}, reachable beyond this machine, with no "
              "authentication", file=sys.stderr)
    if args.tiny:
        from diffucode.recipes.generate import UNTRAINED_WARNING

        print(UNTRAINED_WARNING, file=sys.stderr)

    import uvicorn

    from diffucode.serving.server import build, uvicorn_config

    app, worker = build(_loader(args), served_name=name, max_batch_rows=args.max_batch_size,
                        window_s=args.batch_window_ms / 1000, max_queue=args.max_queue,
                        max_body_bytes=int(args.max_body_mb * (1 << 20)), max_rows_per_request=args.max_n,
                        default_max_tokens=args.default_max_tokens, continuous=args.batching == "continuous")
    print(f"diffucode serve: '{name}' on http://{args.host}:{args.port}/v1 (loading the model; /health says when "
          "it is ready)", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn_config(app, args.host, args.port, args.log_level))

    def watch_loading():  # a model that cannot load is fatal: stop instead of answering 503 for ever
        if worker.wait_ready():
            print(f"diffucode serve: ready ({worker.model.attention} model, context {worker.model.max_seq_len} "
                  "tokens)", file=sys.stderr, flush=True)
        else:
            server.should_exit = True

    import threading

    threading.Thread(target=watch_loading, daemon=True).start()
    try:
        server.run()
    finally:
        worker.stop(timeout=5)
    if worker.load_error:
        print(f"diffucode serve: error: the model did not load: {worker.load_error}", file=sys.stderr)
        return 1
    return 0
