"""The replay clock: simulated time for a log replayed in compressed time, and a gateway that
stamps, counts quotas, ages accounts and scores by it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from distillguard.errors import ConfigError
from distillguard.gateway.app import create_app
from distillguard.gateway.clock import Clock, ReplayClock, WallClock, as_datetime
from distillguard.gateway.directory import Account
from distillguard.gateway.live import LiveScorer
from distillguard.gateway.mock_upstream import MockConfig, create_mock_app
from distillguard.gateway.server import BackgroundServer, GatewaySettings, build_gateway, make_clock
from distillguard.io import LogReader
from tests.hunt.population import population

START = dt.datetime(2026, 4, 22, tzinfo=dt.UTC)


@dataclass
class _Monotonic:
    t: float = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> _Monotonic:
    fake = _Monotonic()
    monkeypatch.setattr("distillguard.gateway.clock.time.monotonic", fake)
    return fake


def test_replay_time_is_start_plus_elapsed_wall_time_times_speed(monotonic: _Monotonic) -> None:
    c = ReplayClock(START, speed=3600)
    assert c.now() == START.timestamp()
    monotonic.t += 2.5  # 2.5 wall seconds = 2.5 simulated hours
    assert as_datetime(c.now()) == START + dt.timedelta(hours=2.5)
    c.restart()
    assert c.now() == START.timestamp()
    assert isinstance(c, Clock) and isinstance(WallClock(), Clock)


def test_wall_clock_is_the_real_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("distillguard.gateway.clock.time.time", lambda: 1_777_000_000.0)
    assert WallClock().now() == 1_777_000_000.0


@pytest.mark.parametrize("speed", [0.0, -1.0, float("inf"), float("nan")])
def test_a_replay_clock_refuses_a_speed_that_is_not_positive_and_finite(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        ReplayClock(START, speed)


def test_a_replay_clock_refuses_a_start_without_offset() -> None:
    with pytest.raises(ValueError, match="start"):
        ReplayClock(dt.datetime(2026, 4, 22), 10.0)


def test_settings_give_a_wall_clock_unless_replaying_and_name_a_bad_field() -> None:
    assert isinstance(make_clock(GatewaySettings(upstream="http://x")), WallClock)
    replay = make_clock(GatewaySettings(upstream="http://x", replay_start="2026-04-22T00:00:00Z", replay_speed=50))
    assert isinstance(replay, ReplayClock) and replay.start == START and replay.speed == 50
    naive = make_clock(GatewaySettings(upstream="http://x", replay_start="2026-04-22T00:00:00"))
    assert isinstance(naive, ReplayClock) and naive.start == START  # a time without offset is UTC
    with pytest.raises(ConfigError, match="replay_start"):
        make_clock(GatewaySettings(upstream="http://x", replay_start="yesterday"))
    with pytest.raises(ConfigError, match="replay_speed"):
        make_clock(GatewaySettings(upstream="http://x", replay_start="2026-04-22T00:00:00Z", replay_speed=0))
    with pytest.raises(ConfigError, match="replay_start"):
        make_clock(GatewaySettings(upstream="http://x", replay_speed=10))


@pytest.fixture(scope="module")
def mock() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_mock_app(MockConfig(latency_ms=1, tokens_per_s=20_000, max_output_tokens=64))) as s:
        yield s


def _gateway(mock: BackgroundServer, tmp_path: Path, **replay: Any) -> GatewaySettings:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "identity: {header: x-account-id}\n"
        "plans:\n"
        "  free: {daily_tokens: 200000, requests_per_minute: 100000, tokens_per_minute: 10000000, max_tokens: 32768}\n"
    )
    accounts = tmp_path / "accounts.jsonl"
    # One day old in the replayed log's time; months old by the wall clock.
    accounts.write_text(json.dumps({"account_id": "acct_1", "created_at": (START - dt.timedelta(days=1)).isoformat(), "plan": "free"}) + "\n")
    return GatewaySettings(
        upstream=mock.url, policy=str(policy), sink=str(tmp_path / "sink"), accounts=str(accounts), live=False, **replay
    )


def _ask(url: str, max_tokens: int) -> httpx.Response:
    body = {"model": "m", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hello"}]}
    return httpx.post(url + "/v1/chat/completions", json=body, headers={"x-account-id": "acct_1"}, timeout=30)


def test_a_gateway_on_a_replay_clock_stamps_counts_and_ages_by_simulated_time(mock: BackgroundServer, tmp_path: Path) -> None:
    gw = build_gateway(_gateway(mock, tmp_path, replay_start="2026-04-22T00:00:00Z", replay_speed=1.0))
    assert isinstance(gw.clock, ReplayClock)
    with BackgroundServer(create_app(gw)) as server:
        assert _ask(server.url, 64).status_code == 200
        # A new account (day 1 of the replay) gets 10 % of the plan: 20,000 tokens, so this is too much.
        too_big = _ask(server.url, 30_000)
        assert too_big.status_code == 400 and too_big.json()["error"]["code"] == "max_tokens_above_plan"
        used_replayed = asyncio.run(gw.store.usage("acct:acct_1", now=gw.clock.now()))
        used_wall = asyncio.run(gw.store.usage("acct:acct_1", now=WallClock().now()))
    assert used_replayed["used"] + used_replayed["reserved"] > 0  # counted on the simulated day
    assert used_wall["used"] == used_wall["reserved"] == 0  # not on today's
    rows = pl.concat([pl.DataFrame(pl.from_arrow(b)) for b in LogReader(tmp_path / "sink").exchange_batches()])
    assert rows.height == 1
    ts = rows["ts"][0]
    assert START <= ts < START + dt.timedelta(hours=1)


def test_the_same_gateway_on_the_wall_clock_sees_an_old_account(mock: BackgroundServer, tmp_path: Path) -> None:
    """The control for the test above: by wall time the account is months old, so the same
    request is served and stamped today."""
    gw = build_gateway(_gateway(mock, tmp_path))
    assert isinstance(gw.clock, WallClock)
    with BackgroundServer(create_app(gw)) as server:
        assert _ask(server.url, 30_000).status_code == 200
    rows = pl.concat([pl.DataFrame(pl.from_arrow(b)) for b in LogReader(tmp_path / "sink").exchange_batches()])
    assert rows["ts"][0] > START + dt.timedelta(days=30)


@dataclass
class _Fixed:
    at: dt.datetime

    def now(self) -> float:
        return self.at.timestamp()


def test_the_live_scorer_scores_as_of_its_clock() -> None:
    """Re-scoring asks the detector for verdicts as of the clock's time (accounts registered
    later in the replayed log are left out), not as of the wall's."""
    ex, acc, arche = population(seed=3)
    last_ts = ex["ts"].max()
    assert isinstance(last_ts, dt.datetime)
    clock = _Fixed(last_ts + dt.timedelta(hours=1))
    live = LiveScorer(every_s=3600, clock=clock)
    asked: list[dt.datetime | None] = []
    flags = live.detector.flags

    def recording(now: dt.datetime | None = None, *, incremental: bool = False) -> Any:
        asked.append(now)
        return flags(now, incremental=incremental)

    live.detector.flags = recording  # type: ignore[method-assign]
    for r in acc.iter_rows(named=True):
        live.account_seen(Account.from_row(r))
    for r in ex.iter_rows(named=True):
        live.observe(r)
    live.rescore()
    clock.at += dt.timedelta(days=2)
    live.rescore()
    assert asked == [last_ts + dt.timedelta(hours=1), last_ts + dt.timedelta(days=2, hours=1)]
    campaign = {a for a, k in arche.items() if k == "naive_scraper"}
    assert campaign and campaign <= {a for a, v in live.live.items() if v.flagged}
    assert LiveScorer(every_s=3600).clock is None  # without a clock: as of the traffic, as before
