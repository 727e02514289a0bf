"""The wire level: error shapes the SDKs understand, safe body reading, request validation that names
the field, the input-token bound, the upstream rewrite, and usage read from bodies and live streams."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import openai
import pytest
from starlette.requests import Request

from distillguard.gateway.api import (
    MAX_BODY_BYTES,
    MEDIA_TOKEN_ALLOWANCE,
    ApiError,
    ChatRequest,
    Flavor,
    StreamTap,
    Usage,
    error_response,
    parse_chat,
    read_json,
    stream_error_event,
    upstream_body,
    usage_of,
)
from distillguard.gateway.mock_upstream import MockConfig, create_mock_app

try:  # the HTTP library the SDKs are built on (httpx2 in newer SDK releases)
    import httpx2 as sdk_http
except ImportError:  # pragma: no cover
    sdk_http = httpx  # type: ignore[no-redef,misc]

USER = [{"role": "user", "content": "hello"}]


def _json(response: Any) -> Any:
    return json.loads(bytes(response.body))


# ------------------------------------------------------------------------------------------ errors

OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "invalid_request_error", 413: "invalid_request_error", 415: "invalid_request_error",
                429: "rate_limit_error", 500: "server_error", 502: "server_error", 503: "server_error",
                504: "server_error"}  # fmt: skip
ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 413: "request_too_large", 415: "invalid_request_error",
                   429: "rate_limit_error", 500: "api_error", 502: "api_error", 503: "overloaded_error",
                   504: "timeout_error", 529: "overloaded_error"}  # fmt: skip


@pytest.mark.parametrize(("status", "kind"), OPENAI_TYPES.items())
def test_openai_error_shape(status: int, kind: str) -> None:
    response = error_response("openai", status, "invalid_request_error", "bad things", param="messages")
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert _json(response) == {"error": {"message": "bad things", "type": kind, "param": "messages", "code": None}}


@pytest.mark.parametrize(("status", "kind"), ANTHROPIC_TYPES.items())
def test_anthropic_error_shape(status: int, kind: str) -> None:
    response = error_response("anthropic", status, "invalid_request_error", "bad things")
    assert response.status_code == status
    assert _json(response) == {"type": "error", "error": {"type": kind, "message": "bad things"}}


def test_our_reason_codes_reach_the_client_and_headers_pass() -> None:
    headers = {"retry-after": "3600"}
    body = _json(error_response("openai", 429, "daily_tokens", "daily token quota used up", headers=headers))
    assert body["error"] == {"message": "daily token quota used up", "type": "rate_limit_error", "param": None,
                             "code": "daily_tokens"}  # fmt: skip
    response = error_response("anthropic", 403, "blocked_campaign", "account blocked", headers=headers)
    assert _json(response)["error"] == {"type": "permission_error", "message": "[blocked_campaign] account blocked"}
    assert response.headers["retry-after"] == "3600"
    exc = ApiError(404, "model_not_found", "no such model", param="model")
    assert _json(exc.response("openai"))["error"]["code"] == "model_not_found"
    assert _json(exc.response("anthropic"))["error"]["message"] == "[model_not_found] no such model"


def _serve(response: Any, calls: list[int]) -> Callable[[Any], Any]:
    def handler(request: Any) -> Any:
        calls.append(1)
        return sdk_http.Response(response.status_code, content=bytes(response.body), headers=dict(response.headers))

    return handler


SDK_CLASSES = [
    (400, openai.BadRequestError, anthropic.BadRequestError),
    (401, openai.AuthenticationError, anthropic.AuthenticationError),
    (403, openai.PermissionDeniedError, anthropic.PermissionDeniedError),
    (404, openai.NotFoundError, anthropic.NotFoundError),
    (413, openai.APIStatusError, anthropic.APIStatusError),
    (429, openai.RateLimitError, anthropic.RateLimitError),
    (500, openai.InternalServerError, anthropic.InternalServerError),
    (529, openai.InternalServerError, anthropic.InternalServerError),
]


@pytest.mark.parametrize(("status", "openai_class", "anthropic_class"), SDK_CLASSES)
def test_sdks_raise_their_own_exception_and_retry_only_429_and_5xx(
    status: int, openai_class: type[Exception], anthropic_class: type[Exception]
) -> None:
    retried = status == 429 or status >= 500
    headers = {"retry-after": "0"}
    calls: list[int] = []
    http_client = sdk_http.Client(transport=sdk_http.MockTransport(_serve(
        error_response("openai", status, "daily_tokens", "no more today", headers=headers), calls)))  # fmt: skip
    client = openai.OpenAI(api_key="k", base_url="http://gw/v1", max_retries=1, http_client=http_client)
    with pytest.raises(openai_class) as caught:
        client.chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type,list-item]
    assert len(calls) == (2 if retried else 1)
    assert caught.value.code == "daily_tokens"  # type: ignore[attr-defined]
    calls.clear()
    http_client = sdk_http.Client(transport=sdk_http.MockTransport(_serve(
        error_response("anthropic", status, "daily_tokens", "no more today", headers=headers), calls)))  # fmt: skip
    aclient = anthropic.Anthropic(api_key="k", base_url="http://gw", max_retries=1, http_client=http_client)
    with pytest.raises(anthropic_class) as caught:
        aclient.messages.create(model="m", max_tokens=5, messages=USER)  # type: ignore[arg-type,list-item]
    assert len(calls) == (2 if retried else 1)
    assert "[daily_tokens] no more today" in str(caught.value)
    if status in (413, 529):
        assert isinstance(caught.value, anthropic.ContentTooLargeError if status == 413 else anthropic.OverloadedError)


@pytest.mark.parametrize("flavor", ["openai", "anthropic"])
def test_stream_error_event_is_raised_by_the_sdk(flavor: Flavor) -> None:
    def handler(request: Any) -> Any:
        event = stream_error_event(flavor, 529, "overloaded_error", "upstream went away")
        start = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message",'
                 b'"role":"assistant","model":"m","content":[],"usage":{"input_tokens":1,"output_tokens":1}}}\n\n'
                 if flavor == "anthropic" else b"")  # fmt: skip
        return sdk_http.Response(200, content=start + event, headers={"content-type": "text/event-stream"})

    http_client = sdk_http.Client(transport=sdk_http.MockTransport(handler))
    if flavor == "openai":
        client = openai.OpenAI(api_key="k", base_url="http://gw/v1", max_retries=0, http_client=http_client)
        with pytest.raises(openai.APIError, match="upstream went away"):
            list(client.chat.completions.create(model="m", messages=USER, stream=True))  # type: ignore[arg-type,list-item]
    else:
        aclient = anthropic.Anthropic(api_key="k", base_url="http://gw", max_retries=0, http_client=http_client)
        with pytest.raises(anthropic.APIStatusError, match="upstream went away"):
            list(aclient.messages.create(model="m", max_tokens=5, messages=USER, stream=True))  # type: ignore[arg-type,list-item]


# ------------------------------------------------------------------------------------------ read_json


def _request(chunks: list[bytes], content_type: str | None = "application/json", length: bool = True) -> Request:
    """A request whose body arrives in ``chunks``; what is left in the list was never read."""
    headers = [] if content_type is None else [(b"content-type", content_type.encode())]
    if length:
        headers.append((b"content-length", str(sum(map(len, chunks))).encode()))

    async def receive() -> dict[str, Any]:
        if not chunks:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}, receive)


def _read(chunks: list[bytes], **kwargs: Any) -> dict[str, Any]:
    max_bytes = kwargs.pop("max_bytes", MAX_BODY_BYTES)
    return asyncio.run(read_json(_request(chunks, **kwargs), max_bytes=max_bytes))


def test_read_json_reads_an_object_in_chunks() -> None:
    assert _read([b'{"model": "m", ', b'"x": "h\xc3', b'\xa9"}']) == {"model": "m", "x": "hé"}
    assert _read([b'{"a": 1}'], content_type="application/json; charset=utf-8") == {"a": 1}


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_read_json_wants_json(content_type: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        _read([b'{"a": 1}'], content_type=content_type)
    assert caught.value.status == 415
    assert "application/json" in caught.value.message


def test_read_json_refuses_a_declared_large_body_without_reading_it() -> None:
    chunks = [b"x" * 1000] * 3
    with pytest.raises(ApiError) as caught:
        _read(chunks, max_bytes=2000)
    assert caught.value.status == 413 and "3,000 bytes" in caught.value.message
    assert len(chunks) == 3  # nothing was read


def test_read_json_stops_reading_a_large_chunked_body_early() -> None:
    chunks = [b"x" * 1000] * 10
    with pytest.raises(ApiError) as caught:
        _read(chunks, length=False, max_bytes=2500)
    assert caught.value.status == 413
    assert len(chunks) == 7  # three chunks read, then it gave up


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b'{"a": "\xff"}'], "not valid UTF-8: byte 7"),
        ([b'{"a": ', b"1,}"], "not valid JSON at line 1 column"),
        ([b"[1, 2]"], "must be a JSON object, not an array"),
        ([b'"text"'], "not a string"),
        ([b""], "not valid JSON"),
    ],
)
def test_read_json_bad_bodies(chunks: list[bytes], expected: str) -> None:
    with pytest.raises(ApiError) as caught:
        _read(chunks)
    assert caught.value.status == 400
    assert expected in caught.value.message


def test_read_json_bad_content_length() -> None:
    request = _request([b"{}"], length=False)
    request.scope["headers"].append((b"content-length", b"lots"))
    with pytest.raises(ApiError, match="content-length header 'lots' is not a number"):
        asyncio.run(read_json(request))


# ------------------------------------------------------------------------------------------ parse_chat


def _openai(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-x", "messages": USER, **fields}


def _anthropic(**fields: Any) -> dict[str, Any]:
    return {"model": "claude-x", "max_tokens": 100, "messages": USER, **fields}


BAD = [
    ("openai", {"messages": USER}, "model"),
    ("openai", _openai(model=""), "model"),
    ("openai", _openai(model=3), "model"),
    ("openai", {"model": "m"}, "messages"),
    ("openai", _openai(messages=[]), "messages"),
    ("openai", _openai(messages=[{"role": "user", "content": "a"}, "hi"]), "messages[1]"),
    ("openai", _openai(messages=[{"role": "robot", "content": "a"}]), "messages[0].role"),
    ("openai", _openai(messages=[{"content": "a"}]), "messages[0].role"),
    ("openai", _openai(messages=[*USER, USER[0], {"role": "user", "content": 5}]), "messages[2].content"),
    ("openai", _openai(messages=[{"role": "user"}]), "messages[0].content"),
    ("openai", _openai(messages=[{"role": "user", "content": [{"text": "a"}]}]), "messages[0].content[0]"),
    ("openai", _openai(messages=[{"role": "user", "content": [{"type": "text"}]}]), "messages[0].content[0].text"),
    ("openai", _openai(max_tokens=0), "max_tokens"),
    ("openai", _openai(max_completion_tokens="50"), "max_completion_tokens"),
    ("openai", _openai(max_tokens=True), "max_tokens"),
    ("openai", _openai(max_tokens=2.5), "max_tokens"),
    ("openai", _openai(stream="yes"), "stream"),
    ("openai", _openai(stream_options={"include_usage": True}), "stream_options"),
    ("openai", _openai(stream=True, stream_options={"include_usage": 1}), "stream_options.include_usage"),
    ("openai", _openai(n=0), "n"),
    ("openai", _openai(tools={"name": "f"}), "tools"),
    ("openai", _openai(top_k=5), "top_k"),
    ("openai", _openai(system="be nice"), "system"),
    ("anthropic", {"model": "m", "messages": USER}, "max_tokens"),
    ("anthropic", _anthropic(max_tokens=-1), "max_tokens"),
    ("anthropic", _anthropic(max_completion_tokens=5), "max_completion_tokens"),
    ("anthropic", _anthropic(messages=[{"role": "developer", "content": "a"}]), "messages[0].role"),
    ("anthropic", _anthropic(messages=[{"role": "assistant", "content": None}]), "messages[0].content"),
    ("anthropic", _anthropic(system=5), "system"),
    ("anthropic", _anthropic(system=[{"type": "image"}]), "system[0]"),
    ("anthropic", _anthropic(metadata="x"), "metadata"),
    ("anthropic", _anthropic(stream_options={"include_usage": True}), "stream_options"),
]


@pytest.mark.parametrize(("flavor", "body", "param"), BAD, ids=[f"{f}-{p}" for f, _, p in BAD])
def test_parse_chat_names_the_field(flavor: Flavor, body: dict[str, Any], param: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_chat(body, flavor)
    assert caught.value.status == 400
    assert caught.value.param == param
    assert caught.value.message.startswith(f"{param}: ")


def test_unknown_field_message_names_the_api() -> None:
    with pytest.raises(ApiError, match="top_k: unknown field; not a request field of the Chat Completions API"):
        parse_chat(_openai(top_k=5), "openai")
    assert parse_chat(_anthropic(top_k=5, temperature=0.5, stop_sequences=["x"]), "anthropic").model == "claude-x"


def test_parse_openai() -> None:
    body = _openai(
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                                    "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
            {"role": "user", "content": [{"type": "text", "text": "What is"},
                                         {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                                         {"type": "text", "text": "in the picture?"}]},
        ],
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        max_tokens=300, max_completion_tokens=200, stream=True, stream_options={"include_usage": True}, n=2,
    )  # fmt: skip
    req = parse_chat(body, "openai")
    assert req.flavor == "openai" and req.model == "gpt-x" and req.stream and req.include_usage
    assert req.prompt == "What is\nin the picture?"
    assert req.system == "You are terse.\n\nUse metric units."
    assert req.n_messages == 4 and req.has_tools and req.max_tokens == 200 and req.n_choices == 2  # system, developer apart


def test_parse_anthropic() -> None:
    body = _anthropic(
        system=[{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Be kind."}],
        messages=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "42"}]},
                {"type": "text", "text": "Grazie, e poi?"}]},
        ],
        tools=[],
    )  # fmt: skip
    req = parse_chat(body, "anthropic")
    assert req.prompt == "Grazie, e poi?"
    assert req.system == "You are terse.\nBe kind."
    assert req.n_messages == 3 and not req.has_tools and req.max_tokens == 100
    assert not req.stream and not req.include_usage
    plain = parse_chat(_anthropic(system="Hi.", tools=[{"name": "f", "input_schema": {}}]), "anthropic")
    assert plain.system == "Hi." and plain.prompt == "hello" and plain.has_tools


def test_parse_without_user_turn_or_limit() -> None:
    req = parse_chat(_openai(messages=[{"role": "system", "content": "s"}], max_tokens=None), "openai")
    assert req.prompt is None and req.system == "s" and req.max_tokens is None and not req.has_tools


TEXTS = ["hello world", "日本語のテキストです。" * 50, "emoji 🎉🚀 and ñandú " * 30, "\u0000\t\"quoted\"\\ " * 40, "x"]


@pytest.mark.parametrize("flavor", ["openai", "anthropic"])
@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_input_token_bound_covers_one_token_per_byte(flavor: Flavor, text: str) -> None:
    """A byte-level BPE never needs more than one token per byte of text, plus a few per message."""
    messages = [{"role": "user", "content": text}, {"role": "assistant", "content": text[::-1]},
                {"role": "user", "content": [{"type": "text", "text": text}]}]  # fmt: skip
    body = _openai(messages=messages) if flavor == "openai" else _anthropic(messages=messages, system=text)
    req = parse_chat(body, flavor)
    text_bytes = len(text.encode()) * (3 if flavor == "openai" else 4)
    assert req.input_bytes >= text_bytes
    assert req.input_token_bound >= text_bytes + 4 * req.n_messages
    # and the stand-in model's own count (bytes / 4 + 4 per message) stays under it
    assert req.input_token_bound >= -(-req.input_bytes // 4) + 4 * req.n_messages


def test_images_count_by_allowance_not_bytes() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 1_000_000}}
    body = _anthropic(messages=[{"role": "user", "content": [image, {"type": "text", "text": "what is it?"}]}])
    req = parse_chat(body, "anthropic")
    assert req.input_bytes < 1000
    assert MEDIA_TOKEN_ALLOWANCE <= req.input_token_bound < MEDIA_TOKEN_ALLOWANCE + 1000
    document = {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}
    req = parse_chat(_anthropic(messages=[{"role": "user", "content": [document]}]), "anthropic")
    assert req.input_token_bound >= MEDIA_TOKEN_ALLOWANCE


# ------------------------------------------------------------------------------------------ upstream_body


def test_upstream_body_openai_sets_the_limit_the_client_used() -> None:
    body = _openai()
    out = upstream_body(body, parse_chat(body, "openai"), 256)
    assert out["max_completion_tokens"] == 256 and "max_tokens" not in out and "stream_options" not in out
    assert body == _openai()  # the client's body is left alone
    body = _openai(max_tokens=4000)
    assert upstream_body(body, parse_chat(body, "openai"), 256) == _openai(max_tokens=256)
    body = _openai(max_tokens=None, max_completion_tokens=10)
    assert upstream_body(body, parse_chat(body, "openai"), 10) == _openai(max_completion_tokens=10)


def test_upstream_body_forces_usage_on_openai_streams() -> None:
    body = _openai(stream=True)
    out = upstream_body(body, parse_chat(body, "openai"), 64)
    assert out["stream_options"] == {"include_usage": True}
    body = _openai(stream=True, stream_options={"include_usage": False, "include_obfuscation": False})
    out = upstream_body(body, parse_chat(body, "openai"), 64)
    assert out["stream_options"] == {"include_usage": True, "include_obfuscation": False}


def test_upstream_body_anthropic_and_bad_limit() -> None:
    body = _anthropic(stream=True, max_tokens=100_000)
    req = parse_chat(body, "anthropic")
    assert upstream_body(body, req, 1024) == {**body, "max_tokens": 1024}
    for bad in (0, -5, True):
        with pytest.raises(ValueError, match="max_tokens must be an integer >= 1"):
            upstream_body(body, req, bad)


# ------------------------------------------------------------------------------------------ usage_of


@pytest.mark.parametrize(
    ("finish", "stop"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")],
)
def test_usage_of_openai(finish: str, stop: str) -> None:
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "héllo 🎉"}, "finish_reason": finish}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}}  # fmt: skip
    assert usage_of("openai", body, keep_text=True) == Usage(12, 4, stop, 7, True, True, "héllo 🎉")


def test_usage_of_anthropic_counts_cache_tokens_as_input() -> None:
    body = {"content": [{"type": "text", "text": "ab"}, {"type": "tool_use", "id": "t"}, {"type": "text", "text": "c"}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 10, "cache_read_input_tokens": 100,
                                                 "cache_creation_input_tokens": None, "output_tokens": 7}}  # fmt: skip
    assert usage_of("anthropic", body) == Usage(110, 7, "tool_use", 3, True, True, None)


@pytest.mark.parametrize("body", [{}, {"usage": "lots", "choices": "x", "content": 5}, {"choices": [None, 3]}])
@pytest.mark.parametrize("flavor", ["openai", "anthropic"])
def test_usage_of_malformed_bodies_is_incomplete_not_an_error(flavor: Flavor, body: dict[str, Any]) -> None:
    assert usage_of(flavor, body) == Usage()


# ------------------------------------------------------------------------------------------ StreamTap


def _mock_stream(flavor: Flavor, body: dict[str, Any]) -> bytes:
    """The stand-in model's real SSE bytes for ``body`` (in-process, no sockets)."""
    app = create_mock_app(MockConfig(latency_ms=0, tokens_per_s=1e9))
    path = "/v1/chat/completions" if flavor == "openai" else "/v1/messages"

    async def fetch() -> bytes:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mock") as client:
            response = await client.post(path, json=body)
            assert response.status_code == 200, response.text
            return response.content

    return asyncio.run(fetch())


def _splits(data: bytes) -> list[list[bytes]]:
    rng = random.Random(5)
    cuts = sorted(rng.sample(range(1, len(data)), 40))
    random_parts = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    return [[data], [data[i : i + 1] for i in range(len(data))], random_parts]


def _tap(flavor: Flavor, parts: list[bytes], **kwargs: Any) -> tuple[bytes, StreamTap]:
    tap = StreamTap(flavor, **kwargs)
    out = b"".join(tap.feed(p) for p in parts) + tap.flush()
    return out, tap


def _deltas(flavor: Flavor, stream: bytes) -> str:
    """The output text, read independently of StreamTap."""
    text = []
    for line in stream.decode().splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[6:])
        if flavor == "openai":
            text += [c["delta"].get("content") or "" for c in event["choices"]]
        elif event["type"] == "content_block_delta":
            text.append(event["delta"]["text"])
    return "".join(text)


@pytest.mark.parametrize("flavor", ["openai", "anthropic"])
def test_stream_tap_on_the_mock_streams(flavor: Flavor) -> None:
    fields = {"stream": True, "max_tokens": 60}
    if flavor == "openai":
        body = _openai(**fields, stream_options={"include_usage": True})
    else:
        body = _anthropic(**fields)
    stream = _mock_stream(flavor, body)
    plain = _mock_stream(flavor, {**body, "stream": False} if flavor == "anthropic" else _openai(max_tokens=60))
    expected = usage_of(flavor, json.loads(plain), keep_text=True)
    assert expected.output_tokens > 0
    for parts in _splits(stream):
        out, tap = _tap(flavor, parts, keep_text=True)
        assert out == stream
        assert tap.usage == expected
        assert tap.usage.text == _deltas(flavor, stream)


def test_stream_tap_drops_the_usage_chunk_the_client_did_not_ask_for() -> None:
    stream = _mock_stream("openai", _openai(stream=True, stream_options={"include_usage": True}))
    events = stream.split(b"\n\n")
    usage_event = next(e for e in events if b'"choices":[]' in e)
    wanted = stream.replace(usage_event + b"\n\n", b"")
    assert wanted != stream and wanted.endswith(b"data: [DONE]\n\n")
    for parts in _splits(stream):
        out, tap = _tap("openai", parts, pass_usage_chunk=False)
        assert out == wanted
        assert tap.usage.usage_reported and tap.usage.complete and tap.usage.output_tokens > 0


def _events(*events: str, end: str = "\n") -> list[bytes]:
    return [e.replace("\n", end).encode() + end.encode() * 2 for e in events]


ANTHROPIC_EVENTS = [
    'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":'
    '"assistant","content":[],"model":"c","stop_reason":null,"usage":{"input_tokens":25,'
    '"cache_read_input_tokens":5,"output_tokens":1}}}',
    'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
    'event: ping\ndata: {"type": "ping"}',
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Ça va,"}}',
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,\ndata: "delta":{"type":"text_delta","text":" 東京 🎉"}}',
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}",
    'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"##"},'
    '"usage":{"input_tokens":30,"output_tokens":15}}',
    'event: message_stop\ndata: {"type":"message_stop"}',
]


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_stream_tap_non_ascii_and_line_endings(end: str) -> None:
    stream = b"".join(_events(*ANTHROPIC_EVENTS, end=end))
    for parts in _splits(stream):  # byte by byte splits every multi-byte character and every CR LF
        # (one event's JSON spans two data lines: a CR LF must not be taken for an event's end)
        out, tap = _tap("anthropic", parts, keep_text=True)
        assert out == stream
        assert tap.usage == Usage(30, 15, "stop_sequence", len("Ça va, 東京 🎉"), True, True, "Ça va, 東京 🎉")


def test_stream_tap_incomplete_stream_and_missing_last_blank_line() -> None:
    out, tap = _tap("anthropic", _events(*ANTHROPIC_EVENTS[:5]))
    assert not tap.usage.complete and tap.usage.input_tokens == 30 and tap.usage.stop_reason is None
    last = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}'
    out, tap = _tap("openai", [b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"length"}]}\n\n',
                               last], pass_usage_chunk=False)  # fmt: skip
    assert tap.usage == Usage(3, 2, "max_tokens", 2, False, True, None)
    assert not out.endswith(last)
    out, tap = _tap("openai", [b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n', b"data: [DONE]"],
                    pass_usage_chunk=False)  # fmt: skip
    assert out.endswith(b"data: [DONE]") and tap.usage.complete and not tap.usage.usage_reported


def test_stream_tap_passes_garbage_through() -> None:
    stream = b": keep-alive\n\ndata: not json\n\nevent: x\n\ndata: [1, 2]\n\n"
    out, tap = _tap("openai", [stream], pass_usage_chunk=False)
    assert out == stream and tap.usage == Usage()


def test_chat_request_is_frozen() -> None:
    req = parse_chat(_openai(), "openai")
    assert isinstance(req, ChatRequest)
    with pytest.raises(AttributeError):
        req.model = "other"  # type: ignore[misc]
