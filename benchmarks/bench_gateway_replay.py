"""A simulated log replayed through the gateway in compressed time: does the live hunt at the
door act on the campaigns about as early as the offline hourly replay of the hunt says it would?

    PYTHONPATH=src /work/main/.venv/bin/distillguard simulate --scenario qwen-2026 --scale 0.01 \\
        --seed 303 --no-responses --out /tmp/q001
    PYTHONPATH=src /work/main/.venv/bin/distillguard bench /tmp/q001 --replay-every 1 --json /tmp/q001-offline.json
    PYTHONPATH=src /work/main/.venv/bin/python benchmarks/bench_gateway_replay.py --log /tmp/q001 \\
        --offline /tmp/q001-offline.json --json benchmarks/results/gateway/replay.json

(Without ``--offline`` the script runs ``distillguard bench`` itself first. ``--days D`` replays
only the log's first D days, written as a log of its own beside it, ``LOG-firstDd``, which the
offline bench then reads too, so both sides see the same exchanges: the whole qwen-2026 0.01 log,
577,400 exchanges over 44 days, needs hours at what one gateway process sustains on 2 shared
cores. ``--recompare RESULT.json OFFLINE.json`` redoes the comparison of a saved result.)

Everything runs on 127.0.0.1, each server in its own process started the way users start it:
``redis-server`` (quotas and the decision bus), a stand-in model, and ``distillguard serve``
with the log's accounts (``--accounts``), identity from a trusted header (``identity.header``
in the policy, so the replay needs no keys), live scoring on, quotas in Redis, and the replay
clock (``--replay-start`` = the log's first hour, ``--replay-speed``), so the gateway's
timestamps, quota windows, account ages and the hunt's "as of" all run in the log's time.

**The stand-in model.** No model can be served here. The project's mock upstream draws its own
reply lengths (about 120 tokens, at most 512), but the hunt's output-harvesting signal reads
``output_tokens`` and ``stop_reason``, and the capability signal ``input_tokens``; so the model
here is a minimal one in this file (:func:`replay_upstream`) that answers each request with the
usage, stop reason and status the log recorded for it (sent as ``x-replay-*`` headers, which
the gateway passes on like any other header) and filler text of that length. It is a benchmark
instrument only; the gateway cannot tell it from a model.

**The requests.** Each exchange of the log is rebuilt from its row: the endpoint picks the API
(OpenAI chat or Anthropic messages), then model, system, prompt (the last user turn), earlier
turns as short fillers up to ``n_messages``, a tool definition when ``has_tools``, and the row's
own ``max_tokens``; the client address comes as ``X-Forwarded-For`` (uvicorn trusts it from
127.0.0.1 by default, as behind a load balancer), with the row's ``User-Agent`` and device
fingerprint (``x-device-fingerprint``). Rows are sent in time order, each at its scheduled wall
time (log time / speed), with at most ``--concurrency`` in flight, each bounded by
``--request-timeout``, the whole run by ``--cap``. A client that falls behind sends late; the
lag (in simulated time) is reported.

**What is recorded.** Every answer's status and reason code (403 ``campaign_block`` /
``campaign_member`` and the verify/block codes, 429 quota codes, the stand-in's own replayed
errors). The gateway's verdicts are also read off the decision bus (Redis pub/sub: every change
of the live scorer's verdicts is published there for other replicas), which is the only place a
``throttle`` shows when quotas are loose. The labels (``LOG/labels``) are read by this script
only, after the replay; the gateway never sees them.

**The numbers.** Per campaign: accounts, share throttled or refused, time to first action
(hours from the campaign's first exchange, as the offline bench counts), leaked exchanges (the
campaign's exchanges the gateway forwarded before the account's first action, throttle included;
and before its first refusal), against the offline ``leaked_exchanges`` of ``distillguard bench
--replay-every 1``; the ratio (bar <= 2) per campaign and over all. Per benign archetype: accounts
refused (block or verify; bar 0 for enterprise apps and eval runners) and throttled.

**Quotas.** The plans here never refuse (every plan of the accounts table at 10^11 tokens a day):
the log was generated without quotas, and a replay that refused benign traffic for quota would
measure the quotas, not the hunt. Gradual release, the risk rule and the throttle share are the
defaults.

**Speed.** First ``--probe`` seconds of closed-loop load on a separate gateway (same settings,
fresh state) measure what this machine sustains; the replay speed is then chosen so that the
log's mean rate is ``--headroom`` of that (unless ``--speed`` is given), and ``--rescore``
defaults to one simulated hour of wall time (the offline replay re-scores hourly), at least 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httptools
import numpy as np
import orjson
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_gateway import Server, cpu_seconds, dg_command, free_port, machine, start  # noqa: E402

ROOT = HERE.parent
BAR_RATIO = 2.0
TRAPS_NO_BLOCK = ("enterprise_app", "eval_runner")
IDENTITY = "x-account-id"
ASN_HEADER = "x-client-asn"  # the edge's ASN lookup, as identity.asn_header
BIG = 100_000_000_000
COLUMNS = ["ts", "account_id", "ip", "asn", "user_agent", "device_fp", "endpoint", "model", "system", "prompt", "n_messages",
           "has_tools", "max_tokens", "input_tokens", "output_tokens", "stop_reason", "status"]  # fmt: skip
FILLER = "earlier turn"
NOTES = [
    "The row's asn reaches the gateway's log through identity.asn_header (an edge's ASN lookup); the gateway "
    "logs no api_key_id; n_messages counts no system turns in either API, as the simulator does.",
    "Quotas never refuse here (see the docstring), so a throttle verdict changes nothing a client sees: it is "
    "read off the decision bus. 'leaked' counts forwarded exchanges before an account's first action of any kind "
    "(throttle, verify, block); 'leaked_before_refusal' before its first verify or block, the offline bench's "
    "'flagged'.",
    "The gateway's replay clock may run up to clock_offset_bound_simulated_s ahead of the schedule; a request "
    "sent late is stamped late by its lag x speed.",
]
OPENAI_FINISH = {"max_tokens": "length", "tool_use": "tool_calls", "end_turn": "stop"}
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
]
ANTHROPIC_TOOLS = [{"name": "lookup", "input_schema": {"type": "object", "properties": {}}}]


# ------------------------------------------------------------------------------ stand-in model


def replay_upstream() -> Any:
    """A raw ASGI app answering both chat APIs with the usage the ``x-replay-*`` headers ask for
    (``input``, ``output`` tokens, ``stop`` reason, ``status``) and filler text that long."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        more = True
        while more and scope["method"] == "POST":
            msg = await receive()
            more = msg.get("more_body", False)
        h = {k.decode(): v.decode() for k, v in scope["headers"] if k.startswith(b"x-replay-")}
        path = scope["path"]
        if path == "/healthz":
            body, status = b'{"ok":true}', 200
        else:
            status = int(h.get("x-replay-status", "200"))
            inp, out = int(h.get("x-replay-input", "1")), int(h.get("x-replay-output", "1"))
            stop = h.get("x-replay-stop") or None
            anthropic = path == "/v1/messages"
            if status != 200:
                err = {"type": "api_error", "message": "replayed upstream error"}
                body = orjson.dumps(
                    {"type": "error", "error": err}
                    if anthropic
                    else {"error": {**err, "code": "replayed"}}
                )
            else:
                text = " ".join(["word"] * max(0, out))
                if anthropic:
                    body = orjson.dumps({"id": "msg_replay", "type": "message", "role": "assistant", "model": "replay",
                                         "content": [{"type": "text", "text": text}], "stop_reason": stop,
                                         "stop_sequence": None, "usage": {"input_tokens": inp, "output_tokens": out}})  # fmt: skip
                else:
                    finish = OPENAI_FINISH.get(stop, stop) if stop else None
                    body = orjson.dumps({"id": "chatcmpl-replay", "object": "chat.completion", "created": 0, "model": "replay",
                                         "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                                         "usage": {"prompt_tokens": inp, "completion_tokens": out, "total_tokens": inp + out}})  # fmt: skip
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    return app


def serve_upstream(port: int) -> None:
    import uvicorn

    uvicorn.run(replay_upstream(), host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning",
                access_log=False, lifespan="on")  # fmt: skip


# ------------------------------------------------------------------------------ requests


def request_of(row: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    """The API path, JSON body and headers that reproduce one logged exchange."""
    anthropic = row["endpoint"] == "/v1/messages"
    n = max(1, int(row["n_messages"] or 1))
    system, prompt = row["system"], row["prompt"] or ""
    body: dict[str, Any] = {
        "model": row["model"] or "replay",
        "max_tokens": int(row["max_tokens"] or 1024),
    }
    lead: list[dict[str, Any]] = []
    turns = n - 1
    if system is not None:
        if anthropic:
            body["system"] = system
        else:  # OpenAI counts the system message in n_messages; the simulator does not (n=1 becomes 2)
            lead.append({"role": "system", "content": system})
            turns = max(0, n - 2)
    # Earlier turns end with the assistant, so the last user turn is the prompt.
    roles = ["assistant" if (turns - i) % 2 == 1 else "user" for i in range(turns)]
    if anthropic and roles and roles[0] == "assistant":
        roles[0] = "user"  # the Anthropic API opens with a user turn
    body["messages"] = [
        *lead,
        *({"role": r, "content": FILLER} for r in roles),
        {"role": "user", "content": prompt},
    ]
    if row["has_tools"]:
        body["tools"] = ANTHROPIC_TOOLS if anthropic else OPENAI_TOOLS
    headers = {
        "content-type": "application/json",
        IDENTITY: row["account_id"],
        "x-forwarded-for": row["ip"] or "",
        "user-agent": row["user_agent"] or "",
        "x-device-fingerprint": row["device_fp"] or "",
        ASN_HEADER: str(row["asn"]) if row.get("asn") is not None else "",
        "x-replay-input": str(int(row["input_tokens"] or 1)),
        "x-replay-output": str(int(row["output_tokens"] or 0)),
        "x-replay-stop": row["stop_reason"] or "",
        "x-replay-status": str(int(row["status"] or 200)),
    }
    if anthropic:
        headers["anthropic-version"] = "2023-06-01"
    return row["endpoint"], orjson.dumps(body), {k: v for k, v in headers.items() if v != ""}


def reason_of(status: int, body: bytes) -> str:
    """The gateway's reason code: OpenAI ``error.code``, Anthropic ``[code] ...`` in the message."""
    if status == 200:
        return ""
    try:
        err = orjson.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        return "unparsed"
    code = err.get("code")
    if isinstance(code, str):
        return code
    message = err.get("message") or ""
    if message.startswith("[") and "]" in message:
        return message[1 : message.index("]")]
    return str(err.get("type") or "unknown")


# ------------------------------------------------------------------------------ load client


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; the reply's status and body (httptools)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.reply: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []
        self.open = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(e)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.open = self.parser.should_keep_alive()
        if self.reply is not None and not self.reply.done():
            self.reply.set_result((self.parser.get_status_code(), b"".join(self.body)))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("closed by the server"))

    def _fail(self, exc: BaseException) -> None:
        self.open = False
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(exc)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.body = []
        self.reply = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.reply


class Client:
    """Keep-alive connections to one host, at most as many as requests in flight."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[_Connection] = []

    def build(self, path: str, headers: dict[str, str], body: bytes) -> bytes:
        head = f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\ncontent-length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return head.encode("utf-8", "surrogateescape") + b"\r\n" + body

    async def post(self, raw: bytes, timeout_s: float) -> tuple[int, bytes]:
        async with asyncio.timeout(timeout_s):
            conn = None
            while self.idle:
                c = self.idle.pop()
                if c.open:
                    conn = c
                    break
            if conn is None:
                _, conn = await asyncio.get_running_loop().create_connection(
                    _Connection, self.host, self.port
                )
            try:
                result = await conn.request(raw)
            except BaseException:
                conn.open = False
                if conn.transport is not None:
                    conn.transport.close()
                raise
            self.idle.append(conn)
            return result

    def close(self) -> None:
        for c in self.idle:
            if c.transport is not None:
                c.transport.close()


# ------------------------------------------------------------------------------ servers


def start_redis(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=(tmp / "redis.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    import redis

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.ConnectionError):
            if redis.Redis(port=port).ping():
                return proc, port
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def policy_yaml(plans: list[str], redis_port: int) -> str:
    plan = f"{{daily_tokens: {BIG}, requests_per_minute: {BIG}, tokens_per_minute: {BIG}, max_tokens: 1000000}}"
    lines = [f"identity: {{header: {IDENTITY}, asn_header: {ASN_HEADER}}}", f"default_plan: {plans[0]}", "plans:"]
    lines += [f"  {p}: {plan}" for p in plans]
    lines += [
        "state:",
        "  store: redis",
        f"  url: redis://127.0.0.1:{redis_port}/0",
        "  on_store_error: closed",
    ]
    return "\n".join(lines) + "\n"


def start_gateway(name: str, upstream: str, policy: Path, log: Path, tmp: Path, rescore_s: float, start_at: dt.datetime,
                  speed: float) -> Server:  # fmt: skip
    port = free_port()
    command = dg_command(
        "serve", "--upstream", upstream, "--port", str(port), "--policy", str(policy), "--accounts", str(log),
        "--rescore", f"{rescore_s:g}", "--replay-start", start_at.isoformat(), "--replay-speed", f"{speed:g}",
    )  # fmt: skip
    return start(
        name,
        command,
        f"http://127.0.0.1:{port}",
        "/healthz",
        tmp,
        {"PYTHONPATH": str(ROOT / "src")},
    )


class BusListener:
    """Every verdict the gateway publishes on the decision bus, with the wall time it arrived."""

    def __init__(self, redis_port: int) -> None:
        import redis

        self.events: list[tuple[float, str, str]] = []  # (wall perf_counter, account, decision)
        self.cleared: list[tuple[float, str]] = []
        self.errors: list[str] = []
        # Kept: a client that is garbage-collected closes its pool, the subscription's socket with it.
        client: Any = redis.Redis(port=redis_port)  # untyped in redis-py
        self._client = client
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe("dg:decisions")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self._pubsub.get_message(timeout=0.2)
            except (
                Exception
            ) as e:  # counted, never silent: a dead listener would lose every throttle
                self.errors.append(repr(e))
                time.sleep(0.5)
                continue
            if msg is None:
                continue
            now = time.perf_counter()
            body = orjson.loads(msg["data"])
            for account, (decision, *_rest) in body.get("set", {}).items():
                self.events.append((now, account, decision))
            for account in body.get("clear", []):
                self.cleared.append((now, account))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._pubsub.close()
        self._client.close()


# ------------------------------------------------------------------------------ the replay


def window_log(log: Path, days: float) -> Path:
    """A log folder beside ``log`` holding its exchanges of the first ``days`` (counted from the
    first exchange's hour), and all of its accounts and labels."""
    out = log.parent / f"{log.name}-first{days:g}d"
    if all((out / t / "part-00000.parquet").exists() for t in ("exchanges", "accounts", "labels")):
        return out  # written by an earlier run (and perhaps being read by its offline bench now)
    scan = pl.scan_parquet(str(log / "exchanges" / "**" / "*.parquet"), hive_partitioning=False)
    first = scan.select(pl.col("ts").min()).collect().item()
    cutoff = first.replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=days)
    (out / "exchanges").mkdir(parents=True, exist_ok=True)
    scan.filter(pl.col("ts") < cutoff).sort("ts").collect().write_parquet(
        out / "exchanges" / "part-00000.parquet"
    )
    for table in ("accounts", "labels"):
        (out / table).mkdir(exist_ok=True)
        pl.read_parquet(str(log / table)).write_parquet(out / table / "part-00000.parquet")
    return out


def scrape_live(url: str) -> dict[str, float]:
    """The gateway's live-scoring gauges from ``/metrics`` (empty when it does not answer)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return {}
    return {
        name: float(value)
        for name, _, value in (line.partition(" ") for line in text.splitlines())
        if name in ("dg_live_rescores", "dg_live_rescore_seconds")
    }


def load_log(log: Path) -> pl.DataFrame:
    scan = pl.scan_parquet(str(log / "exchanges" / "**" / "*.parquet"), hive_partitioning=False)
    return scan.select(COLUMNS).sort("ts").collect()


async def probe(
    url: str, rows: pl.DataFrame, seconds: float, concurrency: int, timeout_s: float
) -> dict[str, Any]:
    """Closed-loop load from the log's first rows for ``seconds``: what the gateway sustains."""
    host, port = url.removeprefix("http://").split(":")
    client = Client(host, int(port))
    it = iter(rows.iter_rows(named=True))
    statuses: collections.Counter[int] = collections.Counter()
    t_end = time.perf_counter() + seconds

    async def worker() -> None:
        for row in it:
            if time.perf_counter() >= t_end:
                return
            path, body, headers = request_of(row)
            try:
                status, _ = await client.post(client.build(path, headers, body), timeout_s)
            except (OSError, TimeoutError):
                status = -1
            statuses[status] += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    client.close()
    n = sum(statuses.values())
    return {
        "seconds": round(wall, 2),
        "requests": n,
        "rate_per_s": round(n / wall, 1),
        "status": {str(k): v for k, v in statuses.items()},
    }


async def replay(url: str, rows: pl.DataFrame, start_at: dt.datetime, t0: float, speed: float, concurrency: int,
                 timeout_s: float, cap_s: float, progress_every_s: float = 60.0) -> dict[str, Any]:  # fmt: skip
    """Send every row at ``t0 + (ts - start_at) / speed`` (``t0``: when the gateway's replay
    clock showed ``start_at``, on ``time.perf_counter``); statuses and reasons per row."""
    host, port = url.removeprefix("http://").split(":")
    client = Client(host, int(port))
    n = rows.height
    status = np.zeros(n, np.int16)  # 0: not sent (cap), -1: no answer in time / connection error
    reasons: list[str] = [""] * n
    lag = np.full(n, np.nan)  # wall seconds sent after the schedule
    sched = (rows["ts"].dt.epoch("us").to_numpy() / 1e6 - start_at.timestamp()) / speed
    sem = asyncio.Semaphore(concurrency)
    clock = time.perf_counter
    deadline = t0 + cap_s
    tasks: set[asyncio.Task[None]] = set()

    async def one(i: int, raw: bytes) -> None:
        try:
            st, body = await client.post(raw, timeout_s)
            status[i] = st
            reasons[i] = reason_of(st, body)
        except (OSError, TimeoutError):
            status[i] = -1
        finally:
            sem.release()

    sent = 0
    next_report = t0 + progress_every_s
    for i, row in enumerate(rows.iter_rows(named=True)):
        wait = t0 + sched[i] - clock()
        if wait > 0.001:
            await asyncio.sleep(wait)
        await sem.acquire()
        now = clock()
        if now >= deadline:
            sem.release()
            break
        lag[i] = now - (t0 + sched[i])
        path, body, headers = request_of(row)
        task = asyncio.create_task(one(i, client.build(path, headers, body)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += 1
        if now >= next_report:
            print(
                f"  {now - t0:7.0f} s  sent {sent:,} of {n:,}  lag {lag[i]:.2f} s  in flight {len(tasks)}",
                file=sys.stderr,
                flush=True,
            )
            next_report += progress_every_s
    if tasks:
        await asyncio.gather(*tasks)
    wall = clock() - t0
    client.close()
    return {
        "status": status,
        "reasons": reasons,
        "lag": lag,
        "sent": sent,
        "wall_s": wall,
        "t0": t0,
    }


# ------------------------------------------------------------------------------ scoring


def first_actions(
    rows: pl.DataFrame, out: dict[str, Any], bus: BusListener, sim0: float, speed: float
) -> pl.DataFrame:
    """Per account: simulated time of its first action at the door (403) and on the bus, by kind."""
    frame = rows.select("ts", "account_id").with_columns(
        status=pl.Series(out["status"]), reason=pl.Series(out["reasons"])
    )
    refused = (
        frame.filter(pl.col("status") == 403)
        .group_by("account_id")
        .agg(
            pl.col("ts").min().alias("first_403"),
            pl.col("reason").first().alias("first_403_reason"),
        )
    )
    t0 = out["t0"]

    def sim(wall: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(sim0 + (wall - t0) * speed, dt.UTC)

    bus_rows = [
        {"account_id": a, "decision": d, "at": sim(w)} for w, a, d in bus.events if d != "allow"
    ]
    if bus_rows:
        b = pl.DataFrame(
            bus_rows,
            schema={"account_id": pl.String, "decision": pl.String, "at": pl.Datetime("us", "UTC")},
        )
        on_bus = b.group_by("account_id").agg(
            pl.col("at").min().alias("first_bus"),
            pl.col("at").filter(pl.col("decision") == "throttle").min().alias("first_throttle"),
            pl.col("at")
            .filter(pl.col("decision").is_in(["verify", "block"]))
            .min()
            .alias("first_refuse_bus"),
            pl.col("decision").is_in(["verify", "block"]).any().alias("ever_refused_bus"),
            (pl.col("decision") == "block").any().alias("ever_block"),
            (pl.col("decision") == "verify").any().alias("ever_verify"),
            (pl.col("decision") == "throttle").any().alias("ever_throttle"),
        )
    else:
        on_bus = pl.DataFrame(schema={"account_id": pl.String})
    acc = (
        rows.select("account_id")
        .unique()
        .join(refused, on="account_id", how="left")
        .join(on_bus, on="account_id", how="left")
    )
    for c, t in (("first_bus", pl.Datetime("us", "UTC")), ("first_throttle", pl.Datetime("us", "UTC")),
                 ("first_refuse_bus", pl.Datetime("us", "UTC")), ("ever_refused_bus", pl.Boolean), ("ever_block", pl.Boolean),
                 ("ever_verify", pl.Boolean), ("ever_throttle", pl.Boolean)):  # fmt: skip
        if c not in acc.columns:
            acc = acc.with_columns(pl.lit(None, t).alias(c))
    return acc.with_columns(
        first_action=pl.min_horizontal("first_403", "first_bus"),
        first_refusal=pl.min_horizontal("first_403", "first_refuse_bus"),
    )


def per_campaign(
    rows: pl.DataFrame, out: dict[str, Any], acc: pl.DataFrame, labels: pl.DataFrame
) -> dict[str, Any]:
    frame = rows.select("ts", "account_id").with_columns(
        status=pl.Series(out["status"]), reason=pl.Series(out["reasons"])
    )
    attack = labels.filter(pl.col("campaign_id").is_not_null()).select("account_id", "campaign_id")
    j = frame.join(attack, on="account_id").join(acc, on="account_id", how="left")
    served = ~pl.col("status").is_in([0, -1, 403]) & ~pl.col("reason").is_in(
        [
            "daily_tokens",
            "tokens_per_minute",
            "requests_per_minute",
            "state_store_down",
            "request_exceeds_limit",
        ]
    )
    before_action = pl.col("first_action").is_null() | (pl.col("ts") < pl.col("first_action"))
    before_refusal = pl.col("first_refusal").is_null() | (pl.col("ts") < pl.col("first_refusal"))
    agg = j.group_by("campaign_id").agg(
        pl.len().alias("exchanges"),
        pl.col("account_id").n_unique().alias("accounts"),
        (served & before_action).sum().alias("leaked"),
        (served & before_refusal).sum().alias("leaked_before_refusal"),
        (served & ~before_action).sum().alias("served_after_action"),
        pl.col("ts").min().alias("first_ts"),
        (pl.col("status") == 0).sum().alias("not_sent"),
    )
    result: dict[str, Any] = {}
    for r in agg.sort("campaign_id").iter_rows(named=True):
        cid = r["campaign_id"]
        members = acc.join(attack.filter(pl.col("campaign_id") == cid), on="account_id")
        n = members.height
        acted = members.filter(pl.col("first_action").is_not_null())
        refused = members.filter(pl.col("first_refusal").is_not_null())
        times = sorted(
            (t - r["first_ts"]).total_seconds() / 3600 for t in acted["first_action"].to_list()
        )
        k90 = math.ceil(0.9 * n)
        result[cid] = {
            "accounts": n,
            "acted_on": acted.height,
            "share_acted_on": round(acted.height / n, 4) if n else None,
            "refused": refused.height,
            "throttled_on_bus": int(members["ever_throttle"].fill_null(False).sum()),
            "time_to_first_action_hours": {
                "first": round(times[0], 2) if times else None,
                "p90": round(times[k90 - 1], 2) if len(times) >= k90 else None,
            },
            "exchanges": r["exchanges"],
            "leaked": r["leaked"],
            "leaked_share": round(r["leaked"] / r["exchanges"], 4),
            "leaked_before_refusal": r["leaked_before_refusal"],
            "served_after_first_action": r["served_after_action"],
            "not_sent_cap": r["not_sent"],
        }
    return result


def traps(acc: pl.DataFrame, labels: pl.DataFrame) -> dict[str, Any]:
    benign = labels.filter(pl.col("campaign_id").is_null()).select("account_id", "archetype")
    j = benign.join(acc, on="account_id", how="left")
    out = {}
    for arche, g in sorted(j.group_by("archetype"), key=lambda kv: str(kv[0][0])):
        refused_403 = g.filter(pl.col("first_403").is_not_null())
        out[str(arche[0])] = {
            "accounts": g.height,
            "blocked": int(
                (
                    g["ever_block"].fill_null(False)
                    | (g["first_403_reason"] == "campaign_block").fill_null(False)
                ).sum()
            ),
            "verify": int(
                (
                    g["ever_verify"].fill_null(False)
                    | (g["first_403_reason"] == "campaign_member").fill_null(False)
                ).sum()
            ),
            "refused_at_door_403": refused_403.height,
            "throttled": int(g["ever_throttle"].fill_null(False).sum()),
        }
    return out


def compare(online: dict[str, Any], offline: dict[str, Any]) -> dict[str, Any]:
    leaked_off = offline.get("leaked_exchanges", {})
    ttd_off = offline.get("time_to_detect_hours", {})
    per: dict[str, Any] = {}
    tot_on = tot_off = 0
    for cid, on in online.items():
        off = leaked_off.get(cid, {})
        off_n = int(off.get("count", 0))
        tot_on += on["leaked"]
        tot_off += off_n
        ratio = on["leaked"] / off_n if off_n else (math.inf if on["leaked"] else 1.0)
        per[cid] = {
            "leaked_online": on["leaked"],
            "leaked_offline": off_n,
            "total_offline": off.get("total"),
            "ratio": round(ratio, 3) if math.isfinite(ratio) else None,
            "holds": ratio <= BAR_RATIO,
            "first_action_hours_online": on["time_to_first_action_hours"]["first"],
            "first_flag_hours_offline": ttd_off.get(cid, {}).get("first"),
            "p90_hours_online": on["time_to_first_action_hours"]["p90"],
            "p90_hours_offline": ttd_off.get(cid, {}).get("p90"),
        }
    all_ratio = tot_on / tot_off if tot_off else math.inf
    return {"per_campaign": per, "all": {"leaked_online": tot_on, "leaked_offline": tot_off,
                                         "ratio": round(all_ratio, 3) if math.isfinite(all_ratio) else None,
                                         "holds": all_ratio <= BAR_RATIO}}  # fmt: skip


def judge(result: dict[str, Any], offline_file: Path) -> None:
    """The offline numbers, the comparison and the bars, into ``result`` (also run alone by
    ``--recompare`` on a saved result, when the offline bench finished after the replay)."""
    offline = json.loads(offline_file.read_text())
    result["offline"] = {
        "file": str(offline_file),
        "command": f"distillguard bench {result['log']['path']} --replay-every 1 --json {offline_file}",
        **{k: offline.get(k) for k in ("replay_every_hours", "leaked_exchanges", "leaked_exchanges_all",
                                       "time_to_detect_hours", "per_archetype", "flagged_by_decision", "seconds")},
    }  # fmt: skip
    log = Path(result["log"]["path"])
    if log.exists():  # benign accounts that sent anything in the replayed log, per archetype
        ids = (
            pl.scan_parquet(str(log / "exchanges" / "**" / "*.parquet"), hive_partitioning=False)
            .select("account_id")
            .unique()
        )
        active = (
            pl.read_parquet(str(log / "labels"))
            .join(ids.collect(), on="account_id")
            .group_by("archetype")
            .len()
        )
        for counts in result["traps"].values():
            counts["active_in_log"] = 0
        for archetype, n in active.iter_rows():
            if archetype in result["traps"]:
                result["traps"][archetype]["active_in_log"] = n
    if "leaked_exchanges" not in offline:  # not a bench result (yet): nothing to compare with
        result["compare"] = None
        result["bars"] = {
            "holds": None,
            "pending": f"no offline bench result in {offline_file}; rerun --recompare",
        }
        return
    cmp = compare(result["campaigns"], offline)
    result["compare"] = cmp
    trap_ok = all(
        result["traps"].get(k, {}).get("blocked", 0) + result["traps"].get(k, {}).get("verify", 0)
        == 0
        for k in TRAPS_NO_BLOCK
    )
    complete = result["run"]["not_sent_cap"] == 0
    every = all(v["holds"] for v in cmp["per_campaign"].values())
    result["bars"] = {
        "leaked_ratio_max": BAR_RATIO,
        "leaked_within_2x_all": cmp["all"]["holds"],
        "leaked_within_2x_every_campaign": every,
        "no_enterprise_app_or_eval_runner_refused": trap_ok,
        "log_replayed_completely": complete,
        "holds": bool(cmp["all"]["holds"] and every and trap_ok and complete),
    }


# ------------------------------------------------------------------------------ main


@contextlib.contextmanager
def running(*servers: Server) -> Iterator[None]:
    try:
        yield
    finally:
        for s in servers:
            s.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--log",
        type=Path,
        required=True,
        help="a simulated log folder (exchanges/, accounts/, labels/)",
    )
    ap.add_argument(
        "--offline",
        type=Path,
        help="`distillguard bench LOG --replay-every 1 --json FILE` output; run here if absent",
    )
    ap.add_argument(
        "--speed", type=float, help="simulated seconds per wall second; default: from the probe"
    )
    ap.add_argument(
        "--rescore",
        type=float,
        help="live re-scoring every this many wall seconds; default: one simulated hour, >= 2",
    )
    ap.add_argument(
        "--probe",
        type=float,
        default=30,
        help="seconds of closed-loop load to measure throughput (0: skip)",
    )
    ap.add_argument(
        "--headroom",
        type=float,
        default=0.6,
        help="share of the probed rate the log's mean rate may use",
    )
    ap.add_argument("--concurrency", type=int, default=128, help="requests in flight at most")
    ap.add_argument("--request-timeout", type=float, default=30)
    ap.add_argument(
        "--cap",
        type=float,
        default=1800,
        help="whole-replay cap, wall seconds (rows not sent by then are reported)",
    )
    ap.add_argument(
        "--days",
        type=float,
        help="replay only the log's first DAYS (smoke runs; the comparison is then not like for like)",
    )
    ap.add_argument("--json", type=Path, default=HERE / "results" / "gateway" / "replay.json")
    args = ap.parse_args()
    t_all = time.perf_counter()
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["PYTHONPATH=src", sys.executable, *sys.argv]),
        "machine": machine(),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
    }
    if args.days is not None:  # the log's first DAYS as a log of its own, for both sides
        args.log = window_log(args.log, args.days)
        result["window"] = {"days": args.days, "log": str(args.log)}
    if args.offline is None:
        args.offline = args.log.parent / f"{args.log.name}-offline-1h.json"
        cmd = dg_command("bench", str(args.log), "--replay-every", "1", "--json", str(args.offline))
        print("offline:", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    rows = load_log(args.log)
    labels = pl.read_parquet(str(args.log / "labels"))
    plans = sorted(
        pl.read_parquet(str(args.log / "accounts"), columns=["plan"])["plan"]
        .drop_nulls()
        .unique()
        .to_list()
    ) or ["free"]
    first, last = rows["ts"][0], rows["ts"][-1]
    start_at = first.replace(minute=0, second=0, microsecond=0)
    span_s = (last - start_at).total_seconds()
    result["log"] = {"path": str(args.log), "exchanges": rows.height, "accounts": rows["account_id"].n_unique(),
                     "first": first.isoformat(), "last": last.isoformat(), "span_days": round(span_s / 86400, 2),
                     "mean_rate_per_simulated_s": round(rows.height / span_s, 4)}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp_name:
        tmp = Path(tmp_name)
        redis_proc, redis_port = start_redis(tmp)
        try:
            policy = tmp / "policy.yaml"
            policy.write_text(policy_yaml(plans, redis_port))
            up_port = free_port()
            upstream = start("upstream", [sys.executable, __file__, "--serve-upstream", str(up_port)],
                             f"http://127.0.0.1:{up_port}", "/healthz", tmp)  # fmt: skip
            with running(upstream):
                if args.probe > 0:
                    gw = start_gateway(
                        "probe", upstream.url, policy, args.log, tmp, 5.0, start_at, 1000.0
                    )
                    with running(gw):
                        cpu0 = cpu_seconds(gw.proc.pid)
                        result["probe"] = asyncio.run(
                            probe(gw.url, rows.head(200_000), args.probe, 32, args.request_timeout)
                        )
                        result["probe"]["gateway_cpu_s_per_request"] = round(
                            (cpu_seconds(gw.proc.pid) - cpu0) / max(1, result["probe"]["requests"]),
                            5,
                        )
                    import redis

                    redis.Redis(port=redis_port).flushall()
                    print("probe:", result["probe"], file=sys.stderr)
                if args.speed is None:
                    if "probe" not in result:
                        raise SystemExit("--speed is needed when --probe is 0")
                    target_rate = result["probe"]["rate_per_s"] * args.headroom
                    args.speed = round(target_rate * span_s / rows.height, 1)
                rescore = args.rescore or max(2.0, round(3600 / args.speed, 2))
                result["setup"] = {
                    "speed": args.speed, "rescore_wall_s": rescore, "rescore_simulated_minutes": round(rescore * args.speed / 60, 1),
                    "ingest_wall_s": min(2.0, rescore), "ingest_simulated_minutes": round(min(2.0, rescore) * args.speed / 60, 1),
                    "expected_wall_s": round(span_s / args.speed), "needed_rate_per_s": round(rows.height / (span_s / args.speed), 1),
                    "concurrency": args.concurrency, "request_timeout_s": args.request_timeout, "cap_s": args.cap,
                    "replay_start": start_at.isoformat(), "policy": policy.read_text(),
                    "upstream": "stand-in model in this file (replay_upstream): answers with the row's usage, stop reason and status; no model can be served here",
                    "identity": f"trusted header {IDENTITY}; client address as X-Forwarded-For (uvicorn trusts it from 127.0.0.1)",
                }  # fmt: skip
                print(
                    "setup:",
                    {k: v for k, v in result["setup"].items() if k != "policy"},
                    file=sys.stderr,
                )
                gw = start_gateway(
                    "gateway", upstream.url, policy, args.log, tmp, rescore, start_at, args.speed
                )
                # Its replay clock showed start_at when it began serving, at most one health poll
                # (0.2 s) before now: the schedule starts now, so the gateway's clock runs at most
                # 0.2 s x speed ahead of the log, and any later start of ours is measured as lag.
                t_ready = time.perf_counter()
                result["setup"]["gateway_command"] = " ".join(gw.command)
                bus = BusListener(redis_port)
                with running(gw):
                    cpu0 = cpu_seconds(gw.proc.pid)
                    # The gateway's clock began at start_at when it started serving; the schedule
                    # is aligned to that moment, so late start is measured as lag, not hidden.
                    out = asyncio.run(
                        replay(
                            gw.url,
                            rows,
                            start_at,
                            t_ready,
                            args.speed,
                            args.concurrency,
                            args.request_timeout,
                            args.cap,
                        )
                    )
                    gw_cpu = cpu_seconds(gw.proc.pid) - cpu0
                    time.sleep(max(3.0, rescore * 1.5))  # the last verdicts onto the bus
                    live_metrics = scrape_live(gw.url)
                    bus.close()
                    gw_log = gw.tail(40)
        finally:
            redis_proc.kill()
            redis_proc.wait(timeout=10)
    acc = first_actions(rows, out, bus, start_at.timestamp(), args.speed)
    status = out["status"]
    codes = collections.Counter(
        f"{s} {r}".strip() for s, r in zip(status.tolist(), out["reasons"], strict=True)
    )
    lag = out["lag"][~np.isnan(out["lag"])]
    result["run"] = {
        "wall_s": round(out["wall_s"], 1),
        "sent": out["sent"],
        "not_sent_cap": int((status == 0).sum()),
        "achieved_rate_per_s": round(out["sent"] / out["wall_s"], 1),
        "answers": dict(codes.most_common()),
        "no_answer": int((status == -1).sum()),
        "send_lag_wall_s": {q: round(float(np.quantile(lag, p)), 3) for q, p in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))} if lag.size else {},
        "send_lag_simulated_minutes_p99": round(float(np.quantile(lag, 0.99)) * args.speed / 60, 1) if lag.size else None,
        "gateway_cpu_s": round(gw_cpu, 1),
        "gateway_cpu_s_per_request": round(gw_cpu / max(1, out["sent"]), 5),
        "bus_events": len(bus.events),
        "bus_cleared": len(bus.cleared),
        "bus_listener_errors": bus.errors[:5],
        "gateway_log_tail": gw_log,
        "clock_offset_bound_simulated_s": round(0.2 * args.speed, 1),
        # how often the live hunt re-scored: the offline side re-scores every simulated hour
        "live_rescores": live_metrics.get("dg_live_rescores"),
        "live_rescore_every_simulated_minutes": round(out["wall_s"] * args.speed / 60 / live_metrics["dg_live_rescores"], 1)
        if live_metrics.get("dg_live_rescores") else None,
        "live_last_rescore_s": live_metrics.get("dg_live_rescore_seconds"),
    }  # fmt: skip
    online = per_campaign(rows, out, acc, labels)
    result["notes"] = NOTES
    result["campaigns"] = online
    result["traps"] = traps(acc, labels)
    judge(result, args.offline)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["wall_s_total"] = round(time.perf_counter() - t_all, 1)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(json.dumps({k: result[k] for k in ("compare", "traps", "bars")}, indent=1, default=str))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-upstream":
        serve_upstream(int(sys.argv[2]))
    elif (
        len(sys.argv) == 4 and sys.argv[1] == "--recompare"
    ):  # --recompare RESULT.json OFFLINE.json
        saved = json.loads(Path(sys.argv[2]).read_text())
        judge(saved, Path(sys.argv[3]))
        Path(sys.argv[2]).write_text(json.dumps(saved, indent=1, default=str) + "\n")
        print(json.dumps({k: saved[k] for k in ("compare", "bars")}, indent=1, default=str))
    else:
        main()
