"""Storage formats of the exchange log: names, extensions, timestamps as text, writing a table.

Parquet (preferred), JSON Lines and CSV, each possibly compressed; timestamps in text
formats are ISO 8601 UTC.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from distillguard import schema
from distillguard.errors import LogError

__all__ = ["COMPRESSED", "EXTENSIONS", "FORMATS", "TABLE_DIRS", "cast_exact", "conform_for_write", "iso_strings",
           "parse_iso", "write_jsonl"]  # fmt: skip

FORMATS: dict[str, str] = {"parquet": ".parquet", "jsonl": ".jsonl", "csv": ".csv"}
"""Storage formats and the file extension each one is written with."""

TABLE_DIRS = ("exchanges", "accounts", "labels")
EXTENSIONS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
}
"""File extension -> format, for reading."""
COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")


def conform_for_write(table: pa.Table, target: pa.Schema, name: str) -> pa.Table:
    """Cast ``table`` to ``target``: spec columns first, nulls for missing ones, extras after.

    Writers produce the spec, so a value that cannot be cast is a bug in the caller
    and raises :class:`LogError` (readers, by contrast, report and go on).
    """
    n = table.num_rows
    arrays: list[pa.Array | pa.ChunkedArray] = []
    fields: list[pa.Field] = []
    for f in target:
        if f.name in table.column_names:
            col = table.column(f.name)
            try:
                col = cast_exact(col, f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise LogError(f"cannot write {name} column {f.name!r} as {f.type}: {exc}") from exc
            if not f.nullable and col.null_count:
                raise LogError(
                    f"cannot write {name}: required column {f.name!r} has {col.null_count} nulls"
                )
        else:
            if not f.nullable:
                raise LogError(f"cannot write {name}: required column {f.name!r} is missing")
            col = pa.nulls(n, f.type)
        arrays.append(col)
        fields.append(f)
    for extra in table.column_names:
        if extra not in target.names:
            arrays.append(table.column(extra))
            fields.append(table.schema.field(extra))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def cast_exact(col: pa.ChunkedArray | pa.Array, to: pa.DataType) -> pa.ChunkedArray | pa.Array:
    """Cast without losing data, except sub-microsecond timestamp digits (dropped on purpose)."""
    if col.type == to:
        return col
    if pa.types.is_timestamp(to):
        if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
            return pc.cast(col, to, safe=False)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            return parse_iso(col, to)
    return pc.cast(col, to)


_OFFSET_RE = r"([Zz]|[T ]\d{2}(:?\d{2}){0,2}(\.\d+)?[+-]\d{2}(:?\d{2})?)$"


def parse_iso(col: pa.ChunkedArray | pa.Array, to: pa.DataType) -> pa.ChunkedArray | pa.Array:
    """ISO 8601 strings with or without ``Z``/offset to UTC; naive values are taken as UTC.

    Arrow parses zoned and naive strings only into zoned and naive types
    respectively, so each kind is parsed on its own (at ns, to accept up to 9
    fraction digits) and the two are merged.
    """
    if isinstance(col, pa.ChunkedArray):
        return pa.chunked_array([parse_iso(c, to) for c in col.chunks], type=to)
    s = pc.utf8_trim_whitespace(col)
    zoned = pc.match_substring_regex(s, _OFFSET_RE)
    naive_s = pc.if_else(zoned, pa.scalar(None, s.type), s)
    zoned_s = pc.if_else(zoned, s, pa.scalar(None, s.type))
    zoned_s = pc.replace_substring_regex(zoned_s, r"z$", "Z")
    a = pc.cast(pc.cast(zoned_s, pa.timestamp("ns", tz="UTC")), to, safe=False)
    b = pc.cast(pc.cast(naive_s, pa.timestamp("ns")), to, safe=False)
    return pc.if_else(zoned, a, b)


def iso_strings(table: pa.Table) -> pa.Table:
    """Timestamps as ISO 8601 UTC strings (``2026-04-22T10:00:00.000000Z``) for text formats."""
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type):
            col = pc.cast(table.column(i), schema.TS, safe=False)
            txt = pc.strftime(col, format="%Y-%m-%dT%H:%M:%SZ", locale="C")
            table = table.set_column(i, pa.field(f.name, pa.string()), txt)
    return table


def write_jsonl(table: pa.Table, path: Path) -> None:
    """JSON Lines through Polars' writer (Arrow has none); nulls become ``null``."""
    import polars as pl

    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    df.write_ndjson(path)
