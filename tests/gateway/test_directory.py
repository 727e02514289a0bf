"""The gateway's directory: accounts as the policy and the live hunt see them, keys kept hashed."""

from __future__ import annotations

import datetime as dt

import pytest

from distillguard.gateway.directory import IDENTITY_FIELDS, Account, Directory, hash_key


def test_an_account_row_round_trips_with_its_identity_columns() -> None:
    row = {"account_id": "acct_a", "created_at": "2026-04-01T00:00:00+00:00", "plan": "pro", "verified": True,
           "paid": False, "org_id": "org_1", "email": "kim@acme.test", "phone_hash": "ph1", "payment_fp": "card1",
           "signup_ip": "203.0.113.7", "country": "DE"}  # fmt: skip
    a = Account.from_row(row)
    assert a.email_domain == "acme.test"  # derived from the address when not given
    assert {n: getattr(a, n) for n in IDENTITY_FIELDS} == {n: row[n] for n in IDENTITY_FIELDS}
    assert a.created_at == dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    assert Account.from_row(a.to_row()) == a


def test_an_identity_column_that_is_not_text_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="phone_hash"):
        Account.from_row({"account_id": "acct_a", "phone_hash": 5551234})


def test_keys_are_held_as_hashes() -> None:
    d = Directory()
    key = d.new_key("acct_a")
    assert key not in d.keys and d.keys[hash_key(key)] == "acct_a"
