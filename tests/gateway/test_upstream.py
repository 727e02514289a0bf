"""Both upstream clients honour one contract (gateway/upstream.py), checked against the mock
upstream (a stand-in model: no model can be served here): whole and streamed answers, a
stream dropped early cancels the upstream's work, and each failure has its kind."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import orjson
import pytest

from distillguard.gateway.mock_upstream import MockConfig, create_mock_app
from distillguard.gateway.server import BackgroundServer
from distillguard.gateway.upstream import CLIENTS, UpstreamError, make_upstream

CHAT = "/v1/chat/completions"
JSON = {"content-type": "application/json"}


def _body(max_tokens: int, stream: bool = False) -> bytes:
    return orjson.dumps({"model": "m", "max_tokens": max_tokens, "stream": stream, "messages": [{"role": "user", "content": "tell me"}]})


@pytest.fixture(scope="module")
def mock() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_mock_app(MockConfig(latency_ms=20, tokens_per_s=200, max_output_tokens=400))) as s:
        yield s


@pytest.fixture(params=CLIENTS)
def client_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_a_whole_answer_and_a_stream(mock: BackgroundServer, client_kind: str) -> None:
    async def run() -> tuple[int, dict[str, object], bytes]:
        up = make_upstream(client_kind, mock.url, 10)
        await up.start()
        try:
            reply = await up.post(CHAT, _body(5), JSON)
            whole = orjson.loads(await reply.read())
            await reply.close()
            streamed = await up.post(CHAT, _body(5, stream=True), JSON)
            raw = b"".join([c async for c in streamed.iter_raw()])
            await streamed.close()
            return reply.status, whole, raw
        finally:
            await up.close()

    status, whole, raw = asyncio.run(run())
    assert status == 200 and whole["usage"]["completion_tokens"] == 5  # type: ignore[index]
    assert raw.rstrip().endswith(b"data: [DONE]") and raw.count(b"data: ") >= 6


def test_closing_a_stream_early_cancels_the_upstreams_work(mock: BackgroundServer, client_kind: str) -> None:
    stats = mock.app.state.stats
    before = stats.streams_cancelled

    async def run() -> None:
        up = make_upstream(client_kind, mock.url, 10)
        await up.start()
        try:
            reply = await up.post(CHAT, _body(400, stream=True), JSON)
            async for _ in reply.iter_raw():
                break
            await reply.close()
        finally:
            await up.close()

    asyncio.run(run())
    deadline = time.monotonic() + 5
    while stats.streams_cancelled == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stats.streams_cancelled == before + 1


def test_each_failure_has_its_kind(mock: BackgroundServer, client_kind: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"

    async def kind(base: str, timeout_s: float, headers: dict[str, str]) -> str | None:
        up = make_upstream(client_kind, base, timeout_s)
        await up.start()
        try:
            reply = await up.post(CHAT, _body(5), {**JSON, **headers})
            await reply.read()
            await reply.close()
            return None
        except UpstreamError as e:
            return e.kind
        finally:
            await up.close()

    assert asyncio.run(kind(dead, 5, {})) == "unreachable"
    assert asyncio.run(kind(mock.url, 0.05, {"x-mock-fault": "slow"})) == "timeout"  # 10 x 20 ms > 50 ms
    assert asyncio.run(kind(mock.url, 5, {"x-mock-fault": "reset"})) == "reset"
    assert asyncio.run(kind(mock.url, 5, {})) is None


def test_an_unknown_client_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="aiohttp, httpx"):
        make_upstream("requests", "http://127.0.0.1:1", 1)
