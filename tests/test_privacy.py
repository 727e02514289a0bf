"""Keyed pseudonyms: stable under one key, different under another, and links survive."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from distillguard.errors import ConfigError
from distillguard.io import LogReader, write_log
from distillguard.privacy import (
    ENV_KEY,
    load_key,
    pseudonymise,
    pseudonymise_log,
    pseudonymise_table,
)

KEY = b"test-key"
T0 = dt.datetime(2026, 4, 22, 10, tzinfo=dt.UTC)


def test_pseudonyms_are_keyed_stable_and_truncated() -> None:
    ids = pa.chunked_array([["a", "b"], ["a", None]])
    out = pseudonymise(ids, KEY, "account").to_pylist()
    assert out[0] == out[2] != out[1] and out[3] is None
    assert len(out[0]) == 32 and all(c in "0123456789abcdef" for c in out[0])
    assert pseudonymise(pa.array(["a"]), b"other", "account")[0].as_py() != out[0]
    assert pseudonymise(pa.array(["a"]), KEY, "ip")[0].as_py() != out[0]
    assert pseudonymise(pa.array(["a"]).dictionary_encode(), KEY, "account")[0].as_py() == out[0]


def test_tables_keep_joins_prefixes_and_domains() -> None:
    ex = pa.table(
        {
            "account_id": ["u1", "u2", "u3"],
            "ip": ["10.1.2.3", "10.1.2.99", "2001:db8::1"],
            "prompt": ["secret"] * 3,
            "output_tokens": [1, 2, 3],
        }
    )
    acc = pa.table(
        {
            "account_id": ["u1", "u2"],
            "email": ["x@Corp.com", "y@corp.com"],
            "signup_ip": ["10.1.2.3", "8.8.8.8"],
        }
    )
    pex = pseudonymise_table(ex, "exchanges", KEY)
    pacc = pseudonymise_table(acc, "accounts", KEY)
    assert "prompt" not in pex.column_names and pex.column("output_tokens") == ex.column(
        "output_tokens"
    )
    assert pex.column("account_id")[:2] == pacc.column("account_id")
    assert pex.column("ip")[0] == pacc.column("signup_ip")[0]
    prefix = pex.column("ip_prefix").to_pylist()
    assert prefix[0] == prefix[1] != prefix[2]
    assert pex.column("ip")[0] != pex.column("ip")[1]
    domain = pacc.column("email_domain").to_pylist()
    assert domain[0] == domain[1] and pacc.column("email")[0] != pacc.column("email")[1]
    assert "secret" not in str(pex.to_pylist())
    kept = pseudonymise_table(ex, "exchanges", KEY, drop_text=False)
    assert kept.column("prompt").to_pylist() == ["secret"] * 3


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_KEY, raising=False)
    with pytest.raises(ConfigError, match=ENV_KEY):
        load_key()
    monkeypatch.setenv(ENV_KEY, "s3cret")
    assert load_key() == b"s3cret"
    assert load_key("k") == b"k"


def test_pseudonymise_log_writes_a_readable_copy(tmp_path: Path) -> None:
    ex = pa.table(
        {
            "request_id": ["r1", "r2"],
            "ts": [T0, T0 + dt.timedelta(days=1)],
            "account_id": ["u1", "u2"],
            "ip": ["10.0.0.1", "10.0.0.2"],
            "prompt": ["hello", "world"],
            "input_tokens": [1, 2],
            "output_tokens": [3, 4],
        }
    )
    acc = pa.table({"account_id": ["u1", "u2"], "created_at": [T0, T0]})
    labels = pa.table({"account_id": ["u1"], "campaign_id": ["c"]})
    write_log(tmp_path / "src", ex, acc, labels)
    dst = pseudonymise_log(tmp_path / "src", tmp_path / "dst", key=KEY)
    r = LogReader(dst)
    got = r.read_exchanges()
    assert got.num_rows == 2 and got.column("prompt").null_count == 2
    assert got.column("output_tokens").to_pylist() == [3, 4]
    assert set(got.column("account_id").to_pylist()) == set(
        r.accounts().column("account_id").to_pylist()
    )
    lab = r.labels()
    assert lab is not None and lab.column("account_id")[0] == got.column("account_id")[0]
    assert len(set(got.column("ip_prefix").to_pylist())) == 1
    assert "prompt" not in r.exchange_columns() and len(r.issues) == 0
