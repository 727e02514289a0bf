"""Each tactic of a careful operator shows in the log (tactics-2026 in miniature), and the pure helpers hold."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from distillguard.sim import infra, tactics

from .conftest import Tactics

HOUR = 3600 * 1_000_000


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 10, 50, 333])
def test_ring_of_cuts_a_fleet_into_rings_of_three_to_eight(n: int) -> None:
    ring = tactics.ring_of(np.random.default_rng(n), n, 3, 8)
    sizes = np.bincount(ring)
    assert len(ring) == n and sizes.sum() == n
    assert sizes.max() <= 8
    if n >= 3:
        assert sizes.min() >= 3


def test_waves_helper_registers_in_batches_and_drops_accounts_within_three_days() -> None:
    start, end = 0, 20 * 24 * HOUR
    wave, created, act_start, act_end = tactics.waves(np.random.default_rng(0), 200, start, end, 5, (1, 3), (1, 3))
    assert set(wave.tolist()) == set(range(5))
    for w in range(5):
        c = created[wave == w]
        assert c.max() - c.min() <= 3 * HOUR
    assert ((act_end - act_start) <= 3 * 24 * HOUR).all() and (act_start >= created).all()


def test_the_first_wave_is_as_large_as_the_others() -> None:
    """Every wave gets one account and the rest at random: the first is not robbed of the
    accounts that make sure the others have one (it was a lone account in some seeds)."""
    sizes = np.array([np.bincount(tactics.waves(np.random.default_rng(s), 60, 0, 20 * 24 * HOUR, 6)[0], minlength=6)
                      for s in range(300)])
    assert (sizes.sum(axis=1) == 60).all() and (sizes >= 1).all()
    mean = sizes.mean(axis=0)
    assert abs(mean[0] - mean[1:].mean()) < 1.0, mean
    assert (sizes[:, 0] == 1).mean() < 0.01


def test_sessions_fall_at_human_hours_of_the_given_timezone() -> None:
    rng = np.random.default_rng(1)
    acct = np.repeat(np.arange(20), 50)
    s = np.zeros(len(acct), np.int64)
    e = np.full(len(acct), 14 * 24 * HOUR)
    tz = np.full(len(acct), 8.0)
    start, slot = tactics.sessions(rng, acct, s, e, tz, tactics.WORK, (1, 3))
    local = ((start // HOUR) + 8) % 24
    assert np.isin(local, np.arange(8, 20)).mean() > 0.8
    # a handful of sittings a day, each holding several conversations
    per_acct = [len(np.unique(slot[acct == a])) for a in range(20)]
    assert max(per_acct) <= 3 * 14 and np.mean(per_acct) < 50


def test_human_pacing_in_the_operators_timezone_while_countries_vary(tactics: Tactics) -> None:
    main = tactics.x.filter(pl.col("campaign_id") == "c-main")
    local = (main["ts"].dt.hour().to_numpy() + 8) % 24  # the operator's UTC+8
    assert np.isin(local, np.arange(8, 21)).mean() > 0.8
    countries = tactics.accounts.filter(pl.col("campaign_id") == "c-main")["country"].n_unique()
    assert countries >= 8
    # tens of requests a day, not thousands
    daily = main.group_by("account_id", pl.col("ts").dt.date()).len()["len"]
    assert daily.median() < 40 and daily.max() < 200  # type: ignore[operator]


def test_residential_exits_rotate_per_sitting_and_rarely_overlap(tactics: Tactics) -> None:
    fleet = tactics.x.filter(pl.col("archetype") == "careful").sort("account_id", "ts")
    per = fleet.group_by("account_id").agg(pl.col("ip_prefix").n_unique().alias("p"), pl.col("asn").n_unique().alias("a"))
    assert per["p"].median() >= 10 and per["a"].median() >= 5  # type: ignore[operator]
    home = {a for c in infra.COUNTRIES.values() for a in c[2] + c[3]}
    assert set(fleet["asn"].unique().to_list()) <= home  # residential and mobile networks only
    # sticky within a sitting: consecutive requests minutes apart keep their exit
    near = fleet.with_columns(
        (pl.col("ts").diff().over("account_id") < pl.duration(minutes=5)).alias("near"),
        (pl.col("ip") == pl.col("ip").shift().over("account_id")).alias("same"),
    ).filter(pl.col("near"))
    assert near["same"].mean() > 0.9  # type: ignore[operator]
    # shared by the fleet over time, rarely by two accounts in the same hour
    hourly = fleet.group_by("ip_prefix", pl.col("ts").dt.truncate("1h")).agg(pl.col("account_id").n_unique().alias("k"))
    assert (hourly["k"] > 1).mean() < 0.05  # type: ignore[operator]
    assert fleet.group_by("ip_prefix").agg(pl.col("account_id").n_unique().alias("k"))["k"].max() > 1  # type: ignore[operator]


def test_identity_rings_of_three_to_eight_never_span_the_fleet(tactics: Tactics) -> None:
    a = tactics.accounts.filter(pl.col("campaign_id") == "c-main")
    for col in ("phone_hash", "payment_fp", "email_domain"):
        k = a.filter(pl.col(col).is_not_null()).group_by(col).len()
        if col == "email_domain":
            k = k.filter(~pl.col(col).is_in(list(infra.WEBMAIL)))
        assert 3 <= k["len"].max() <= 8, col  # type: ignore[operator]
        assert k.height >= 4, col
    # compartmented cells: the accounts on one phone hold one card between them, never another cell's
    cells = a.filter(pl.col("phone_hash").is_not_null() & pl.col("payment_fp").is_not_null()).group_by("phone_hash").agg(
        pl.col("payment_fp").n_unique().alias("cards"))
    assert (cells["cards"] == 1).all()


def test_sign_ups_staggered_over_weeks_and_warm_up_before_harvest(tactics: Tactics) -> None:
    a = tactics.accounts.filter(pl.col("campaign_id") == "c-main")
    assert (a["created_at"].max() - a["created_at"].min()).days >= 21  # type: ignore[operator, union-attr]
    first = tactics.x.filter(pl.col("campaign_id") == "c-main").group_by("account_id").agg(pl.col("ts").min().alias("first"))
    lead = a.join(first, on="account_id").select((pl.col("harvest_start") - pl.col("first")).dt.total_hours().alias("h"))["h"]
    assert (lead > 0).mean() >= 0.8 and lead.median() >= 48  # type: ignore[operator]


def test_disposable_waves_register_within_hours_and_last_at_most_three_days(tactics: Tactics) -> None:
    a = tactics.accounts.filter(pl.col("campaign_id") == "c-waves").sort("created_at")
    gaps = a["created_at"].diff().drop_nulls().dt.total_hours()
    assert (gaps > 24).sum() >= 2  # several waves
    waves = (a["created_at"].diff().dt.total_hours().fill_null(0) > 24).cum_sum()
    spread = a.with_columns(waves.alias("w")).group_by("w").agg((pl.col("created_at").max() - pl.col("created_at").min())
                                                                .dt.total_hours().alias("h"))
    assert spread["h"].max() <= 4  # type: ignore[operator]
    life = tactics.x.filter(pl.col("campaign_id") == "c-waves").group_by("account_id").agg(
        (pl.col("ts").max() - pl.col("ts").min()).dt.total_hours().alias("h"), pl.len().alias("n"))
    assert life["h"].max() <= 72 and life["n"].median() > 100  # type: ignore[operator]
