"""Preparing exchanges and accounts for signals: the contract every engine and the gateway meet.

Signals read a prepared batch: the spec's columns (:data:`COLUMNS`, a missing or all-null
one as typed nulls), an ``account`` index (u32, from an :func:`account_index`), ``epoch_s``,
the UTC ``day`` and ``hour``, and the distinct-prompt index of
:func:`~distillguard.signals.base.with_distinct_index`. :func:`prepare` is pure: the batch
hunt, a Spark partition, a gateway micro-batch and the tests call it the same way, with
no engine state. Missing columns are filled here and nowhere else.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from distillguard.schema import ACCOUNTS, EXCHANGES
from distillguard.signals.base import with_distinct_index

__all__ = ["ACCOUNT_COLUMNS", "COLUMNS", "account_index", "fill_missing", "prepare", "prepare_accounts"]

# Exchange columns signals read (everything else, e.g. response text, is skipped).
COLUMNS: tuple[str, ...] = (
    "request_id", "ts", "account_id", "ip", "ip_prefix", "asn", "user_agent", "device_fp", "model",
    "prompt", "n_messages", "has_tools", "max_tokens", "input_tokens", "output_tokens", "stop_reason",
)  # fmt: skip


def _polars_types(schema: pa.Schema) -> dict[str, pl.DataType]:
    frame = pl.from_arrow(schema.empty_table())
    assert isinstance(frame, pl.DataFrame)
    return dict(frame.schema)


_EXCHANGE_TYPES = {c: t for c, t in _polars_types(EXCHANGES).items() if c in COLUMNS}
ACCOUNT_COLUMNS: dict[str, pl.DataType] = _polars_types(ACCOUNTS)


def fill_missing(frame: pl.DataFrame, types: dict[str, pl.DataType] | None = None) -> pl.DataFrame:
    """``frame`` with every column of ``types`` (default: :data:`COLUMNS`) present: an absent
    or all-null (``Null``-typed) one becomes typed nulls, as the spec says."""
    types = _EXCHANGE_TYPES if types is None else types
    missing = [c for c in types if c not in frame.columns or frame.schema[c] == pl.Null]
    if not missing:
        return frame
    return frame.with_columns(pl.lit(None, dtype=types[c]).alias(c) for c in missing)


def account_index(ids: pl.Series, start: int = 0) -> pl.DataFrame:
    """``account_id -> account`` (u32) for the distinct ids, numbered from ``start`` in id order.

    An index is a mapping that travels with a state: states built on different indices
    merge by ``account_id`` (:meth:`distillguard.hunt.state.HuntState.merge`).
    """
    new = ids.unique().sort().to_frame("account_id")
    return new.with_columns(account=pl.int_range(start, start + new.height, dtype=pl.UInt32))


def prepare(batch: pa.Table | pl.DataFrame, index: pl.DataFrame | None = None) -> pl.DataFrame:
    """A batch of exchanges as signals read it.

    Parameters
    ----------
    batch
        Exchanges per the spec (any subset of columns beyond ``account_id`` and ``ts``).
    index
        ``account_id -> account``; every account of the batch must be in it. Without one,
        the batch's own accounts are numbered in id order.

    Examples
    --------
    >>> import datetime as dt
    >>> b = pl.DataFrame({"account_id": ["b", "a"], "ts": [dt.datetime(2026, 4, 22, 13, 5)] * 2})
    >>> prepare(b).select("account_id", "account", "day", "hour").rows()
    [('b', 1, 20565, 13), ('a', 0, 20565, 13)]
    """
    df = batch if isinstance(batch, pl.DataFrame) else pl.from_arrow(batch)
    assert isinstance(df, pl.DataFrame)
    df = fill_missing(df)
    if index is None:
        index = account_index(df["account_id"])
    df = df.join(index.select("account_id", "account"), on="account_id", how="left", maintain_order="left")
    epoch = pl.col("ts").dt.epoch("s")
    return with_distinct_index(df, "prompt").with_columns(
        epoch_s=epoch,
        day=(epoch // 86400).cast(pl.Int32),
        hour=((epoch // 3600) % 24).cast(pl.Int8),
    )


def prepare_accounts(accounts: pa.Table | pl.DataFrame, index: pl.DataFrame) -> pl.DataFrame:
    """The accounts table with every spec column present and the ``account`` index joined."""
    df = accounts if isinstance(accounts, pl.DataFrame) else pl.from_arrow(accounts)
    assert isinstance(df, pl.DataFrame)
    return fill_missing(df, ACCOUNT_COLUMNS).join(index, on="account_id", how="inner")
