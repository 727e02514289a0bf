from __future__ import annotations

import datetime as dt

import polars as pl

from distillguard.signals.lockstep import LockstepSignal
from distillguard.signals.registration import RegistrationSignal, phone_held
from tests.signals.helpers import finding

T0 = dt.datetime(2026, 4, 22, tzinfo=dt.UTC)


def test_adoption_of_a_new_model_in_the_same_window_is_one_artifact() -> None:
    rows = []
    for a in range(6):
        for k in range(10):
            rows.append({"request_id": f"o{a}{k}", "ts": T0 + dt.timedelta(hours=k), "account_id": f"a{a}",
                         "model": "m-1", "input_tokens": 1, "output_tokens": 1})  # fmt: skip
            rows.append({"request_id": f"n{a}{k}", "ts": T0 + dt.timedelta(days=5, minutes=10 * a + k),
                         "account_id": f"a{a}", "model": "m-2", "input_tokens": 1, "output_tokens": 1})  # fmt: skip
    f, _ = finding(LockstepSignal(), rows)
    assert f.artifacts is not None
    assert f.artifacts["value"].n_unique() == 1 and f.artifacts.height == 6  # m-1 is not "released"


def test_registration_artifacts_and_burst_text() -> None:
    acc = pl.DataFrame(
        {
            "account": pl.Series([0, 1, 2], dtype=pl.UInt32),
            "account_id": ["a", "b", "c"],
            "created_at": [T0, T0 + dt.timedelta(minutes=5), T0 + dt.timedelta(days=3)],
            "email": ["x@Acme.io", "y@acme.io", "z@gmail.com"],
            "email_domain": [None, None, None],
            "phone_hash": ["p1", "p1", None],
            "payment_fp": [None, None, None],
            "signup_ip": ["203.0.113.5", "203.0.113.9", None],
            "verified": [False, False, True],
            "org_id": [None, None, None],
        },
        schema_overrides={"email_domain": pl.String, "payment_fp": pl.String, "org_id": pl.String},
    )
    sig = RegistrationSignal()
    f = sig.finalize_accounts(acc)
    assert f.artifacts is not None and f.texts is not None
    # The same table again gives the kept finding; a changed one is read again.
    assert sig.finalize_accounts(acc.clone()) is f
    moved = sig.finalize_accounts(acc.with_columns(phone_hash=pl.Series(["p1", "p2", None])))
    assert moved is not f and moved.artifacts is not None
    assert moved.artifacts.filter(pl.col("kind") == "phone_hash")["value"].n_unique() == 2
    dom = f.artifacts.filter(pl.col("kind") == "email_domain")
    assert dom.group_by("value").len()["len"].sort().to_list() == [1, 2]
    assert "acme.io" in f.texts["text"].to_list()
    assert "2026-04-22 00:00 UTC" in f.texts["text"].to_list()
    assert f.artifacts.filter(pl.col("kind") == "signup_prefix")["value"].n_unique() == 1
    assert "203.0.113.0/24 in the week of 2026-04-20" in f.texts["text"].to_list()


def test_a_signup_network_ties_accounts_registered_from_it_in_the_same_week_only() -> None:
    # A wave registered from a proxy /24 within hours; a home user of that /24 signed up months before.
    created = [T0, T0 + dt.timedelta(hours=2), T0 - dt.timedelta(days=90), T0 + dt.timedelta(days=1)]
    acc = pl.DataFrame(
        {
            "account": pl.Series([0, 1, 2, 3], dtype=pl.UInt32),
            "account_id": ["w1", "w2", "home", "later"],
            "created_at": created,
            "email": [None] * 4,
            "email_domain": [None] * 4,
            "phone_hash": [None] * 4,
            "payment_fp": [None] * 4,
            "signup_ip": ["198.51.100.7", "198.51.100.200", "198.51.100.33", "2001:db8::1"],
            "verified": [False] * 4,
            "org_id": [None] * 4,
        },
        schema_overrides={c: pl.String for c in ("email", "email_domain", "phone_hash", "payment_fp", "org_id")},
    )
    f = RegistrationSignal().finalize_accounts(acc)
    assert f.artifacts is not None
    net = f.artifacts.filter(pl.col("kind") == "signup_prefix").sort("account")
    assert net["account"].to_list() == [0, 1, 2, 3]  # an IPv6 address is its own network
    v = net["value"].to_list()
    assert v[0] == v[1] and len({v[0], v[2], v[3]}) == 3


def test_a_number_taken_up_a_week_after_its_last_holder_is_marked_reissued_and_held_apart() -> None:
    # Three fleet sign-ups with one number over nine days (gaps of 4 and 5 days), a stranger
    # given the number by the carrier 30 days after the last, and the stranger's family member
    # on it two days later; a second number used twice in an hour.
    days = [0, 4, 9, 39, 41, 0, 0.04]
    acc = pl.DataFrame(
        {
            "account": pl.Series(range(7), dtype=pl.UInt32),
            "account_id": ["f1", "f2", "f3", "s1", "s2", "w1", "w2"],
            "created_at": [T0 + dt.timedelta(days=d) for d in days],
            "email": [None] * 7,
            "email_domain": [None] * 7,
            "phone_hash": ["n1"] * 5 + ["n2"] * 2,
            "payment_fp": [None] * 7,
            "signup_ip": [None] * 7,
            "verified": [False] * 7,
            "org_id": [None] * 7,
        },
        schema_overrides={c: pl.String for c in ("email", "email_domain", "payment_fp", "signup_ip", "org_id")},
    )
    shuffled = acc.sample(fraction=1.0, shuffle=True, seed=3)
    held = dict(phone_held(shuffled).select("account", "phone_hash").iter_rows())
    assert held[0] == held[1] == held[2] == "n1" and held[5] == held[6] == "n2"
    assert held[3] == held[4] == "n1 (reissued by 2026-05-31)"
    f = RegistrationSignal().finalize_accounts(shuffled)
    assert f.artifacts is not None
    reissued = dict(f.features.select("account", "reissued").iter_rows())
    assert [a for a, r in sorted(reissued.items()) if r] == [3, 4]
    # The link step keeps the number one value (it decides what a reissued tie is worth).
    phone = dict(f.artifacts.filter(pl.col("kind") == "phone_hash").select("account", "value").iter_rows())
    assert phone[0] == phone[3] == phone[4]
    # The gap is measured from the last earlier sign-up, not from the first (nine days).
    split = dict(phone_held(acc, days=4.5).select("account", "phone_hash").iter_rows())
    assert split[0] == split[1] == "n1" != split[2]
