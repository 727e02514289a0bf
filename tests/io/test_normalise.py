"""normalise: pure per-batch normalisation, the same on a file piece, a Spark partition or a gateway batch."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from distillguard.config import ColumnMapping
from distillguard.io.normalise import normalise
from distillguard.schema import EXCHANGES


def _raw(**cols: list[object]) -> pa.Table:
    base: dict[str, list[object]] = {
        "request_id": ["a", "b", "c"],
        "ts": ["2026-04-22T10:00:00Z", "2026-04-22 11:00:00", "2026-04-22T12:00:00+02:00"],
        "account_id": ["x", "y", "z"],
        "input_tokens": [1, 2, 3],
        "output_tokens": [4, 5, 6],
    }
    base.update(cols)
    return pa.table(base)


def test_good_batch_comes_back_in_spec_order_with_no_issue() -> None:
    t, issues = normalise(_raw(extra=[1, 2, 3]))
    assert issues == []
    assert t.column_names == [*EXCHANGES.names, "extra"]
    assert t.schema.field("ts").type == EXCHANGES.field("ts").type
    assert t.column("ts").to_pylist()[2] == dt.datetime(2026, 4, 22, 10, tzinfo=dt.UTC)


def test_bad_required_value_drops_its_row_and_bad_optional_is_nulled() -> None:
    t, issues = normalise(_raw(input_tokens=["1", "many", "3"], asn=["7922", "x", None]), source="part-3")
    assert t.column("request_id").to_pylist() == ["a", "c"]
    assert t.column("asn").to_pylist() == [7922, None]
    got = sorted((i.severity, i.source.row, i.source.column, i.source.path) for i in issues)
    assert got == [("error", 1, "input_tokens", "part-3"), ("warning", 1, "asn", "part-3")]


def test_missing_required_column_gives_an_empty_batch_and_one_error_each() -> None:
    raw = _raw().drop_columns(["input_tokens", "output_tokens"])
    t, issues = normalise(raw)
    assert t.num_rows == 0 and t.schema.names[: len(EXCHANGES)] == EXCHANGES.names
    assert sorted(i.source.column for i in issues) == ["input_tokens", "output_tokens"]  # type: ignore[type-var]


def test_mapping_and_epoch_seconds() -> None:
    raw = _raw().rename_columns(["req", "created", "org", "input_tokens", "output_tokens"])
    raw = raw.set_column(1, "created", pa.array([1776852000, 1776855600, 1776859200]))
    m = ColumnMapping(exchanges={"request_id": "req", "ts": "created", "account_id": "org"}, ts_unit="s")
    t, issues = normalise(raw, m)
    assert issues == [] and t.num_rows == 3
    assert t.column("account_id").to_pylist() == ["x", "y", "z"]
    assert t.column("ts").to_pylist()[0] == dt.datetime(2026, 4, 22, 10, tzinfo=dt.UTC)
