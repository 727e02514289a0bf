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

from collections.abc import AsyncIterator, Mapping
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


# -- aiohttp ---------------------------------------------------------------------------------


class _AiohttpReply:
    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers = list(resp.headers.items())

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except (TimeoutError, aiohttp.ClientError) as e:
            raise UpstreamError("reset", type(e).__name__) from e

    async def iter_raw(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as e:
            raise UpstreamError("reset", type(e).__name__) from e

    async def close(self) -> None:
        if self._resp.content.at_eof():
            self._resp.release()  # read to the end: the connection goes back to the pool
        else:
            self._resp.close()  # unfinished: drop the connection so the upstream stops


class AiohttpUpstream:
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

    def _s(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the upstream client is not started")
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> UpstreamReply:
        session = self._s()
        try:
            resp = await session.post(self.base_url + path, data=body, headers=dict(headers))
        except TimeoutError as e:
            raise UpstreamError("timeout", "no answer in time") from e
        except aiohttp.ClientConnectorError as e:
            raise UpstreamError("unreachable", type(e).__name__) from e
        except aiohttp.ClientError as e:
            raise UpstreamError("reset", type(e).__name__) from e
        return _AiohttpReply(resp)

    async def get(self, path: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
        reply = await self._get(path, headers)
        try:
            return reply.status, await reply.read()
        finally:
            await reply.close()

    async def _get(self, path: str, headers: Mapping[str, str]) -> _AiohttpReply:
        session = self._s()
        try:
            return _AiohttpReply(await session.get(self.base_url + path, headers=dict(headers)))
        except TimeoutError as e:
            raise UpstreamError("timeout", "no answer in time") from e
        except aiohttp.ClientConnectorError as e:
            raise UpstreamError("unreachable", type(e).__name__) from e
        except aiohttp.ClientError as e:
            raise UpstreamError("reset", type(e).__name__) from e


# -- httpx -----------------------------------------------------------------------------------


class _HttpxReply:
    def __init__(self, resp: httpx.Response) -> None:
        self._resp = resp
        self.status = resp.status_code
        self.headers = list(resp.headers.items())

    async def read(self) -> bytes:
        try:
            return await self._resp.aread()
        except httpx.HTTPError as e:
            raise UpstreamError("reset", type(e).__name__) from e

    async def iter_raw(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.aiter_raw():
                yield chunk
        except httpx.HTTPError as e:
            raise UpstreamError("reset", type(e).__name__) from e

    async def close(self) -> None:
        await self._resp.aclose()


class HttpxUpstream:
    """httpx's async client (the gateway's first client; kept to compare against)."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout_s, limits=limits)

    def _c(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("the upstream client is not started")
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> UpstreamReply:
        client = self._c()
        try:
            req = client.build_request("POST", path, content=body, headers=dict(headers))
            return _HttpxReply(await client.send(req, stream=True))
        except httpx.TimeoutException as e:
            raise UpstreamError("timeout", "no answer in time") from e
        except httpx.ConnectError as e:
            raise UpstreamError("unreachable", type(e).__name__) from e
        except httpx.TransportError as e:
            raise UpstreamError("reset", type(e).__name__) from e

    async def get(self, path: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
        client = self._c()
        try:
            r = await client.get(path, headers=dict(headers))
        except httpx.TimeoutException as e:
            raise UpstreamError("timeout", "no answer in time") from e
        except httpx.ConnectError as e:
            raise UpstreamError("unreachable", type(e).__name__) from e
        except httpx.HTTPError as e:
            raise UpstreamError("reset", type(e).__name__) from e
        return r.status_code, r.content
