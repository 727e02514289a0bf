"""The gateway's added latency, side by side with LiteLLM's proxy, and its decision path alone.

    PYTHONPATH=src /work/main/.venv/bin/python benchmarks/bench_gateway.py \\
        --litellm /tmp/litellm-venv/bin/litellm --py-spy /tmp/pyspy/bin/py-spy \\
        --json benchmarks/results/gateway/latency.json

(LiteLLM lives in a venv of its own: ``python3 -m venv /tmp/litellm-venv &&
/tmp/litellm-venv/bin/pip install 'litellm[proxy]'``; without ``--litellm`` it is skipped and
the JSON says so. ``--py-spy`` also profiles the gateway, every thread, the live scorer's and
Polars' included: ``pip install --target /tmp/pyspy py-spy``. About 4 minutes.
``--decision-only``: the decision path alone, in memory and with quotas in a ``redis-server``
started on 127.0.0.1 for the run (bars: p99 200 us and 1 ms), in under a minute.)

Why open loop: a closed-loop client (next request when the last one is back) slows down when
the server stalls, so a stall hides in a lower request rate. Here requests start on a fixed
schedule (``--rates``, per second) and each one's latency runs from its *scheduled* start, so
a stall of the server, or of the client's own event loop, shows up in the tail; a request not
answered in ``--timeout`` seconds counts as failed, which bounds a saturated server's window.

Every server runs in its own process, started the way users start it (``distillguard
mock-upstream``, ``distillguard serve``, ``litellm``), on 127.0.0.1; this process is the load
generator (a lean keep-alive HTTP/1.1 client on uvloop, a bounded number of requests). Per rate
and round, each target gets ``--warmup`` seconds of the same load (discarded) and ``--seconds``
measured; a gateway is started fresh for its own window (its live re-scoring would otherwise eat
CPU during the other targets' windows) and the order of targets is reversed every other round,
so drift on a shared machine falls on every target alike. Targets:

- ``direct``: the mock upstream itself (``--latency-ms 5 --tokens-per-s 100000``);
- ``distillguard``: ``distillguard serve --rescore 5`` (live scoring on, no sink), one worker;
- ``distillguard_no_live``: the same settings with live scoring off (``GatewaySettings.live``);
- ``distillguard_sink``: ``distillguard serve --rescore 5 --sink DIR`` (exchanges to Parquet);
- ``litellm``: ``litellm --config cfg.yaml --num_workers 1``, one model ``openai/m`` on the mock.

The gateway gets a policy whose plan never refuses, and an account and key through its admin
API. Added latency is a target's percentile minus ``direct``'s at the same rate (rounds pooled);
the bars apply at the first rate (500/s, the issue's). The second rate (25/s) is one where
LiteLLM, much the heaviest per request here, is not saturated either.

The decision path alone (identify the key, decide, limits, reserve and settle in the memory
store, the metrics they touch) is timed in process over ``--decision-calls`` calls with
``time.perf_counter_ns``, mirroring the lines of ``Gateway.chat`` between parsing and
forwarding; parsing the body is timed on its own beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httptools
import httpx
import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BARS_MS = {"added_p50": 1.5, "added_p99": 4.0}
DECISION_BAR_US = {"p99": 200.0}
DECISION_REDIS_BAR_US = {"p99": 1000.0}
MAX_TOKENS = 64
ACCOUNT = "bench-account"
# A plan that never refuses at 500 requests/s: the benchmark measures the path, not the quotas.
POLICY_YAML = """\
default_plan: bench
plans:
  bench: {daily_tokens: 100000000000, requests_per_minute: 100000000, tokens_per_minute: 100000000000, max_tokens: 4096}
release:
  stages:
    - {age_days: 0, share: 1.0}
"""
LITELLM_CONFIG = """\
model_list:
  - model_name: m
    litellm_params:
      model: openai/m
      api_base: http://127.0.0.1:{mock_port}/v1
      api_key: sk-mock
litellm_settings:
  telemetry: false
  drop_params: true
general_settings:
  disable_spend_logs: true
  disable_error_logs: true
  disable_reset_budget: true
"""
# Offline, quiet LiteLLM: no model-cost map download, no telemetry, no database, errors only.
LITELLM_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "LITELLM_LOG": "ERROR",
    "LITELLM_MODE": "PRODUCTION",
    "DISABLE_ADMIN_UI": "True",
}
PROMPT_TEXT = (
    "please explain how the following system works step by step and give a clear example of each part of the "
    "process so that a new engineer can follow the design and check the result against the measured value"
)
WORDS = tuple(PROMPT_TEXT.split())


def prompt_bodies(n: int, words: int = 150) -> list[bytes]:
    """``n`` chat bodies of about 200 tokens each (the mock counts bytes / 4 + 4 per message)."""
    bodies = []
    for i in range(n):
        text = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(words))
        body = {
            "model": "m",
            "messages": [{"role": "user", "content": f"[{i}] {text}"}],
            "max_tokens": MAX_TOKENS,
        }
        bodies.append(orjson.dumps(body))
    return bodies


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/p99.9/max/mean in ms (nearest rank)."""
    xs = sorted(seconds)
    if not xs:
        return {}

    def rank(q: float) -> float:
        return xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))] * 1000

    out = {f"p{q * 100:g}": rank(q) for q in (0.5, 0.9, 0.99, 0.999)}
    out["max"] = xs[-1] * 1000
    out["mean"] = sum(xs) / len(xs) * 1000
    return {k: round(v, 3) for k, v in out.items()}


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a server and every process under it (Linux /proc): its
    workers and the live scorer's process count as the server's cost per request."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = int(st[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for p in tree:
        st = _stat(p)
        if st is not None:
            total += int(st[11]) + int(st[12])
    return total / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------ servers


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    command: list[str]

    def stop(self) -> None:
        """SIGINT first (uvicorn shuts down cleanly), then SIGKILL to the group."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(
                    timeout=5
                )  # a saturated server may still be working off abandoned requests
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # whatever it started itself
            os.killpg(self.proc.pid, signal.SIGKILL)

    def tail(self, n: int = 30) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-n:])


def start(
    name: str,
    command: list[str],
    url: str,
    health: str,
    tmp: Path,
    env: dict[str, str] | None = None,
    wait_s: float = 120,
) -> Server:
    """Start ``command`` in its own process group and wait until ``url + health`` answers 200."""
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    server = Server(name, proc, url, log, command)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{server.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + health, timeout=1).status_code == 200:
                return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{name} did not answer {health} within {wait_s:g} s:\n{server.tail()}")


def dg_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "distillguard.cli", *args]


def start_gateway(
    name: str, mock_url: str, tmp: Path, *, sink: bool, extra: Sequence[str] = ()
) -> tuple[Server, str]:
    """``distillguard serve`` (live scoring on unless ``extra`` says ``--no-live``); an account
    and key made through the admin API."""
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY_YAML)
    port = free_port()
    args = [
        "serve",
        "--upstream",
        mock_url,
        "--port",
        str(port),
        "--policy",
        str(policy),
        "--rescore",
        "5",
        "--workers",
        "1",
    ]
    if sink:
        args += ["--sink", str(tmp / f"sink-{name}-{port}")]
    command = dg_command(*args, *extra)
    token = secrets.token_urlsafe(16)
    server = start(
        name,
        command,
        f"http://127.0.0.1:{port}",
        "/healthz",
        tmp,
        {"DISTILLGUARD_ADMIN_TOKEN": token},
    )
    admin = {"authorization": f"Bearer {token}"}
    account = {
        "account_id": ACCOUNT,
        "plan": "bench",
        "created_at": "2020-01-01T00:00:00Z",
        "verified": True,
        "paid": True,
    }
    r = httpx.post(f"{server.url}/admin/accounts", json=account, headers=admin)
    r.raise_for_status()
    r = httpx.post(f"{server.url}/admin/accounts/{ACCOUNT}/keys", headers=admin)
    r.raise_for_status()
    return server, str(r.json()["key"])


def start_litellm(litellm: Path, mock_port: int, tmp: Path) -> tuple[Server, str]:
    """LiteLLM's proxy with a master key (it refuses to start without one, and clients then
    authenticate, as they do at the gateway); no database, so no virtual keys or spend logs."""
    config = tmp / "litellm.yaml"
    config.write_text(LITELLM_CONFIG.replace("{mock_port}", str(mock_port)))
    port = free_port()
    command = [
        str(litellm),
        "--config",
        str(config),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--num_workers",
        "1",
    ]
    master_key = "sk-" + secrets.token_hex(32)
    env = {
        **LITELLM_ENV,
        "LITELLM_MASTER_KEY": master_key,
        "PYTHONPATH": "",
    }  # its own venv only, never this project's src
    return start(
        "litellm", command, f"http://127.0.0.1:{port}", "/health/liveliness", tmp, env, wait_s=180
    ), master_key


# ------------------------------------------------------------------------------------ load


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: write a pre-built request, wait for httptools to
    parse the whole reply."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.reply: asyncio.Future[int] | None = None
        self.open = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(e)

    def on_message_complete(self) -> None:
        self.open = self.parser.should_keep_alive()
        if self.reply is not None and not self.reply.done():
            self.reply.set_result(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self._fail(exc or ConnectionResetError("closed by the server"))

    def _fail(self, exc: BaseException) -> None:
        self.open = False
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(exc)

    async def request(self, raw: bytes) -> int:
        assert self.transport is not None
        self.reply = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.reply


class LoadClient:
    """A lean HTTP/1.1 keep-alive client for the load (requests pre-built as bytes, replies parsed
    by httptools, the parser uvicorn uses). httpx spends about 2 ms of CPU per request on these
    shared cores: at 500 requests/s the client alone would need more than a core and its own
    delays would swamp what is measured."""

    def __init__(self, host: str, port: int, max_connections: int = 2000) -> None:
        self.host, self.port, self.max_connections = host, port, max_connections
        self.idle: list[_Connection] = []
        self.opened = 0
        self.waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    @staticmethod
    def build(host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
        head = f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return (head + "\r\n").encode() + body

    async def _connection(self) -> _Connection:
        while True:
            while self.idle:
                conn = self.idle.pop()
                if conn.open:
                    return conn
                self.opened -= 1
            if self.opened < self.max_connections:
                self.opened += 1
                try:
                    _, conn = await asyncio.get_running_loop().create_connection(
                        _Connection, self.host, self.port
                    )
                except BaseException:  # refused, or timed out while connecting
                    self.opened -= 1
                    raise
                return conn
            waiter = asyncio.get_running_loop().create_future()
            self.waiting.append(waiter)
            await waiter

    async def post(self, raw: bytes, timeout_s: float) -> int:
        """The reply's status; TimeoutError after ``timeout_s`` in all, the wait for a
        connection (and the connect) included."""
        async with asyncio.timeout(timeout_s):
            conn = await self._connection()
            try:
                return await conn.request(raw)
            except BaseException:
                conn.open = False
                if conn.transport is not None:
                    conn.transport.close()
                raise
            finally:
                self.idle.append(conn)
                while self.waiting:
                    waiter = self.waiting.popleft()
                    if not waiter.done():  # one that timed out while waiting is cancelled
                        waiter.set_result(None)
                        break

    def close(self) -> None:
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()


async def open_loop(
    url: str,
    headers: dict[str, str],
    bodies: list[bytes],
    rate: float,
    seconds: float,
    warmup: float,
    timeout_s: float = 10,
) -> dict[str, Any]:
    """``rate`` requests/s on a fixed schedule for ``warmup + seconds``; latency from the schedule.
    A request not answered within ``timeout_s`` is counted as failed (status -1) with its latency
    then, so a saturated server's window ends at most ``timeout_s`` after the last send."""
    n_warm, n = round(rate * warmup), round(rate * seconds)
    total = n_warm + n
    latency = [math.nan] * total
    lag = [math.nan] * total  # when the client actually sent, after the schedule: its own delay
    status = [0] * total
    target = httpx.URL(url)
    host, port = target.host, target.port or 80
    client = LoadClient(host, port)
    raws = [LoadClient.build(host, port, target.raw_path.decode(), headers, b) for b in bodies]
    clock = time.perf_counter  # not loop.time(): uvloop's is libuv's cached millisecond clock

    async def one(i: int, scheduled: float) -> None:
        lag[i] = clock() - scheduled
        try:
            status[i] = await client.post(raws[i % len(raws)], timeout_s)
        except (OSError, TimeoutError):
            status[i] = -1
        latency[i] = clock() - scheduled

    t0 = clock() + 0.05
    tasks = []
    i = 0
    while i < total:
        now = clock()
        while i < total and t0 + i / rate <= now:
            tasks.append(asyncio.create_task(one(i, t0 + i / rate)))
            i += 1
        if i < total:
            await asyncio.sleep(max(0.0, t0 + i / rate - clock()))
    await asyncio.gather(*tasks)
    client.close()
    kept = slice(n_warm, total)
    codes: dict[str, int] = {}
    for s in status[kept]:
        codes[str(s)] = codes.get(str(s), 0) + 1
    return {"latency_s": latency[kept], "lag_s": lag[kept], "status": codes}


def measure(
    server: Server,
    headers: dict[str, str],
    bodies: list[bytes],
    rate: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One window of open-loop load on ``server``'s chat endpoint, with the server's CPU time."""
    import uvloop

    cpu0, wall0 = cpu_seconds(server.proc.pid), time.perf_counter()
    out = uvloop.run(
        open_loop(
            server.url + "/v1/chat/completions",
            headers,
            bodies,
            rate,
            args.seconds,
            args.warmup,
            args.timeout,
        )
    )
    cpu = cpu_seconds(server.proc.pid) - cpu0
    n = (args.seconds + args.warmup) * rate
    out["server_cpu_us_per_request"] = round(cpu / n * 1e6, 1)
    out["wall_s"] = round(time.perf_counter() - wall0, 2)
    return out


def summarize(windows: list[dict[str, Any]]) -> dict[str, Any]:
    latency = [x for w in windows for x in w["latency_s"]]
    lag = [x for w in windows for x in w["lag_s"]]
    status: dict[str, int] = {}
    for w in windows:
        for k, v in w["status"].items():
            status[k] = status.get(k, 0) + v
    return {
        "latency_ms": percentiles_ms(latency),
        "requests": len(latency),
        "status": status,
        # Under 99 % answered in time: the server could not keep up with the rate, and its
        # percentiles are mostly the timeout (its queue), not its cost per request.
        "saturated": status.get("200", 0) < 0.99 * len(latency),
        "client_send_lag_ms": percentiles_ms(lag),
        "server_cpu_us_per_request": [w["server_cpu_us_per_request"] for w in windows],
        "rounds": [
            {
                "latency_ms": percentiles_ms(w["latency_s"]),
                "status": w["status"],
                "wall_s": w["wall_s"],
            }
            for w in windows
        ],
    }


# ------------------------------------------------------------------------------------ JSON


def json_libraries(bodies: list[bytes], reply: bytes, calls: int = 20_000) -> dict[str, Any]:
    """What each JSON library costs on the gateway's own JSON work: decode a request, encode the
    upstream body, decode a whole reply for its usage (median µs per call, one sitting)."""
    import json as stdlib_json

    import msgspec  # the `bench` extra; imported here so the tests that reuse this module need not

    usage_type = msgspec.defstruct("Usage", [("prompt_tokens", int, 0), ("completion_tokens", int, 0)])
    # Only the usage of a reply: msgspec skips the rest without building it.
    reply_type = msgspec.defstruct("Reply", [("usage", usage_type | None, None)])

    decoded = [orjson.loads(b) for b in bodies]
    enc = msgspec.json.Encoder()
    libs: dict[str, dict[str, Any]] = {
        "orjson": {"decode_request": orjson.loads, "encode_request": orjson.dumps, "reply_usage": lambda b: orjson.loads(b)["usage"]},
        "msgspec": {"decode_request": msgspec.json.decode, "encode_request": enc.encode,
                    "reply_usage": lambda b: msgspec.json.decode(b, type=reply_type).usage},  # type: ignore[attr-defined]
        "json": {"decode_request": stdlib_json.loads, "encode_request": lambda o: stdlib_json.dumps(o).encode(),
                 "reply_usage": lambda b: stdlib_json.loads(b)["usage"]},
    }  # fmt: skip
    out: dict[str, Any] = {}
    for name, ops in libs.items():
        row: dict[str, float] = {}
        for op, fn in ops.items():
            inputs: list[Any] = bodies if op == "decode_request" else decoded if op == "encode_request" else [reply]
            times = []
            for i in range(calls):
                x = inputs[i % len(inputs)]
                t0 = time.perf_counter_ns()
                fn(x)
                times.append(time.perf_counter_ns() - t0)
            times.sort()
            row[op + "_us_p50"] = round(times[len(times) // 2] / 1000, 2)
        out[name] = row
    out["note"] = "per call, median of " + f"{calls:,}" + f" calls; request bodies {len(bodies[0])} bytes, reply {len(reply)} bytes"
    return out


# ------------------------------------------------------------------------------------ decision path


def decision_path(calls: int, redis_url: str | None = None) -> dict[str, Any]:
    """The per-request work of ``Gateway.chat`` before and after forwarding, in process, timed;
    with ``redis_url``, quotas in that Redis (one Lua call to reserve, one to settle)."""
    from starlette.requests import Request

    from distillguard.gateway.api import parse_chat, upstream_body
    from distillguard.gateway.directory import Account
    from distillguard.gateway.policy_file import AccountFacts
    from distillguard.gateway.quota import Bucket, Grant
    from distillguard.gateway.server import GatewaySettings, build_gateway

    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY_YAML)
        key = "dg-" + secrets.token_urlsafe(32)
        gw = build_gateway(
            GatewaySettings(
                upstream="http://127.0.0.1:9", policy=str(policy), keys={key: ACCOUNT}, rescore_s=5
            )
        )
    gw.directory.upsert(
        Account(ACCOUNT, dt.datetime(2020, 1, 1, tzinfo=dt.UTC), "bench", verified=True, paid=True)
    )
    assert (
        gw.live is not None
    )  # live scoring on, as `distillguard serve` runs it (its thread not started)
    if redis_url is not None:
        from distillguard.gateway.quota import RedisQuotaStore

        gw.store = RedisQuotaStore(redis_url)
    raw = prompt_bodies(1)[0]
    headers = [(b"authorization", f"Bearer {key}".encode()), (b"content-type", b"application/json"),
               (b"content-length", str(len(raw)).encode()), (b"user-agent", b"bench")]  # fmt: skip
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": headers,
             "client": ("127.0.0.1", 40000), "query_string": b""}  # fmt: skip
    stages = ("identify", "decide", "limits", "reserve", "settle")
    times: dict[str, list[int]] = {s: [] for s in (*stages, "total", "parse", "to_reserve")}

    async def run() -> None:
        ns = time.perf_counter_ns
        for i in range(calls + calls // 10):
            request = Request(dict(scope))  # fresh per call: header parsing is part of identify
            t = ns()
            body = orjson.loads(raw)
            req = parse_chat(body, "openai")
            upstream_body(body, req, MAX_TOKENS)
            t0 = ns()
            started = dt.datetime.now(dt.UTC)
            account_id = await gw.identify(request)
            assert account_id == ACCOUNT
            t1 = ns()
            account = gw.directory.account(account_id, started)
            gw.live.account_seen(account)  # type: ignore[union-attr]
            facts = AccountFacts(
                account.account_id,
                account.plan,
                account.created_at,
                account.verified,
                account.paid,
                account.org_id,
            )
            verdict, _cluster = gw.decide(account, facts, request)
            t2 = ns()
            limits = gw.policy.limits(facts, started, verdict.action)
            t3 = ns()
            bucket = Bucket(
                f"acct:{account_id}",
                limits.daily_tokens,
                limits.tokens_per_minute,
                limits.requests_per_minute,
            )
            grant = await gw.store.reserve(
                [bucket], req.input_token_bound + MAX_TOKENS * req.n_choices
            )
            gw.metrics.store_errors.set(gw.store.errors)
            assert isinstance(grant, Grant), grant
            gw.metrics.tokens_reserved.inc(grant.tokens)
            t4 = ns()
            used = min(grant.tokens, 200 + MAX_TOKENS)
            await gw.store.settle(grant, used)
            gw.metrics.tokens_settled.inc(used)
            t5 = ns()
            if i >= calls // 10:  # the first tenth warms caches and is not kept
                for name, a, b in (("parse", t, t0), ("identify", t0, t1), ("decide", t1, t2), ("limits", t2, t3),
                                   ("reserve", t3, t4), ("settle", t4, t5), ("total", t0, t5), ("to_reserve", t0, t4)):  # fmt: skip
                    times[name].append(b - a)

    async def run_and_close() -> None:
        try:
            await run()
        finally:
            await gw.store.close()

    asyncio.run(run_and_close())

    def us(xs: list[int]) -> dict[str, float]:
        return {k: round(v * 1000, 2) for k, v in percentiles_ms([x / 1e9 for x in xs]).items()}

    if redis_url is not None:  # the bar: auth, risk lookup and reservation (settling follows the reply)
        to_reserve = us(times["to_reserve"])
        return {
            "calls": calls,
            "store": "redis",
            "decision_us": to_reserve,
            "total_us": us(times["total"]),
            "stages_us": {s: us(times[s]) for s in stages},
            "bar_p99_us": DECISION_REDIS_BAR_US["p99"],
            "bar_holds": to_reserve["p99"] <= DECISION_REDIS_BAR_US["p99"],
            "note": "decision = identify..reserve (auth, risk lookup, reservation: one Lua call to a redis-server "
            "on 127.0.0.1 started for this run); settle (after the reply, off the decision) is in total; the "
            "client and redis-server share the machine's 2 cores",
        }
    return {
        "calls": calls,
        "total_us": us(times["total"]),
        "stages_us": {s: us(times[s]) for s in stages},
        "parse_and_upstream_body_us": us(times["parse"]),
        "bar_p99_us": DECISION_BAR_US["p99"],
        "bar_holds": us(times["total"])["p99"] <= DECISION_BAR_US["p99"],
        "note": "identify = key hash + lookup (fresh Request, so header parsing is in it); decide = account, "
        "live.account_seen, Gateway.decide; reserve/settle = MemoryQuotaStore with the prometheus counters chat() touches; "
        "total = identify..settle; parse (orjson.loads + parse_chat + upstream_body) is outside the total",
    }


# ------------------------------------------------------------------------------------ main


def versions(litellm: Path | None) -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version()}
    for dist in (
        "uvicorn",
        "starlette",
        "httpx",
        "uvloop",
        "httptools",
        "orjson",
        "prometheus-client",
        "polars",
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    if litellm is not None:
        py = litellm.parent / "python"
        code = "import importlib.metadata as m, platform; print(m.version('litellm'), m.version('uvicorn'), platform.python_version())"
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            lv, uv, pv = subprocess.run(
                [str(py), "-c", code], capture_output=True, text=True, check=True
            ).stdout.split()
            out["litellm"] = {"litellm": lv, "uvicorn": uv, "python": pv}
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        out["distillguard_commit"] = rev.stdout.strip() + (
            " + uncommitted src changes" if dirty.stdout.strip() else ""
        )
    return out


def machine() -> dict[str, Any]:
    model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "",
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "note": "2 CPU cores shared with other people's jobs: medians and ratios are measured in one sitting, "
        "and the other core may be busy, so absolute tails are noisier than on a quiet machine; "
        "mock, gateway and load generator share those 2 cores",
    }


def profile(
    py_spy: Path,
    mock: Server,
    rate: float,
    bodies: list[bytes],
    tmp: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The gateway (live scoring on, no sink) under ``py-spy record`` for one window: where its
    CPU goes, by thread, by function's own time and by time inside a function (percent of
    the samples; py-spy keeps only samples of threads that are running)."""
    raw = tmp / "profile.txt"
    gw, key = start_gateway("profiled", mock.url, tmp, sink=False)
    with running(gw):  # attached once it serves, so start-up imports are not in the samples
        spy = [
            str(py_spy),
            "record",
            "--pid",
            str(gw.proc.pid),
            "--duration",
            f"{args.seconds + args.warmup:.0f}",
        ]
        spy += [
            "--rate",
            "100",
            "--threads",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(raw),
        ]
        sampler = subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        measure(
            gw,
            {"content-type": "application/json", "authorization": f"Bearer {key}"},
            bodies,
            rate,
            args,
        )
        sampler.wait(timeout=60)
    if not raw.exists():
        return {"error": f"py-spy wrote nothing (exit {sampler.returncode})"}
    own: collections.Counter[str] = collections.Counter()
    inside: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        total += n
        threads[frames[0].split(": ", 1)[-1]] += n
        names = [
            f.rsplit(":", 1)[0] + ")" if f.endswith(")") else f for f in frames[1:]
        ]  # drop line numbers
        if names:
            own[names[-1]] += n
        for name in set(names):
            inside[name] += n

    def share(c: collections.Counter[str], k: int) -> list[list[Any]]:
        return [[name, round(100 * v / total, 1)] for name, v in c.most_common(k)]

    return {"rate_per_s": rate, "samples": total, "by_thread_pct": share(threads, 8), "own_time_pct": share(own, 15),
            "inside_pct": share(inside, 45)}  # fmt: skip


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


# The gateway as shipped (uvicorn, aiohttp to the upstream, live scoring in its scorer process),
# then one choice changed at a time: no live scoring, the sink on, httpx, granian.
GATEWAY_VARIANTS: dict[str, tuple[str, ...]] = {
    "distillguard": (),
    "distillguard_no_live": ("--no-live",),
    "distillguard_sink": (),
    "distillguard_httpx": ("--upstream-client", "httpx"),
    "distillguard_granian": ("--server", "granian"),
}
TARGETS = ("direct", *GATEWAY_VARIANTS, "litellm")


def window(
    target: str,
    mock: Server,
    rate: float,
    bodies: list[bytes],
    tmp: Path,
    args: argparse.Namespace,
    commands: dict[str, str],
) -> dict[str, Any]:
    """One measured window of ``target``; a gateway or LiteLLM is started for it and stopped after."""
    headers = {"content-type": "application/json"}
    if target == "direct":
        return measure(mock, headers, bodies, rate, args)
    if target.startswith("distillguard"):
        gw, key = start_gateway(target, mock.url, tmp, sink=target.endswith("sink"), extra=GATEWAY_VARIANTS[target])
        with running(gw):
            commands[target] = " ".join(gw.command)
            return measure(gw, {**headers, "authorization": f"Bearer {key}"}, bodies, rate, args)
    assert args.litellm is not None
    mock_port = int(mock.url.rsplit(":", 1)[1])
    lite, master_key = start_litellm(args.litellm, mock_port, tmp)
    with running(lite):
        commands[target] = " ".join(lite.command)
        return measure(
            lite, {**headers, "authorization": f"Bearer {master_key}"}, bodies, rate, args
        )


def compare(windows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Percentiles per target (rounds pooled), added latency over ``direct``, bars and ratios."""
    out: dict[str, Any] = {"targets": {t: summarize(ws) for t, ws in windows.items()}}
    direct = out["targets"].get("direct", {}).get("latency_ms")
    added: dict[str, dict[str, float]] = {}
    if direct:
        for t, summary in out["targets"].items():
            if t != "direct":
                added[t] = {
                    q: round(summary["latency_ms"][q] - direct[q], 3) for q in ("p50", "p90", "p99")
                }
    out["added_ms"] = added
    out["saturated"] = sorted(t for t, summary in out["targets"].items() if summary["saturated"])
    if "distillguard" in added:
        dg = added["distillguard"]
        out["bars_hold"] = {
            "added_p50": dg["p50"] <= BARS_MS["added_p50"],
            "added_p99": dg["p99"] <= BARS_MS["added_p99"],
        }
    if "distillguard" in added and "litellm" in added:
        lite, dg, t = added["litellm"], added["distillguard"], out["targets"]
        out["ratio_distillguard_over_litellm"] = {
            "added_p50": round(dg["p50"] / lite["p50"], 3) if lite["p50"] > 0 else None,
            "added_p99": round(dg["p99"] / lite["p99"], 3) if lite["p99"] > 0 else None,
            "total_p50": round(
                t["distillguard"]["latency_ms"]["p50"] / t["litellm"]["latency_ms"]["p50"], 3
            ),
            "total_p99": round(
                t["distillguard"]["latency_ms"]["p99"] / t["litellm"]["latency_ms"]["p99"], 3
            ),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[500, 25],
                    help="requests per second, open loop; the first is the issue's (bars), the others show the same paths where LiteLLM is not saturated too")  # fmt: skip
    ap.add_argument(
        "--seconds", type=float, default=10, help="measured seconds per target, rate and round"
    )
    ap.add_argument(
        "--warmup", type=float, default=2, help="seconds of the same load before, not kept"
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="windows per target and rate (order reversed every other round)",
    )
    ap.add_argument(
        "--timeout",
        type=float,
        default=10,
        help="seconds a request may take before it counts as failed",
    )
    ap.add_argument(
        "--targets",
        nargs="+",
        choices=TARGETS,
        default=list(TARGETS),
        help="which targets to measure",
    )
    ap.add_argument("--decision-calls", type=int, default=20_000)
    ap.add_argument("--decision-only", action="store_true",
                    help="measure the decision path only (in memory and with Redis), not the load")  # fmt: skip
    ap.add_argument(
        "--litellm",
        type=Path,
        help="the litellm executable of its own venv; omitted: LiteLLM is skipped",
    )
    ap.add_argument(
        "--py-spy",
        type=Path,
        help="py-spy executable: also profile the gateway (all threads) at the last rate",
    )
    ap.add_argument("--json", type=Path, default=HERE / "results" / "gateway" / "latency.json")
    args = ap.parse_args()
    t_start = time.perf_counter()
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["PYTHONPATH=src", sys.executable, *sys.argv]),
        "machine": machine(),
        "versions": versions(args.litellm),
        "bars": {
            "added_p50_ms": BARS_MS["added_p50"],
            "added_p99_ms": BARS_MS["added_p99"],
            "decision_p99_us": DECISION_BAR_US["p99"],
            "at_rate": args.rates[0],
        },
    }
    print("decision path ...", flush=True)
    result["decision_path"] = decision_path(args.decision_calls)
    print(json.dumps(result["decision_path"]["total_us"]), flush=True)
    sys.path.insert(0, str(HERE.parent))  # for tests.gateway.redis_server
    from tests.gateway.redis_server import RedisServer, have_redis_server

    if have_redis_server():
        print("decision path, quotas in Redis ...", flush=True)
        with RedisServer() as redis:
            result["decision_path_redis"] = decision_path(args.decision_calls, redis.url)
        print(json.dumps(result["decision_path_redis"]["decision_us"]), flush=True)
    if args.decision_only:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        return

    bodies = prompt_bodies(64)
    skipped: dict[str, str] = {} if args.litellm else {"litellm": "no --litellm given"}
    commands: dict[str, str] = {}
    by_rate: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp_name:
        tmp = Path(tmp_name)
        mock_port = free_port()
        mock_cmd = dg_command(
            "mock-upstream",
            "--port",
            str(mock_port),
            "--latency-ms",
            "5",
            "--tokens-per-s",
            "100000",
        )
        with running(
            start("mock", mock_cmd, f"http://127.0.0.1:{mock_port}", "/healthz", tmp)
        ) as mock:
            commands["direct"] = " ".join(mock.command)
            probe = httpx.post(
                mock.url + "/v1/chat/completions",
                content=bodies[0],
                headers={"content-type": "application/json"},
            ).json()
            reply = httpx.post(mock.url + "/v1/chat/completions", content=bodies[0], headers={"content-type": "application/json"}).content
            result["json_libraries"] = json_libraries(bodies, reply)
            print(json.dumps(result["json_libraries"]), flush=True)
            result["request"] = {"prompt_tokens_per_mock": probe["usage"]["prompt_tokens"], "completion_tokens": probe["usage"]["completion_tokens"],
                                 "max_tokens": MAX_TOKENS, "body_bytes": len(bodies[0]), "stream": False, "api": "openai chat"}  # fmt: skip
            for rate in args.rates:
                windows: dict[str, list[dict[str, Any]]] = {}
                for rnd in range(args.rounds):
                    order = [t for t in TARGETS if t in args.targets and t not in skipped]
                    for target in order if rnd % 2 == 0 else order[::-1]:
                        print(f"{rate:g}/s round {rnd + 1}: {target} ...", flush=True)
                        try:
                            w = window(target, mock, rate, bodies, tmp, args, commands)
                        except (RuntimeError, OSError, httpx.HTTPError) as e:
                            skipped[target] = f"{type(e).__name__}: {e}"[-2000:]
                            print(f"  {target} skipped: {skipped[target]}", flush=True)
                            continue
                        windows.setdefault(target, []).append(w)
                        print(
                            f"  {percentiles_ms(w['latency_s'])} {w['status']} server cpu/req {w['server_cpu_us_per_request']} us",
                            flush=True,
                        )
                by_rate[f"{rate:g}"] = compare(windows)
            if args.py_spy is not None:
                print("profile ...", flush=True)
                result["profile"] = profile(args.py_spy, mock, args.rates[-1], bodies, tmp, args)

    result["setup"] = {
        "rates_per_s": args.rates, "seconds": args.seconds, "warmup_s": args.warmup, "rounds": args.rounds,
        "request_timeout_s": args.timeout,
        "requests_per_target_and_rate": round(args.seconds * args.rates[0]) * args.rounds,
        "load_generator": "this script (LoadClient: asyncio protocol + httptools parser on uvloop, keep-alive, "
        "pre-built requests), open loop (fixed schedule), latency from each request's scheduled start; "
        "one process apart from every server",
        "gateway_workers": 1, "litellm_workers": 1, "loopback": "127.0.0.1", "commands": commands,
        "policy": POLICY_YAML, "litellm_config": LITELLM_CONFIG, "litellm_env": {**LITELLM_ENV, "LITELLM_MASTER_KEY": "sk-<random>"},
    }  # fmt: skip
    result["rates"] = by_rate
    result["skipped"] = skipped
    headline = by_rate.get(f"{args.rates[0]:g}", {})
    result["bars_hold"] = {
        **headline.get("bars_hold", {}),
        "decision_p99": result["decision_path"]["bar_holds"],
        **({"decision_redis_p99": result["decision_path_redis"]["bar_holds"]} if "decision_path_redis" in result else {}),
    }
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    brief = {
        r: {k: v.get(k) for k in ("added_ms", "ratio_distillguard_over_litellm")}
        for r, v in by_rate.items()
    }
    print(
        json.dumps(
            {"by_rate": brief, "bars_hold": result["bars_hold"], "skipped": skipped}, indent=2
        )
    )
    print(f"wrote {args.json} in {result['wall_s']} s")


if __name__ == "__main__":
    main()
