"""Bad requests, overload and loading get OpenAI's error shape and the documented status codes,
and the server keeps serving afterwards."""

import json
import threading
import time

import pytest

httpx = pytest.importorskip("httpx")

from diffucode.models import build_tiny_model  # noqa: E402
from diffucode.serving.server import ServerThread  # noqa: E402

OK = {"model": "nano", "prompt": "def add(a, b):\n", "max_tokens": 8}

CASES = [  # (id, body or raw bytes, status, param, code)
    ("not-json", b"{nope", 400, None, None),
    ("not-an-object", b"[1, 2]", 422, None, None),
    ("missing-prompt", {"model": "nano"}, 422, "prompt", "missing_required_parameter"),
    ("prompt-wrong-type", {**OK, "prompt": 5.5}, 422, "prompt", "invalid_type"),
    ("unknown-field", {**OK, "temprature": 0.5}, 400, "temprature", "unknown_parameter"),
    ("temperature-range", {**OK, "temperature": -1}, 400, "temperature", "invalid_value"),
    ("top-p-range", {**OK, "top_p": 1.5}, 400, "top_p", "invalid_value"),
    ("bad-alg", {**OK, "alg": "fastest"}, 400, "alg", "invalid_value"),
    ("steps-over-tokens", {**OK, "steps": 9}, 400, "steps", "invalid_value"),
    ("block-len-not-the-models", {**OK, "block_len": 8}, 400, "block_len", None),
    ("dual-cache-on-block-model", {**OK, "cache": "dual"}, 400, "cache", None),
    ("suffix-on-block-model", {**OK, "suffix": "\n    return c\n"}, 400, "suffix", "infilling_unsupported"),
    ("too-many-stops", {**OK, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop", None),
    ("too-many-rows", {**OK, "n": 65}, 400, "n", None),
    ("logprobs", {**OK, "logprobs": 2}, 400, "logprobs", None),
    ("penalty", {**OK, "presence_penalty": 0.5}, 400, "presence_penalty", None),
    ("mask-token-in-prompt", {**OK, "prompt": "x = <|mask|>"}, 400, "prompt", None),
    ("ids-outside-vocab", {**OK, "prompt": [1, 99999]}, 400, "prompt", None),
    ("empty-prompt", {**OK, "prompt": ""}, 400, "prompt", None),
    ("max-tokens-over-context", {**OK, "max_tokens": 5000}, 413, "max_tokens", "context_length_exceeded"),
    ("prompt-over-context", {**OK, "prompt": "x = 1\n" * 2000, "max_tokens": None}, 413, "prompt",
     "context_length_exceeded"),
    ("unknown-model", {**OK, "model": "gpt-4"}, 404, "model", "model_not_found"),
]


def _post(url, body, path="/completions"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url + path, content=data, headers={"content-type": "application/json"}, timeout=60)


def _is_error_shape(r, status):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"], err
    return err


@pytest.mark.parametrize("name,body,status,param,code", CASES, ids=[c[0] for c in CASES])
def test_bad_completion_requests(nano_server, name, body, status, param, code):
    err = _is_error_shape(_post(nano_server.base_url, body), status)
    if param is not None:
        assert err["param"] == param, err
    if code is not None:
        assert err["code"] == code, err


def test_bad_chat_requests_and_routes(nano_server):
    url = nano_server.base_url
    chat = {"model": "nano", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    _is_error_shape(_post(url, {**chat, "messages": []}, "/chat/completions"), 400)
    _is_error_shape(_post(url, {**chat, "messages": [{"role": "wizard", "content": "x"}]}, "/chat/completions"), 400)
    _is_error_shape(_post(url, {**chat, "tools": [{"type": "function"}]}, "/chat/completions"), 400)
    _is_error_shape(_post(url, {**chat, "max_tokens": 8, "max_completion_tokens": 9}, "/chat/completions"), 400)
    _is_error_shape(httpx.get(url + "/nothing-here", timeout=10), 404)
    _is_error_shape(httpx.get(url + "/completions", timeout=10), 405)
    _is_error_shape(httpx.get(url + "/models/gpt-4", timeout=10), 404)
    big = b'{"prompt": "' + b"x" * (5 << 20) + b'"}'
    _is_error_shape(_post(url, big), 413)


def test_server_keeps_serving_after_bad_requests(nano_server):
    for _, body, status, _, _ in CASES:
        assert _post(nano_server.base_url, body).status_code == status
    r = _post(nano_server.base_url, OK)
    assert r.status_code == 200 and r.json()["choices"][0]["text"]
    assert httpx.get(nano_server.base_url.removesuffix("/v1") + "/health", timeout=10).json()["status"] == "ready"


def _gated_tiny(gate: threading.Event, entered: threading.Event):
    """A tiny model whose forward waits for ``gate``: it holds the worker busy on demand."""
    def load():
        model, tok = build_tiny_model(hidden_size=32, seed=0)
        inner = model.forward

        def forward(*a, **kw):
            entered.set()
            assert gate.wait(60), "test gate never opened"
            return inner(*a, **kw)

        model.forward = forward
        return model, tok
    return load


def test_full_queue_answers_429_then_recovers():
    gate, entered = threading.Event(), threading.Event()
    with ServerThread(_gated_tiny(gate, entered), served_name="tiny", max_queue=1, window_s=0.0) as s:
        body = {"model": "tiny", "prompt": "def f(x):\n", "max_tokens": 4}
        answers = {}

        def send(k):
            answers[k] = _post(s.base_url, body)

        first = threading.Thread(target=send, args=("running",))
        first.start()
        assert entered.wait(30)  # the first request is being decoded (blocked in forward)
        second = threading.Thread(target=send, args=("queued",))
        second.start()
        deadline = time.monotonic() + 30
        while s.worker.queued < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert s.worker.queued == 1
        r = _post(s.base_url, body)
        err = _is_error_shape(r, 429)
        assert err["code"] == "queue_full" and r.headers["retry-after"] == "1"
        gate.set()
        first.join(60)
        second.join(60)
        assert answers["running"].status_code == 200 and answers["queued"].status_code == 200
        assert _post(s.base_url, body).status_code == 200


def test_loading_answers_503_then_serves():
    release = threading.Event()

    def slow_load():
        assert release.wait(60)
        return build_tiny_model(hidden_size=32, seed=0)

    s = ServerThread(slow_load, served_name="tiny")
    s._thread.start()  # the HTTP side only; the model is still loading
    try:
        while not s.server.started:
            time.sleep(0.02)
        body = {"model": "tiny", "prompt": "def f(x):\n", "max_tokens": 4}
        r = _post(s.base_url, body)
        err = _is_error_shape(r, 503)
        assert err["code"] == "model_loading" and "retry-after" in r.headers
        assert httpx.get(f"http://{s.host}:{s.port}/health", timeout=10).status_code == 503
        release.set()
        assert s.worker.wait_ready(60)
        assert _post(s.base_url, body).status_code == 200
    finally:
        release.set()
        s.stop()


def test_a_model_that_fails_to_load_is_reported():
    def broken():
        raise FileNotFoundError("no config.json in /nowhere")

    s = ServerThread(broken, served_name="x")
    s._thread.start()
    try:
        assert not s.worker.wait_ready(30)
        while not s.server.started:
            time.sleep(0.02)
        err = _is_error_shape(_post(s.base_url, {"prompt": "x"}), 503)
        assert "no config.json" in err["message"]
    finally:
        s.stop()
