"""The wire level of the two chat APIs the gateway speaks: OpenAI Chat Completions and Anthropic Messages.

Everything here is about bytes and shapes, nothing about policy: reading a request body safely
(:func:`read_json`), validating it and pulling out what the exchange log and the quotas need
(:func:`parse_chat`), rewriting it for the upstream (:func:`upstream_body`), answering errors in
each API's own shape so that the official SDKs raise the right exception class and retry only
what is worth retrying (:func:`error_response`), and reading token usage back from a response
(:func:`usage_of`) or from a stream as it passes through, without re-encoding it (:class:`StreamTap`).

The two APIs name the same things differently (``prompt_tokens`` / ``input_tokens``,
``finish_reason`` / ``stop_reason``); :class:`Usage` always uses the exchange log's names
(``/work/shared/spec/exchange-log.md``: ``end_turn``, ``max_tokens``, ``stop_sequence``, ``tool_use``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

__all__ = [
    "MAX_BODY_BYTES",
    "MEDIA_TOKEN_ALLOWANCE",
    "ApiError",
    "ChatRequest",
    "Flavor",
    "StreamTap",
    "Usage",
    "error_response",
    "parse_chat",
    "read_json",
    "stream_error_event",
    "upstream_body",
    "usage_of",
]

Flavor = Literal["openai", "anthropic"]

MAX_BODY_BYTES: int = 4 * 1024 * 1024
"""The largest request body read; larger ones get a 413 before they are read to the end."""

MEDIA_TOKEN_ALLOWANCE: int = 8192
"""Input tokens reserved per image, document, file or audio block. Images cost a fixed number of
tokens whatever their encoded size (about 1,600 at most for Claude, about 1,100 for GPT-4o at high
detail), so their bytes are left out of :attr:`ChatRequest.input_bytes` and this is counted instead.
A document or file given by URL or id cannot be sized here at all: it is the one case where the
reservation can fall short, and settling with the upstream's usage corrects it."""

_API_NAME: dict[str, str] = {"openai": "Chat Completions", "anthropic": "Messages"}

# --------------------------------------------------------------------------------------------- errors

# OpenAI's SDK picks its exception class from the status alone (400 BadRequestError ... 429
# RateLimitError, >=500 InternalServerError); the type names are those the OpenAI API sends.
_OPENAI_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
# Anthropic's documented error types (https://docs.anthropic.com/en/api/errors); its SDK also picks
# the class by status (413 ContentTooLargeError, 429 RateLimitError, 503 ServiceUnavailableError,
# 529 OverloadedError).
_ANTHROPIC_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
# A code that is one of these is the API's own category, not one of our reasons: no "[code]" prefix.
_STANDARD_CODES = frozenset(_OPENAI_TYPES.values()) | frozenset(_ANTHROPIC_TYPES.values()) | {"server_error"}


class ApiError(Exception):
    """A request the gateway refuses, with what the error response needs: raised by parsing and
    validation, turned into a response by :func:`error_response` (``exc.status``, ``exc.code`` ...)."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param

    def response(self, flavor: Flavor, headers: Mapping[str, str] | None = None) -> Response:
        """This error as ``flavor``'s error response."""
        return error_response(flavor, self.status, self.code, self.message, param=self.param, headers=headers)


def _error_type(flavor: Flavor, status: int) -> str:
    if flavor == "openai":
        return _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def _error_body(flavor: Flavor, status: int, code: str, message: str, param: str | None) -> dict[str, Any]:
    kind = _error_type(flavor, status)
    ours = code not in _STANDARD_CODES
    if flavor == "openai":
        return {"error": {"message": message, "type": kind, "param": param, "code": code if ours else None}}
    return {"type": "error", "error": {"type": kind, "message": f"[{code}] {message}" if ours else message}}


def error_response(
    flavor: Flavor,
    status: int,
    code: str,
    message: str,
    *,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An error in ``flavor``'s own shape, so the official SDKs raise their matching exception.

    OpenAI: ``{"error": {"message", "type", "param", "code"}}``; our own reason ``code`` (anything
    but a standard type name, e.g. ``daily_tokens``) goes in ``code``. Anthropic: ``{"type": "error",
    "error": {"type", "message"}}``; our reason opens the message as ``[daily_tokens] ...``. Pass
    ``headers={"retry-after": "30"}`` with a 429 or 5xx: both SDKs wait that long before retrying
    (and give up at once when it is over their limit, two minutes for OpenAI's).
    """
    body = orjson.dumps(_error_body(flavor, status, code, message, param))
    return Response(body, status_code=status, headers=dict(headers or {}), media_type="application/json")


def stream_error_event(flavor: Flavor, status: int, code: str, message: str) -> bytes:
    """An SSE event that reports an error after a stream has begun (the status line is already sent):
    Anthropic's ``event: error``; for OpenAI a ``data:`` chunk holding ``error``, which its SDK raises."""
    body = orjson.dumps(_error_body(flavor, status, code, message, None))
    if flavor == "anthropic":
        return b"event: error\ndata: " + body + b"\n\n"
    return b"data: " + body + b"\n\n"


# ------------------------------------------------------------------------------------------- reading


def _invalid(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, "invalid_request_error", message, param=param)


async def read_json(request: Request, max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The request body as a JSON object, read in chunks and given up on as soon as it is too big.

    Raises :class:`ApiError`: 415 unless the content type is ``application/json``; 413 when the
    body (or its declared ``content-length``) is over ``max_bytes``; 400 for a body that is not
    UTF-8, not JSON (with the position) or not an object.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        got = f"not {content_type!r}" if content_type else "and none was given"
        raise ApiError(415, "invalid_request_error", f"content-type must be application/json, {got}")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise _invalid(f"content-length header {declared!r} is not a number")
        if int(declared) > max_bytes:
            raise ApiError(
                413, "request_too_large", f"request body is {int(declared):,} bytes; the limit is {max_bytes:,}"
            )
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise ApiError(413, "request_too_large", f"request body is over the limit of {max_bytes:,} bytes")
            chunks.append(chunk)
    except ClientDisconnect:  # gone before its body arrived: nobody reads the answer, but never a crash
        raise ApiError(499, "client_disconnected", "the client closed the connection before its request arrived") from None
    raw = b"".join(chunks)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(f"request body is not valid UTF-8: byte {exc.start} is {raw[exc.start:exc.start + 1]!r}") from None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno} (char {exc.pos})"
        raise _invalid(f"request body is not valid JSON at {where}: {exc.msg}") from None
    if not isinstance(value, dict):
        raise _invalid(f"request body must be a JSON object, not {_json_kind(value)}")
    return value


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


# ------------------------------------------------------------------------------------------- parsing

# The documented request fields of each API (client SDKs' create() parameters that go in the body).
_OPENAI_FIELDS = frozenset({
    "messages", "model", "audio", "frequency_penalty", "function_call", "functions", "logit_bias",
    "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities", "moderation", "n",
    "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_options",
    "prompt_cache_retention", "reasoning_effort", "response_format", "safety_identifier", "seed",
    "service_tier", "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools",
    "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
})  # fmt: skip
_ANTHROPIC_FIELDS = frozenset({
    "model", "messages", "max_tokens", "cache_control", "container", "context_management", "diagnostics",
    "inference_geo", "mcp_servers", "metadata", "output_config", "output_format", "service_tier", "speed",
    "stop_sequences", "stream", "system", "temperature", "thinking", "tool_choice", "tools", "top_k", "top_p",
})  # fmt: skip
_ROLES: dict[str, frozenset[str]] = {
    "openai": frozenset({"system", "developer", "user", "assistant", "tool", "function"}),
    "anthropic": frozenset({"user", "assistant", "system"}),
}
_SYSTEM_ROLES = frozenset({"system", "developer"})
# Fields the model reads besides the messages: they count towards the input bound.
_MODEL_INPUT = {
    "openai": ("messages", "tools", "functions", "tool_choice", "response_format", "prediction"),
    "anthropic": ("system", "messages", "tools", "tool_choice", "mcp_servers", "output_format", "output_config"),
}
_IMAGE_BLOCKS = frozenset({"image", "image_url"})
_MEDIA_BLOCKS = frozenset({"document", "file", "input_audio", "container_upload"})


@dataclass(frozen=True)
class ChatRequest:
    """What the gateway needs to know about one chat request, in either API.

    ``max_tokens`` is what the client asked for (``None``: no limit given). ``prompt`` is the text
    of the last user turn and ``system`` the system prompt, as the exchange log keeps them.
    ``input_bytes`` counts the UTF-8 bytes of all the model reads (messages, system, tools as JSON;
    images are counted by :data:`MEDIA_TOKEN_ALLOWANCE` instead). ``input_token_bound`` is an upper
    bound on the input tokens: a BPE token covers at least one byte, and each message's framing
    costs fewer than 8 tokens, so reserving it before forwarding means a quota is never overshot.
    ``n_choices`` is OpenAI's ``n``: the output limit applies to each choice.
    """

    flavor: Flavor
    model: str
    stream: bool
    max_tokens: int | None
    n_messages: int
    has_tools: bool
    prompt: str | None
    system: str | None
    input_bytes: int
    input_token_bound: int
    include_usage: bool
    n_choices: int = 1


def parse_chat(body: Mapping[str, Any], flavor: Flavor) -> ChatRequest:
    """Validate a Chat Completions (``openai``) or Messages (``anthropic``) request body.

    Raises :class:`ApiError` (400) whose message and ``param`` name the field at fault, as in
    ``messages[2].content: expected a string or a list of content blocks``.
    """
    allowed = _OPENAI_FIELDS if flavor == "openai" else _ANTHROPIC_FIELDS
    for key in body:
        if key not in allowed:
            raise _invalid(f"{key}: unknown field; not a request field of the {_API_NAME[flavor]} API", key)
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _invalid("model: required, a non-empty string", "model")
    stream = _optional_bool(body, "stream")
    include_usage = False
    n_choices = 1
    if flavor == "openai":
        max_tokens = _openai_max_tokens(body)
        options = body.get("stream_options")
        if options is not None:
            if not stream:
                raise _invalid("stream_options: only allowed when stream is true", "stream_options")
            if not isinstance(options, Mapping):
                raise _invalid("stream_options: expected an object", "stream_options")
            include_usage = _optional_bool(options, "include_usage", "stream_options.include_usage")
        n = body.get("n")
        if n is not None:
            n_choices = _positive_int(n, "n")
            if n_choices > 128:
                raise _invalid(f"n: at most 128, got {n_choices}", "n")
    else:
        if body.get("max_tokens") is None:
            raise _invalid("max_tokens: required, an integer >= 1", "max_tokens")
        max_tokens = _positive_int(body["max_tokens"], "max_tokens")
    for key in ("tools", "functions", "mcp_servers"):
        if body.get(key) is not None and not isinstance(body[key], list):
            raise _invalid(f"{key}: expected an array", key)
    if body.get("metadata") is not None and not isinstance(body["metadata"], Mapping):
        raise _invalid("metadata: expected an object", "metadata")

    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages: required, a non-empty array of message objects", "messages")
    walk = _Walk(flavor)
    system_parts: list[str] = []
    if flavor == "anthropic" and body.get("system") is not None:
        system_parts.append(walk.system(body["system"]))
    prompt: str | None = None
    for i, message in enumerate(messages):
        role, text = walk.message(message, i)
        if role in _SYSTEM_ROLES:
            system_parts.append(text)
        elif role == "user":
            prompt = text

    model_input = {k: body[k] for k in _MODEL_INPUT[flavor] if body.get(k) is not None}
    input_bytes = len(orjson.dumps(model_input)) - walk.image_bytes
    has_tools = any(body.get(k) for k in ("tools", "functions", "mcp_servers"))
    return ChatRequest(
        flavor=flavor,
        model=model,
        stream=stream,
        max_tokens=max_tokens,
        n_messages=sum(1 for m in messages if m.get("role") not in _SYSTEM_ROLES),  # as Anthropic's, whose system is apart
        has_tools=has_tools,
        prompt=prompt,
        system="\n\n".join(system_parts) if system_parts else None,
        input_bytes=input_bytes,
        input_token_bound=input_bytes + 8 * len(messages) + 16 + MEDIA_TOKEN_ALLOWANCE * walk.media_blocks,
        include_usage=include_usage,
        n_choices=n_choices,
    )


def _optional_bool(body: Mapping[str, Any], key: str, param: str | None = None) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _invalid(f"{param or key}: expected true or false, got {_json_kind(value)}", param or key)
    return value


def _positive_int(value: Any, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"{param}: expected an integer >= 1, got {_json_kind(value)}", param)
    if value < 1:
        raise _invalid(f"{param}: expected an integer >= 1, got {value}", param)
    return value


def _openai_max_tokens(body: Mapping[str, Any]) -> int | None:
    given = [
        _positive_int(body[k], k) for k in ("max_completion_tokens", "max_tokens") if body.get(k) is not None
    ]
    return min(given) if given else None


class _Walk:
    """Validates messages and content blocks, collecting their text and counting media on the way."""

    def __init__(self, flavor: Flavor) -> None:
        self.flavor = flavor
        self.media_blocks = 0
        self.image_bytes = 0  # JSON bytes of image blocks, counted by allowance instead

    def message(self, message: Any, i: int) -> tuple[str, str]:
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise _invalid(f"{where}: expected a message object, got {_json_kind(message)}", where)
        role = message.get("role")
        roles = _ROLES[self.flavor]
        if not isinstance(role, str) or role not in roles:
            raise _invalid(f"{where}.role: expected one of {', '.join(sorted(roles))}, got {role!r}", f"{where}.role")
        content = message.get("content")
        if content is None:
            # OpenAI: an assistant turn may hold only tool calls (or a refusal); a legacy function result may be empty
            if self.flavor == "openai" and role in ("assistant", "function"):
                return role, ""
            raise _invalid(f"{where}.content: required", f"{where}.content")
        return role, self.content(content, f"{where}.content")

    def system(self, system: Any) -> str:
        if isinstance(system, str):
            return system
        if isinstance(system, list):
            for j, block in enumerate(system):
                if not isinstance(block, Mapping) or block.get("type") != "text":
                    raise _invalid(f"system[{j}]: expected a text block", f"system[{j}]")
            return self.content(system, "system")
        raise _invalid("system: expected a string or a list of text blocks", "system")

    def content(self, content: Any, where: str) -> str:
        if isinstance(content, str):
            return content
        if not isinstance(content, list):
            raise _invalid(f"{where}: expected a string or a list of content blocks", where)
        texts: list[str] = []
        for j, block in enumerate(content):
            here = f"{where}[{j}]"
            if not isinstance(block, Mapping) or not isinstance(block.get("type"), str):
                raise _invalid(f"{here}: expected a content block object with a string type", here)
            kind = block["type"]
            if kind == "text":
                if not isinstance(block.get("text"), str):
                    raise _invalid(f"{here}.text: required, a string", f"{here}.text")
                texts.append(block["text"])
            elif kind in _IMAGE_BLOCKS:
                self.media_blocks += 1
                self.image_bytes += len(orjson.dumps(block))
            elif kind in _MEDIA_BLOCKS:
                self.media_blocks += 1
            elif kind == "tool_result" and isinstance(block.get("content"), list):
                self.content(block["content"], f"{here}.content")  # images inside tool results
        return "\n".join(texts)


# ---------------------------------------------------------------------------------------- forwarding


def upstream_body(body: Mapping[str, Any], req: ChatRequest, max_tokens: int) -> dict[str, Any]:
    """The body to forward: the client's, with the output limit set to ``max_tokens`` (never left
    unlimited) and, for OpenAI streams, ``stream_options.include_usage`` forced on, because the
    gateway settles quotas with the usage (:class:`StreamTap` drops that chunk again if the client
    did not ask for it). OpenAI keeps whichever of ``max_tokens`` / ``max_completion_tokens`` the
    client used (``max_completion_tokens`` when none). ``max_tokens`` is the limit to forward: the
    client's :attr:`ChatRequest.max_tokens` or the plan's cap, whichever is smaller."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be an integer >= 1, got {max_tokens!r}")
    out = dict(body)
    if req.flavor == "anthropic":
        out["max_tokens"] = max_tokens
        return out
    keys = ("max_completion_tokens", "max_tokens")
    used = [k for k in keys if out.get(k) is not None]
    for k in keys:
        if out.get(k) is None:
            out.pop(k, None)
    for k in used or ["max_completion_tokens"]:
        out[k] = max_tokens
    if req.stream:
        options = out.get("stream_options")
        out["stream_options"] = {**(options if isinstance(options, Mapping) else {}), "include_usage": True}
    return out


# ----------------------------------------------------------------------------------------- responses

_FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


@dataclass
class Usage:
    """Tokens and outcome of one response, in the exchange log's terms.

    ``input_tokens`` includes Anthropic's cache reads and writes (all input the model read).
    ``complete`` is true once the whole response was seen (a stream's final event);
    ``usage_reported`` once the upstream said its token counts. ``text`` is the output text, kept
    only when asked for (``keep_text``), for the exchange log's ``response`` column.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str | None = None
    text_chars: int = 0
    complete: bool = False
    usage_reported: bool = False
    text: str | None = None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _stop_reason(flavor: Flavor, reason: Any) -> str | None:
    if not isinstance(reason, str):
        return None
    return _FINISH_TO_STOP.get(reason, reason) if flavor == "openai" else reason


def _anthropic_input(usage: Mapping[str, Any]) -> int:
    return sum(_int(usage.get(k)) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))


def usage_of(flavor: Flavor, body: Mapping[str, Any], keep_text: bool = False) -> Usage:
    """Usage of a non-streaming response body; never raises on a malformed one (it is then incomplete)."""
    out = Usage()
    texts: list[str] = []
    usage = body.get("usage")
    if flavor == "openai":
        choices = body.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, Mapping):
                continue
            message = choice.get("message")
            text = message.get("content") if isinstance(message, Mapping) else None
            if isinstance(text, str):
                out.text_chars += len(text)
                if choice.get("index", 0) == 0:
                    texts.append(text)
            if choice.get("index", 0) == 0:
                out.stop_reason = _stop_reason(flavor, choice.get("finish_reason"))
        if isinstance(usage, Mapping):
            out.input_tokens = _int(usage.get("prompt_tokens"))
            out.output_tokens = _int(usage.get("completion_tokens"))
    else:
        content = body.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, Mapping) and block.get("type") == "text" and isinstance(block.get("text"), str):
                out.text_chars += len(block["text"])
                texts.append(block["text"])
        out.stop_reason = _stop_reason(flavor, body.get("stop_reason"))
        if isinstance(usage, Mapping):
            out.input_tokens = _anthropic_input(usage)
            out.output_tokens = _int(usage.get("output_tokens"))
    out.usage_reported = out.complete = isinstance(usage, Mapping)
    if keep_text:
        out.text = "".join(texts)
    return out


# Two line ends in a row end an SSE event; a CR directly followed by LF is one line end, not two.
_EVENT_END = re.compile(rb"(?:\r\n|\n|\r(?!\n))(?:\r\n|\n|\r(?!\n))")
_LINE = re.compile(rb"\r\n|\r|\n")
_MAX_EVENT_BYTES = 1024 * 1024


class StreamTap:
    """Watches an upstream SSE byte stream chunk by chunk without re-encoding it.

    Bytes pass through unchanged, except that an OpenAI usage-only chunk is dropped when the client
    did not ask for usage (``pass_usage_chunk=False``: then complete events are passed on and a
    partial one is held until its end arrives, and :meth:`flush` returns what is left at the end).
    Meanwhile complete ``data:`` events are parsed to fill :attr:`usage`: OpenAI's final usage
    chunk and ``finish_reason``; Anthropic's ``message_start`` input tokens, ``message_delta``
    output tokens and ``stop_reason``; and the output text's characters (and text, if kept).
    ``usage.complete`` turns true at ``data: [DONE]`` (OpenAI) or ``message_stop`` (Anthropic).
    """

    def __init__(self, flavor: Flavor, pass_usage_chunk: bool = True, keep_text: bool = False) -> None:
        self.flavor: Flavor = flavor
        self._usage = Usage()
        self._hold = flavor == "openai" and not pass_usage_chunk
        self._keep_text = keep_text
        self._texts: list[str] = []
        self._buffer = bytearray()

    @property
    def usage(self) -> Usage:
        """What the stream said so far (its text joined only here, on demand)."""
        if self._keep_text:
            self._usage.text = "".join(self._texts)
        return self._usage

    def feed(self, chunk: bytes) -> bytes:
        """Take the next chunk from upstream; return the bytes to send on to the client."""
        self._buffer += chunk
        out = bytearray()
        start = 0
        for end in _EVENT_END.finditer(self._buffer):
            event = bytes(self._buffer[start : end.end()])
            start = end.end()
            if self._on_event(event) and self._hold:
                out += event
        del self._buffer[:start]
        if len(self._buffer) > _MAX_EVENT_BYTES:  # no event is this big: stop holding, pass it on
            if self._hold:
                out += self._buffer
            self._buffer.clear()
        return bytes(out) if self._hold else chunk

    def flush(self) -> bytes:
        """At the stream's end: parse a last event that had no blank line after it, and return
        the bytes still held back (only ever non-empty with ``pass_usage_chunk=False``)."""
        event = bytes(self._buffer)
        self._buffer.clear()
        keep = self._on_event(event) if event.strip() else True
        return event if self._hold and keep else b""

    def _on_event(self, event: bytes) -> bool:
        """Update usage from one event; false when the event is to be dropped."""
        data_lines = []
        for line in _LINE.split(event):
            if line.startswith(b"data:"):
                value = line[5:]
                data_lines.append(value[1:] if value.startswith(b" ") else value)
        if not data_lines:
            return True
        data = b"\n".join(data_lines)
        if data.strip() == b"[DONE]":
            self._usage.complete = True
            return True
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            return True
        if not isinstance(payload, dict):
            return True
        if self.flavor == "openai":
            return self._openai(payload)
        self._anthropic(payload)
        return True

    def _text(self, text: Any, first_choice: bool = True) -> None:
        if isinstance(text, str):
            self._usage.text_chars += len(text)
            if self._keep_text and first_choice:
                self._texts.append(text)

    def _openai(self, chunk: dict[str, Any]) -> bool:
        choices = chunk.get("choices")
        usage = chunk.get("usage")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, Mapping):
                continue
            first = choice.get("index", 0) == 0
            delta = choice.get("delta")
            if isinstance(delta, Mapping):
                self._text(delta.get("content"), first)
            if first and choice.get("finish_reason") is not None:
                self._usage.stop_reason = _stop_reason("openai", choice["finish_reason"])
        if isinstance(usage, Mapping):
            self._usage.input_tokens = _int(usage.get("prompt_tokens"))
            self._usage.output_tokens = _int(usage.get("completion_tokens"))
            self._usage.usage_reported = True
            if not choices:
                return not self._hold
        return True

    def _anthropic(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta")
            if isinstance(delta, Mapping) and delta.get("type") == "text_delta":
                self._text(delta.get("text"))
        elif kind == "message_start":
            message = event.get("message")
            usage = message.get("usage") if isinstance(message, Mapping) else None
            if isinstance(usage, Mapping):
                self._usage.input_tokens = _anthropic_input(usage)
                self._usage.output_tokens = _int(usage.get("output_tokens"))
                self._usage.usage_reported = True
        elif kind == "message_delta":
            delta = event.get("delta")
            if isinstance(delta, Mapping) and delta.get("stop_reason") is not None:
                self._usage.stop_reason = _stop_reason("anthropic", delta["stop_reason"])
            usage = event.get("usage")
            if isinstance(usage, Mapping):  # cumulative counts; input ones only in newer API versions
                self._usage.output_tokens = max(self._usage.output_tokens, _int(usage.get("output_tokens")))
                self._usage.input_tokens = max(self._usage.input_tokens, _anthropic_input(usage))
                self._usage.usage_reported = True
        elif kind == "message_stop":
            self._usage.complete = True
