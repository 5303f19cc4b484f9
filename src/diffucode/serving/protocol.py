"""Request bodies and error objects of the OpenAI-compatible API (no torch, no model).

    python -c "from diffucode.serving.protocol import parse_body, CompletionRequest as C;
    print(parse_body(C, b'{\\"prompt\\": \\"x\\", \\"steps\\": 4}'))"

Bodies follow OpenAI's ``/v1/completions`` and ``/v1/chat/completions`` fields; the diffusion
settings (``steps``, ``alg``, ``alg_temp``, ``top_k``, ``threshold``, ``block_len``, ``cache``,
``eps``) are extra top-level fields (``extra_body=`` in the ``openai`` client). Unknown fields are
refused, as OpenAI's API does, so a typo (``"temprature"``) is a 400 that names it instead of a
silently ignored setting. Fields this server cannot honour (log-probabilities, penalties, logit
bias, tools) are refused when set to anything but their neutral value.

Status codes (the body is always ``{"error": {"message", "type", "param", "code"}}``):

====  =====================================================================================
400   a value that is wrong or that this model cannot serve: out of range, unsupported
      feature, ``suffix`` on a model that cannot infill, settings the engine refuses,
      unknown field, body that is not JSON
404   unknown ``model`` name or route
413   request body too large, or prompt (+ suffix) + ``max_tokens`` beyond the model's context
422   a body of the wrong shape: a required field missing, a field of the wrong JSON type
429   the queue is full (``Retry-After`` says when to try again)
500   decoding failed unexpectedly (the server keeps serving)
503   the model is still loading, or the server is stopping
====  =====================================================================================
"""

from __future__ import annotations

import json
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ALGS = ("origin", "maskgit_plus", "topk_margin", "entropy", "low_confidence", "random")
MAX_STOPS = 4  # OpenAI's limit on stop sequences


class ApiError(Exception):
    """An error answered to the client in OpenAI's shape; ``status`` is the HTTP status code."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class _Sampling(_Body):
    """Fields both endpoints share: OpenAI's sampling fields and the diffusion settings."""

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    stop: Union[str, list[str], None] = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    # diffusion settings (GenerationConfig fields)
    steps: int | None = Field(None, ge=1)
    alg: Literal[ALGS] | None = None  # type: ignore[valid-type]
    alg_temp: float | None = Field(None, ge=0)
    top_k: int | None = Field(None, ge=1)
    threshold: float | None = Field(None, gt=0, le=1)
    block_len: int | None = Field(None, ge=1)
    cache: Literal["none", "prefix", "dual"] | None = None
    eps: float | None = Field(None, gt=0, lt=1)
    stream_canvas: bool = False  # streaming: also send each step's whole canvas (masks shown as ``mask_char``)

    def stops(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        if len(stops) > MAX_STOPS:
            raise bad_request(f"'stop' takes at most {MAX_STOPS} sequences, got {len(stops)}", "stop")
        if any(s == "" for s in stops):
            raise bad_request("'stop' sequences must not be empty", "stop")
        return stops

    def check_unsupported(self) -> None:
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name) not in (None, 0, 0.0):
                raise bad_request(f"'{name}' is not supported by diffusion decoding (every position is decoded "
                                  f"in parallel, there is no running token count); leave it unset or 0", name)
        if self.logit_bias:
            raise bad_request("'logit_bias' is not supported; leave it unset", "logit_bias")
        if self.stream_options is not None:
            unknown = set(self.stream_options) - {"include_usage"}
            if unknown:
                raise bad_request(f"'stream_options': unknown key(s) {', '.join(sorted(unknown))}", "stream_options")
            if not self.stream:
                raise bad_request("'stream_options' is only allowed with 'stream': true", "stream_options")
        if self.stream_canvas and not self.stream:
            raise bad_request("'stream_canvas' is only allowed with 'stream': true", "stream_canvas")

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class CompletionRequest(_Sampling):
    prompt: Union[str, list[str], list[int], list[list[int]]]
    suffix: str | None = None
    echo: bool = False
    logprobs: int | None = None
    best_of: int | None = None

    def check_unsupported(self) -> None:
        super().check_unsupported()
        if self.logprobs not in (None, 0):
            raise bad_request("'logprobs' is not supported by this server", "logprobs")
        if self.best_of not in (None, 1) and self.best_of != self.n:
            raise bad_request("'best_of' is not supported (no log-probabilities to rank samples by); leave it unset",
                              "best_of")
        if self.echo and self.stream:
            raise bad_request("'echo' with 'stream' is not supported", "echo")


class ChatMessage(_Body):
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: Union[str, list[dict[str, Any]], None] = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise bad_request(f"message content parts must be {{'type': 'text', 'text': ...}}; got type "
                                  f"{part.get('type')!r} (this is a text-only model)", "messages")
            parts.append(part["text"])
        return "".join(parts)


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None

    def check_unsupported(self) -> None:
        super().check_unsupported()
        if self.logprobs or self.top_logprobs:
            raise bad_request("'logprobs' is not supported by this server", "logprobs")
        if self.response_format not in (None, {"type": "text"}):
            raise bad_request("'response_format' other than {'type': 'text'} is not supported", "response_format")
        if self.tools or self.tool_choice not in (None, "none"):
            raise bad_request("tool calling is not supported by this server", "tools")
        if self.max_tokens is not None and self.max_completion_tokens is not None \
                and self.max_tokens != self.max_completion_tokens:
            raise bad_request("give 'max_tokens' or 'max_completion_tokens', not two different values",
                              "max_completion_tokens")
        if self.max_tokens is None:
            self.max_tokens = self.max_completion_tokens


def parse_body(cls: type[_Body], raw: bytes) -> Any:
    """Parse and validate a request body; every failure is an :class:`ApiError` naming the field."""
    try:
        data = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise bad_request(f"the request body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ApiError(422, f"the request body must be a JSON object, got {type(data).__name__}")
    try:
        req = cls.model_validate(data)
    except ValidationError as e:
        raise _validation_error(e) from None
    req.check_unsupported()
    return req


def _validation_error(e: ValidationError) -> ApiError:
    err = e.errors(include_url=False)[0]
    loc = [str(x) for x in err.get("loc", ())]
    # a union type reports each branch in the location (prompt.str, prompt.list[int]...): keep the field path
    param = ".".join(x for x in loc if not x.startswith(("str", "list[", "function-", "literal[", "int", "dict[")))
    kind = err.get("type", "")
    msg = err.get("msg", "invalid value")
    if kind == "extra_forbidden":
        return bad_request(f"unrecognized request argument supplied: '{param}'", param, "unknown_parameter")
    if kind in ("missing",):
        return ApiError(422, f"'{param}' is a required field", param=param, code="missing_required_parameter")
    if kind.endswith("_type") or kind.endswith("_parsing") or kind in ("model_type", "union_tag_invalid"):
        return ApiError(422, f"'{param}': {msg}", param=param, code="invalid_type")
    return bad_request(f"'{param}': {msg}", param, "invalid_value")
