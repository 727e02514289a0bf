"""The gateway's HTTP client to the model it protects: one small interface, two libraries.

:class:`AiohttpUpstream` is the default because it measured fastest
(``benchmarks/results/gateway/latency.json``, ``upstream_clients``): httpx's connection pool
scans every pooled connection on each request, which took a quarter of the gateway's CPU at
500 requests/s. :class:`HttpxUpstream` stays as the reference (``distillguard serve
--upstream-client httpx``). Both answer with an :class:`UpstreamReply` whose body is read whole or passed on as
raw bytes, and both turn their library's failures into one :class:`UpstreamError` whose kind
(``timeout``, ``unreachable``, ``reset``) picks the error the client sees.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Literal, Protocol

import aiohttp
import httpx

__all__ = ["AiohttpUpstream", "HttpxUpstream", "Upstream", "UpstreamError", "UpstreamReply", "make_upstream"]

UpstreamFailure = Literal["timeout", "unreachable", "reset"]
CLIENTS = ("aiohttp", "httpx")


class UpstreamError(Exception):
    """The upstream call failed: it timed out, could not connect, or broke mid-answer."""

    def __init__(self, kind: UpstreamFailure, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind: UpstreamFailure = kind
        self.detail = detail


class UpstreamReply(Protocol):
    """An answer whose headers have arrived; its body is read by exactly one of the two ways."""

    status: int
    headers: list[tuple[str, str]]

    async def read(self) -> bytes:
        """The whole body (raises :class:`UpstreamError` ``reset`` if the connection breaks)."""
        ...

    def iter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives (raises :class:`UpstreamError` ``reset`` if it breaks)."""
        ...

    async def close(self) -> None:
        """Done with the answer; before its end this drops the connection, which cancels the
        upstream's work (a client that left mid-stream)."""
        ...


class Upstream(Protocol):
    """What the gateway needs from an HTTP client to its upstream."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> UpstreamReply:
        """Send the request and wait for the answer's headers."""
        ...

    async def get(self, path: str, headers: Mapping[str, str]) -> tuple[int, bytes]: ...


def make_upstream(client: str, base_url: str, timeout_s: float) -> Upstream:
    if client == "aiohttp":
        return AiohttpUpstream(base_url, timeout_s)
    if client == "httpx":
        return HttpxUpstream(base_url, timeout_s)
    raise ValueError(f"upstream client: expected one of {', '.join(CLIENTS)}, got {client!r}")


Failures = tuple[type[BaseException], ...]


@contextlib.contextmanager
def _failures(timeout: Failures, unreachable: Failures, broken: Failures) -> Iterator[None]:
    """One library's exceptions as :class:`UpstreamError` kinds (first match wins)."""
    try:
        yield
    except timeout as e:
        raise UpstreamError("timeout", "no answer in time") from e
    except unreachable as e:
        raise UpstreamError("unreachable", type(e).__name__) from e
    except broken as e:
        raise UpstreamError("reset", type(e).__name__) from e


class _Client:
    """``post`` and ``get`` over one library's ``_send``."""

    async def _send(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> UpstreamReply:
        raise NotImplementedError

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> UpstreamReply:
        return await self._send("POST", path, body, headers)

    async def get(self, path: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
        reply = await self._send("GET", path, None, headers)
        try:
            return reply.status, await reply.read()
        finally:
            await reply.close()


# -- aiohttp ---------------------------------------------------------------------------------

_AIOHTTP_SEND: tuple[Failures, Failures, Failures] = ((TimeoutError,), (aiohttp.ClientConnectorError,), (aiohttp.ClientError,))
_AIOHTTP_BODY: tuple[Failures, Failures, Failures] = ((), (), (aiohttp.ClientError, TimeoutError))


class _AiohttpReply:
    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers = list(resp.headers.items())

    async def read(self) -> bytes:
        with _failures(*_AIOHTTP_BODY):
            return await self._resp.read()

    async def iter_raw(self) -> AsyncIterator[bytes]:
        with _failures(*_AIOHTTP_BODY):
            async for chunk in self._resp.content.iter_any():
                yield chunk

    async def close(self) -> None:
        if self._resp.content.at_eof():
            self._resp.release()  # read to the end: the connection goes back to the pool
        else:
            self._resp.close()  # unfinished: drop the connection so the upstream stops


class AiohttpUpstream(_Client):
    """aiohttp's client session: keep-alive pool, no limit per host, the gateway's timeouts
    per connect and per read (a stream may last long, but never stall that long)."""

    def __init__(self, base_url: str, timeout_s: float, max_connections: int = 1000) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0, keepalive_timeout=30)
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout_s, sock_read=self.timeout_s)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=True, skip_auto_headers=("User-Agent",)
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _send(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> UpstreamReply:
        if self._session is None:
            raise RuntimeError("the upstream client is not started")
        with _failures(*_AIOHTTP_SEND):
            resp = await self._session.request(method, self.base_url + path, data=body, headers=dict(headers))
        return _AiohttpReply(resp)


# -- httpx -----------------------------------------------------------------------------------

_HTTPX_SEND: tuple[Failures, Failures, Failures] = ((httpx.TimeoutException,), (httpx.ConnectError,), (httpx.HTTPError,))
_HTTPX_BODY: tuple[Failures, Failures, Failures] = ((), (), (httpx.HTTPError,))


class _HttpxReply:
    def __init__(self, resp: httpx.Response) -> None:
        self._resp = resp
        self.status = resp.status_code
        self.headers = list(resp.headers.items())

    async def read(self) -> bytes:
        with _failures(*_HTTPX_BODY):
            return await self._resp.aread()

    async def iter_raw(self) -> AsyncIterator[bytes]:
        with _failures(*_HTTPX_BODY):
            async for chunk in self._resp.aiter_raw():
                yield chunk

    async def close(self) -> None:
        await self._resp.aclose()


class HttpxUpstream(_Client):
    """httpx's async client (the gateway's first client; kept to compare against)."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout_s, limits=limits)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def _send(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> UpstreamReply:
        if self._client is None:
            raise RuntimeError("the upstream client is not started")
        with _failures(*_HTTPX_SEND):
            req = self._client.build_request(method, path, content=body, headers=dict(headers))
            return _HttpxReply(await self._client.send(req, stream=True))
