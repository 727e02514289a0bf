"""Token quotas and rate limits that grant nothing beyond a budget, even under concurrency.

Peers count tokens after the reply, so a burst of long requests overshoots the budget
before the first one is counted. Here a request *reserves* an upper bound of its cost
(``input_token_bound + max_tokens``) before it is forwarded, atomically against every
bucket that applies (the account's, and the cluster's when the hunt linked the account
into one), and *settles* with the real usage afterwards, which returns the unused part.

Each :class:`Bucket` has three limits, all checked on every reservation:

- ``daily_tokens``: used + reserved tokens in the current UTC day;
- ``tokens_per_minute``: tokens reserved in the current minute (less what settles returned);
- ``requests_per_minute``: reservations in the current minute.

A reservation that is never settled (a crashed replica) is counted as *fully used* once
``reservation_ttl_s`` has passed: it is swept into ``used`` the next time its bucket is
touched. Returning it instead would let a crash loop leak tokens. A settle that arrives
before that sweep still counts its real usage; one that arrives after it changes nothing.

Two stores share these semantics: :class:`MemoryQuotaStore` for one process and
:class:`RedisQuotaStore` for several gateway replicas, whose check-and-reserve is one Lua
script, so Redis runs it atomically.

Examples
--------
>>> import asyncio
>>> store = MemoryQuotaStore()
>>> acct = Bucket("acct:42", daily_tokens=1_000, tokens_per_minute=600, requests_per_minute=10)
>>> grant = asyncio.run(store.reserve([acct], 500, now=0.0))
>>> grant.tokens, grant.day
(500, '1970-01-01')
>>> asyncio.run(store.reserve([acct], 200, now=1.0))
Refusal(reason='tokens_per_minute', bucket='acct:42', retry_after_s=59.0)
>>> asyncio.run(store.settle(grant, 120))
>>> asyncio.run(store.usage("acct:42", now=2.0))
{'used': 120, 'reserved': 0, 'minute_tokens': 120, 'minute_requests': 1}
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from heapq import heapify, heappop, heappush
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from distillguard.errors import ConfigError, DistillguardError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = [
    "Bucket",
    "Grant",
    "MemoryQuotaStore",
    "QuotaStore",
    "RedisQuotaStore",
    "Refusal",
    "StateStoreUnavailable",
    "make_store",
]

log = logging.getLogger(__name__)

Reason = Literal["daily_tokens", "tokens_per_minute", "requests_per_minute", "state_store_down"]
OnError = Literal["open", "closed"]

DAY_S = 86_400
MINUTE_S = 60
OPEN_GRANT_PREFIX = "open-"
# How soon to retry a daily refusal that only reservations still in flight cause: they
# come back as soon as those requests finish, long before the next UTC day.
IN_FLIGHT_RETRY_S = 1.0
STORE_DOWN_RETRY_S = 1.0
# Keys outlive their window by this much, so that a settle arriving late still finds them.
LATE_SETTLE_MARGIN_S = 3_600
# A sweep moves at most this many expired reservations per bucket per call; more wait for
# the next call. Admission does not depend on it: used + reserved is the same before and after.
SWEEP_LIMIT = 1_000


@dataclass(frozen=True)
class Bucket:
    """One budget, with its limits: an account's (``"acct:<id>"``) or a cluster's (``"cluster:<id>"``).

    A limit of 0 admits nothing.
    """

    key: str
    daily_tokens: int
    tokens_per_minute: int
    requests_per_minute: int

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key or self.key != self.key.strip():
            raise ConfigError(
                f"Bucket key must be a non-empty string without outer spaces, got {self.key!r}"
            )
        for name in ("daily_tokens", "tokens_per_minute", "requests_per_minute"):
            value = getattr(self, name)
            if not _is_count(value):
                raise ConfigError(
                    f"Bucket {self.key!r}: {name} must be a whole number >= 0, got {value!r}"
                )


@dataclass(frozen=True)
class Grant:
    """A reservation of ``tokens`` against ``buckets``, made on UTC ``day`` in epoch ``minute``.

    Settle it exactly once with the real usage. An ``id`` starting ``"open-"`` marks a grant
    that no store checked (Redis was down under ``on_error="open"``); settling it does nothing.
    """

    id: str
    tokens: int
    buckets: tuple[str, ...]
    day: str
    minute: int

    @property
    def checked(self) -> bool:
        """Whether a store checked this grant against the limits."""
        return not self.id.startswith(OPEN_GRANT_PREFIX)


@dataclass(frozen=True)
class Refusal:
    """Why a reservation was refused, by which bucket, and when trying again may succeed.

    ``bucket`` is ``""`` for ``"state_store_down"``, which no single bucket causes.
    """

    reason: Reason
    bucket: str
    retry_after_s: float


class StateStoreUnavailable(DistillguardError):
    """The quota store could not be reached; raised only by :meth:`QuotaStore.usage`.

    ``reserve`` and ``settle`` never raise for a store fault: they refuse or grant
    according to ``on_error`` instead, so a request never fails with the gateway's own 5xx.
    """


@runtime_checkable
class QuotaStore(Protocol):
    """What the gateway needs from a quota store; both stores below implement it."""

    errors: int
    """Store errors seen (connection errors, timeouts), for the ``/metrics`` endpoint."""
    clamped: int
    """Settles whose usage exceeded the reservation and was clamped to it (a caller's bug)."""

    async def reserve(
        self, buckets: Sequence[Bucket], tokens: int, now: float | None = None
    ) -> Grant | Refusal:
        """Reserve ``tokens`` against every bucket at once, or refuse and charge none of them."""
        ...

    async def settle(self, grant: Grant, used_tokens: int) -> None:
        """Turn a reservation into real usage, returning the unused part."""
        ...

    async def usage(self, key: str, now: float | None = None) -> dict[str, int]:
        """``used`` and ``reserved`` today, ``minute_tokens`` and ``minute_requests`` this minute."""
        ...

    async def ping(self) -> bool:
        """Whether the store answers now."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


# ---------------------------------------------------------------------------------------
# Shared helpers: windows, validation, retry hints


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _grant_ids() -> Callable[[], str]:
    """Unique grant ids, cheaply: 128 random bits per store, then a counter (a uuid4 per
    request costs microseconds on the request path). Replicas sharing Redis never collide."""
    prefix = secrets.token_hex(16)
    counter = itertools.count()
    return lambda: f"{prefix}{next(counter):x}"


@lru_cache(maxsize=64)
def _day_label(day_number: int) -> str:
    return datetime.fromtimestamp(day_number * DAY_S, UTC).strftime("%Y-%m-%d")


def _windows(now: float) -> tuple[int, str, int]:
    """(UTC day number, its label, epoch minute) for ``now``: fixed windows, as the brief asks."""
    day_number = int(now // DAY_S)
    return day_number, _day_label(day_number), int(now // MINUTE_S)


def _check_request(buckets: Sequence[Bucket], tokens: int) -> None:
    if not _is_count(tokens):
        raise ValueError(f"tokens must be a whole number >= 0, got {tokens!r}")
    if not buckets:
        raise ValueError("buckets must name at least one Bucket")
    keys = [b.key for b in buckets]
    if len(set(keys)) != len(keys):
        raise ValueError(f"buckets must not repeat a key (it would be charged twice), got {keys}")


def _settled_amount(grant: Grant, used_tokens: int) -> tuple[int, bool]:
    """The usage to record and whether it had to be clamped to the reservation."""
    if not _is_count(used_tokens):
        raise ValueError(f"used_tokens must be a whole number >= 0, got {used_tokens!r}")
    if used_tokens > grant.tokens:
        log.warning(
            "settle of %s: used_tokens %d > reserved %d, clamped",
            grant.id,
            used_tokens,
            grant.tokens,
        )
        return grant.tokens, True
    return used_tokens, False


def _daily_retry_s(now: float, in_flight_only: bool) -> float:
    to_next_day = DAY_S - now % DAY_S
    return min(IN_FLIGHT_RETRY_S, to_next_day) if in_flight_only else to_next_day


def _minute_retry_s(now: float) -> float:
    return MINUTE_S - now % MINUTE_S


def _check_ttl(reservation_ttl_s: float) -> None:
    if (
        isinstance(reservation_ttl_s, bool)
        or not isinstance(reservation_ttl_s, int | float)
        or not reservation_ttl_s > 0
    ):
        raise ConfigError(
            f"reservation_ttl_s must be a number of seconds > 0, got {reservation_ttl_s!r}"
        )


def _check_on_error(on_error: str) -> None:
    if on_error not in ("open", "closed"):
        raise ConfigError(f"on_error must be 'open' or 'closed', got {on_error!r}")


# ---------------------------------------------------------------------------------------
# In process


@dataclass
class _DayState:
    used: int = 0
    reserved: int = 0
    pending: dict[str, tuple[int, float]] = field(
        default_factory=dict
    )  # grant id -> tokens, deadline
    deadlines: list[tuple[float, str]] = field(default_factory=list)  # heap; settled ids skipped

    def forget(self, grant_id: str) -> int | None:
        """Drop a pending reservation; its tokens, or None if it was not pending."""
        entry = self.pending.pop(grant_id, None)
        if entry is None:
            return None
        # Settled ids stay in the heap until their deadline; rebuild it before they pile up.
        if len(self.deadlines) > 2 * len(self.pending) + 64:
            self.deadlines = [(deadline, gid) for gid, (_, deadline) in self.pending.items()]
            heapify(self.deadlines)
        return entry[0]


@dataclass
class _MinuteState:
    tokens: int = 0
    requests: int = 0


class MemoryQuotaStore:
    """Quotas for one gateway process: plain dicts behind a lock, no await while it is held.

    The lock is a :class:`threading.Lock`, so the store stays exact even if event loops in
    several threads share it; it is never held across an ``await``, so it never blocks the loop.

    Parameters
    ----------
    reservation_ttl_s
        After this long an unsettled reservation counts as fully used.
    """

    def __init__(self, *, reservation_ttl_s: float = 600) -> None:
        _check_ttl(reservation_ttl_s)
        self.reservation_ttl_s = float(reservation_ttl_s)
        self.errors = 0
        self.clamped = 0
        self._lock = threading.Lock()
        self._days: dict[tuple[str, int], _DayState] = {}
        self._minutes: dict[tuple[str, int], _MinuteState] = {}
        self._pruned_minute = -1
        self._grant_id = _grant_ids()

    def __repr__(self) -> str:
        return f"MemoryQuotaStore(reservation_ttl_s={self.reservation_ttl_s:g})"

    async def reserve(
        self, buckets: Sequence[Bucket], tokens: int, now: float | None = None
    ) -> Grant | Refusal:
        _check_request(buckets, tokens)
        now = time.time() if now is None else now
        day_number, day, minute = _windows(now)
        with self._lock:
            self._prune(day_number, minute)
            states = []
            for bucket in buckets:
                day_state = self._days.get((bucket.key, day_number)) or _DayState()
                self._sweep(day_state, now)
                minute_state = self._minutes.get((bucket.key, minute)) or _MinuteState()
                if day_state.used + day_state.reserved + tokens > bucket.daily_tokens:
                    in_flight_only = day_state.used + tokens <= bucket.daily_tokens
                    return Refusal("daily_tokens", bucket.key, _daily_retry_s(now, in_flight_only))
                if minute_state.tokens + tokens > bucket.tokens_per_minute:
                    return Refusal("tokens_per_minute", bucket.key, _minute_retry_s(now))
                if minute_state.requests + 1 > bucket.requests_per_minute:
                    return Refusal("requests_per_minute", bucket.key, _minute_retry_s(now))
                states.append((bucket.key, day_state, minute_state))
            grant = Grant(self._grant_id(), tokens, tuple(b.key for b in buckets), day, minute)
            deadline = now + self.reservation_ttl_s
            for key, day_state, minute_state in states:
                day_state.reserved += tokens
                day_state.pending[grant.id] = (tokens, deadline)
                heappush(day_state.deadlines, (deadline, grant.id))
                minute_state.tokens += tokens
                minute_state.requests += 1
                self._days[key, day_number] = day_state
                self._minutes[key, minute] = minute_state
        return grant

    async def settle(self, grant: Grant, used_tokens: int) -> None:
        used, clamped = _settled_amount(grant, used_tokens)
        day_number = _day_number_of(grant.day)
        with self._lock:
            self.clamped += clamped
            if not grant.checked:
                return
            for key in grant.buckets:
                day_state = self._days.get((key, day_number))
                if day_state is None or day_state.forget(grant.id) is None:
                    continue  # already settled, or swept as fully used
                day_state.reserved -= grant.tokens
                day_state.used += used
                minute_state = self._minutes.get((key, grant.minute))
                if minute_state is not None:
                    minute_state.tokens -= grant.tokens - used

    async def usage(self, key: str, now: float | None = None) -> dict[str, int]:
        now = time.time() if now is None else now
        day_number, _, minute = _windows(now)
        with self._lock:
            day_state = self._days.get((key, day_number)) or _DayState()
            self._sweep(day_state, now)
            minute_state = self._minutes.get((key, minute)) or _MinuteState()
            return {
                "used": day_state.used,
                "reserved": day_state.reserved,
                "minute_tokens": minute_state.tokens,
                "minute_requests": minute_state.requests,
            }

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None

    @staticmethod
    def _sweep(day_state: _DayState, now: float) -> None:
        """Count reservations past their deadline as fully used."""
        while day_state.deadlines and day_state.deadlines[0][0] <= now:
            _, grant_id = heappop(day_state.deadlines)  # forget may rebuild the heap: no alias
            tokens = day_state.forget(grant_id)
            if tokens is not None:
                day_state.reserved -= tokens
                day_state.used += tokens

    def _prune(self, day_number: int, minute: int) -> None:
        """Drop windows that no reservation or late settle can touch any more (once a minute)."""
        if minute <= self._pruned_minute:
            return
        self._pruned_minute = minute
        self._minutes = {k: v for k, v in self._minutes.items() if k[1] >= minute - 1}
        self._days = {k: v for k, v in self._days.items() if k[1] >= day_number - 1}


@lru_cache(maxsize=64)
def _day_number_of(day: str) -> int:
    return int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()) // DAY_S


# ---------------------------------------------------------------------------------------
# Redis
#
# Keys, for each bucket (KEYS come in threes, in the order of the buckets):
#   <prefix>d:<bucket>:<day>     hash {used, reserved}           expires after the day + ttl + margin
#   <prefix>m:<bucket>:<minute>  hash {tok, req}                 expires after the minute + 60 s
#   <prefix>p:<bucket>:<day>     zset <grant id>:<tokens> -> deadline (reservations not settled)
#   <prefix>x:<grant id>         a cancelled reservation (its reserve timed out): a late reserve
#                                with this id charges nothing; expires after the reservation ttl
# ``now`` comes from the caller (one clock for windows and deadlines, and tests can move it).

_SWEEP_LUA = """
local function sweep(d, p, now)
  local expired = redis.call('ZRANGEBYSCORE', p, '-inf', now, 'LIMIT', 0, SWEEP_LIMIT)
  if #expired == 0 then return end
  local total = 0
  for _, member in ipairs(expired) do
    total = total + tonumber(string.match(member, ':(%d+)$'))
  end
  redis.call('ZREM', p, unpack(expired))
  if redis.call('EXISTS', d) == 1 then
    redis.call('HINCRBY', d, 'reserved', -total)
    redis.call('HINCRBY', d, 'used', total)
  end
end
""".replace("SWEEP_LIMIT", str(SWEEP_LIMIT))

# KEYS: each bucket's three keys, then the grant's cancel marker.
# ARGV: tokens, now, deadline, member, day key ttl, minute key ttl, then per bucket
# daily_tokens, tokens_per_minute, requests_per_minute.
# Returns {1} granted, {2} already granted (a retried call), {3} cancelled before it ran, or
# {0, bucket index, reason (1 daily, 2 per-minute tokens, 3 per-minute requests), in flight only}.
_RESERVE_LUA = (
    _SWEEP_LUA
    + """
local tokens = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local member = ARGV[4]
local n = (#KEYS - 1) / 3
if redis.call('EXISTS', KEYS[#KEYS]) == 1 then return {3} end
if redis.call('ZSCORE', KEYS[3], member) then return {2} end
for i = 1, n do
  local d, m, p = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  sweep(d, p, now)
  local daily = tonumber(ARGV[4 + 3 * i])
  local per_minute_tokens = tonumber(ARGV[5 + 3 * i])
  local per_minute_requests = tonumber(ARGV[6 + 3 * i])
  local day = redis.call('HMGET', d, 'used', 'reserved')
  local used = tonumber(day[1]) or 0
  local reserved = tonumber(day[2]) or 0
  if used + reserved + tokens > daily then
    local in_flight_only = 0
    if used + tokens <= daily then in_flight_only = 1 end
    return {0, i, 1, in_flight_only}
  end
  local minute = redis.call('HMGET', m, 'tok', 'req')
  if (tonumber(minute[1]) or 0) + tokens > per_minute_tokens then return {0, i, 2, 0} end
  if (tonumber(minute[2]) or 0) + 1 > per_minute_requests then return {0, i, 3, 0} end
end
for i = 1, n do
  local d, m, p = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  redis.call('HINCRBY', d, 'reserved', tokens)
  redis.call('EXPIRE', d, ARGV[5])
  redis.call('HINCRBY', m, 'tok', tokens)
  redis.call('HINCRBY', m, 'req', 1)
  redis.call('EXPIRE', m, ARGV[6])
  redis.call('ZADD', p, ARGV[3], member)
  redis.call('EXPIRE', p, ARGV[5])
end
return {1}
"""
)

# ARGV: member, tokens reserved, tokens used. Keys that expired are left alone (never recreated).
_SETTLE_LUA = """
local member = ARGV[1]
local reserved = tonumber(ARGV[2])
local used = tonumber(ARGV[3])
for i = 1, #KEYS / 3 do
  local d, m, p = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  if redis.call('ZREM', p, member) == 1 then
    if redis.call('EXISTS', d) == 1 then
      redis.call('HINCRBY', d, 'reserved', -reserved)
      redis.call('HINCRBY', d, 'used', used)
    end
    if reserved > used and redis.call('EXISTS', m) == 1 then
      redis.call('HINCRBY', m, 'tok', used - reserved)
    end
  end
end
return 0
"""

# A reserve that timed out may still run (a hung Redis reads it when it wakes): undo it if it
# ran, and leave a marker that refuses it if it has yet to. KEYS as for reserve; ARGV: member,
# tokens, marker ttl. Returns 1 when a reservation was undone.
_CANCEL_LUA = """
local member = ARGV[1]
local tokens = tonumber(ARGV[2])
local undone = 0
for i = 1, (#KEYS - 1) / 3 do
  local d, m, p = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  if redis.call('ZREM', p, member) == 1 then
    undone = 1
    if redis.call('EXISTS', d) == 1 then redis.call('HINCRBY', d, 'reserved', -tokens) end
    if redis.call('EXISTS', m) == 1 then
      redis.call('HINCRBY', m, 'tok', -tokens)
      redis.call('HINCRBY', m, 'req', -1)
    end
  end
end
redis.call('SET', KEYS[#KEYS], '1', 'EX', ARGV[3])
return undone
"""

# KEYS: one bucket's three keys; ARGV: now. Returns {used, reserved, minute tokens, minute requests}.
_USAGE_LUA = (
    _SWEEP_LUA
    + """
sweep(KEYS[1], KEYS[3], tonumber(ARGV[1]))
local day = redis.call('HMGET', KEYS[1], 'used', 'reserved')
local minute = redis.call('HMGET', KEYS[2], 'tok', 'req')
return {tonumber(day[1]) or 0, tonumber(day[2]) or 0, tonumber(minute[1]) or 0, tonumber(minute[2]) or 0}
"""
)

_REASONS: dict[int, Reason] = {1: "daily_tokens", 2: "tokens_per_minute", 3: "requests_per_minute"}


class RedisQuotaStore:
    """Quotas shared by gateway replicas through one Redis; every check-and-reserve is one Lua script.

    Parameters
    ----------
    url
        ``redis://host:port/db`` (or ``rediss://``, ``unix://``).
    on_error
        What to do when Redis cannot be reached or times out: ``"closed"`` refuses with
        ``reason="state_store_down"``; ``"open"`` grants unchecked (ids start ``"open-"``,
        their settle does nothing). Either way nothing is raised and ``errors`` counts it;
        the next call tries Redis again.
    key_prefix
        Prefix of every key. One Lua call touches the keys of all buckets, so on a Redis
        Cluster give a hash tag, such as ``"{dg}:"``, to keep them in one slot. Run Redis
        with ``maxmemory-policy noeviction``: every key here has a ttl, so a ``volatile-*``
        policy could evict a day's counters and reopen a spent budget.
    reservation_ttl_s
        After this long an unsettled reservation counts as fully used.
    timeout_s
        Limit for connecting and for each reply.
    max_connections
        Connections this replica opens at most.
    pool_timeout_s
        How long a call waits for a free connection when all ``max_connections`` are busy
        (a burst in this replica, not a Redis fault); past it the call counts as a store error.
    """

    def __init__(
        self,
        url: str,
        *,
        on_error: OnError = "closed",
        key_prefix: str = "dg:",
        reservation_ttl_s: float = 600,
        timeout_s: float = 0.5,
        max_connections: int = 16,
        pool_timeout_s: float = 2.0,
    ) -> None:
        _check_on_error(on_error)
        _check_ttl(reservation_ttl_s)
        for name, seconds in (("timeout_s", timeout_s), ("pool_timeout_s", pool_timeout_s)):
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
                raise ConfigError(f"{name} must be a number of seconds > 0, got {seconds!r}")
        if not _is_count(max_connections) or max_connections < 1:
            raise ConfigError(
                f"max_connections must be a whole number >= 1, got {max_connections!r}"
            )
        try:
            import redis.asyncio as redis_asyncio
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import ConnectionError as RedisConnectionError
        except ImportError as exc:  # pragma: no cover - redis is a dependency
            raise ConfigError(
                "RedisQuotaStore needs the 'redis' package: pip install 'redis>=5.0.1'"
            ) from exc
        self.url = url
        self.on_error: OnError = on_error
        self.key_prefix = key_prefix
        self.reservation_ttl_s = float(reservation_ttl_s)
        self.timeout_s = float(timeout_s)
        self.errors = 0
        self.clamped = 0
        self.cancels_undone = 0  # timed-out reserves that had run and were undone
        self._grant_id = _grant_ids()
        self._down = False
        # Reserves that failed on a store fault, to cancel once the store answers again.
        self._to_cancel: collections.deque[tuple[list[str], str, int]] = collections.deque(maxlen=100_000)
        self._cancelling: asyncio.Task[int] | None = None
        try:
            pool = redis_asyncio.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=pool_timeout_s,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                # One immediate retry on a connection error replaces a pooled connection that
                # died with a restarted server. Timeouts are not retried: the command may have run.
                retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            )
        except ValueError as exc:
            raise ConfigError(f"url is not a Redis URL: {url!r} ({exc})") from exc
        self._client: Redis = redis_asyncio.Redis(connection_pool=pool)
        self._reserve_script: AsyncScript = self._client.register_script(_RESERVE_LUA)
        self._settle_script: AsyncScript = self._client.register_script(_SETTLE_LUA)
        self._usage_script: AsyncScript = self._client.register_script(_USAGE_LUA)
        self._cancel_script: AsyncScript = self._client.register_script(_CANCEL_LUA)

    def __repr__(self) -> str:
        return (
            f"RedisQuotaStore({self.url!r}, on_error={self.on_error!r}, key_prefix={self.key_prefix!r}, "
            f"reservation_ttl_s={self.reservation_ttl_s:g}, timeout_s={self.timeout_s:g})"
        )

    async def reserve(
        self, buckets: Sequence[Bucket], tokens: int, now: float | None = None
    ) -> Grant | Refusal:
        return await self._reserve(buckets, tokens, now, self._grant_id())

    async def _reserve(
        self, buckets: Sequence[Bucket], tokens: int, now: float | None, grant_id: str
    ) -> Grant | Refusal:
        """``reserve`` with a given grant id: a second call with the same id charges nothing more."""
        _check_request(buckets, tokens)
        now = time.time() if now is None else now
        day_number, day, minute = _windows(now)
        keys = [*self._keys([b.key for b in buckets], day, minute), f"{self.key_prefix}x:{grant_id}"]
        day_ttl = math.ceil(
            (day_number + 1) * DAY_S - now + self.reservation_ttl_s + LATE_SETTLE_MARGIN_S
        )
        minute_ttl = math.ceil((minute + 1) * MINUTE_S - now + MINUTE_S)
        args: list[Any] = [
            tokens,
            repr(now),
            repr(now + self.reservation_ttl_s),
            f"{grant_id}:{tokens}",
            day_ttl,
            minute_ttl,
        ]
        for bucket in buckets:
            args += [bucket.daily_tokens, bucket.tokens_per_minute, bucket.requests_per_minute]
        try:
            reply = await self._reserve_script(keys=keys, args=args)
        except Exception as exc:
            if not _is_store_fault(exc):
                raise
            self._failed("reserve", exc)
            self._to_cancel.append((keys, f"{grant_id}:{tokens}", tokens))
            if self.on_error == "closed":
                return Refusal("state_store_down", "", STORE_DOWN_RETRY_S)
            return Grant(
                OPEN_GRANT_PREFIX + grant_id, tokens, tuple(b.key for b in buckets), day, minute
            )
        self._recovered()
        if int(reply[0]) == 3:
            return Refusal("state_store_down", "", STORE_DOWN_RETRY_S)
        if int(reply[0]) != 0:
            return Grant(grant_id, tokens, tuple(b.key for b in buckets), day, minute)
        bucket_key = buckets[int(reply[1]) - 1].key
        reason = _REASONS[int(reply[2])]
        if reason == "daily_tokens":
            return Refusal(
                reason, bucket_key, _daily_retry_s(now, in_flight_only=int(reply[3]) == 1)
            )
        return Refusal(reason, bucket_key, _minute_retry_s(now))

    async def settle(self, grant: Grant, used_tokens: int) -> None:
        used, clamped = _settled_amount(grant, used_tokens)
        self.clamped += clamped
        if not grant.checked:
            return
        keys = self._keys(grant.buckets, grant.day, grant.minute)
        try:
            await self._settle_script(
                keys=keys, args=[f"{grant.id}:{grant.tokens}", grant.tokens, used]
            )
        except Exception as exc:
            if not _is_store_fault(exc):
                raise
            # The reservation stays and will count as fully used after its ttl: never a leak.
            self._failed("settle", exc)
            return
        self._recovered()

    async def usage(self, key: str, now: float | None = None) -> dict[str, int]:
        """Raises :class:`StateStoreUnavailable` when Redis cannot be reached."""
        now = time.time() if now is None else now
        _, day, minute = _windows(now)
        try:
            reply = await self._usage_script(keys=self._keys([key], day, minute), args=[repr(now)])
        except Exception as exc:
            if not _is_store_fault(exc):
                raise
            self._failed("usage", exc)
            raise StateStoreUnavailable(f"quota store {self.url!r} is unavailable: {exc}") from exc
        self._recovered()
        used, reserved, minute_tokens, minute_requests = (int(x) for x in reply)
        return {
            "used": used,
            "reserved": reserved,
            "minute_tokens": minute_tokens,
            "minute_requests": minute_requests,
        }

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except Exception as exc:
            if not _is_store_fault(exc):
                raise
            return False

    async def close(self) -> None:
        await self._client.aclose()
        await self._client.connection_pool.aclose()

    def _keys(self, bucket_keys: Sequence[str], day: str, minute: int) -> list[str]:
        prefix = self.key_prefix
        keys = []
        for key in bucket_keys:
            keys += [
                f"{prefix}d:{key}:{day}",
                f"{prefix}m:{key}:{minute}",
                f"{prefix}p:{key}:{day}",
            ]
        return keys

    def _failed(self, operation: str, exc: BaseException) -> None:
        self.errors += 1
        if not self._down:
            self._down = True
            log.warning("quota store %s failed on %s (%s: %s); failing %s", self.url, operation,
                        type(exc).__name__, exc, self.on_error)  # fmt: skip

    def _recovered(self) -> None:
        if self._down:
            self._down = False
            log.warning("quota store %s answers again", self.url)
        if self._to_cancel and (self._cancelling is None or self._cancelling.done()):
            self._cancelling = asyncio.get_running_loop().create_task(self.cancel_failed())

    async def cancel_failed(self) -> int:
        """Cancel the reserves that failed on a store fault (off the request path, once the
        store answers again); returns how many had run and were undone."""
        undone = 0
        marker_ttl = math.ceil(self.reservation_ttl_s + LATE_SETTLE_MARGIN_S)
        while self._to_cancel:
            keys, member, tokens = self._to_cancel[0]
            try:
                undone += int(await self._cancel_script(keys=keys, args=[member, tokens, marker_ttl]))
            except Exception as exc:
                if not _is_store_fault(exc):
                    raise
                self._failed("cancel", exc)
                break
            self._to_cancel.popleft()
        self.cancels_undone += undone
        return undone


def _is_store_fault(exc: BaseException) -> bool:
    """Whether ``exc`` means Redis could not serve us (as opposed to a bug in our call)."""
    from redis.exceptions import RedisError

    return isinstance(exc, RedisError | OSError | asyncio.TimeoutError)


def make_store(kind: str, url: str = "", on_error: str = "closed", timeout_s: float = 0.5) -> QuotaStore:
    """Build a store from configuration: ``kind`` is ``"memory"`` or ``"redis"``.

    >>> make_store("memory", "", "closed")
    MemoryQuotaStore(reservation_ttl_s=600)
    """
    _check_on_error(on_error)
    if kind == "memory":
        return MemoryQuotaStore()
    if kind == "redis":
        if not url:
            raise ConfigError(
                "url is required for a redis quota store, e.g. 'redis://127.0.0.1:6379/0'"
            )
        return RedisQuotaStore(url, on_error="open" if on_error == "open" else "closed", timeout_s=timeout_s)
    raise ConfigError(f"quota store kind must be 'memory' or 'redis', got {kind!r}")
