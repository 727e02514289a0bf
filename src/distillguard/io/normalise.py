"""Normalise a table to the spec: pure, per batch, with every problem returned as an issue.

The reader calls it on each file piece; a Spark partition or a gateway micro-batch calls
:func:`normalise` the same way. Nothing here holds state or raises on bad values: a value
that cannot be read becomes null (optional column, a warning) or drops its row (required
column, an error), and the issue names the source, the row and the column.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillguard import schema
from distillguard.config import ColumnMapping
from distillguard.errors import Issue, Location

__all__ = [
    "FILE",
    "HIDDEN",
    "ROW",
    "cast_column",
    "extras",
    "is_text",
    "normalise",
    "normalise_rows",
    "resolve",
]

ROW = "__row"  # 0-based data row in the source, carried so issues can name it
FILE = "__file"  # index of the source file in its reader
HIDDEN = (ROW, FILE)
_SLICE = 4096  # rows per slice when hunting for the bad values of a column that failed to cast
_US_PER = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0}  # 0: divide by 1000
_SPEC_NAMES = frozenset(n for t in schema.TABLES.values() for n in t.names)
_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError)

Where = Callable[[int | None, str | None], Location]

MAX_TOKENS = 10_000_000  # no model takes or gives this many tokens in one request
RANGES: dict[str, tuple[int, int]] = {
    "input_tokens": (0, MAX_TOKENS),
    "output_tokens": (0, MAX_TOKENS),
    "max_tokens": (0, MAX_TOKENS),
    "n_messages": (0, 1_000_000),
    "status": (100, 599),
    "latency_ms": (0, 86_400_000),
    "asn": (0, 4_294_967_295),
}
"""Values outside these ranges cannot be true: treated like values that cannot be read."""


def _out_of_range(col: Any, name: str) -> np.ndarray:
    if name not in RANGES or not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        return np.empty(0, dtype=np.int64)
    lo, hi = RANGES[name]
    seen = pc.min_max(col)  # one pass; the row-by-row test only when some value is outside
    if seen["min"].as_py() is None or (lo <= seen["min"].as_py() and seen["max"].as_py() <= hi):
        return np.empty(0, dtype=np.int64)
    outside = pc.or_(pc.less(col, lo), pc.greater(col, hi))
    return np.flatnonzero(pc.fill_null(outside, False).to_numpy(zero_copy_only=False))


def is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def _valid_utf8(col: Any) -> bool:
    """Whether every value of a string column is valid UTF-8 (JSON Lines and Parquet written by
    other tools can carry raw bytes; CSV is read as bytes). Invalid values are then treated like
    any value that cannot be read: nulled, or their row dropped, and reported."""
    try:
        col.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def value_at(col: Any, i: int) -> Any:
    """The ``i``-th value as Python, or its bytes when it is text that is not UTF-8."""
    try:
        v = col[i].as_py()
    except UnicodeDecodeError:
        v = col.cast(pa.binary())[i].as_py()
    if isinstance(v, bytes):  # CSV is read as bytes: text that is UTF-8 is shown as text
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return v
    return v


def _parse_iso(col: pa.ChunkedArray | pa.Array, to: pa.DataType) -> pa.ChunkedArray | pa.Array:
    from distillguard.io.formats import parse_iso

    return parse_iso(col, to)


def _convert(
    col: Any, to: pa.DataType, ts_unit: str | None, issues: list[Issue], where: Location
) -> Any:
    """Cast one column to its spec type; raises on any value that cannot be read."""
    if pa.types.is_dictionary(col.type):
        col = pc.cast(col, col.type.value_type)
    if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
        col = pc.cast(col, pa.string())  # raises on bytes that are not UTF-8: those values are found one by one
    elif is_text(col.type) and not _valid_utf8(col):
        col = pc.cast(col.cast(pa.binary()), pa.string())  # raises the same way, whatever the format
    if col.type == to:
        return col
    if pa.types.is_null(col.type):
        return pa.nulls(len(col), to)
    if is_text(col.type):
        col = pc.utf8_trim_whitespace(col)
        if not pa.types.is_string(to) and not pa.types.is_timestamp(to):
            col = pc.if_else(pc.equal(col, ""), pa.scalar(None, col.type), col)
    if pa.types.is_timestamp(to):
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            return _epoch(col, to, ts_unit, issues, where)
        if is_text(col.type):
            return _parse_iso(pc.cast(col, pa.string()), to)
        return pc.cast(col, to, safe=False)
    return pc.cast(col, to)


def _epoch(
    col: Any, to: pa.DataType, unit: str | None, issues: list[Issue], where: Location
) -> Any:
    if unit is None:
        top = pc.max(pc.abs(col)).as_py() or 0
        unit = "s" if top < 1e11 else "ms" if top < 1e14 else "us" if top < 1e17 else "ns"
        issues.append(
            Issue(
                f"epoch timestamps: unit taken as {unit!r} from their size (set ts_unit in the column mapping)",
                where,
                "warning",
            )
        )
    k = _US_PER[unit]
    if pa.types.is_floating(col.type):
        us = pc.round(pc.multiply(col, float(k) if k else 1e-3))
    else:
        col = pc.cast(col, pa.int64())
        us = pc.multiply_checked(col, k) if k else pc.divide(col, 1000)
    return pc.cast(pc.cast(us, pa.int64()), pa.timestamp("us")).cast(to)


def cast_column(
    col: Any, fld: pa.Field, ts_unit: str | None, where: Location
) -> tuple[Any, np.ndarray, list[Issue]]:
    """Cast a column; values that fail become null and their positions are returned.

    The whole column is tried at once (the fast, normal path); only when that fails is it
    cut into slices, and only failing slices go value by value. ``where`` locates the
    column for the one issue this can raise itself (an epoch unit guessed from the values).
    """
    issues: list[Issue] = []
    try:
        return _convert(col, fld.type, ts_unit, issues, where), np.empty(0, dtype=np.int64), issues
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError):  # the type itself can't be cast
        bad_all = np.flatnonzero(pc.is_valid(col).to_numpy(zero_copy_only=False))
        return pa.nulls(len(col), fld.type), bad_all, issues
    except (pa.ArrowInvalid, OverflowError):  # some values can't
        pass
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    out: list[Any] = []
    bad: list[int] = []
    null = pa.nulls(1, fld.type)
    for start in range(0, len(arr), _SLICE):
        piece = arr.slice(start, _SLICE)
        try:
            out.append(_convert(piece, fld.type, ts_unit, issues, where))
            continue
        except _CAST_ERRORS:
            pass
        for j in range(len(piece)):
            try:
                out.append(_convert(piece.slice(j, 1), fld.type, ts_unit, issues, where))
            except _CAST_ERRORS:
                out.append(null)
                bad.append(start + j)
    result = pa.chunked_array(
        [pa.array(o) if not isinstance(o, pa.Array) else o for o in out], type=fld.type
    )
    return result, np.array(bad, dtype=np.int64), issues


def resolve(
    table: str, names: Sequence[str], mapping: ColumnMapping
) -> tuple[dict[str, str], list[str]]:
    """Spec column -> source column for one file or batch, and the required spec columns missing."""
    target = schema.TABLES[table]
    mapped: Mapping[str, str] = getattr(mapping, table)
    claimed = set(mapped.values())
    present = set(names)
    out: dict[str, str] = {}
    for fld in target:
        provider = mapped.get(fld.name)
        if provider is not None and provider in present:
            out[fld.name] = provider
        elif fld.name in present and fld.name not in claimed:
            out[fld.name] = fld.name
    return out, [c for c in schema.required(target) if c not in out]


def extras(names: Sequence[str], resolved: Mapping[str, str]) -> list[str]:
    """Source columns that are not spec columns (kept and ignored, as the spec says)."""
    used = set(resolved.values())  # a spec-named column shadowed by the mapping is dropped
    return [n for n in names if n not in used and n not in HIDDEN and n not in _SPEC_NAMES]


def normalise_rows(
    raw: pa.Table,
    fields: Sequence[pa.Field],
    resolved: Mapping[str, str],
    *,
    where: Where,
    ts_unit: str | None = None,
    keep_extras: bool = True,
    file_index: int = 0,
) -> tuple[pa.Table, list[Issue]]:
    """Cast ``raw`` (with its ``__row`` column) to ``fields``; drop rows whose required fields
    are unreadable or null. Returns the table (with ``__row`` and ``__file``) and every issue."""
    n = raw.num_rows
    rows = raw.column(ROW).to_numpy()
    arrays: list[Any] = []
    issues: list[Issue] = []
    drop = np.zeros(n, dtype=bool)
    for fld in fields:
        src = resolved.get(fld.name)
        if src is None:
            arrays.append(pa.nulls(n, fld.type))
            continue
        col, bad, found = cast_column(raw.column(src), fld, ts_unit, where(None, fld.name))
        issues += found
        via = f" ({src!r})" if src != fld.name else ""
        out_of_range = _out_of_range(col, fld.name)
        if out_of_range.size:
            lo, hi = RANGES[fld.name]
            col = pc.if_else(pa.array(np.isin(np.arange(n), out_of_range)), pa.scalar(None, fld.type), col)
            for i in out_of_range:
                value = value_at(raw.column(src), int(i))
                fate = "set to null" if fld.nullable else "row dropped"
                msg = f"value out of range [{lo:,}, {hi:,}]: {value!r}{via}; {fate}"
                issues.append(Issue(msg, where(int(rows[i]), fld.name), "warning" if fld.nullable else "error"))
            bad = np.union1d(bad, out_of_range)
            if not fld.nullable:
                drop[out_of_range] = True
        for i in np.setdiff1d(bad, out_of_range) if bad.size else ():
            value = value_at(raw.column(src), int(i))
            what = "is not valid UTF-8" if isinstance(value, bytes) else f"cannot be read as {fld.type}"
            if fld.nullable:
                msg = f"value {what}: {value!r}{via}; set to null"
                issues.append(Issue(msg, where(int(rows[i]), fld.name), "warning"))
            else:
                msg = f"value {what}: {value!r}{via}; row dropped"
                issues.append(Issue(msg, where(int(rows[i]), fld.name)))
        if not fld.nullable:
            drop[bad] = True
            if pa.types.is_string(fld.type):  # an empty identifier is a missing one
                col = pc.if_else(pc.fill_null(pc.equal(col, ""), False), pa.scalar(None, fld.type), col)
            if col.null_count:
                isnull = pc.is_null(col).to_numpy(zero_copy_only=False)
                for i in np.flatnonzero(isnull & ~drop):
                    issues.append(
                        Issue("required value is null; row dropped", where(int(rows[i]), fld.name))
                    )
                drop |= isnull
        arrays.append(col)
    out_fields = list(fields)
    if keep_extras:
        for name in extras(raw.column_names, resolved):
            col, fld = raw.column(name), raw.schema.field(name)
            if pa.types.is_binary(fld.type):  # CSV is read as bytes; an extra column stays text when it is
                with contextlib.suppress(pa.ArrowInvalid):
                    col, fld = pc.cast(col, pa.string()), pa.field(name, pa.string())
            arrays.append(col)
            out_fields.append(fld)
    arrays.append(raw.column(ROW))
    arrays.append(pa.array(np.full(n, file_index, dtype=np.int32)))
    out_fields += [pa.field(ROW, pa.int64()), pa.field(FILE, pa.int32())]
    t = pa.Table.from_arrays(arrays, schema=pa.schema(out_fields))
    return (t.filter(pa.array(~drop)) if drop.any() else t), issues


def normalise(
    table: pa.Table,
    mapping: ColumnMapping | None = None,
    source: str = "<batch>",
    *,
    table_name: str = "exchanges",
    keep_extras: bool = True,
) -> tuple[pa.Table, list[Issue]]:
    """One batch (a file piece, a Spark partition, a gateway micro-batch) cast to the spec.

    Returns the normalised table (spec columns in spec order, extras after) and every issue,
    each naming ``source``, the 0-based row and the column. A batch missing a required
    column comes back empty, with one error per missing column.

    Examples
    --------
    >>> import datetime as dt
    >>> raw = pa.table({"request_id": ["a", "b"], "ts": ["2026-04-22T10:00:00Z", "yesterday"],
    ...                 "account_id": ["x", "y"], "input_tokens": [5, 7], "output_tokens": [1, 2]})
    >>> t, issues = normalise(raw, source="batch-7")
    >>> t.num_rows, [str(i) for i in issues]
    (1, ["error: value cannot be read as timestamp[us, tz=UTC]: 'yesterday'; row dropped in batch-7 row 1 column 'ts'"])
    """
    mapping = mapping or ColumnMapping()
    if ROW not in table.column_names:
        table = table.append_column(ROW, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    target = schema.TABLES[table_name]
    resolved, missing = resolve(table_name, table.column_names, mapping)

    def where(row: int | None, column: str | None) -> Location:
        return Location(source, row=row, column=column)

    if missing:
        issues = [
            Issue(f"missing required column: {c!r}; batch skipped", where(None, c)) for c in missing
        ]
        empty = pa.schema(
            [*target, *[table.schema.field(n) for n in extras(table.column_names, resolved)]]
            if keep_extras
            else list(target)
        )
        return empty.empty_table(), issues
    out, issues = normalise_rows(
        table, list(target), resolved, where=where, ts_unit=mapping.ts_unit, keep_extras=keep_extras
    )
    return out.drop_columns(list(HIDDEN)), issues
