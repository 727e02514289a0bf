"""Quotas grant nothing beyond a budget: limits, windows, settling, expiry, concurrency, Redis faults.

Every behaviour test runs on both stores; the Redis ones on a real redis-server (``redis_server``).
Time is passed as ``now``, so windows are crossed without sleeping.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

import pytest
import redis.asyncio as redis_asyncio

from distillguard.errors import ConfigError
from distillguard.gateway.quota import (
    IN_FLIGHT_RETRY_S,
    Bucket,
    Grant,
    MemoryQuotaStore,
    QuotaStore,
    RedisQuotaStore,
    Refusal,
    StateStoreUnavailable,
    _windows,
    make_store,
)
from tests.gateway.redis_server import RedisServer, have_redis_server

# Where a test is about exactness, not about faults, a store timeout would be a refusal the test
# cannot tell from a wrong answer; on a shared, loaded 2-core machine a new connection has taken
# longer than the default 0.25 s. The fault tests keep short timeouts.
LOADED_TIMEOUT_S = 5.0

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 4, 22, 12, 0, 10, tzinfo=UTC).timestamp()  # 10 s into a minute, mid-day
TO_NEXT_MINUTE = 50.0
NEXT_DAY = datetime(2026, 4, 23, tzinfo=UTC).timestamp()
BIG = 10**9

MakeStore = Callable[..., QuotaStore]


@pytest.fixture

def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "redis"])
async def new_store(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    """Makes stores of one kind; every Redis store of one test shares a fresh key prefix (replicas)."""
    made: list[QuotaStore] = []
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else ""
    prefix = f"test-{uuid.uuid4().hex[:8]}:"

    def make(reservation_ttl_s: float = 600) -> QuotaStore:
        store: QuotaStore
        if request.param == "memory":
            store = MemoryQuotaStore(reservation_ttl_s=reservation_ttl_s)
        else:
            store = RedisQuotaStore(url, key_prefix=prefix, reservation_ttl_s=reservation_ttl_s, timeout_s=LOADED_TIMEOUT_S)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


@pytest.fixture
def store(new_store: MakeStore) -> QuotaStore:
    return new_store()


def acct(
    key: str = "acct:1",
    daily: int = BIG,
    per_minute_tokens: int = BIG,
    per_minute_requests: int = BIG,
) -> Bucket:
    return Bucket(key, daily, per_minute_tokens, per_minute_requests)


async def granted(
    store: QuotaStore, buckets: Sequence[Bucket], tokens: int, now: float = NOW
) -> Grant:
    outcome = await store.reserve(buckets, tokens, now=now)
    assert isinstance(outcome, Grant), outcome
    return outcome


# --- limits and windows -----------------------------------------------------------------


async def test_grant_inside_all_limits_is_charged_to_the_bucket(store: QuotaStore) -> None:
    bucket = acct(daily=1_000, per_minute_tokens=1_000, per_minute_requests=5)
    grant = await granted(store, [bucket], 700)
    assert (grant.tokens, grant.buckets, grant.day, grant.minute) == (
        700,
        ("acct:1",),
        "2026-04-22",
        int(NOW // 60),
    )
    assert grant.checked
    assert await store.usage("acct:1", now=NOW) == {
        "used": 0,
        "reserved": 700,
        "minute_tokens": 700,
        "minute_requests": 1,
    }
    assert await store.usage("acct:other", now=NOW) == {
        "used": 0,
        "reserved": 0,
        "minute_tokens": 0,
        "minute_requests": 0,
    }
    await granted(store, [bucket], 300)  # exactly the rest of the day's budget


async def test_daily_refusal_names_bucket_and_when_the_day_ends(store: QuotaStore) -> None:
    bucket = acct(daily=1_000)
    await store.settle(await granted(store, [bucket], 600), 600)
    before = await store.usage("acct:1", now=NOW)
    assert await store.reserve([bucket], 401, now=NOW) == Refusal(
        "daily_tokens", "acct:1", NEXT_DAY - NOW
    )
    assert await store.usage("acct:1", now=NOW) == before  # a refusal charges nothing
    await granted(store, [bucket], 400)


async def test_daily_refusal_by_reservations_in_flight_says_retry_soon(store: QuotaStore) -> None:
    bucket = acct(daily=1_000)
    grant = await granted(store, [bucket], 600)
    assert await store.reserve([bucket], 500, now=NOW) == Refusal(
        "daily_tokens", "acct:1", IN_FLIGHT_RETRY_S
    )
    await store.settle(grant, 100)
    await granted(store, [bucket], 500)


async def test_tokens_per_minute_refusal_and_the_next_minute(store: QuotaStore) -> None:
    bucket = acct(daily=5_000, per_minute_tokens=1_000)
    await store.settle(await granted(store, [bucket], 600), 600)
    assert await store.reserve([bucket], 500, now=NOW + 49) == Refusal(
        "tokens_per_minute", "acct:1", 1.0
    )
    assert await store.reserve([bucket], 500, now=NOW) == Refusal(
        "tokens_per_minute", "acct:1", TO_NEXT_MINUTE
    )
    await granted(store, [bucket], 500, now=NOW + TO_NEXT_MINUTE)  # a new minute
    usage = await store.usage("acct:1", now=NOW + TO_NEXT_MINUTE)
    assert usage == {
        "used": 600,
        "reserved": 500,
        "minute_tokens": 500,
        "minute_requests": 1,
    }  # the day goes on


async def test_requests_per_minute_refusal_and_the_next_minute(store: QuotaStore) -> None:
    bucket = acct(per_minute_requests=2)
    await granted(store, [bucket], 0)
    await granted(store, [bucket], 10)
    assert await store.reserve([bucket], 0, now=NOW) == Refusal(
        "requests_per_minute", "acct:1", TO_NEXT_MINUTE
    )
    await granted(store, [bucket], 0, now=NOW + TO_NEXT_MINUTE)


async def test_a_new_utc_day_resets_the_daily_budget(store: QuotaStore) -> None:
    bucket = acct(daily=1_000)
    await store.settle(await granted(store, [bucket], 1_000), 1_000)
    refusal = await store.reserve([bucket], 1, now=NEXT_DAY - 0.5)
    assert refusal == Refusal("daily_tokens", "acct:1", 0.5)
    grant = await granted(store, [bucket], 1_000, now=NEXT_DAY)
    assert grant.day == "2026-04-23"
    assert (await store.usage("acct:1", now=NEXT_DAY))["reserved"] == 1_000
    assert (await store.usage("acct:1", now=NOW))["used"] == 1_000  # yesterday is kept apart


async def test_cluster_and_account_are_both_charged_and_the_tighter_refuses(
    store: QuotaStore,
) -> None:
    cluster = Bucket("cluster:7", 1_500, BIG, BIG)
    first, second = acct("acct:a", daily=1_000), acct("acct:b", daily=1_000)
    await granted(store, [first, cluster], 800)
    assert (await store.usage("cluster:7", now=NOW))["reserved"] == 800
    assert await store.reserve([second, cluster], 800, now=NOW) == Refusal(
        "daily_tokens", "cluster:7", IN_FLIGHT_RETRY_S
    )
    assert (await store.usage("acct:b", now=NOW))["reserved"] == 0  # nothing charged on a refusal
    await granted(store, [second, cluster], 700)
    assert (await store.usage("cluster:7", now=NOW))["reserved"] == 1_500
    roomy_cluster = Bucket("cluster:8", BIG, BIG, BIG)
    assert await store.reserve([first, roomy_cluster], 300, now=NOW) == Refusal(
        "daily_tokens", "acct:a", IN_FLIGHT_RETRY_S
    )
    assert (await store.usage("cluster:8", now=NOW))["reserved"] == 0


# --- settling and expiry ----------------------------------------------------------------


async def test_settle_returns_the_unused_part(store: QuotaStore) -> None:
    bucket = acct(daily=1_000, per_minute_tokens=1_000)
    grant = await granted(store, [bucket], 1_000)
    await store.settle(grant, 300)
    assert await store.usage("acct:1", now=NOW) == {
        "used": 300,
        "reserved": 0,
        "minute_tokens": 300,
        "minute_requests": 1,
    }
    await granted(store, [bucket], 700)
    assert isinstance(await store.reserve([bucket], 1, now=NOW), Refusal)
    await store.settle(grant, 300)  # a second settle of the same grant changes nothing
    assert (await store.usage("acct:1", now=NOW))["used"] == 300


async def test_settle_more_than_reserved_is_clamped_and_counted(store: QuotaStore) -> None:
    grant = await granted(store, [acct(daily=1_000)], 500)
    await store.settle(grant, 900)
    assert await store.usage("acct:1", now=NOW) == {
        "used": 500,
        "reserved": 0,
        "minute_tokens": 500,
        "minute_requests": 1,
    }
    assert store.clamped == 1


async def test_an_unsettled_reservation_expires_as_fully_used(new_store: MakeStore) -> None:
    store = new_store(reservation_ttl_s=600)
    bucket = acct(daily=1_000)
    grant = await granted(store, [bucket], 400)
    assert (await store.usage("acct:1", now=NOW + 599))["reserved"] == 400
    usage = await store.usage("acct:1", now=NOW + 600)
    assert (usage["used"], usage["reserved"]) == (400, 0)
    await store.settle(grant, 10)  # too late: it already counts as fully used
    assert (await store.usage("acct:1", now=NOW + 601))["used"] == 400
    assert await store.reserve([bucket], 601, now=NOW + 601) == Refusal(
        "daily_tokens", "acct:1", NEXT_DAY - NOW - 601
    )


async def test_expiry_is_swept_by_the_next_reserve_too(new_store: MakeStore) -> None:
    store = new_store(reservation_ttl_s=60)
    bucket = acct(daily=1_000)
    await granted(store, [bucket], 400)
    await granted(store, [bucket], 100, now=NOW + 61)
    usage = await store.usage("acct:1", now=NOW + 61)
    assert (usage["used"], usage["reserved"]) == (400, 100)


# --- bad input --------------------------------------------------------------------------


async def test_bad_input_gets_an_error_naming_the_field(store: QuotaStore) -> None:
    with pytest.raises(ConfigError, match="daily_tokens must be a whole number >= 0, got -1"):
        Bucket("acct:1", -1, 1, 1)
    with pytest.raises(
        ConfigError, match=r"requests_per_minute must be a whole number >= 0, got 1\.5"
    ):
        Bucket("acct:1", 1, 1, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="Bucket key"):
        Bucket("", 1, 1, 1)
    with pytest.raises(ValueError, match="tokens must be a whole number >= 0, got -5"):
        await store.reserve([acct()], -5, now=NOW)
    with pytest.raises(ValueError, match="buckets must name at least one"):
        await store.reserve([], 5, now=NOW)
    with pytest.raises(ValueError, match="must not repeat a key"):
        await store.reserve([acct(), acct()], 5, now=NOW)
    grant = await granted(store, [acct()], 5)
    with pytest.raises(ValueError, match="used_tokens must be a whole number >= 0, got -1"):
        await store.settle(grant, -1)


def test_make_store_checks_its_configuration() -> None:
    assert isinstance(make_store("memory", "", "closed"), MemoryQuotaStore)
    with pytest.raises(ConfigError, match="kind must be 'memory' or 'redis', got 'disk'"):
        make_store("disk", "", "closed")
    with pytest.raises(ConfigError, match="on_error must be 'open' or 'closed', got 'maybe'"):
        make_store("redis", "redis://127.0.0.1:1/0", "maybe")
    with pytest.raises(ConfigError, match="url is required"):
        make_store("redis", "", "open")
    with pytest.raises(ConfigError, match="url is not a Redis URL: 'http://x'"):
        make_store("redis", "http://x", "open")
    with pytest.raises(ConfigError, match="reservation_ttl_s must be a number of seconds > 0"):
        MemoryQuotaStore(reservation_ttl_s=0)


# --- concurrency ------------------------------------------------------------------------

QUOTA = 20_000
JOBS = 200


def _jobs(seed: int) -> list[tuple[int, int, int]]:
    """(tokens reserved, tokens used, yields while holding) per job; demand is ~2.5x the quota."""
    rng = random.Random(seed)
    jobs = []
    for _ in range(JOBS):
        tokens = rng.randint(50, 600)
        used = tokens if rng.random() < 0.6 else rng.randint(0, tokens)
        jobs.append((tokens, used, rng.randint(0, 3)))
    return jobs


async def _drive(stores: Sequence[QuotaStore], seed: int) -> None:
    """200 concurrent reserve/settle jobs on one account; a job refused while others hold tokens retries later."""
    jobs = _jobs(seed)
    assert sum(used for _, used, _ in jobs) > 1.3 * QUOTA, (
        "the plan must ask for more than the quota"
    )
    bucket = acct(f"acct:load-{seed}", daily=QUOTA)
    # What the jobs know they hold: counted after the store granted, dropped before they settle,
    # so it never exceeds what the store holds. If it passes the quota, the store over-granted.
    held = used_total = grants = settling = 0  # settling: tokens whose settle has not returned yet
    settled = asyncio.Condition()
    finished = False

    def worth_retrying(tokens: int) -> bool:
        """Whether the store's answer may have changed: it fits even if nothing more settles, or the day is spent."""
        return held + settling + used_total + tokens <= QUOTA or (
            settling == 0 and used_total + tokens > QUOTA
        )

    async def job(i: int) -> None:
        nonlocal held, used_total, grants, settling
        tokens, used, yields = jobs[i]
        store = stores[i % len(stores)]
        while True:
            outcome = await store.reserve([bucket], tokens, now=NOW)
            if isinstance(outcome, Grant):
                break
            assert (outcome.reason, outcome.bucket) == ("daily_tokens", bucket.key)
            if outcome.retry_after_s > IN_FLIGHT_RETRY_S:
                return  # real usage spent the day: retrying is pointless
            async with settled:  # tokens held by other jobs: retry once enough of them settled
                await asyncio.wait_for(settled.wait_for(lambda: worth_retrying(tokens)), timeout=30)
        held += tokens
        grants += 1
        assert held + used_total <= QUOTA, f"seed {seed}: {held} held + {used_total} used > {QUOTA}"
        for _ in range(yields):
            await asyncio.sleep(0)
        held -= tokens
        used_total += used
        settling += tokens
        await store.settle(outcome, used)
        settling -= tokens
        async with settled:
            settled.notify_all()

    async def watch() -> None:
        while not finished:
            usage = await stores[-1].usage(bucket.key, now=NOW)
            assert usage["used"] + usage["reserved"] <= QUOTA, f"seed {seed}: store holds {usage}"
            await asyncio.sleep(0.002)

    watcher = asyncio.create_task(watch())
    try:
        async with asyncio.TaskGroup() as group:  # the first failure cancels the other jobs
            for i in range(JOBS):
                group.create_task(job(i))
    finally:
        finished = True
        await watcher
    final = await stores[0].usage(bucket.key, now=NOW)
    assert final == {
        "used": used_total,
        "reserved": 0,
        "minute_tokens": used_total,
        "minute_requests": grants,
    }
    assert used_total <= QUOTA
    assert used_total >= 0.9 * QUOTA, f"seed {seed}: only {used_total} of {QUOTA} granted"


@pytest.mark.parametrize("seed", range(50))
async def test_concurrent_reservations_never_exceed_the_quota(
    new_store: MakeStore, seed: int
) -> None:
    await _drive([new_store()], seed)


@pytest.mark.parametrize("seed", range(50))
async def test_four_redis_replicas_never_exceed_the_quota(
    redis_server: RedisServer, seed: int
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    replicas = [RedisQuotaStore(redis_server.url, key_prefix=prefix, timeout_s=LOADED_TIMEOUT_S) for _ in range(4)]
    try:
        await _drive(replicas, seed)
    finally:
        for replica in replicas:
            await replica.close()


# --- Redis specifics and faults -----------------------------------------------------------


async def test_redis_keys_expire_on_their_own(redis_server: RedisServer) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    store = RedisQuotaStore(redis_server.url, key_prefix=prefix, timeout_s=LOADED_TIMEOUT_S)
    client = redis_asyncio.Redis.from_url(redis_server.url)
    try:
        await granted(store, [acct(), Bucket("cluster:1", BIG, BIG, BIG)], 10, now=NOW)
        await store.settle(await granted(store, [acct()], 5, now=NOW), 5)
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        assert len(keys) == 6
        assert all(ttl > 0 for ttl in [await client.ttl(key) for key in keys])
    finally:
        await store.close()
        await client.aclose()


async def test_redis_reserve_retried_with_the_same_id_charges_once(
    redis_server: RedisServer,
) -> None:
    store = RedisQuotaStore(redis_server.url, key_prefix=f"test-{uuid.uuid4().hex[:8]}:")
    try:
        first = await store._reserve([acct()], 100, NOW, "retried")
        assert first == await store._reserve([acct()], 100, NOW, "retried")
        assert (await store.usage("acct:1", now=NOW))["reserved"] == 100
    finally:
        await store.close()


needs_redis = pytest.mark.skipif(not have_redis_server(), reason="redis-server is not installed")


@needs_redis
async def test_redis_down_fails_closed_then_recovers_on_the_same_port() -> None:
    with RedisServer() as server:
        store = RedisQuotaStore(server.url, on_error="closed")
        bucket = acct(daily=1_000)
        grant = await granted(store, [bucket], 600)
        server.stop()
        assert await store.reserve([bucket], 100, now=NOW) == Refusal("state_store_down", "", 1.0)
        await store.settle(grant, 600)  # lost; the reservation would expire as fully used
        assert not await store.ping()
        with pytest.raises(StateStoreUnavailable, match="is unavailable"):
            await store.usage("acct:1", now=NOW)
        assert store.errors == 3
        server.start()
        assert await store.ping()
        # A new, empty server: the 600 reserved before are gone with the old one.
        await granted(store, [bucket], 1_000)
        assert await store.usage("acct:1", now=NOW) == {
            "used": 0,
            "reserved": 1_000,
            "minute_tokens": 1_000,
            "minute_requests": 1,
        }
        assert store.errors == 3
        await store.close()


@needs_redis
async def test_redis_down_fails_open_with_unchecked_grants() -> None:
    with RedisServer() as server:
        store = RedisQuotaStore(server.url, on_error="open")
        bucket = acct(daily=1_000)
        server.stop()
        grant = await granted(store, [bucket], 5_000)  # unchecked: over the daily budget
        assert grant.id.startswith("open-") and not grant.checked
        assert (grant.tokens, grant.buckets) == (5_000, ("acct:1",))
        await store.settle(grant, 5_000)
        assert store.errors == 1  # the settle of an unchecked grant does not touch Redis
        server.start()
        assert await store.reserve([bucket], 5_000, now=NOW) == Refusal(
            "daily_tokens", "acct:1", NEXT_DAY - NOW
        )
        assert (await granted(store, [bucket], 1_000)).checked
        await store.close()


@needs_redis
async def test_redis_that_hangs_times_out_into_a_refusal() -> None:
    with RedisServer() as server:
        store = RedisQuotaStore(server.url, on_error="closed", timeout_s=0.2)
        await granted(store, [acct()], 1)
        server.pause()
        try:
            outcome = await asyncio.wait_for(store.reserve([acct()], 1, now=NOW), timeout=10)
        finally:
            server.resume()
        assert outcome == Refusal("state_store_down", "", 1.0)
        assert store.errors == 1
        await granted(store, [acct()], 1)
        await store.close()


async def test_memory_store_does_not_keep_settled_reservations() -> None:
    store = MemoryQuotaStore()
    for i in range(1_000):
        await store.settle(await granted(store, [acct()], 1, now=NOW + i / 100), 1)
    (day_state,) = store._days.values()
    assert not day_state.pending
    assert len(day_state.deadlines) <= 65  # rebuilt once settled ids outnumber pending ones


@needs_redis
async def test_a_reserve_that_timed_out_but_ran_later_is_undone_once_the_store_answers() -> None:
    with RedisServer() as server:
        store = RedisQuotaStore(server.url, on_error="closed", timeout_s=0.2)
        await granted(store, [acct()], 1)
        server.pause()
        try:  # the command is in the socket when Redis freezes: it runs when Redis wakes
            outcome = await asyncio.wait_for(store.reserve([acct()], 300, now=NOW), timeout=10)
        finally:
            server.resume()
        assert outcome == Refusal("state_store_down", "", 1.0)
        await asyncio.sleep(0.2)
        await granted(store, [acct()], 1)  # the store answers again: the cancel runs after this
        assert store._cancelling is not None
        await store._cancelling
        assert store.cancels_undone == 1
        usage = await store.usage(acct().key, now=NOW)
        assert usage["reserved"] == 2 and usage["minute_tokens"] == 2 and usage["minute_requests"] == 2
        await store.close()


@needs_redis
async def test_a_cancel_that_arrives_first_refuses_the_late_reserve() -> None:
    with RedisServer() as server:
        store = RedisQuotaStore(server.url, on_error="closed")
        _, day, minute = _windows(NOW)
        keys = [*store._keys([acct().key], day, minute), f"{store.key_prefix}x:g1"]
        store._to_cancel.append((keys, "g1:50", 50))
        assert await store.cancel_failed() == 0  # nothing had run: a marker is left
        assert await store._reserve([acct()], 50, NOW, "g1") == Refusal("state_store_down", "", 1.0)
        assert (await store.usage(acct().key, now=NOW))["reserved"] == 0
        await store.close()
