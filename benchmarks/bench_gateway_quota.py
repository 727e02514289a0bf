"""Quotas under concurrency, and a quota store that fails, through real servers on loopback.

    PYTHONPATH=src /work/main/.venv/bin/python benchmarks/bench_gateway_quota.py \\
        --trials 1000 --replicas 4 --concurrency 200        # -> results/gateway/quota-trial.json
    PYTHONPATH=src /work/main/.venv/bin/python benchmarks/bench_gateway_quota.py --fault-only
                                                            # -> results/gateway/store-fault.json

Every server is a process of its own, started as users start it: ``redis-server`` (one, shared),
``distillguard mock-upstream`` (a stand-in model: no real model can be served here; it counts the
tokens it served, the ground truth below) and ``--replicas`` × ``distillguard serve`` with
``state.store: redis``. This process is the load generator.

Quota trials (bar 1: "zero tokens granted beyond the quota"). Each trial is a fresh account (a
new id in the trusted identity header, so a fresh daily window on the default plan, whose daily
budget is ``--quota`` tokens) and ``--concurrency`` requests fired at once, dealt round-robin to
the replicas, each drawn at random: OpenAI or Anthropic, stream or not, prompt size, ``max_tokens``
(a quarter of OpenAI requests give none, so the plan's cap applies), and a tenth of the streams
hang up after their first chunk(s). Clients act like the official SDKs: on a 429 they wait its
``retry-after`` and retry, twice at most, and give up at once when it says more than a minute
(the budget is spent for the day). Ground truth of what was granted does not come from the
gateway: it is what the mock served (``GET /_stats``: input tokens it was asked to process plus
output tokens it sent, cancelled streams included), read after the trial is quiet (nothing in
flight at the mock, nothing reserved in Redis); the Redis store's own ``usage()`` is read then
too. The bar holds when, in every trial, served <= quota and used <= quota, and no answer is a
5xx. The used share (served / quota) says how much of the budget the limiter let through: one
that refused everything would pass the first half. The policy allowlists loopback and turns
cluster budgets off, so the live hunt (on, as ``serve`` runs it) cannot change the budget under
test mid-trial.

Store faults (bar 2: "Redis stopped mid-load -> the configured behaviour, no 5xx, recovery within
1 s"). Four replicas on one Redis, two with ``on_store_error: closed`` and two with ``open``, each
under a steady bounded load (a few sequential clients per replica), and Redis is either killed
and restarted empty on the same port (``kill``) or frozen with SIGSTOP and thawed (``hang``).
While it is down every answer of a closed replica must be 429 ``state_store_down`` and every
answer of an open one a 200; no 5xx ever. Recovery is the time from Redis answering again to a
closed replica's first 200, and to an open replica's first checked grant (its account's usage
in the restarted Redis grows again; not measurable after a hang, whose Redis kept its data).

Bounded everywhere: each request has a timeout, each trial waits a bounded time to go quiet,
and ``--max-minutes`` caps the whole run (trials not started by then are not run, and the JSON
says how many ran and what the asked number would take).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # for benchmarks.bench_gateway and tests.gateway.redis_server

from benchmarks.bench_gateway import WORDS, Server, dg_command, free_port, machine, start  # noqa: E402
from tests.gateway.redis_server import RedisServer  # noqa: E402

from distillguard.gateway.quota import RedisQuotaStore  # noqa: E402

RESULTS = HERE / "results" / "gateway"
IDENTITY_HEADER = "x-trial-account"
PLAN_MAX_TOKENS = 1024
MOCK_LATENCY_MS = 2.0
MOCK_TOKENS_PER_S = 5000.0
SDK_MAX_RETRIES = 2  # the OpenAI and Anthropic SDKs' default
SDK_MAX_RETRY_AFTER_S = 60.0  # a longer retry-after (the day's budget is spent) ends the request
RECOVERY_BAR_S = 1.0

Api = Literal["openai", "anthropic"]


def policy_yaml(redis_url: str, *, daily_tokens: int, on_store_error: str) -> str:
    """Identity from a trusted header (a new id is a new account on the default plan), the
    whole plan from day 0, and nothing but the quota deciding (loopback allowlisted, no
    cluster budgets)."""
    return f"""\
identity: {{header: {IDENTITY_HEADER}}}
default_plan: trial
plans:
  trial: {{daily_tokens: {daily_tokens}, requests_per_minute: 1000000000,
           tokens_per_minute: {daily_tokens * 10}, max_tokens: {PLAN_MAX_TOKENS}}}
release:
  stages:
    - {{age_days: 0, share: 1.0}}
  cluster: false
allowlists: {{prefixes: ["127.0.0.0/8"]}}
state: {{store: redis, url: "{redis_url}", on_store_error: {on_store_error}}}
"""


# ------------------------------------------------------------------------------------ servers


@dataclass
class Stack:
    """One Redis, one mock upstream and the gateway replicas in front of it (all processes)."""

    redis: RedisServer
    mock: Server
    gateways: list[Server]
    tmp: Path


@contextlib.contextmanager
def stack(
    policies: list[str], *, rescore_s: float = 60.0, keep_logs: Path | None = None
) -> Iterator[Stack]:
    """Start Redis, ``distillguard mock-upstream`` and one ``distillguard serve`` per policy
    (started side by side: each takes seconds to import); stop them all afterwards."""
    with tempfile.TemporaryDirectory(prefix="dg-quota-trial-") as tmp_name:
        tmp = Path(tmp_name)
        redis = RedisServer().start()
        servers: list[Server] = []
        try:
            mock_port = free_port()
            mock_cmd = dg_command("mock-upstream", "--port", str(mock_port),
                                  "--latency-ms", str(MOCK_LATENCY_MS), "--tokens-per-s", str(MOCK_TOKENS_PER_S))  # fmt: skip
            mock = start("mock", mock_cmd, f"http://127.0.0.1:{mock_port}", "/healthz", tmp)
            servers.append(mock)
            jobs = []
            with concurrent.futures.ThreadPoolExecutor(len(policies)) as pool:
                for i, text in enumerate(policies):
                    path = tmp / f"policy-{i}.yaml"
                    path.write_text(text.replace("{redis_url}", redis.url))
                    port = free_port()
                    cmd = dg_command("serve", "--upstream", mock.url, "--port", str(port), "--policy", str(path),
                                     "--rescore", str(rescore_s), "--workers", "1")  # fmt: skip
                    jobs.append(
                        pool.submit(
                            start, f"gateway-{i}", cmd, f"http://127.0.0.1:{port}", "/healthz", tmp
                        )
                    )
                for job in jobs:
                    with contextlib.suppress(Exception):
                        servers.append(job.result())
            failed = [j.exception() for j in jobs if j.exception() is not None]
            if failed:
                raise RuntimeError(f"a gateway did not start: {failed[0]}")
            result = Stack(redis, mock, servers[1:], tmp)
            yield result
        finally:
            for server in servers:
                server.stop()
            redis.stop()
            if keep_logs is not None:  # the servers' own output, to look into what a run found
                keep_logs.mkdir(parents=True, exist_ok=True)
                for log in tmp.glob("*.log"):
                    shutil.copy(log, keep_logs / log.name)


# ------------------------------------------------------------------------------------ requests


@dataclass(frozen=True)
class RequestSpec:
    """One client's request, drawn at random."""

    api: Api
    stream: bool
    prompt_bytes: int
    max_tokens: int | None  # None: the plan's cap applies (OpenAI only: Anthropic requires it)
    include_usage: bool  # OpenAI streams
    hang_up_after_chunks: int  # 0: read to the end


def draw_spec(rng: random.Random) -> RequestSpec:
    api: Api = rng.choice(("openai", "anthropic"))
    stream = rng.random() < 0.5
    prompt_bytes = round(math.exp(rng.uniform(math.log(20), math.log(3000))))
    max_tokens: int | None = round(math.exp(rng.uniform(0, math.log(PLAN_MAX_TOKENS))))
    if api == "openai" and rng.random() < 0.25:
        max_tokens = None
    hang_up = rng.randint(1, 3) if stream and rng.random() < 0.10 else 0
    return RequestSpec(
        api, stream, prompt_bytes, max_tokens, api == "openai" and rng.random() < 0.5, hang_up
    )


def body_of(spec: RequestSpec, tag: str) -> tuple[str, bytes]:
    """Path and JSON body: a prompt of about ``prompt_bytes`` bytes, unique per ``tag``."""
    words: list[str] = [tag]
    size = len(tag)
    i = 0
    while size < spec.prompt_bytes:
        word = WORDS[(i * 7 + len(tag)) % len(WORDS)]
        words.append(word)
        size += len(word) + 1
        i += 1
    body: dict[str, Any] = {
        "model": "mock-small",
        "messages": [{"role": "user", "content": " ".join(words)}],
    }
    if spec.max_tokens is not None:
        body["max_tokens"] = spec.max_tokens
    if spec.stream:
        body["stream"] = True
        if spec.include_usage:
            body["stream_options"] = {"include_usage": True}
    path = "/v1/chat/completions" if spec.api == "openai" else "/v1/messages"
    return path, orjson.dumps(body)


def error_code(api: Api, content: bytes) -> str:
    """The gateway's reason code in either API's error shape (see ``gateway.api.error_response``)."""
    with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
        error = orjson.loads(content)["error"]
        if api == "openai":
            return str(error.get("code") or error.get("type"))
        message = str(error.get("message", ""))
        if message.startswith("[") and "]" in message:
            return message[1 : message.index("]")]
        return str(error.get("type"))
    return "unreadable"


@dataclass
class Attempt:
    status: int  # 0: no answer (timeout, connection error)
    code: str  # the reason code of an error, "" for a 200
    sent: float  # time.monotonic()
    answered: float
    hung_up: bool = False
    retry_after_s: float | None = None


async def attempt(client: httpx.AsyncClient, url: str, account: str, spec: RequestSpec, tag: str,
                  timeout_s: float) -> Attempt:  # fmt: skip
    """One HTTP request; a stream is read to its end, or hung up on after its first chunk(s)."""
    path, body = body_of(spec, tag)
    headers = {IDENTITY_HEADER: account, "content-type": "application/json"}
    if spec.api == "anthropic":
        headers["anthropic-version"] = "2023-06-01"
    sent = time.monotonic()
    try:
        async with (
            asyncio.timeout(timeout_s),
            client.stream("POST", url + path, content=body, headers=headers) as r,
        ):
            if r.status_code != 200:
                content = await r.aread()
                retry = r.headers.get("retry-after")
                return Attempt(r.status_code, error_code(spec.api, content), sent, time.monotonic(),
                               retry_after_s=float(retry) if retry else None)  # fmt: skip
            chunks = 0
            async for _ in r.aiter_raw():
                chunks += 1
                if spec.hang_up_after_chunks and chunks >= spec.hang_up_after_chunks:
                    return Attempt(
                        200, "", sent, time.monotonic(), hung_up=True
                    )  # leaving closes it
            return Attempt(200, "", sent, time.monotonic())
    except (TimeoutError, httpx.HTTPError) as exc:
        return Attempt(0, type(exc).__name__, sent, time.monotonic())


async def request_like_an_sdk(client: httpx.AsyncClient, url: str, account: str, spec: RequestSpec,
                              tag: str, timeout_s: float) -> list[Attempt]:  # fmt: skip
    """Retry a 429 after its retry-after, as the official SDKs do (twice); a retry-after over a
    minute means the day's budget is spent, so the client gives up."""
    attempts = [await attempt(client, url, account, spec, tag, timeout_s)]
    while (
        attempts[-1].status == 429
        and len(attempts) <= SDK_MAX_RETRIES
        and attempts[-1].retry_after_s is not None
        and attempts[-1].retry_after_s <= SDK_MAX_RETRY_AFTER_S
    ):
        await asyncio.sleep(attempts[-1].retry_after_s)
        attempts.append(await attempt(client, url, account, spec, tag, timeout_s))
    return attempts


async def mock_stats(client: httpx.AsyncClient, mock_url: str) -> dict[str, Any]:
    r = await client.get(mock_url + "/_stats", timeout=10)
    r.raise_for_status()
    stats: dict[str, Any] = r.json()
    return stats


# ------------------------------------------------------------------------------------ quota trials


@dataclass
class TrialResult:
    trial: int
    account: str
    quota: int
    served_input: int
    served_output: int
    used: int  # the Redis store's usage() once the mock is quiet
    reserved: int  # ... and what it still held reserved (0 when every grant settled)
    quiet: bool  # nothing in flight at the mock within the deadline: served is final
    crossed_midnight: bool
    statuses: dict[str, int]  # final answers by status ("0": no answer)
    attempts: dict[str, int]  # every attempt by status
    codes: dict[str, int]  # refusal codes over every attempt
    requests: int
    streams: int
    hung_up: int
    retries: int
    wall_s: float

    @property
    def served(self) -> int:
        return self.served_input + self.served_output

    @property
    def holds(self) -> bool:
        """Nothing granted beyond the quota: served (final) and the store's count both within it."""
        return self.quiet and self.served <= self.quota and self.used + self.reserved <= self.quota

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["served"] = self.served
        out["used_share"] = round(self.served / self.quota, 4)
        out["holds"] = self.holds
        return out


async def quiet(client: httpx.AsyncClient, mock_url: str, store: RedisQuotaStore, account: str,
                at: float, deadline_s: float) -> tuple[dict[str, Any], dict[str, int], bool]:  # fmt: skip
    """Wait (bounded) until the mock has nothing in flight, then (a few seconds at most) until
    the store holds nothing reserved: a reserve call that timed out in the gateway may still have
    run in Redis, and that reservation stays until its ttl (600 s), so it is reported, not awaited."""
    deadline = time.monotonic() + deadline_s
    while (stats := await mock_stats(client, mock_url))[
        "in_flight"
    ] and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    settle_deadline = time.monotonic() + 3
    while (usage := await store.usage(f"acct:{account}", now=at))[
        "reserved"
    ] and time.monotonic() < settle_deadline:
        await asyncio.sleep(0.02)
    return stats, usage, stats["in_flight"] == 0


async def run_trial(client: httpx.AsyncClient, st: Stack, store: RedisQuotaStore, index: int, seed: int,
                    quota: int, concurrency: int, timeout_s: float) -> TrialResult:  # fmt: skip
    rng = random.Random(seed * 1_000_003 + index)
    account = f"trial-{seed}-{index}-{rng.getrandbits(48):012x}"
    specs = [draw_spec(rng) for _ in range(concurrency)]
    before = await mock_stats(client, st.mock.url)
    t0 = time.time()
    wall0 = time.monotonic()
    day0 = dt.datetime.fromtimestamp(t0, dt.UTC).date()
    results = await asyncio.gather(*(
        request_like_an_sdk(client, st.gateways[i % len(st.gateways)].url, account, spec, f"{account}/{i}", timeout_s)
        for i, spec in enumerate(specs)
    ))  # fmt: skip
    wall = time.monotonic() - wall0
    after, usage, is_quiet = await quiet(client, st.mock.url, store, account, t0, deadline_s=15)
    finals = Counter(str(a[-1].status) for a in results)
    every = Counter(str(x.status) for a in results for x in a)
    codes = Counter(x.code for a in results for x in a if x.code)
    return TrialResult(
        trial=index, account=account, quota=quota,
        served_input=after["input_tokens"] - before["input_tokens"],
        served_output=after["output_tokens"] - before["output_tokens"],
        used=usage["used"], reserved=usage["reserved"], quiet=is_quiet,
        crossed_midnight=dt.datetime.now(dt.UTC).date() != day0,
        statuses=dict(finals), attempts=dict(every), codes=dict(codes), requests=len(specs),
        streams=sum(s.stream for s in specs), hung_up=sum(x.hung_up for a in results for x in a),
        retries=sum(len(a) - 1 for a in results), wall_s=round(wall, 3),
    )  # fmt: skip


def _quantile(xs: list[float], q: float) -> float:
    """Nearest rank."""
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summarize_trials(trials: list[TrialResult]) -> dict[str, Any]:
    counted = [t for t in trials if not t.crossed_midnight]
    shares = [t.served / t.quota for t in counted]
    walls = [t.wall_s for t in counted]
    total = Counter[str]()
    attempts = Counter[str]()
    codes = Counter[str]()
    for t in counted:
        total.update(t.statuses)
        attempts.update(t.attempts)
        codes.update(t.codes)
    over = [t.trial for t in counted if t.served > t.quota or t.used + t.reserved > t.quota]
    return {
        "trials": len(counted),
        "trials_crossing_utc_midnight_left_out": len(trials) - len(counted),
        "trials_over_quota": over,
        "trials_not_quiet": [t.trial for t in counted if not t.quiet],
        # reservations left in Redis after every answer: reserve calls that timed out in the
        # gateway (refused as state_store_down) yet ran in Redis, or settles that timed out
        "trials_with_reservations_left": {
            t.trial: {
                "reserved": t.reserved,
                "used_share": round(t.served / t.quota, 4),
                "state_store_down": t.codes.get("state_store_down", 0),
            }
            for t in counted
            if t.reserved
        },
        "trials_with_state_store_down": sum("state_store_down" in t.codes for t in counted),
        "max_served_minus_quota": max((t.served - t.quota for t in counted), default=0),
        "max_used_plus_reserved_minus_quota": max(
            (t.used + t.reserved - t.quota for t in counted), default=0
        ),
        "trials_where_gateway_counted_less_than_served": sum(t.used < t.served for t in counted),
        "used_share": {
            "min": round(min(shares), 4),
            "p10": round(_quantile(shares, 0.10), 4),
            "median": round(statistics.median(shares), 4),
            "mean": round(statistics.fmean(shares), 4),
            "max": round(max(shares), 4),
        }
        if shares
        else {},
        "final_answers_by_status": dict(total),
        "attempts_by_status": dict(attempts),
        "refusal_codes": dict(codes),
        "five_xx": sum(n for s, n in attempts.items() if s.startswith("5")),
        "five_xx_codes": {
            c: n for c, n in codes.items() if c.startswith("upstream") or c.startswith("gateway")
        },
        "no_answer": attempts.get("0", 0),
        "requests": sum(t.requests for t in counted),
        "streams": sum(t.streams for t in counted),
        "streams_hung_up": sum(t.hung_up for t in counted),
        "retries": sum(t.retries for t in counted),
        "trial_wall_s": {
            "min": round(min(walls), 3),
            "median": round(statistics.median(walls), 3),
            "p90": round(_quantile(walls, 0.9), 3),
            "max": round(max(walls), 3),
            "sum": round(sum(walls), 1),
        }
        if walls
        else {},
    }


async def quota_trials(st: Stack, *, trials: int, quota: int, concurrency: int, seed: int = 0,
                       timeout_s: float = 30.0, max_s: float = math.inf,
                       progress: bool = False) -> tuple[list[TrialResult], float]:  # fmt: skip
    """Run up to ``trials`` trials, one after the other, starting none after ``max_s`` seconds;
    the results and the seconds it took in all."""
    store = RedisQuotaStore(st.redis.url, timeout_s=5.0)
    # keep-alive shorter than uvicorn's 5 s, so a client never reuses a connection the server is closing
    limits = httpx.Limits(
        max_connections=2 * concurrency,
        max_keepalive_connections=2 * concurrency,
        keepalive_expiry=2.0,
    )
    out: list[TrialResult] = []
    t0 = time.monotonic()
    try:
        async with httpx.AsyncClient(limits=limits, timeout=timeout_s) as client:
            for index in range(trials):
                if time.monotonic() - t0 > max_s:
                    break
                result = await run_trial(
                    client, st, store, index, seed, quota, concurrency, timeout_s
                )
                out.append(result)
                if progress and (index < 5 or index % 25 == 0):
                    print(f"trial {index}: served {result.served}/{quota} used {result.used} "
                          f"answers {result.statuses} hung up {result.hung_up} {result.wall_s:.2f} s "
                          f"(elapsed {time.monotonic() - t0:.0f} s)", flush=True)  # fmt: skip
    finally:
        await store.close()
    return out, time.monotonic() - t0


# ------------------------------------------------------------------------------------ store faults


@dataclass
class Replica:
    url: str
    mode: str  # on_store_error
    account: str
    answers: list[Attempt] = field(default_factory=list)


async def steady_load(client: httpx.AsyncClient, replica: Replica, stop: asyncio.Event, clients: int,
                      timeout_s: float) -> None:  # fmt: skip
    """``clients`` sequential clients on one replica: small requests, every other one a stream."""

    async def one_client(c: int) -> None:
        n = 0
        while not stop.is_set():
            api: Api = "openai" if n % 3 else "anthropic"
            spec = RequestSpec(api, n % 2 == 1, 200, 16, api == "openai", 0)
            replica.answers.append(
                await attempt(client, replica.url, replica.account, spec, f"{c}-{n}", timeout_s)
            )
            n += 1
            await asyncio.sleep(0.005)  # bounded: at most ~200 requests/s per client

    await asyncio.gather(*(one_client(c) for c in range(clients)))


async def store_fault(st: Stack, modes: list[str], *, kind: Literal["kill", "hang"], before_s: float = 2.0,
                      down_s: float = 3.0, after_s: float = 3.0, clients: int = 3,
                      timeout_s: float = 10.0) -> dict[str, Any]:  # fmt: skip
    """Steady load on every replica; Redis killed (restarted empty on its port) or frozen
    (SIGSTOP, then SIGCONT) mid-load; what each replica answered before, during and after."""
    tag = f"{kind}-{time.time_ns()}"
    replicas = [
        Replica(g.url, mode, f"fault-{tag}-{i}")
        for i, (g, mode) in enumerate(zip(st.gateways, modes, strict=True))
    ]
    store = RedisQuotaStore(st.redis.url, timeout_s=1.0)
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=4 * clients * len(replicas), keepalive_expiry=2.0)
    async with httpx.AsyncClient(limits=limits, timeout=timeout_s) as client:
        load = asyncio.gather(*(steady_load(client, r, stop, clients, timeout_s) for r in replicas))
        try:
            await asyncio.sleep(before_s)
            await asyncio.to_thread(st.redis.stop if kind == "kill" else st.redis.pause)
            t_down = time.monotonic()
            await asyncio.sleep(down_s)
            # "while down" ends before Redis is started again: measured after start() returns,
            # a busy event loop could count an answer the restarted Redis already gave
            t_restart = time.monotonic()
            await asyncio.to_thread(st.redis.start if kind == "kill" else st.redis.resume)
            t_up = (
                time.monotonic()
            )  # kill: start() returns once PING answers; hang: answers at SIGCONT
            checked_again = await asyncio.gather(*(
                _first_checked_grant(store, r.account, t_up, after_s) for r in replicas
            ))  # fmt: skip
            remaining = after_s - (time.monotonic() - t_up)
            if remaining > 0:
                await asyncio.sleep(remaining)
        finally:
            stop.set()
            await load
        await asyncio.sleep(0.5)  # every settle done
        held = [await store.usage(f"acct:{r.account}") for r in replicas]
        await store.close()
    out: dict[str, Any] = {"kind": kind, "before_s": before_s, "down_s": round(t_restart - t_down, 3),
                           "after_s": after_s, "clients_per_replica": clients, "replicas": []}  # fmt: skip
    for r, checked, usage in zip(replicas, checked_again, held, strict=True):
        down = [a for a in r.answers if a.sent >= t_down and a.answered <= t_restart]
        ok_after = [a.answered - t_up for a in r.answers if a.status == 200 and a.answered >= t_up]
        recovery: float | None
        if r.mode == "closed":
            recovery = min(ok_after) if ok_after else None
        else:  # an open replica serves all along; it has recovered when its grants are checked again
            recovery = checked if kind == "kill" else None
        expected = (429, "state_store_down") if r.mode == "closed" else (200, "")
        out["replicas"].append({
            "mode": r.mode,
            "answers": len(r.answers),
            "by_status": dict(Counter(str(a.status) for a in r.answers)),
            "while_down": dict(Counter(f"{a.status} {a.code}".strip() for a in down)),
            "while_down_as_configured": bool(down) and all((a.status, a.code) == expected for a in down),
            "five_xx": sum(a.status >= 500 for a in r.answers),
            "no_answer": sum(a.status == 0 for a in r.answers),
            "recovery_s": None if recovery is None else round(recovery, 4),
            # after a hang, calls that timed out may still run once Redis thaws: reservations
            # nobody settles, counted as used when their ttl ends (never a grant beyond the quota)
            "store_reserved_at_end": usage["reserved"],
            "recovery_measured_by": "first 200 after Redis answers" if r.mode == "closed" else
            ("first grant recorded in the restarted (empty) Redis" if kind == "kill" else
             "not measurable: the thawed Redis kept its data, and timed-out calls queued in it land late"),
        })  # fmt: skip
    return out


async def _first_checked_grant(
    store: RedisQuotaStore, account: str, t_up: float, limit_s: float
) -> float | None:
    """Seconds from ``t_up`` until ``account`` has usage in Redis (polled every 10 ms)."""
    while time.monotonic() - t_up < limit_s:
        with contextlib.suppress(Exception):
            usage = await store.usage(f"acct:{account}")
            if usage["used"] + usage["reserved"] > 0:
                return time.monotonic() - t_up
        await asyncio.sleep(0.01)
    return None


def fault_bar(runs: list[dict[str, Any]]) -> dict[str, Any]:
    replicas = [r for run in runs for r in run["replicas"]]
    closed = [r["recovery_s"] for r in replicas if r["mode"] == "closed"]
    return {
        "no_5xx": all(r["five_xx"] == 0 for r in replicas),
        "every_answer_while_down_as_configured": all(
            r["while_down_as_configured"] for r in replicas
        ),
        "closed_recovery_s_max": max((x for x in closed if x is not None), default=None),
        "closed_recovered_within_1s": all(x is not None and x <= RECOVERY_BAR_S for x in closed),
    }


# ------------------------------------------------------------------------------------ main


def versions() -> dict[str, Any]:
    from benchmarks.bench_gateway import versions as gateway_versions

    out = gateway_versions(None)
    import importlib.metadata
    import subprocess

    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        out["redis-py"] = importlib.metadata.version("redis")
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out["redis_server"] = subprocess.run(["redis-server", "--version"], capture_output=True, text=True,
                                             check=True).stdout.split()[2].removeprefix("v=")  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=200, help="requests fired at once per trial")
    ap.add_argument("--quota", type=int, default=20_000, help="the plan's daily tokens")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    ap.add_argument(
        "--max-minutes", type=float, default=20.0, help="start no trial after this long"
    )
    ap.add_argument("--fault-only", action="store_true", help="only the store-fault runs")
    ap.add_argument("--no-fault", action="store_true", help="only the quota trials")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--logs", type=Path, help="keep the servers' logs in this folder")
    args = ap.parse_args()
    command = "PYTHONPATH=src python benchmarks/bench_gateway_quota.py " + " ".join(sys.argv[1:])
    common = {"command": command, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "machine": machine(), "versions": versions()}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.fault_only:
        policy = policy_yaml("{redis_url}", daily_tokens=args.quota, on_store_error="closed")
        with stack([policy] * args.replicas, keep_logs=args.logs) as st:
            trials, elapsed = asyncio.run(quota_trials(
                st, trials=args.trials, quota=args.quota, concurrency=args.concurrency, seed=args.seed,
                timeout_s=args.timeout, max_s=args.max_minutes * 60, progress=True,
            ))  # fmt: skip
        summary = summarize_trials(trials)
        per_trial = elapsed / max(1, len(trials))
        result = {
            **common,
            "what": "quota trials: a fresh account per trial, --concurrency requests at once over --replicas "
            "gateway replicas on one Redis; served = tokens the mock upstream served (input asked + output sent)",
            "settings": {
                "trials_asked": args.trials,
                "trials_run": len(trials),
                "replicas": args.replicas,
                "concurrency": args.concurrency,
                "quota_daily_tokens": args.quota,
                "plan_max_tokens": PLAN_MAX_TOKENS,
                "seed": args.seed,
                "request_timeout_s": args.timeout,
                "max_minutes": args.max_minutes,
                "mock_latency_ms": MOCK_LATENCY_MS,
                "mock_tokens_per_s": MOCK_TOKENS_PER_S,
                "client_retries": SDK_MAX_RETRIES,
            },
            "elapsed_s": round(elapsed, 1),
            "seconds_per_trial": round(per_trial, 3),
            "projected_minutes_for_trials_asked": round(per_trial * args.trials / 60, 1),
            "ran_all_trials_asked": len(trials) == args.trials,
            "summary": summary,
            "bar": {
                "zero_tokens_beyond_quota": not summary["trials_over_quota"]
                and not summary["trials_not_quiet"],
                "no_5xx": summary["five_xx"] == 0,
            },
            "trials": [t.to_dict() for t in trials],
        }
        result["bar"]["holds"] = all(result["bar"].values())
        result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        (args.out / "quota-trial.json").write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "trials"}, indent=1))
    if not args.no_fault:
        policies = [policy_yaml("{redis_url}", daily_tokens=10**12, on_store_error=m)
                    for m in ("closed", "closed", "open", "open")]  # fmt: skip
        runs = []
        for kind in ("kill", "hang"):
            with stack(policies, keep_logs=args.logs and args.logs / kind) as st:
                runs.append(
                    asyncio.run(store_fault(st, ["closed", "closed", "open", "open"], kind=kind))
                )
        result = {**common, "what": "Redis stopped mid-load under 2 closed + 2 open replicas", "runs": runs,
                  "bar": fault_bar(runs)}  # fmt: skip
        (args.out / "store-fault.json").write_text(json.dumps(result, indent=1) + "\n")
        print(
            json.dumps(
                {k: v for k, v in result.items() if k not in ("machine", "versions")}, indent=1
            )
        )


if __name__ == "__main__":
    main()
