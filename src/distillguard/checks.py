"""Conformance checks every registered signal must pass (library code, like river's ``checks``).

``yield_checks(signal)`` gives plain functions; ``tests/test_signals.py`` runs each one
for each signal in the registry, so a new signal gets its tests without a new test file.
"""

from __future__ import annotations

import copy
import datetime as dt
import pickle
import random
from collections.abc import Callable, Iterator
from dataclasses import replace

import polars as pl
from polars.testing import assert_frame_equal

from distillguard.errors import SignalStateError
from distillguard.signals.base import Signal, State
from distillguard.signals.prepare import account_index, prepare, prepare_accounts

Check = Callable[[Signal], None]


def sample_batch(seed: int = 0, n: int = 400) -> pl.DataFrame:
    """A small seeded exchange batch with the hunt's common columns, for the checks."""
    rng = random.Random(seed)
    t0 = dt.datetime(2026, 4, 22, tzinfo=dt.UTC)
    words = ["please", "write", "a", "python", "function", "that", "sorts", "list", "step", "by", "step", "explain", "json", "tool", "the", "of", "and"]
    rows = []
    for i in range(n):
        a = rng.randrange(12)
        rows.append(
            {
                "request_id": f"r{seed}-{i}",
                "ts": t0 + dt.timedelta(seconds=rng.randrange(3 * 86400)),
                "account_id": f"acct{a:02d}",
                "ip_prefix": f"198.51.{a % 4}.0/24",
                "asn": rng.choice([16509, 7922, 3320]),
                "user_agent": rng.choice(["python-httpx/0.27", "Mozilla/5.0", None]),
                "device_fp": f"fp{a % 5}",
                "model": rng.choice(["m-1", "m-2"]),
                "prompt": " ".join(rng.choices(words, k=rng.randint(2, 30))) if rng.random() > 0.05 else None,
                "n_messages": rng.randint(1, 12),
                "has_tools": rng.random() < 0.2,
                "max_tokens": rng.choice([None, 1024, 4096]),
                "input_tokens": rng.randint(5, 3000),
                "output_tokens": rng.randint(1, 4096),
                "stop_reason": rng.choice(["end_turn", "max_tokens"]),
            }
        )
    df = pl.DataFrame(rows, infer_schema_length=None).sort("ts")
    return prepare(df)


def sample_accounts(batch: pl.DataFrame) -> pl.DataFrame:
    """The accounts table of :func:`sample_batch`'s accounts, as ``finalize_accounts`` reads it."""
    ids = batch["account_id"].unique().sort()
    n = ids.len()
    t0 = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    acc = pl.DataFrame(
        {
            "account_id": ids,
            "created_at": [t0 + dt.timedelta(hours=7 * i) for i in range(n)],
            "email_domain": [f"d{i % 3}.example" for i in range(n)],
            "phone_hash": [f"p{i % 5}" for i in range(n)],
            "country": [("US", "DE", "JP")[i % 3] for i in range(n)],
            "verified": [i % 2 == 0 for i in range(n)],
        }
    )
    return prepare_accounts(acc, account_index(ids))


def _rows(sig: Signal, df: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([df, sig.enrich(df)], how="horizontal")


def _equal(sig: Signal, a: State, b: State) -> None:
    """The tables of ``a`` (every table of a state, or the subset a check compares) equal ``b``'s."""
    for k in a:
        keys = list(sig.tables[k].keys)
        x, y = a[k].sort(keys), b[k].sort(keys)
        try:  # floats summed in another order differ in the last bits
            assert_frame_equal(x, y, check_exact=False, rel_tol=1e-9, abs_tol=1e-9)
        except AssertionError as exc:
            raise AssertionError(f"{sig.name}: table {k!r} differs\n{x}\n{y}") from exc


def check_enrich_pure(sig: Signal) -> None:
    df = sample_batch(1)
    before = df.clone()
    out = sig.enrich(df)
    assert df.equals(before), "enrich mutated its input"
    assert out.height == df.height or out.width == 0, "enrich must be row-aligned"


def check_merge_is_update_of_union(sig: Signal) -> None:
    df = sample_batch(2)
    cut = random.Random(3).randrange(1, df.height - 1)
    whole = sig.update(sig.empty(), _rows(sig, df))
    parts = sig.merge(sig.update(sig.empty(), _rows(sig, df[:cut])), sig.update(sig.empty(), _rows(sig, df[cut:])))
    # Heavy-hitter tables (``top_k``) are Misra-Gries summaries: merged and whole may drop
    # different rare values, so each is checked against the exact counts and its error bound.
    heavy = {k for k, spec in sig.tables.items() if spec.top_k is not None}
    if heavy:
        exact_sig = copy.copy(sig)
        exact_sig.tables = {k: replace(spec, top_k=None) for k, spec in sig.tables.items()}  # type: ignore[misc]
        exact = exact_sig.update(exact_sig.empty(), _rows(sig, df))
        for k in heavy:
            spec = sig.tables[k]
            for got in (whole[k], parts[k]):
                _within_heavy_bound(sig.name, k, exact[k], got, spec.keys[0], next(iter(spec.values)), spec.top_k or 0)
    _equal(sig, {k: v for k, v in whole.items() if k not in heavy}, parts)


def _within_heavy_bound(name: str, table: str, exact: pl.DataFrame, got: pl.DataFrame, per: str, n: str, k: int) -> None:
    """Every kept count is at most the true one and at least ``true - total/(k+1)``; a
    value missing from the summary has a true count within that bound."""
    keys = [c for c in exact.columns if c != n]
    j = exact.join(got.select(*keys, pl.col(n).alias("__got")), on=keys, how="left").with_columns(
        bound=pl.col(n).sum().over(per) / (k + 1), got=pl.col("__got").fill_null(0)
    )
    bad = j.filter((pl.col("got") > pl.col(n)) | (pl.col("got") < pl.col(n) - pl.col("bound")))
    assert bad.height == 0, f"{name}: table {table!r} breaks the heavy-hitter bound\n{bad}"
    extra = got.join(exact, on=keys, how="anti")
    assert extra.height == 0, f"{name}: table {table!r} holds values never seen\n{extra}"


def check_merge_of_account_split(sig: Signal) -> None:
    """Accounts split in two (as Spark partitions by account), each half's state sent as
    bytes and merged: the state of the whole."""
    df = sample_batch(10)
    half = pl.col("account_id").hash(3) % 2 == 0
    whole = sig.update(sig.empty(), _rows(sig, df))
    a, b = (sig.update(sig.empty(), _rows(sig, df.filter(m))) for m in (half, ~half))
    merged = sig.merge(sig.from_bytes(sig.to_bytes(a)), sig.from_bytes(sig.to_bytes(b)))
    # Heavy-hitter summaries are cut per account, so an account split is exact for them too.
    _equal(sig, whole, merged)


def check_bytes_refuse_other_settings(sig: Signal) -> None:
    """A state serialised by a signal of another version is refused, naming the setting."""
    other = copy.copy(sig)
    other.version = sig.version + 1  # type: ignore[misc]
    data = other.to_bytes(other.empty())
    try:
        sig.from_bytes(data)
    except SignalStateError as exc:
        assert f"version={sig.version + 1}" in str(exc) and f"version={sig.version}" in str(exc), exc
    else:
        raise AssertionError("from_bytes accepted a state of another version")


def check_merge_commutative_with_identity(sig: Signal) -> None:
    a = sig.update(sig.empty(), _rows(sig, sample_batch(4)))
    b = sig.update(sig.empty(), _rows(sig, sample_batch(5)))
    _equal(sig, sig.merge(a, b), sig.merge(b, a))
    _equal(sig, sig.merge(a, sig.empty()), sig.merge(sig.empty(), a))


def check_empty_batch_is_noop(sig: Signal) -> None:
    df = sample_batch(6)
    a = sig.update(sig.empty(), _rows(sig, df))
    b = sig.update(a, _rows(sig, df.head(0)))
    _equal(sig, sig.merge(a, sig.empty()), b)


def check_missing_optional_columns(sig: Signal) -> None:
    df = sample_batch(7)
    optional = [c for c in ("prompt", "ip_prefix", "asn", "user_agent", "device_fp", "model", "max_tokens",
                            "stop_reason", "n_messages", "has_tools") if c in df.columns]  # fmt: skip
    nulls = df.with_columns(pl.lit(None, dtype=df.schema[c]).alias(c) for c in optional)
    st = sig.update(sig.empty(), _rows(sig, nulls))
    sig.finalize(st, 12)


def check_bytes_and_pickle_roundtrip(sig: Signal) -> None:
    a = sig.update(sig.empty(), _rows(sig, sample_batch(8)))
    _equal(sig, a, sig.from_bytes(sig.to_bytes(a)))
    _equal(sig, a, pickle.loads(pickle.dumps(a)))
    assert repr(pickle.loads(pickle.dumps(sig))) == repr(sig)


def check_finalize_deterministic(sig: Signal) -> None:
    a = sig.update(sig.empty(), _rows(sig, sample_batch(9)))
    f1, f2 = sig.finalize(a, 12), sig.finalize(a, 12)
    key = ["account"] if "account" in f1.features.columns else []
    assert f1.features.sort(key).equals(f2.features.sort(key))
    if f1.explain is not None:
        for r in f1.features.to_dicts():
            for line in f1.explain(r):
                assert isinstance(line, str) and line


def check_features_declared(sig: Signal) -> None:
    """Findings carry exactly the features the signal declares (``Signal.features``), and
    ``Signal.context_relative`` names only those."""
    batch = sample_batch(10)
    got = set(sig.finalize(sig.update(sig.empty(), _rows(sig, batch)), 12).features.columns)
    found = sig.finalize_accounts(sample_accounts(batch))
    if found is not None:
        got |= set(found.features.columns)
    got.discard("account")
    declared = set(sig.features)
    assert got == declared, (
        f"signal {sig.name!r}: features {sorted(got - declared)} are not declared in {type(sig).__name__}.features"
        f"; declared but missing: {sorted(declared - got)}"
    )
    stray = set(sig.context_relative) - declared
    assert not stray, f"signal {sig.name!r}: context_relative {sorted(stray)} are not among its features"


def _all_checks() -> Iterator[Check]:
    yield check_enrich_pure
    yield check_merge_is_update_of_union
    yield check_merge_of_account_split
    yield check_bytes_refuse_other_settings
    yield check_merge_commutative_with_identity
    yield check_empty_batch_is_noop
    yield check_missing_optional_columns
    yield check_bytes_and_pickle_roundtrip
    yield check_finalize_deterministic
    yield check_features_declared


def yield_checks(sig: Signal) -> Iterator[Check]:
    """Every check that applies to ``sig``: all of them, less those it declares it cannot
    pass in :meth:`Signal._unit_test_skips` (each with its reason, none by signal name here)."""
    skips = sig._unit_test_skips()
    for check in _all_checks():
        if check.__name__ not in skips:
            yield check


def check_signal(sig: Signal) -> None:
    for check in yield_checks(sig):
        check(sig)
