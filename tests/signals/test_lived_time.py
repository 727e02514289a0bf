from __future__ import annotations

import datetime as dt
import math
import random
from typing import Any

import polars as pl
import pytest

from distillguard.signals.base import Finding
from distillguard.signals.lived_time import LivedTimeSignal, country_offsets, identity_rings
from tests.signals.helpers import finding

T0 = dt.datetime(2026, 4, 20, tzinfo=dt.UTC)
ONE_ZONE = {"JP": 9, "TR": 3, "VN": 7, "KR": 9, "DE": 2, "GB": 1}  # offsets in late April (summer time)


def _office(rows: list[dict[str, Any]], acct: str, offset: int, rng: random.Random, days: int = 12) -> None:
    """Weekday office hours (09-18 local) at ``offset``, a few sittings a day."""
    for d in range(days):
        for h in rng.sample(range(9, 18), 4):
            for _ in range(rng.randint(1, 3)):
                ts = T0 + dt.timedelta(days=d, hours=h - offset, minutes=rng.randrange(60))
                rows.append({"request_id": f"{acct}-{len(rows)}", "ts": ts, "account_id": acct})


def _population() -> tuple[list[dict[str, Any]], dict[str, str]]:
    rng = random.Random(5)
    rows: list[dict[str, Any]] = []
    country: dict[str, str] = {}
    for i in range(36):  # well placed: they teach the signal what a day looks like
        c = list(ONE_ZONE)[i % len(ONE_ZONE)]
        _office(rows, f"home{i:02d}", ONE_ZONE[c], rng)
        country[f"home{i:02d}"] = c
    for i, c in enumerate(["US", "DE", "BR", "FR", "DE", "US"]):  # a fleet at UTC+8
        _office(rows, f"fleet{i}", 8, rng)
        country[f"fleet{i}"] = c
    _office(rows, "berlin", 2, rng)
    country["berlin"] = "DE"
    for k in range(5):
        rows.append({"request_id": f"short-{k}", "ts": T0 + dt.timedelta(days=k, hours=3), "account_id": "short"})
    country["short"] = "DE"
    for h in range(24 * 12):  # round the clock, many requests
        rows.append({"request_id": f"bot-{h}", "ts": T0 + dt.timedelta(hours=h, minutes=7), "account_id": "bot"})
    country["bot"] = "DE"
    return rows, country


def _lived(sig: LivedTimeSignal, rows: list[dict[str, Any]], country: dict[str, str]) -> tuple[Finding, dict[str, dict[str, Any]]]:
    _, index = finding(sig, rows)
    acc = index.join(pl.DataFrame({"account_id": list(country), "country": list(country.values())}), on="account_id")
    out = sig.finalize_accounts(acc)
    assert out is not None
    feats = {r["account_id"]: r for r in out.features.join(index, on="account").to_dicts()}
    return out, feats



def _accounts_table(index: pl.DataFrame, accounts: dict[str, dict[str, Any]]) -> pl.DataFrame:
    """The accounts table (``account_id`` -> claims and identity columns), joined to ``index``."""
    table = pl.DataFrame([{"account_id": a, **v} for a, v in accounts.items()], infer_schema_length=None)
    return index.join(table, on="account_id")

@pytest.fixture(scope="module")
def lived() -> tuple[Finding, dict[str, dict[str, Any]]]:
    rows, country = _population()
    return _lived(LivedTimeSignal(), rows, country)


def test_an_account_billed_in_germany_living_at_utc8_is_misplaced(lived: tuple[Finding, dict[str, dict[str, Any]]]) -> None:
    _, f = lived
    r = f["fleet1"]
    assert r["offset"] == 8 and r["confidence"] >= 0.9
    assert 6 <= r["tz_gap"] <= 7  # Germany keeps +1 and +2 (summer time)
    homes = [f[a]["ts_misplaced"] for a in f if a.startswith("home")]
    # Six of the 45 accounts live six hours or more from their claim: -log10(6/45).
    assert max(homes) == 0.0 and r["ts_misplaced"] == pytest.approx(-math.log10(6 / len(f)))
    assert f["fleet2"]["tz_gap"] == 10 and f["fleet2"]["ts_misplaced"] > r["ts_misplaced"]  # billed in BR


def test_an_account_living_where_it_is_billed_has_no_gap(lived: tuple[Finding, dict[str, dict[str, Any]]]) -> None:
    _, f = lived
    assert f["berlin"]["offset"] in (1, 2, 3) and f["berlin"]["tz_gap"] <= 1
    assert f["berlin"]["ts_misplaced"] == 0.0
    assert all(f[a]["tz_gap"] <= 1 for a in f if a.startswith("home"))


def test_five_requests_or_round_the_clock_give_no_lived_time(lived: tuple[Finding, dict[str, dict[str, Any]]]) -> None:
    _, f = lived
    for a in ("short", "bot"):
        assert f[a]["offset"] is None and f[a]["tz_gap"] is None and f[a]["ts_misplaced"] == 0.0
    assert f["bot"]["confidence"] < 0.5 and f["bot"]["fit"] <= 0.2  # every offset fits alike


def test_the_fleet_shares_one_lived_tz_artifact_and_the_well_placed_none(lived: tuple[Finding, dict[str, dict[str, Any]]]) -> None:
    out, f = lived
    assert out.artifacts is not None and out.texts is not None
    ids = {r["account"]: a for a, r in f.items()}
    exact = out.artifacts.filter(pl.col("kind") == "lived_tz")
    assert sorted(ids[a] for a in exact["account"].to_list()) == [f"fleet{i}" for i in range(6)]
    assert exact["value"].n_unique() == 1
    # joining only: +7, +8 and +9, since a lived offset is sure to an hour and one fleet reads +7 here, +8 there
    near = out.artifacts.filter(pl.col("kind") == "lived_tz_near")
    assert sorted(set(ids[a] for a in near["account"].to_list())) == [f"fleet{i}" for i in range(6)]
    assert near["value"].n_unique() == 3 and near.height == 18
    texts = dict(zip(out.texts["value"].to_list(), out.texts["text"].to_list(), strict=True))
    assert texts[exact["value"][0]] == "UTC+8, billed in DE, US, BR and FR"
    assert sorted(texts[v] for v in near["value"].unique().to_list()) == [
        f"within an hour of UTC+{o}, billed in DE, US, BR and FR" for o in (7, 8, 9)
    ]
    assert out.explain is not None
    (line,) = out.explain(f["fleet1"])
    assert line.startswith("lives at UTC+8 (") and "billed in DE (UTC+1/+2)" in line
    assert out.explain(f["berlin"]) == []


def test_too_few_well_placed_accounts_learn_no_reference_day() -> None:
    rows, country = _population()
    _, f = _lived(LivedTimeSignal(min_reference=100), rows, country)
    assert all(r["offset"] is None and r["ts_misplaced"] == 0.0 for r in f.values())


def test_unknown_or_missing_claims_give_no_gap() -> None:
    rows, country = _population()
    country["fleet0"] = "ZZ"
    del country["fleet2"]
    _, f = _lived(LivedTimeSignal(), rows, country)
    assert f["fleet0"]["offset"] == 8 and f["fleet0"]["tz_gap"] is None and f["fleet0"]["ts_misplaced"] == 0.0
    assert f["fleet2"]["country"] is None and f["fleet2"]["tz_gap"] is None


def test_without_the_accounts_table_there_is_activity_only() -> None:
    rows, _ = _population()
    sig = LivedTimeSignal()
    assert sig.finalize_accounts(pl.DataFrame({"account": [0]})) is None  # nothing finalized yet
    f, _ = finding(sig, rows)
    assert f.features.columns == ["account", "n", "cells"] and f.artifacts is None


def test_active_hours_count_days_not_requests() -> None:
    rows = [{"request_id": f"r{i}", "ts": T0 + dt.timedelta(minutes=i), "account_id": "a"} for i in range(50)]
    rows += [{"request_id": f"s{d}", "ts": T0 + dt.timedelta(days=d, minutes=5), "account_id": "a"} for d in range(1, 4)]
    f, _ = finding(LivedTimeSignal(), rows)
    assert f.features.row(0) == (0, 53, 1 + 3)  # hour 0 on day 0 holds 50 requests: one active hour


def test_countries_file_keeps_summer_time_and_half_hours() -> None:
    table = country_offsets()
    assert table["DE"] == (1.0, 2.0) and table["IN"] == (5.5,) and table["JP"] == (9.0,)
    assert min(table["US"]) == -10.0 and max(table["US"]) == -4.0
    assert len(table) > 200


def _sittings(rows: list[dict[str, Any]], acct: str, offset: int, rng: random.Random, days: int = 2) -> None:
    """Two or three office-hour sittings a day at ``offset``: a careful account's pace."""
    for d in range(days):
        for h in rng.sample(range(9, 18), 3):
            ts = T0 + dt.timedelta(days=d, hours=h - offset, minutes=rng.randrange(60))
            rows.append({"request_id": f"{acct}-{len(rows)}", "ts": ts, "account_id": acct})


def test_a_ring_sharing_a_phone_lives_at_its_operators_clock_before_any_member_could() -> None:
    rng = random.Random(9)
    rows, country = _population()
    accounts: dict[str, dict[str, Any]] = {a: {"country": c} for a, c in country.items()}
    for i, c in enumerate(["US", "DE", "BR", "FR", "GB", "US"]):  # one phone, one card: a ring at UTC+8
        _sittings(rows, f"ring{i}", 8, rng)
        accounts[f"ring{i}"] = {"country": c, "phone_hash": "p-ring", "payment_fp": "card-1" if i < 3 else "card-2"}
    for i in range(4):  # a family in Germany sharing a card, living there
        _sittings(rows, f"family{i}", 2, rng)
        accounts[f"family{i}"] = {"country": "DE", "payment_fp": "card-family"}
    for a in accounts:  # everyone on one webmail domain: no ring
        accounts[a]["email"] = f"{a}@gmail.example"
    sig = LivedTimeSignal()
    _, index = finding(sig, rows)
    acc = _accounts_table(index, accounts)
    out = sig.finalize_accounts(acc)
    assert out is not None and out.artifacts is not None and out.explain is not None
    f = {r["account_id"]: r for r in out.features.join(index, on="account").to_dicts()}
    # no member has the active hours for a lived offset of its own
    assert all(f[f"ring{i}"]["offset"] is None for i in range(6))
    (ring_offset,) = {f[f"ring{i}"]["ring_offset"] for i in range(6)}
    assert abs(ring_offset - 8) <= 1 and f["ring0"]["ring_size"] == 6
    assert all(f[f"family{i}"]["ring_offset"] is None for i in range(4))
    arts = out.artifacts.join(index, on="account")
    near = set(arts.filter(pl.col("kind") == "lived_tz_near")["account_id"].to_list())
    assert near == {f"fleet{i}" for i in range(6)} | {f"ring{i}" for i in range(6)}
    # a ring's clock only joins webs: no ring member carries the linking lived_tz
    assert set(arts.filter(pl.col("kind") == "lived_tz")["account_id"].to_list()) == {f"fleet{i}" for i in range(6)}
    (line,) = out.explain(f["ring1"])
    assert line.startswith("one of a ring of 6 accounts") and f"UTC+{ring_offset}" in line and "(this one in DE)" in line
    # the ring's clock links it to the fleet living at UTC+8, it does not accuse
    assert f["ring1"]["ts_misplaced"] == 0.0
    # rings are kept while the accounts table holds, found again when it changes
    apart = acc.with_columns(phone_hash=pl.lit(None, pl.String), payment_fp=pl.col("account_id"))
    again = sig.finalize_accounts(apart)
    assert again is not None and again.features["ring_offset"].null_count() == again.features.height


def test_a_ring_claiming_its_operators_zone_for_most_members_still_lives_there() -> None:
    # A careful operator buys identities in many countries, its own zone among them: a ring
    # of seven at UTC+8 with four members billed around UTC+8 and three far from it claims
    # places its one clock cannot keep. Most of it is not misplaced; it is still one ring
    # living where three of its members cannot. A family billed and living in Germany is not.
    rng = random.Random(11)
    rows, country = _population()
    accounts: dict[str, dict[str, Any]] = {a: {"country": c} for a, c in country.items()}
    claims = ["SG", "MY", "PH", "HK", "US", "DE", "BR"]
    for i, c in enumerate(claims):
        _sittings(rows, f"ring{i}", 8, rng)
        accounts[f"ring{i}"] = {"country": c, "phone_hash": "p-ring" if i < 4 else "p-ring-2", "payment_fp": "card-ring"}
    for i in range(4):
        _sittings(rows, f"family{i}", 2, rng)
        accounts[f"family{i}"] = {"country": "DE", "payment_fp": "card-family"}
    for a in accounts:
        accounts[a]["email"] = f"{a}@gmail.example"
    sig = LivedTimeSignal()
    _, index = finding(sig, rows)
    acc = _accounts_table(index, accounts)
    out = sig.finalize_accounts(acc)
    assert out is not None and out.artifacts is not None
    f = {r["account_id"]: r for r in out.features.join(index, on="account").to_dicts()}
    (ring_offset,) = {f[f"ring{i}"]["ring_offset"] for i in range(len(claims))}
    assert ring_offset is not None and abs(ring_offset - 8) <= 1 and f["ring0"]["ring_size"] == len(claims)
    assert all(f[f"family{i}"]["ring_offset"] is None for i in range(4))
    near = set(out.artifacts.join(index, on="account").filter(pl.col("kind") == "lived_tz_near")["account_id"].to_list())
    assert {f"ring{i}" for i in range(len(claims))} <= near and not near & {f"family{i}" for i in range(4)}


def test_in_a_logs_first_days_the_reference_day_comes_from_the_most_active_accounts() -> None:
    # Two days in: nobody has the 20 active hours a lived offset of its own needs, so no
    # reference day could be learned from such accounts, yet a ring's pooled hours can speak.
    rng = random.Random(4)
    rows: list[dict[str, Any]] = []
    accounts: dict[str, dict[str, Any]] = {}
    zones = {"JP": 9, "VN": 7, "TR": 3, "AR": -3, "CO": -5, "CR": -6}  # office hours around the clock in UTC
    for i in range(60):
        c = list(zones)[i % len(zones)]
        _sittings(rows, f"home{i:02d}", zones[c], rng, days=3)
        accounts[f"home{i:02d}"] = {"country": c}
    for i, c in enumerate(["US", "DE", "BR", "FR", "GB", "US"]):
        _sittings(rows, f"ring{i}", 8, rng, days=3)
        accounts[f"ring{i}"] = {"country": c, "phone_hash": "p-ring"}
    sig = LivedTimeSignal()
    _, index = finding(sig, rows)
    acc = _accounts_table(index, accounts)
    out = sig.finalize_accounts(acc)
    assert out is not None
    f = {r["account_id"]: r for r in out.features.join(index, on="account").to_dicts()}
    assert max(r["cells"] for r in f.values()) < sig.min_cells and all(r["offset"] is None for r in f.values())
    (ring_offset,) = {f[f"ring{i}"]["ring_offset"] for i in range(6)}
    assert ring_offset is not None and abs(ring_offset - 8) <= 1
    assert all(f[f"home{i:02d}"]["ring_offset"] is None for i in range(60))
    # half a day in, the most active accounts have not yet covered the day: no reference, nothing lived
    first = [r for r in rows if r["ts"] < T0 + dt.timedelta(hours=12)]
    sig2 = LivedTimeSignal()
    _, index2 = finding(sig2, first)
    acc2 = _accounts_table(index2, accounts)
    out2 = sig2.finalize_accounts(acc2)
    assert out2 is not None and out2.features["ring_offset"].null_count() == out2.features.height


def test_a_stranger_on_a_ring_s_reissued_number_is_not_in_the_ring() -> None:
    # Four accounts verified with one number within a week; a stranger given it a month later.
    created = [T0, T0 + dt.timedelta(days=2), T0 + dt.timedelta(days=5), T0 + dt.timedelta(days=6), T0 + dt.timedelta(days=36)]
    acc = pl.DataFrame(
        {"account": pl.Series(range(5), dtype=pl.UInt32), "created_at": created, "phone_hash": ["p-ring"] * 5,
         "payment_fp": [None] * 5, "email": [None] * 5, "org_id": [None] * 5},
        schema_overrides={c: pl.String for c in ("payment_fp", "email", "org_id")},
    )  # fmt: skip
    rings = identity_rings(acc, ring_max=8)
    assert sorted(rings["account"].to_list()) == [0, 1, 2, 3] and rings["ring"].n_unique() == 1
    assert sorted(identity_rings(acc.drop("created_at"), ring_max=8)["account"].to_list()) == [0, 1, 2, 3, 4]


def test_rings_chained_through_a_widely_held_domain_stay_rings() -> None:
    # Two rings of four (a card each, one member of each on a mail domain that six strangers
    # also use): chained, 14 accounts, past ring_max 12; the domain, the most held value,
    # goes and the two cards stay rings. The strangers share nothing else: no ring.
    n = 14
    card = ["c-a"] * 4 + ["c-b"] * 4 + [None] * 6
    email = ["x@free.example", None, None, None, "y@free.example", None, None, None] + [f"u{i}@free.example" for i in range(6)]
    acc = pl.DataFrame(
        {"account": pl.Series(range(n), dtype=pl.UInt32), "phone_hash": [None] * n, "payment_fp": card,
         "email": email, "org_id": [None] * n},
        schema_overrides={c: pl.String for c in ("phone_hash", "payment_fp", "email", "org_id")},
    )  # fmt: skip
    rings = identity_rings(acc, ring_max=12)
    by_ring = rings.group_by("ring").agg(pl.col("account").sort()).sort("ring")["account"].to_list()
    assert by_ring == [[0, 1, 2, 3], [4, 5, 6, 7]]
    # Within ring_max the chain is one ring, domain and all (nothing to take apart).
    assert sorted(identity_rings(acc, ring_max=14)["account"].to_list()) == list(range(n))
