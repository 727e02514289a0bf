"""A stand-in model that speaks both chat APIs, for demos and tests: no real model can be served here.

:func:`create_mock_app` returns a Starlette app answering ``POST /v1/chat/completions`` (OpenAI),
``POST /v1/messages`` (Anthropic), ``GET /v1/models``, ``GET /healthz`` and ``GET /_stats`` (its
counters as JSON, for tests and benchmarks in other processes), so the official SDKs
and the gateway can talk to it exactly as to a provider. Its replies are what a gateway has to
handle: text that is deterministic for a prompt (words drawn by an RNG keyed on the seed and the
request), of a realistic length capped by ``max_tokens`` (then stopping with ``length`` /
``max_tokens``), honest token usage, and streams with each API's real event sequence, paced at
``tokens_per_s`` after ``latency_ms``.

Faults are asked for per request with the header ``x-mock-fault``, or drawn at random with
``fail_rate`` (one of ``error``, ``drop``, ``reset``):

- ``slow``: ten times the latency;
- ``error``: a 500 (OpenAI) or 529 ``overloaded_error`` (Anthropic) in the API's own error shape;
- ``drop``: a stream stops half way, without its final events (a plain response is cut half way);
- ``reset``: the connection is closed without any response (under uvicorn).

``app.state.stats`` (:class:`MockStats`, also at ``GET /_stats``) counts requests, faults and streams,
including the streams the client cancelled, so tests can check that the gateway closes what its
clients close; and the tokens it served (input it was asked to process, output it actually sent,
cancelled streams included), a ground truth for quota checks that does not come from the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import math
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from distillguard.errors import ConfigError
from distillguard.gateway.api import (
    ApiError,
    ChatRequest,
    Flavor,
    error_response,
    parse_chat,
    read_json,
)

__all__ = ["FAULTS", "MOCK_MODELS", "MockConfig", "MockStats", "create_mock_app"]

FAULTS = ("slow", "error", "drop", "reset")
"""Values of the ``x-mock-fault`` header."""
RANDOM_FAULTS = ("error", "drop", "reset")
MOCK_MODELS = ("mock-small", "mock-large")
"""Models ``/v1/models`` lists; any model name is answered."""

_TRANSPORT = "distillguard.mock.transport"
_VOCABULARY = (
    "the a of and to in is that it for on with as was by at this be from or an are which model answer "
    "data system result value process function method example case point step first second next then "
    "because however therefore also each every many most some such only other new same different "
    "important simple general specific common large small high low early late good clear useful "
    "time number part group order form level rate change test question problem reason idea way term "
    "use make give take show find keep call need help work learn build check move turn follow "
    "language structure pattern context output input token request response error signal account "
    "network memory energy light water market theory history policy design method measure"
)
_WORDS = tuple(_VOCABULARY.split())


@dataclass
class MockConfig:
    """How the mock behaves: time to first byte, streaming speed, random faults and reply length.

    ``max_output_tokens`` is the longest reply it ever gives on its own (a natural end, ``end_turn``);
    a client's smaller ``max_tokens`` cuts a reply short (``max_tokens`` / ``length``).
    """

    latency_ms: float = 20
    tokens_per_s: float = 200
    fail_rate: float = 0.0
    seed: int = 0
    max_output_tokens: int = 512

    def __post_init__(self) -> None:
        if not self.latency_ms >= 0:
            raise ConfigError(f"MockConfig latency_ms must be >= 0, got {self.latency_ms}")
        if not self.tokens_per_s > 0:
            raise ConfigError(f"MockConfig tokens_per_s must be > 0, got {self.tokens_per_s}")
        if not 0 <= self.fail_rate <= 1:
            raise ConfigError(f"MockConfig fail_rate must be in [0, 1], got {self.fail_rate}")
        if self.max_output_tokens < 1:
            raise ConfigError(f"MockConfig max_output_tokens must be >= 1, got {self.max_output_tokens}")


@dataclass
class MockStats:
    """What the mock saw: every request, the faults it played, how its streams ended, and the
    tokens it served.

    ``input_tokens`` sums the input of every request it began to answer (counted before the
    first byte, so a reply the client abandons still counts); ``output_tokens`` sums the output
    tokens it sent: a plain reply's all, a stream's as each token's event is handed to the server
    (a cancelled or dropped stream counts what it sent before it ended). Both are upper bounds of
    what a client received, which is the side a quota check must err on. ``in_flight``: chat
    requests not finished yet (streams until they end), so a reader can wait until it is 0.
    """

    requests: int = 0
    streams_started: int = 0
    streams_completed: int = 0
    streams_dropped: int = 0
    streams_cancelled: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    in_flight: int = 0


@dataclass(frozen=True)
class _Reply:
    pieces: list[str]  # one token each, as streamed
    stop: str  # end_turn, max_tokens or stop_sequence
    stop_sequence: str | None

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def finish_reason(self) -> str:
        return "length" if self.stop == "max_tokens" else "stop"


def create_mock_app(config: MockConfig | None = None) -> Starlette:
    """A Starlette app that stands in for a model behind both APIs (see the module docstring)."""
    mock = _Mock(config or MockConfig())
    app = _MockApp(
        routes=[
            Route("/v1/chat/completions", mock.openai, methods=["POST"]),
            Route("/v1/messages", mock.anthropic, methods=["POST"]),
            Route("/v1/models", mock.models, methods=["GET"]),
            Route("/healthz", mock.health, methods=["GET"]),
            Route("/_stats", mock.stats_json, methods=["GET"]),
        ]
    )
    app.state.stats = mock.stats
    app.state.config = mock.config
    return app


class _MockApp(Starlette):
    """Starlette, plus the server's transport in the scope so that a ``reset`` can really close it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":  # uvicorn's send is a method of the cycle that owns the transport
            scope[_TRANSPORT] = getattr(getattr(send, "__self__", None), "transport", None)
        await super().__call__(scope, receive, send)


class _Mock:
    def __init__(self, config: MockConfig) -> None:
        self.config = config
        self.stats = MockStats()
        self._faults = random.Random(config.seed)
        self._ids = 0

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def stats_json(self, request: Request) -> Response:
        return JSONResponse(dataclasses.asdict(self.stats))

    async def models(self, request: Request) -> Response:
        if "anthropic-version" in request.headers:
            data = [
                {"type": "model", "id": m, "display_name": m, "created_at": "2026-01-01T00:00:00Z", "lifecycle": "active"}
                for m in MOCK_MODELS
            ]
            return JSONResponse({"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]})
        listed = [{"id": m, "object": "model", "created": 1767225600, "owned_by": "distillguard-mock"} for m in MOCK_MODELS]
        return JSONResponse({"object": "list", "data": listed})

    async def openai(self, request: Request) -> Response:
        return await self._chat(request, "openai")

    async def anthropic(self, request: Request) -> Response:
        return await self._chat(request, "anthropic")

    async def _chat(self, request: Request, flavor: Flavor) -> Response:
        self.stats.requests += 1
        self.stats.in_flight += 1
        response: Response | None = None
        try:
            response = await self._answer(request, flavor)
            return response
        finally:  # a stream is in flight until it ends (_TrackedStream)
            if not isinstance(response, _TrackedStream):
                self.stats.in_flight -= 1

    async def _answer(self, request: Request, flavor: Flavor) -> Response:
        try:
            body = await read_json(request)
            req = parse_chat(body, flavor)
            fault = self._fault(request)
        except ApiError as exc:
            return exc.response(flavor)
        if fault:
            self.stats.faults[fault] = self.stats.faults.get(fault, 0) + 1
        latency = self.config.latency_ms / 1000 * (10 if fault == "slow" else 1)
        if fault == "reset":
            return _Abort(b"")
        if fault == "error":
            await asyncio.sleep(latency)
            if flavor == "openai":
                return error_response(flavor, 500, "server_error", "mock upstream: injected error (x-mock-fault)")
            return error_response(flavor, 529, "overloaded_error", "mock upstream: injected overload (x-mock-fault)")
        stops = _stop_sequences(body, flavor)
        replies = [self._reply(req, c, stops) for c in range(req.n_choices)]
        input_tokens = math.ceil(req.input_bytes / 4) + 4 * req.n_messages
        self.stats.input_tokens += input_tokens
        self._ids += 1
        reply_id = f"{'chatcmpl-' if flavor == 'openai' else 'msg_'}mock{self._ids:06d}"
        await asyncio.sleep(latency)
        if req.stream:
            events = (self._openai_events if flavor == "openai" else self._anthropic_events)(
                req, replies, input_tokens, reply_id
            )
            return _TrackedStream(events, self.stats, self.config.tokens_per_s, drop=fault == "drop")
        output_tokens = sum(len(r.pieces) for r in replies)
        await asyncio.sleep(output_tokens / self.config.tokens_per_s)
        self.stats.output_tokens += output_tokens // 2 if fault == "drop" else output_tokens
        payload = orjson.dumps(
            _openai_body(req, replies, input_tokens, reply_id)
            if flavor == "openai"
            else _anthropic_body(req, replies[0], input_tokens, reply_id)
        )
        if fault == "drop":
            return _Abort(payload[: len(payload) // 2], len(payload))
        return Response(payload, media_type="application/json")

    def _fault(self, request: Request) -> str | None:
        asked = request.headers.get("x-mock-fault")
        if asked is not None:
            if asked not in FAULTS:
                raise ApiError(400, "invalid_request_error", f"x-mock-fault: expected one of {', '.join(FAULTS)}, got {asked!r}")
            return asked
        if self.config.fail_rate and self._faults.random() < self.config.fail_rate:
            return self._faults.choice(RANDOM_FAULTS)
        return None

    def _reply(self, req: ChatRequest, choice: int, stops: list[str]) -> _Reply:
        """Words drawn by an RNG keyed on the request's content: same request, same reply."""
        key = f"{self.config.seed}\0{req.model}\0{req.system or ''}\0{req.prompt or ''}\0{choice}"
        rng = random.Random(hashlib.blake2b(key.encode(), digest_size=8).digest())
        natural = min(max(1, round(rng.lognormvariate(math.log(120), 0.7))), self.config.max_output_tokens)
        length = min(natural, req.max_tokens) if req.max_tokens else natural
        pieces: list[str] = []
        text = ""
        sentence_left = 0
        for i in range(length):
            word = rng.choice(_WORDS)
            if sentence_left == 0:
                word = word.capitalize()
                sentence_left = rng.randint(6, 18)
            sentence_left -= 1
            if sentence_left == 0 or i == natural - 1:
                word += "."
            piece = word if i == 0 else " " + word
            for stop in stops:
                at = (text + piece).find(stop)
                if at >= 0:
                    cut = at - len(text)
                    if cut > 0:
                        pieces.append(piece[:cut])
                    return _Reply(pieces, "stop_sequence", stop)
            pieces.append(piece)
            text += piece
        return _Reply(pieces, "max_tokens" if length < natural else "end_turn", None)

    def _openai_events(
        self, req: ChatRequest, replies: list[_Reply], input_tokens: int, reply_id: str
    ) -> _Events:
        base: dict[str, Any] = {
            "id": reply_id, "object": "chat.completion.chunk", "created": int(time.time()),
            "model": req.model, "system_fingerprint": "fp_mock",
        }  # fmt: skip
        if req.include_usage:
            base["usage"] = None

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return b"data: " + orjson.dumps({**base, "choices": choices, **extra}) + b"\n\n"

        events: _Events = []
        for index, reply in enumerate(replies):
            delta = {"role": "assistant", "content": "", "refusal": None}
            events.append((chunk([{"index": index, "delta": delta, "logprobs": None, "finish_reason": None}]), False))
            for piece in reply.pieces:
                choice = {"index": index, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}
                events.append((chunk([choice]), True))
            done = {"index": index, "delta": {}, "logprobs": None, "finish_reason": reply.finish_reason()}
            events.append((chunk([done]), False))
        if req.include_usage:
            events.append((chunk([], usage=_openai_usage(replies, input_tokens)), False))
        events.append((b"data: [DONE]\n\n", False))
        return events

    def _anthropic_events(
        self, req: ChatRequest, replies: list[_Reply], input_tokens: int, reply_id: str
    ) -> _Events:
        reply = replies[0]

        def event(kind: str, data: dict[str, Any]) -> bytes:
            return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"

        message: dict[str, Any] = {
            "id": reply_id, "type": "message", "role": "assistant", "model": req.model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 1},
        }  # fmt: skip
        events: _Events = [
            (event("message_start", {"message": message}), False),
            (event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}), False),
            (event("ping", {}), False),
        ]
        for piece in reply.pieces:
            delta = {"type": "text_delta", "text": piece}
            events.append((event("content_block_delta", {"index": 0, "delta": delta}), True))
        final = {"stop_reason": reply.stop, "stop_sequence": reply.stop_sequence}
        events += [
            (event("content_block_stop", {"index": 0}), False),
            (event("message_delta", {"delta": final, "usage": {"output_tokens": len(reply.pieces)}}), False),
            (event("message_stop", {}), False),
        ]
        return events


_Events = list[tuple[bytes, bool]]  # SSE event bytes, and whether it carries one output token


def _stop_sequences(body: dict[str, Any], flavor: Flavor) -> list[str]:
    stops = body.get("stop") if flavor == "openai" else body.get("stop_sequences")
    if isinstance(stops, str):
        return [stops] if stops else []
    return [s for s in stops if isinstance(s, str) and s] if isinstance(stops, list) else []


def _openai_usage(replies: list[_Reply], input_tokens: int) -> dict[str, int]:
    output_tokens = sum(len(r.pieces) for r in replies)
    return {"prompt_tokens": input_tokens, "completion_tokens": output_tokens, "total_tokens": input_tokens + output_tokens}


def _openai_body(req: ChatRequest, replies: list[_Reply], input_tokens: int, reply_id: str) -> dict[str, Any]:
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": r.text, "refusal": None},
            "logprobs": None,
            "finish_reason": r.finish_reason(),
        }
        for i, r in enumerate(replies)
    ]
    return {
        "id": reply_id, "object": "chat.completion", "created": int(time.time()), "model": req.model,
        "system_fingerprint": "fp_mock", "choices": choices, "usage": _openai_usage(replies, input_tokens),
    }  # fmt: skip


def _anthropic_body(req: ChatRequest, reply: _Reply, input_tokens: int, reply_id: str) -> dict[str, Any]:
    return {
        "id": reply_id, "type": "message", "role": "assistant", "model": req.model,
        "content": [{"type": "text", "text": reply.text}], "stop_reason": reply.stop,
        "stop_sequence": reply.stop_sequence, "usage": {"input_tokens": input_tokens, "output_tokens": len(reply.pieces)},
    }  # fmt: skip


class _TrackedStream(StreamingResponse):
    """An SSE response paced at ``tokens_per_s`` that records in the stats how it ended: completed,
    dropped on purpose (half way, without the final events), or cancelled by the client."""

    def __init__(self, events: _Events, stats: MockStats, tokens_per_s: float, drop: bool) -> None:
        self._stats = stats
        self._finished = False
        self._drop = drop
        super().__init__(self._paced(events, tokens_per_s, drop), media_type="text/event-stream")
        self.headers["cache-control"] = "no-cache"

    async def _paced(self, events: _Events, tokens_per_s: float, drop: bool) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tokens = 0
        stop_at = len(events) // 2 if drop else len(events)
        for event, is_token in events[:stop_at]:
            if is_token:
                tokens += 1
                wait = start + tokens / tokens_per_s - loop.time()
                if wait > 0.001:
                    await asyncio.sleep(wait)
                self._stats.output_tokens += 1
            yield event
        self._finished = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._stats.streams_started += 1
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._stats.in_flight -= 1
            if not self._finished:  # the client went away: close the generator now, not at GC
                self._stats.streams_cancelled += 1
                await self.body_iterator.aclose()  # type: ignore[attr-defined]
            elif self._drop:
                self._stats.streams_dropped += 1
            else:
                self._stats.streams_completed += 1


class _Abort(Response):
    """Closes the connection without finishing the response: after nothing (``reset``) or after part
    of the body with a ``content-length`` promising more (a non-streaming ``drop``)."""

    def __init__(self, partial: bytes, promised: int = 0) -> None:
        super().__init__()
        self._partial = partial
        self._promised = promised

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._promised:
            headers = [(b"content-type", b"application/json"), (b"content-length", str(self._promised).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": self._partial, "more_body": True})
        transport = scope.get(_TRANSPORT)
        if transport is None:  # not under uvicorn (e.g. in-process): fail the request as loudly as it can
            raise ConnectionResetError("x-mock-fault: connection reset by the mock upstream")
        transport.abort()
        # let the server see the disconnect, so that it does not answer a 500 of its own
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                while (await receive())["type"] != "http.disconnect":
                    pass
