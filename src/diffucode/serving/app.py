"""The FastAPI application: OpenAI's completions, chat completions and models routes.

    python -c "
    from diffucode.models import build_tiny_model
    from diffucode.serving.app import create_app
    from diffucode.serving.worker import DecodeWorker
    app = create_app(DecodeWorker(build_tiny_model).start(), served_name='tiny'); print(app.routes[-1].path)"

Requests are parsed and checked against the model here, on the event loop (tokenizing is
fast); decoding happens on the worker thread. Everything that can go wrong with a request is an
:class:`~diffucode.serving.protocol.ApiError` answered in OpenAI's error shape; the routes never
let an exception escape, so the server keeps serving after any bad request.

Decoding defaults (what a request gets for a field it leaves out), chosen for code models and
documented in ``diffucode serve --help``: ``temperature`` 0 (greedy; OpenAI's default is 1),
``max_tokens`` the model's recommended completion length (config key
``diffucode_max_new_tokens``, else 256) clipped to the context left after the prompt, ``alg``
``entropy``, ``steps`` = ``max_tokens`` (one token per step), no cache. Completion prompts are
used exactly as sent (no chat template, no newline added after ``def f(x):``).

Streaming (``"stream": true``): server-sent events, one ``data:`` line per chunk, then
``data: [DONE]``. A diffusion model reveals tokens anywhere but never re-masks one, so each
chunk carries the text that has just become final: the *committed prefix* (everything before
the first masked position) grown since the last chunk. Block-diffusion models commit a block at
a time; whole-sequence models commit whenever the leftmost masks are filled (with the
``entropy`` rule often only near the end). Concatenating the deltas gives exactly the
non-streamed text. With ``"stream_canvas": true`` every step also sends the row's whole canvas
in a non-standard ``canvas`` field of the choice (masks shown as ``\u2591``), to watch it fill in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from diffucode.serving.protocol import ApiError, ChatRequest, CompletionRequest, bad_request, parse_body
from diffucode.serving.textstream import RowText, render_canvas
from diffucode.serving.worker import DecodeWorker, Job

log = logging.getLogger("diffucode.serve")

# GenerationConfig errors name the CLI flag; the API names the request field
_FLAG_TO_FIELD = {
    "--max-new-tokens": "max_tokens", "--steps": "steps", "--alg": "alg", "--alg-temp": "alg_temp",
    "--temperature": "temperature", "--top-p": "top_p", "--top-k": "top_k", "--block-len": "block_len",
    "--threshold": "threshold", "--cache": "cache", "--eps": "eps", "--num-return-sequences": "n",
}


class _Ctx:
    """What a route needs to turn a request into a job and the job's ids back into text."""

    def __init__(self, worker: DecodeWorker, served_name: str, max_rows_per_request: int, default_max_tokens: int | None):
        self.worker = worker
        self.served_name = served_name
        self.max_rows = max_rows_per_request
        self.default_max_tokens = default_max_tokens

    def ready(self):
        self.worker.check_ready()
        return self.worker.model, self.worker.tokenizer

    def check_model(self, name: str | None) -> None:
        if name is not None and name != self.served_name:
            raise ApiError(404, f"the model '{name}' does not exist; this server serves '{self.served_name}'",
                           param="model", code="model_not_found")


# ---------------------------------------------------------------------------------------------
# request -> job
# ---------------------------------------------------------------------------------------------
def _check_ids(model, ids: list[int], what: str, param: str) -> None:
    vocab = model.backbone.get_input_embeddings().num_embeddings
    if any((not isinstance(t, int)) or t < 0 or t >= vocab for t in ids):
        raise bad_request(f"{what} holds token ids outside the vocabulary [0, {vocab})", param)
    if model.mask_token_id in ids:
        raise bad_request(f"{what} contains the mask token (id {model.mask_token_id}); for infilling put the text "
                          f"after the hole in 'suffix'", param)


def _generation_config(ctx: _Ctx, req, model, prompt_len: int, suffix_len: int, stop_ids: list[int]):
    """The request's GenerationConfig, checked against the model (the engine's own checks, made
    here so that a bad request is refused before it joins a batch)."""
    from diffucode.config import ConfigError
    from diffucode.sampling import GenerationConfig

    limit = model.max_seq_len
    room = limit - prompt_len - suffix_len
    L = req.max_tokens
    if L is None:
        recommended = ctx.default_max_tokens or int(getattr(model.config, "diffucode_max_new_tokens", None) or 256)
        L = min(recommended, room)
        if req.block_len and model.attention == "bidirectional" and L % req.block_len:
            L -= L % req.block_len  # a whole number of blocks
    what = f"prompt ({prompt_len} tokens)" + (f" + suffix ({suffix_len})" if suffix_len else "")
    if room <= 0 or L < 1:
        raise ApiError(413, f"{what} leaves no room in the model's context of {limit} tokens",
                       param="prompt", code="context_length_exceeded")
    if prompt_len + suffix_len + L > limit:
        raise ApiError(413, f"{what} + max_tokens ({L}) = {prompt_len + suffix_len + L} exceeds the model's context "
                            f"of {limit} tokens; lower max_tokens to {room} or shorten the prompt",
                       param="max_tokens", code="context_length_exceeded")
    bidirectional = model.attention == "bidirectional"
    if suffix_len and not bidirectional:
        raise bad_request(f"'suffix' (infilling) needs a bidirectional model; this one is {model.attention} and can "
                          f"only continue the prompt", "suffix", "infilling_unsupported")
    if req.cache not in (None, "none") and not bidirectional:
        raise bad_request(f"'cache': {req.cache!r} is for bidirectional models; this {model.attention} model always "
                          f"decodes with its exact KV cache", "cache")
    try:
        cfg = GenerationConfig(
            max_new_tokens=L, steps=req.steps, alg=req.alg or "entropy", alg_temp=req.alg_temp or 0.0,
            temperature=req.temperature or 0.0, top_p=req.top_p, top_k=req.top_k, block_len=req.block_len,
            threshold=req.threshold, cache=req.cache or "none", eps=req.eps if req.eps is not None else 1e-3,
            seed=req.seed, stop_token_ids=stop_ids,
        )
    except ConfigError as e:
        msg = str(e)
        flag = msg.split(":", 1)[0]
        field = _FLAG_TO_FIELD.get(flag)
        if field:
            msg = f"'{field}':" + msg.split(":", 1)[1]
        raise bad_request(msg, field, "invalid_value") from None
    if bidirectional:
        bl = cfg.block_len or L
        if L % bl:
            raise bad_request(f"'block_len' {bl} does not divide max_tokens {L} (the completion is decoded in whole "
                              f"blocks)", "block_len")
        if cfg.threshold is None and cfg.num_steps % (L // bl):
            raise bad_request(f"'steps' {cfg.num_steps} cannot be split evenly over {L // bl} blocks; use a multiple "
                              f"of {L // bl}", "steps")
    else:
        own = int(model.block_len) if model.attention == "block_causal" else 1
        if cfg.block_len is not None and cfg.block_len != own:
            raise bad_request(f"'block_len': this {model.attention} model decodes in its own blocks of {own}; leave "
                              f"it unset or set it to {own}", "block_len")
    return cfg


def _end_ids(model, cfg) -> set[int]:
    ids = {int(t) for t in cfg.stop_token_ids}
    for t in (model.eos_token_id, model.pad_token_id):
        if t is not None:
            ids.add(int(t))
    ids.discard(int(model.mask_token_id))
    return ids


def _chat_stop_ids(tok) -> list[int]:
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    return [im_end] if isinstance(im_end, int) and im_end != tok.unk_token_id else []


class _Prepared:
    """A validated request: its job and what turning the ids into an answer needs."""

    def __init__(self, job: Job, texts: list[RowText], prompt_tokens: int, echo: list[str] | None, model, tok):
        self.job, self.texts, self.prompt_tokens, self.echo = job, texts, prompt_tokens, echo
        self.model, self.tok = model, tok


def _prepare(ctx: _Ctx, req, prompts: list[list[int]], suffix: list[int] | None, stop_ids: list[int],
             echo: list[str] | None = None) -> _Prepared:
    model, tok = ctx.ready()
    rows = len(prompts) * req.n
    if rows > ctx.max_rows:
        raise bad_request(f"this request asks for {rows} completions (prompts x n); the limit is {ctx.max_rows}", "n")
    for ids in prompts:
        if not ids:
            raise bad_request("the prompt is empty: a diffusion model needs at least one prompt token", "prompt")
        _check_ids(model, ids, "the prompt", "prompt")
    if suffix:
        _check_ids(model, suffix, "the suffix", "suffix")
    cfg = _generation_config(ctx, req, model, max(len(p) for p in prompts), len(suffix or ()), stop_ids)
    stops = req.stops()
    end_ids = _end_ids(model, cfg)
    texts = [RowText(tok, end_ids, stops, model.mask_token_id) for _ in range(rows)]
    job = Job(rows=[p for p in prompts for _ in range(req.n)], suffix=suffix or None, config=cfg)
    return _Prepared(job, texts, sum(len(p) for p in prompts), echo, model, tok)


def _completion_inputs(ctx: _Ctx, req: CompletionRequest):
    model, tok = ctx.ready()
    p = req.prompt
    if isinstance(p, str):
        p = [p]
    if p and isinstance(p[0], int):
        p = [p]
    if not p:
        raise bad_request("'prompt' is empty", "prompt")
    prompts, shown = [], []
    for item in p:
        if isinstance(item, str):
            prompts.append(tok(item).input_ids)
            shown.append(item)
        else:
            prompts.append(list(item))
            shown.append(tok.decode(list(item), skip_special_tokens=False))
    suffix = None
    if req.suffix:
        suffix = tok(req.suffix, add_special_tokens=False).input_ids
    return prompts, suffix, shown


def _chat_inputs(ctx: _Ctx, req: ChatRequest):
    _, tok = ctx.ready()
    if not getattr(tok, "chat_template", None):
        raise bad_request(f"the model '{ctx.served_name}' has no chat template; use /v1/completions", "messages",
                          "chat_unsupported")
    messages = [{"role": m.role, "content": m.text()} for m in req.messages]
    try:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as e:  # noqa: BLE001 - a template that rejects these messages (e.g. role order)
        raise bad_request(f"the chat template rejected these messages: {e}", "messages") from None
    return [tok(text, add_special_tokens=False).input_ids], _chat_stop_ids(tok)


# ---------------------------------------------------------------------------------------------
# running a job from the event loop
# ---------------------------------------------------------------------------------------------
def _post(loop: asyncio.AbstractEventLoop, fn, *args) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is gone (server stopping): nobody is waiting any more
        pass


async def _run(ctx: _Ctx, job: Job) -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future = loop.create_future()
    job.on_finish = lambda j: _post(loop, lambda: fut.done() or fut.set_result(None))
    ctx.worker.submit(job)
    try:
        await fut
    except asyncio.CancelledError:
        ctx.worker.cancel(job)
        raise
    if job.error is not None:
        raise job.error


def _usage(prep: _Prepared) -> dict:
    comp = sum(t.completion_tokens for t in prep.texts)
    return {"prompt_tokens": prep.prompt_tokens, "completion_tokens": comp, "total_tokens": prep.prompt_tokens + comp}


def _extra(prep: _Prepared) -> dict:
    """Non-standard decoding facts, in their own field (OpenAI clients keep unknown fields)."""
    j = prep.job
    return {"nfe": j.nfe, "seconds": round(j.seconds, 4), "batch_rows": j.batch_rows, "seed": j.config.seed}


def _finish_all(prep: _Prepared) -> list[str]:
    out = []
    for k, t in enumerate(prep.texts):
        t.update(prep.job.result[k], final=True)
        out.append(t.sent)
    return out


def _sse(obj: Any) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


async def _stream(ctx: _Ctx, prep: _Prepared, make_chunk, first_chunks: list | None, include_usage: bool,
                  canvas: bool) -> AsyncIterator[bytes]:
    """Server-sent events of one job (already submitted)."""
    queue: asyncio.Queue = prep.queue  # type: ignore[attr-defined]
    job = prep.job
    try:
        for c in first_chunks or []:
            yield _sse(c)
        while True:
            kind, *rest = await queue.get()
            if kind == "step":
                k, row = rest
                t = prep.texts[k]
                was_done = t.done
                delta = t.update(row)
                if delta or (t.done and not was_done):
                    yield _sse(make_chunk(k, delta, t.finish_reason if t.done else None))
                if canvas:
                    yield _sse(make_chunk(k, "", None, canvas=render_canvas(prep.tok, row, prep.model.mask_token_id)))
                continue
            if job.error is not None:  # kind == "done"
                yield _sse(job.error.body())
                break
            for k, t in enumerate(prep.texts):
                if not t.done:
                    delta = t.update(job.result[k], final=True)
                    yield _sse(make_chunk(k, delta, t.finish_reason))
            if include_usage:
                yield _sse(make_chunk(None, None, None, usage=_usage(prep)))
            break
        yield b"data: [DONE]\n\n"
    finally:
        if not job._done.is_set():
            ctx.worker.cancel(job)


def _chunk_maker(rid: str, obj: str, created: int, served_name: str, content):
    """``chunk(k, text, finish, canvas=None, usage=None, **kw)``: one streamed event of a request;
    ``content(text, finish, **kw)`` gives the choice's own field (``text`` for completions,
    ``delta`` for chat). ``k`` None: a choice-less chunk (the closing usage one)."""

    def chunk(k, text, finish, canvas=None, usage=None, **kw) -> dict:
        body = {"id": rid, "object": obj, "created": created, "model": served_name, "choices": []}
        if k is not None:
            choice = {"index": k, **content(text, finish, **kw), "logprobs": None, "finish_reason": finish}
            if canvas is not None:
                choice["canvas"] = canvas
            body["choices"].append(choice)
        if usage is not None:
            body["usage"] = usage
        return body

    return chunk


def _submit_streaming(ctx: _Ctx, prep: _Prepared) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    prep.queue = queue  # type: ignore[attr-defined]
    prep.job.on_step = lambda k, row: _post(loop, queue.put_nowait, ("step", k, row))
    prep.job.on_finish = lambda j: _post(loop, queue.put_nowait, ("done",))
    ctx.worker.submit(prep.job)  # errors (429, 503) become the HTTP status, before any event is sent


# ---------------------------------------------------------------------------------------------
# the app
# ---------------------------------------------------------------------------------------------
def create_app(worker: DecodeWorker, *, served_name: str, max_body_bytes: int = 4 << 20,
               max_rows_per_request: int = 64, default_max_tokens: int | None = None) -> FastAPI:
    ctx = _Ctx(worker, served_name, max_rows_per_request, default_max_tokens)
    app = FastAPI(title="diffucode", description="OpenAI-compatible API for diffusion code models",
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = ctx

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code)
        err = ApiError(e.status_code, f"{request.method} {request.url.path}: {e.detail}", code=code)
        return JSONResponse(err.body(), status_code=e.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception):
        log.exception("unexpected error")
        err = ApiError(500, f"internal error: {type(e).__name__}: {e}", type="server_error", code="internal_error")
        return JSONResponse(err.body(), status_code=500)

    async def body_of(request: Request) -> bytes:
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > max_body_bytes:
            raise ApiError(413, f"the request body is {size} bytes; the limit is {max_body_bytes}",
                           code="request_too_large")
        raw = await request.body()
        if len(raw) > max_body_bytes:
            raise ApiError(413, f"the request body is {len(raw)} bytes; the limit is {max_body_bytes}",
                           code="request_too_large")
        return raw

    @app.get("/health")
    async def health():
        body = {"status": worker.state, "queued": worker.queued, **worker.stats}
        if worker.load_error:
            body["error"] = worker.load_error
        return JSONResponse(body, status_code=200 if worker.state == "ready" else 503)

    def model_card() -> dict:
        return {"id": served_name, "object": "model", "created": int(app.state.created), "owned_by": "diffucode"}

    app.state.created = time.time()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str):
        ctx.check_model(name)
        return model_card()

    @app.post("/v1/completions")
    async def completions(request: Request):
        req = parse_body(CompletionRequest, await body_of(request))
        ctx.check_model(req.model)
        prompts, suffix, shown = _completion_inputs(ctx, req)
        prep = _prepare(ctx, req, prompts, suffix, [], echo=shown if req.echo else None)
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

        chunk = _chunk_maker(rid, "text_completion", created, served_name, lambda text, finish: {"text": text})

        if req.stream:
            _submit_streaming(ctx, prep)
            return StreamingResponse(_stream(ctx, prep, chunk, None, req.include_usage, req.stream_canvas),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        await _run(ctx, prep.job)
        texts = _finish_all(prep)
        choices = []
        for k, text in enumerate(texts):
            if prep.echo is not None:
                text = prep.echo[k // req.n] + text
            choices.append({"index": k, "text": text, "logprobs": None, "finish_reason": prep.texts[k].finish_reason})
        return {"id": rid, "object": "text_completion", "created": created, "model": served_name, "choices": choices,
                "usage": _usage(prep), "diffucode": _extra(prep)}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        req = parse_body(ChatRequest, await body_of(request))
        ctx.check_model(req.model)
        prompts, stop_ids = _chat_inputs(ctx, req)
        prep = _prepare(ctx, req, prompts, None, stop_ids)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def delta(text, finish, role=False):
            return {"delta": {"role": "assistant", "content": ""} if role
                    else ({} if finish and not text else {"content": text})}

        chunk = _chunk_maker(rid, "chat.completion.chunk", created, served_name, delta)

        if req.stream:
            _submit_streaming(ctx, prep)
            first = [chunk(k, "", None, role=True) for k in range(len(prep.texts))]
            return StreamingResponse(_stream(ctx, prep, chunk, first, req.include_usage, req.stream_canvas),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        await _run(ctx, prep.job)
        texts = _finish_all(prep)
        choices = [{"index": k, "message": {"role": "assistant", "content": text}, "logprobs": None,
                    "finish_reason": prep.texts[k].finish_reason} for k, text in enumerate(texts)]
        return {"id": rid, "object": "chat.completion", "created": created, "model": served_name, "choices": choices,
                "usage": _usage(prep), "diffucode": _extra(prep)}

    return app
