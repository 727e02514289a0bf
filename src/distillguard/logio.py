"""Read, write and validate exchange logs (``spec/exchange-log.md``).

A log is a folder with ``exchanges/``, ``accounts/`` and (for evaluation only)
``labels/``, each holding Parquet, JSON Lines or CSV files. :class:`LogWriter`
writes the spec's schemas; :class:`LogReader` reads any such folder, applies a
:class:`~distillguard.config.ColumnMapping`, normalises every table to
:mod:`distillguard.schema` and records every bad file, row and value as an
:class:`~distillguard.errors.Issue` instead of stopping (unless ``strict``).
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from distillguard import schema
from distillguard.config import ColumnMapping
from distillguard.errors import Issue, IssueLog, Location, LogError, Severity, ValidationError

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = ["FORMATS", "LogReader", "LogWriter", "ValidationReport", "validate_log", "write_log"]

FORMATS: dict[str, str] = {"parquet": ".parquet", "jsonl": ".jsonl", "csv": ".csv"}
"""Storage formats and the file extension each one is written with."""

_TABLE_DIRS = ("exchanges", "accounts", "labels")


# --------------------------------------------------------------------------- writing


def _conform_for_write(table: pa.Table, target: pa.Schema, name: str) -> pa.Table:
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
                col = _cast_exact(col, f.type)
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


def _cast_exact(col: pa.ChunkedArray | pa.Array, to: pa.DataType) -> pa.ChunkedArray | pa.Array:
    """Cast without losing data, except sub-microsecond timestamp digits (dropped on purpose)."""
    if col.type == to:
        return col
    if pa.types.is_timestamp(to):
        if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
            return pc.cast(col, to, safe=False)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            return _parse_iso(col, to)
    return pc.cast(col, to)


_OFFSET_RE = r"([Zz]|[T ]\d{2}(:?\d{2}){0,2}(\.\d+)?[+-]\d{2}(:?\d{2})?)$"


def _parse_iso(col: pa.ChunkedArray | pa.Array, to: pa.DataType) -> pa.ChunkedArray | pa.Array:
    """ISO 8601 strings with or without ``Z``/offset to UTC; naive values are taken as UTC.

    Arrow parses zoned and naive strings only into zoned and naive types
    respectively, so each kind is parsed on its own (at ns, to accept up to 9
    fraction digits) and the two are merged.
    """
    if isinstance(col, pa.ChunkedArray):
        return pa.chunked_array([_parse_iso(c, to) for c in col.chunks], type=to)
    s = pc.utf8_trim_whitespace(col)
    zoned = pc.match_substring_regex(s, _OFFSET_RE)
    naive_s = pc.if_else(zoned, pa.scalar(None, s.type), s)
    zoned_s = pc.if_else(zoned, s, pa.scalar(None, s.type))
    zoned_s = pc.replace_substring_regex(zoned_s, r"z$", "Z")
    a = pc.cast(pc.cast(zoned_s, pa.timestamp("ns", tz="UTC")), to, safe=False)
    b = pc.cast(pc.cast(naive_s, pa.timestamp("ns")), to, safe=False)
    return pc.if_else(zoned, a, b)


def _iso_strings(table: pa.Table) -> pa.Table:
    """Timestamps as ISO 8601 UTC strings (``2026-04-22T10:00:00.000000Z``) for text formats."""
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type):
            col = pc.cast(table.column(i), schema.TS, safe=False)
            txt = pc.strftime(col, format="%Y-%m-%dT%H:%M:%SZ", locale="C")
            table = table.set_column(i, pa.field(f.name, pa.string()), txt)
    return table


class LogWriter:
    """Write a log folder, one part file per call, so producers can stream.

    Parameters
    ----------
    root
        The log folder; ``exchanges/``, ``accounts/`` and ``labels/`` are created in it.
    fmt
        ``parquet`` (zstd, dictionary-encoded, exchanges partitioned by UTC day as
        ``exchanges/date=YYYY-MM-DD/part-NNNNN.parquet``), ``jsonl`` or ``csv``
        (timestamps as ISO 8601 UTC strings).
    overwrite
        Remove existing table folders first. Without it, a folder that already
        holds files is an error, so two runs never mix silently.

    Examples
    --------
    >>> import datetime as dt, tempfile
    >>> import pyarrow as pa
    >>> ts = dt.datetime(2026, 4, 22, 10, tzinfo=dt.timezone.utc)
    >>> with tempfile.TemporaryDirectory() as d, LogWriter(d) as w:
    ...     w.write_exchanges(pa.table({"request_id": ["r1"], "ts": [ts], "account_id": ["a1"],
    ...                                 "input_tokens": [10], "output_tokens": [200]}))
    ...     sorted(p.name for p in (w.root / "exchanges").rglob("*.parquet"))
    ['part-00000.parquet']
    """

    def __init__(self, root: Path | str, fmt: str = "parquet", overwrite: bool = False) -> None:
        if fmt not in FORMATS:
            raise LogError(f"unknown log format {fmt!r}; expected one of {', '.join(FORMATS)}")
        self.root = Path(root)
        self.fmt = fmt
        self._ext = FORMATS[fmt]
        self._parts: dict[Path, int] = {}
        self._closed = False
        for name in _TABLE_DIRS:
            d = self.root / name
            if d.exists():
                if overwrite:
                    shutil.rmtree(d)
                elif any(p.is_file() for p in d.rglob("*")):
                    raise LogError(
                        f"log folder already holds {name} files (pass overwrite=True)", None
                    )
            d.mkdir(parents=True, exist_ok=True)

    # -- public API
    def write_exchanges(self, table: pa.Table) -> None:
        """Append exchanges (cast to :data:`schema.EXCHANGES`); Parquet is split by UTC day."""
        t = _conform_for_write(table, schema.EXCHANGES, "exchanges")
        if self.fmt != "parquet":
            self._write(t, self.root / "exchanges")
            return
        if t.num_rows == 0:
            return
        day = pc.cast(t.column("ts"), pa.date32())
        for d in pc.unique(day).to_pylist():
            part = t.filter(pc.equal(day, pa.scalar(d, pa.date32())))
            self._write(part, self.root / "exchanges" / f"date={d.isoformat()}")

    def write_accounts(self, table: pa.Table) -> None:
        """Append accounts (cast to :data:`schema.ACCOUNTS`) as a new part file."""
        self._write(_conform_for_write(table, schema.ACCOUNTS, "accounts"), self.root / "accounts")

    def write_labels(self, table: pa.Table) -> None:
        """Append labels (cast to :data:`schema.LABELS`) as a new part file."""
        self._write(_conform_for_write(table, schema.LABELS, "labels"), self.root / "labels")

    def close(self) -> None:
        """Finish writing. Every part is complete when its call returns; this only forbids more."""
        self._closed = True

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals
    def _next_path(self, folder: Path) -> Path:
        if folder not in self._parts:
            folder.mkdir(parents=True, exist_ok=True)
            existing = [
                int(p.stem.split("-")[1]) for p in folder.glob("part-*") if p.stem[5:].isdigit()
            ]
            self._parts[folder] = max(existing, default=-1) + 1
        n = self._parts[folder]
        self._parts[folder] = n + 1
        return folder / f"part-{n:05d}{self._ext}"

    def _write(self, table: pa.Table, folder: Path) -> None:
        if self._closed:
            raise LogError(f"LogWriter for {self.root} is closed")
        path = self._next_path(folder)
        if self.fmt == "parquet":
            pq.write_table(table, path, compression="zstd", use_dictionary=True)
        elif self.fmt == "csv":
            pacsv.write_csv(_iso_strings(table), path)
        else:
            _write_jsonl(_iso_strings(table), path)


def _write_jsonl(table: pa.Table, path: Path) -> None:
    """JSON Lines through Polars' writer (Arrow has none); nulls become ``null``."""
    import polars as pl

    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    df.write_ndjson(path)


def write_log(
    root: Path | str,
    exchanges: pa.Table,
    accounts: pa.Table,
    labels: pa.Table | None = None,
    fmt: str = "parquet",
) -> Path:
    """Write a whole log in one call (tests, small logs); returns the folder.

    Parameters
    ----------
    root
        Log folder; existing table folders in it are replaced.
    exchanges, accounts, labels
        Tables cast to the spec schemas (see :class:`LogWriter`).
    fmt
        ``parquet``, ``jsonl`` or ``csv``.
    """
    with LogWriter(root, fmt=fmt, overwrite=True) as w:
        w.write_exchanges(exchanges)
        w.write_accounts(accounts)
        if labels is not None:
            w.write_labels(labels)
    return w.root


# --------------------------------------------------------------------------- reading

_ROW = "__row"
_FILE = "__file"
_HIDDEN = (_ROW, _FILE)
_EXTS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
}
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")
_SLICE = 4096  # rows per slice when hunting for the bad values of a column that failed to cast
_US_PER = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0}  # 0: divide by 1000


@dataclass(frozen=True)
class _File:
    path: Path
    rel: str  # relative to the log root, for messages
    fmt: str
    index: int  # position in LogReader._by_index, stored per row in ``__file``


@dataclass(frozen=True)
class _Chunk:
    """One unit of reading: a Parquet row group or a whole text file, with the UTC days it holds."""

    file: _File
    row_group: int | None
    row_offset: int
    days: tuple[datetime.date, ...]
    resolved: Mapping[str, str]  # spec column -> file column
    filled: frozenset[
        str
    ]  # spec columns holding at least one value here (or not known to be empty)


class _SeenHashes:
    """Set of 64-bit hashes kept as a few sorted numpy runs (log-structured merge).

    Scales to tens of millions of ids at 8 bytes each, where a Python set of
    strings would not. Two distinct ids colliding (about 1e-4 odds at 60M ids)
    would drop one row as a duplicate; that risk is accepted and documented.
    """

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def add(self, hashes: np.ndarray) -> np.ndarray:
        """Record ``hashes``; return a mask of those seen before (earlier call or earlier in this one)."""
        dup = np.ones(len(hashes), dtype=bool)
        if not len(hashes):
            return dup
        order = np.argsort(hashes, kind="stable")  # stable: the first occurrence leads its run
        ordered = hashes[order]
        lead = np.empty(len(ordered), dtype=bool)
        lead[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=lead[1:])
        uniq, first = ordered[lead], order[lead]
        fresh = np.ones(len(uniq), dtype=bool)
        for run in self._runs:  # runs are never empty
            pos = np.searchsorted(run, uniq)
            pos[pos == len(run)] = 0
            fresh &= run[pos] != uniq
        dup[first[fresh]] = False
        new = uniq[fresh]
        if len(new):
            self._runs.append(new)
            while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
                b, a = self._runs.pop(), self._runs.pop()
                merged = np.concatenate([a, b])  # disjoint sorted runs: timsort merges them in O(n)
                merged.sort(kind="stable")
                self._runs.append(merged)
        return dup


def _hash64(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Vectorised 64-bit hash of a string column (Polars' hash; stable within one process)."""
    import polars as pl

    series = pl.from_arrow(col)
    assert isinstance(series, pl.Series)
    return series.hash(seed=0x5EED).to_numpy()


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


class LogReader:
    """Read a log folder, normalised to :mod:`distillguard.schema`, reporting what is wrong.

    Exchanges stream one UTC day at a time, reading only the columns asked for
    (Parquet column projection, row group by row group), so memory stays bounded
    by a day's worth of the needed columns however long the log is.

    Parameters
    ----------
    root
        The log folder (``exchanges/``, ``accounts/``, optional ``labels/``).
    mapping
        How the provider's columns map to the spec's, or a path to its YAML.
    strict
        Raise :class:`~distillguard.errors.ValidationError` at the first error
        instead of recording it and going on.

    Attributes
    ----------
    issues
        Every problem found so far, each with file, row and column.

    Notes
    -----
    Rows whose required fields are null or cannot be read are dropped and
    reported; optional values that cannot be read become null with a warning; a
    file that cannot be opened, or lacks a required column, is reported and
    skipped while the other files are still read. A repeated ``request_id`` is
    reported and only its first occurrence (in time order) is kept.
    """

    def __init__(
        self,
        root: Path | str,
        mapping: ColumnMapping | Path | str | None = None,
        strict: bool = False,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise LogError("log folder not found", Location(str(self.root)))
        self.mapping = ColumnMapping.coerce(mapping)
        self.strict = strict
        self.issues = IssueLog()
        self.tally: Counter[tuple[str, str, str, str]] = Counter()
        """Issue counts by (file, column, problem, severity), for reports."""
        self._reported: set[tuple[str, str, str]] = set()
        self._by_index: list[_File] = []
        self._files: dict[str, list[_File]] = {}
        self._line_maps: dict[str, np.ndarray] = {}
        self._plan_cache: list[_Chunk] | None = None
        self._accounts: pa.Table | None = None
        self._labels: pa.Table | None = None
        self._pf: tuple[Path, pq.ParquetFile] | None = None
        self._quiet = 0
        self._spec_names = frozenset(n for t in schema.TABLES.values() for n in t.names)

    # ------------------------------------------------------------------ public API
    def accounts(self) -> pa.Table:
        """All accounts, cast to :data:`schema.ACCOUNTS` (+ extras); duplicates of ``account_id`` dropped.

        Returns an empty table of that schema (and notes an issue) when
        ``accounts/`` is absent or empty.
        """
        if self._accounts is None:
            self._accounts = self._read_whole("accounts", "account_id")
        return self._accounts

    def labels(self) -> pa.Table | None:
        """Ground truth, for evaluation only; ``None`` when the log has no labels files."""
        if not self._table_files("labels"):
            return None
        if self._labels is None:
            self._labels = self._read_whole("labels", "account_id")
        return self._labels

    def exchange_columns(self) -> frozenset[str]:
        """Spec columns present (after mapping) and holding a value in some readable exchanges file.

        A column written as all-null (as :class:`LogWriter` does for missing
        optional columns) counts as absent; Parquet answers this from metadata.
        """
        return frozenset(c for ch in self._plan() for c in ch.filled)

    def days(self) -> list[datetime.date]:
        """UTC days that hold exchanges, in order: the batches :meth:`exchange_batches` yields."""
        return sorted({d for ch in self._plan() for d in ch.days})

    def exchange_batches(self, columns: Sequence[str] | None = None, ordered: bool = True) -> Iterator[pa.Table]:
        """Exchanges one UTC day at a time, in time order.

        Parameters
        ----------
        columns
            Spec columns wanted; the required ones are always included. Columns
            absent from the log come as all-null of the spec type. ``None``
            means every spec column plus the extra columns found.
        ordered
            Sort each day by ``ts``. A consumer that only aggregates (the batch hunt)
            passes False and saves the sort, a quarter of the read time. Days still
            come in order, and a repeated ``request_id`` is dropped after the first
            one read.

        Yields
        ------
        pyarrow.Table
            One day's exchanges sorted by ``ts``, cast to :data:`schema.EXCHANGES`.
        """
        fields = self._wanted(columns)
        keep_extras = columns is None
        plan = self._plan()
        by_day: dict[datetime.date, list[_Chunk]] = defaultdict(list)
        for ch in plan:
            if ch.days:
                by_day[ch.days[0]].append(ch)
            else:  # nothing usable; read anyway so that its problems are reported
                self._read_chunk(ch, fields, keep_extras)
        pending: dict[datetime.date, list[pa.Table]] = defaultdict(list)
        seen = _SeenHashes()
        for day in sorted({d for ch in plan for d in ch.days}):
            parts = pending.pop(day, [])
            for ch in by_day.get(day, []):
                t = self._read_chunk(ch, fields, keep_extras)
                if t is None or t.num_rows == 0:
                    continue
                if len(ch.days) == 1:
                    parts.append(t)
                    continue
                tday = pc.cast(t.column("ts"), pa.date32())
                for d in pc.unique(tday).to_pylist():
                    piece = t.filter(pc.equal(tday, pa.scalar(d, pa.date32())))
                    (parts if d <= day else pending[d]).append(piece)
            if parts:
                batch = self._finish_day(parts, seen, ordered)
                if batch.num_rows:
                    yield batch

    def read_exchanges(self, columns: Sequence[str] | None = None) -> pa.Table:
        """All exchanges in one table (small logs and tests); see :meth:`exchange_batches`."""
        batches = list(self.exchange_batches(columns))
        if not batches:
            return pa.Table.from_pylist([], schema=pa.schema(self._wanted(columns)))
        return pa.concat_tables(batches, promote_options="permissive")

    # ------------------------------------------------------------------ issues
    def _report(self, message: str, source: Location, severity: Severity = "error") -> None:
        if self._quiet:
            return
        key = (str(source), message, severity)
        if key in self._reported:
            return
        self._reported.add(key)
        if self.strict and severity == "error":
            raise ValidationError(message, source)
        self.issues.add(Issue(message, source, severity))
        problem = message.split(":")[0]
        self.tally[(source.path, source.column or "-", problem, severity)] += 1

    def _where(self, f: _File, row: int | None = None, column: str | None = None) -> Location:
        """Location of a data row; JSON Lines also get their 1-based line number."""
        line = None
        if row is not None and f.fmt == "jsonl":
            lines = self._line_map(f)
            line = int(lines[row]) if row < len(lines) else None
        return Location(f.rel, row=row, column=column, line=line)

    def _line_map(self, f: _File) -> np.ndarray:
        """Line number of each data row (blank lines hold no row); computed only when needed."""
        if f.rel not in self._line_maps:
            with pa.input_stream(str(f.path), compression="detect") as s:
                raw = s.read()
            lines = raw.split(b"\n")
            self._line_maps[f.rel] = np.array(
                [i + 1 for i, ln in enumerate(lines) if ln.strip()], dtype=np.int64
            )
        return self._line_maps[f.rel]

    # ------------------------------------------------------------------ files
    def _table_files(self, table: str) -> list[_File]:
        if table in self._files:
            return self._files[table]
        folder = self.root / table
        out: list[_File] = []
        if folder.is_dir():
            for p in sorted(folder.rglob("*")):
                if not p.is_file() or p.name.startswith((".", "_")):
                    continue
                name = p.name.lower()
                for comp in _COMPRESSED:
                    name = name.removesuffix(comp)
                fmt = _EXTS.get(Path(name).suffix)
                rel = p.relative_to(self.root).as_posix()
                if fmt is None:
                    self._report("file ignored: unknown extension", Location(rel), "warning")
                    continue
                self._by_index.append(_File(p, rel, fmt, len(self._by_index)))
                out.append(self._by_index[-1])
        self._files[table] = out
        return out

    def _resolve(self, f: _File, table: str, names: Sequence[str]) -> dict[str, str] | None:
        """Spec column -> file column for one file, or None (reported) when a required one is missing."""
        target = schema.TABLES[table]
        mapping: Mapping[str, str] = getattr(self.mapping, table)
        claimed = set(mapping.values())
        present = set(names)
        out: dict[str, str] = {}
        for fld in target:
            provider = mapping.get(fld.name)
            if provider is not None and provider in present:
                out[fld.name] = provider
            elif fld.name in present and fld.name not in claimed:
                out[fld.name] = fld.name
        missing = [c for c in schema.required(target) if c not in out]
        for c in missing:
            via = f" (mapped from {mapping[c]!r})" if c in mapping else ""
            self._report(
                f"missing required column: {c!r}{via}; file skipped", Location(f.rel, column=c)
            )
        return None if missing else out

    def _extras(self, names: Sequence[str], resolved: Mapping[str, str]) -> list[str]:
        used = set(resolved.values())  # a spec-named column shadowed by the mapping is dropped
        return [
            n for n in names if n not in used and n not in _HIDDEN and n not in self._spec_names
        ]

    def _parquet(self, f: _File) -> pq.ParquetFile | None:
        if self._pf is not None and self._pf[0] == f.path:
            return self._pf[1]
        try:
            pf = pq.ParquetFile(f.path)
        except (pa.ArrowException, OSError) as exc:
            self._report(f"cannot open Parquet file: {exc}; file skipped", Location(f.rel))
            return None
        self._pf = (f.path, pf)
        return pf

    def _row_group(
        self, f: _File, i: int, offset: int, columns: list[str] | None
    ) -> pa.Table | None:
        pf = self._parquet(f)
        if pf is None:
            return None
        try:
            t = pf.read_row_group(i, columns=columns)
        except (pa.ArrowException, OSError) as exc:
            n = pf.metadata.row_group(i).num_rows
            self._report(
                f"cannot read row group {i} (rows {offset}-{offset + n - 1}): {exc}; rows skipped",
                Location(f.rel, row=offset),
            )
            return None
        return t.append_column(
            _ROW, pa.array(np.arange(offset, offset + t.num_rows, dtype=np.int64))
        )

    def _read_text(self, f: _File, columns: list[str] | None = None) -> pa.Table | None:
        """A whole JSON Lines or CSV file as Arrow, with ``__row``; bad lines reported and left out."""
        if f.path.stat().st_size == 0:
            self._report("empty file", Location(f.rel), "warning")
            return None
        if f.fmt == "csv":
            return self._read_csv(f, columns)
        try:
            t = pajson.read_json(f.path, read_options=pajson.ReadOptions(block_size=1 << 24))
            t = t.append_column(_ROW, pa.array(np.arange(t.num_rows, dtype=np.int64)))
        except (pa.ArrowException, OSError):
            t = self._read_jsonl_slow(f)
        if t is not None and columns is not None:
            t = t.select([c for c in [*columns, _ROW] if c in t.column_names])
        return t

    def _read_jsonl_slow(self, f: _File) -> pa.Table | None:
        """Line-by-line parse of a JSON Lines file Arrow refused: find and report each bad line."""
        try:
            with pa.input_stream(str(f.path), compression="detect") as s:
                raw = s.read()
        except (pa.ArrowException, OSError) as exc:
            self._report(f"cannot read file: {exc}; file skipped", Location(f.rel))
            return None
        records: list[dict[str, Any]] = []
        rows: list[int] = []
        line_of: list[int] = []
        for lineno, line in enumerate(raw.split(b"\n"), 1):
            if not line.strip():
                continue
            row = len(line_of)
            line_of.append(lineno)
            try:
                obj = json.loads(line)
            except ValueError as exc:
                msg = getattr(exc, "msg", str(exc))
                self._report(
                    f"line is not valid JSON: {msg}; row skipped",
                    Location(f.rel, row=row, line=lineno),
                )
                continue
            if not isinstance(obj, dict):
                self._report(
                    f"line is not a JSON object: got {type(obj).__name__}; row skipped",
                    Location(f.rel, row=row, line=lineno),
                )
                continue
            records.append(obj)
            rows.append(row)
        self._line_maps[f.rel] = np.array(line_of, dtype=np.int64)
        keys: dict[str, None] = {}
        for rec in records:
            keys.update(dict.fromkeys(rec))
        arrays: list[pa.Array] = []
        for k in keys:
            values = [rec.get(k) for rec in records]
            try:
                arrays.append(pa.array(values))
            except (pa.ArrowException, TypeError, ValueError, OverflowError):
                arrays.append(pa.array([_as_text(v) for v in values], pa.string()))
        t = pa.Table.from_arrays(arrays, names=list(keys)) if keys else pa.table({})
        return t.append_column(_ROW, pa.array(rows, pa.int64()))

    def _read_csv(self, f: _File, columns: list[str] | None) -> pa.Table | None:
        """CSV read with every column as text (types are cast later, value by value on failure)."""
        try:
            with pa.input_stream(str(f.path), compression="detect") as s:
                head = s.read(1 << 20).decode("utf-8", errors="replace")
            header = next(csv.reader(io.StringIO(head)), [])
        except (pa.ArrowException, OSError) as exc:
            self._report(f"cannot read file: {exc}; file skipped", Location(f.rel))
            return None
        bad: list[Any] = []

        def on_invalid(row: Any) -> str:
            bad.append(row)
            return "skip"

        include = [c for c in header if columns is None or c in columns]
        try:
            t = pacsv.read_csv(
                f.path,
                read_options=pacsv.ReadOptions(use_threads=False),
                parse_options=pacsv.ParseOptions(
                    invalid_row_handler=on_invalid, newlines_in_values=True
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in header},
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                    include_columns=include,
                ),
            )
        except (pa.ArrowException, OSError) as exc:
            self._report(f"cannot parse CSV: {exc}; file skipped", Location(f.rel))
            return None
        skipped = sorted(r.number - 2 for r in bad if r.number is not None)
        for r in bad:
            row = r.number - 2 if r.number is not None else None
            self._report(
                f"row has {r.actual_columns} fields, expected {r.expected_columns}; row skipped",
                Location(f.rel, row=row),
            )
        rows = np.arange(t.num_rows + len(skipped), dtype=np.int64)
        if skipped and len(skipped) == len(bad):
            rows = np.delete(rows, skipped)
        return t.append_column(_ROW, pa.array(rows[: t.num_rows]))

    # ------------------------------------------------------------------ casting
    def _convert(
        self, col: pa.ChunkedArray | pa.Array, to: pa.DataType, f: _File, name: str
    ) -> Any:
        """Cast one column to its spec type; raises on any value that cannot be read."""
        if pa.types.is_dictionary(col.type):
            col = pc.cast(col, col.type.value_type)
        if col.type == to:
            return col
        if pa.types.is_null(col.type):
            return pa.nulls(len(col), to)
        if _is_text(col.type):
            col = pc.utf8_trim_whitespace(col)
            if not pa.types.is_string(to) and not pa.types.is_timestamp(to):
                col = pc.if_else(pc.equal(col, ""), pa.scalar(None, col.type), col)
        if pa.types.is_timestamp(to):
            if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
                return self._epoch(col, to, f, name)
            if _is_text(col.type):
                return _parse_iso(pc.cast(col, pa.string()), to)
            return pc.cast(col, to, safe=False)
        return pc.cast(col, to)

    def _epoch(self, col: Any, to: pa.DataType, f: _File, name: str) -> Any:
        unit = self.mapping.ts_unit
        if unit is None:
            top = pc.max(pc.abs(col)).as_py() or 0
            unit = "s" if top < 1e11 else "ms" if top < 1e14 else "us" if top < 1e17 else "ns"
            self._report(
                f"epoch timestamps: unit taken as {unit!r} from their size (set ts_unit in the column mapping)",
                Location(f.rel, column=name),
                "warning",
            )
        k = _US_PER[unit]
        if pa.types.is_floating(col.type):
            us = pc.round(pc.multiply(col, float(k) if k else 1e-3))
        else:
            col = pc.cast(col, pa.int64())
            us = pc.multiply_checked(col, k) if k else pc.divide(col, 1000)
        return pc.cast(pc.cast(us, pa.int64()), pa.timestamp("us")).cast(to)

    def _cast(self, col: Any, fld: pa.Field, f: _File) -> tuple[Any, np.ndarray]:
        """Cast a column; values that fail become null and their positions are returned.

        The whole column is tried at once (the fast, normal path); only when that
        fails is it cut into slices, and only failing slices go value by value.
        """
        try:
            return self._convert(col, fld.type, f, fld.name), np.empty(0, dtype=np.int64)
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError):  # the type itself can't be cast
            bad_all = np.flatnonzero(pc.is_valid(col).to_numpy(zero_copy_only=False))
            return pa.nulls(len(col), fld.type), bad_all
        except (pa.ArrowInvalid, OverflowError):  # some values can't
            pass
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        out: list[Any] = []
        bad: list[int] = []
        null = pa.nulls(1, fld.type)
        for start in range(0, len(arr), _SLICE):
            piece = arr.slice(start, _SLICE)
            try:
                out.append(self._convert(piece, fld.type, f, fld.name))
                continue
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError):
                pass
            for j in range(len(piece)):
                try:
                    out.append(self._convert(piece.slice(j, 1), fld.type, f, fld.name))
                except (
                    pa.ArrowInvalid,
                    pa.ArrowNotImplementedError,
                    pa.ArrowTypeError,
                    OverflowError,
                ):
                    out.append(null)
                    bad.append(start + j)
        result = pa.chunked_array(
            [pa.array(o) if not isinstance(o, pa.Array) else o for o in out], type=fld.type
        )
        return result, np.array(bad, dtype=np.int64)

    def _normalise(
        self,
        raw: pa.Table,
        f: _File,
        table: str,
        fields: Sequence[pa.Field],
        resolved: Mapping[str, str],
        keep_extras: bool,
    ) -> pa.Table:
        """Cast to the spec, drop rows whose required fields are unreadable or null, report each."""
        n = raw.num_rows
        rows = raw.column(_ROW).to_numpy()
        arrays: list[Any] = []
        drop = np.zeros(n, dtype=bool)
        for fld in fields:
            src = resolved.get(fld.name)
            if src is None:
                arrays.append(pa.nulls(n, fld.type))
                continue
            col, bad = self._cast(raw.column(src), fld, f)
            via = f" ({src!r})" if src != fld.name else ""
            for i in bad:
                value = raw.column(src)[int(i)].as_py()
                if fld.nullable:
                    msg = f"value cannot be read as {fld.type}: {value!r}{via}; set to null"
                    self._report(msg, self._where(f, int(rows[i]), fld.name), "warning")
                else:
                    msg = f"value cannot be read as {fld.type}: {value!r}{via}; row dropped"
                    self._report(msg, self._where(f, int(rows[i]), fld.name))
            if not fld.nullable:
                drop[bad] = True
                if col.null_count:
                    isnull = pc.is_null(col).to_numpy(zero_copy_only=False)
                    for i in np.flatnonzero(isnull & ~drop):
                        self._report(
                            "required value is null; row dropped",
                            self._where(f, int(rows[i]), fld.name),
                        )
                    drop |= isnull
            arrays.append(col)
        out_fields = list(fields)
        if keep_extras:
            for name in self._extras(raw.column_names, resolved):
                arrays.append(raw.column(name))
                out_fields.append(raw.schema.field(name))
        arrays.append(raw.column(_ROW))
        arrays.append(pa.array(np.full(n, f.index, dtype=np.int32)))
        out_fields += [pa.field(_ROW, pa.int64()), pa.field(_FILE, pa.int32())]
        t = pa.Table.from_arrays(arrays, schema=pa.schema(out_fields))
        return t.filter(pa.array(~drop)) if drop.any() else t

    # ------------------------------------------------------------------ tables
    def _wanted(self, columns: Sequence[str] | None) -> list[pa.Field]:
        if columns is None:
            return list(schema.EXCHANGES)
        unknown = [c for c in columns if c not in schema.EXCHANGES.names]
        if unknown:
            raise LogError(
                f"unknown exchanges column(s) {unknown}; expected names from {schema.EXCHANGES.names}"
            )
        want = set(columns) | set(schema.required(schema.EXCHANGES))
        return [fld for fld in schema.EXCHANGES if fld.name in want]

    def _read_whole(self, table: str, key: str) -> pa.Table:
        """Read every file of a small table (accounts, labels), normalised; first of each key kept."""
        target = schema.TABLES[table]
        files = self._table_files(table)
        if not files:
            self._report(f"no {table} files", Location(f"{table}/"), "warning")
        parts: list[pa.Table] = []
        for f in files:
            for raw in self._file_pieces(f):
                resolved = self._resolve(f, table, raw.column_names)
                if resolved is None:
                    break
                parts.append(self._normalise(raw, f, table, list(target), resolved, True))
        if not parts:
            return pa.Table.from_pylist([], schema=target)
        t = _concat(parts)
        dup = _SeenHashes().add(_hash64(t.column(key)))
        if dup.any():
            self._report_duplicates(t, dup, key)
            t = t.filter(pa.array(~dup))
        return t.drop_columns(list(_HIDDEN))

    def _file_pieces(self, f: _File) -> Iterator[pa.Table]:
        """Raw tables of one file: each Parquet row group in turn, or the whole text file."""
        if f.fmt != "parquet":
            t = self._read_text(f)
            if t is not None:
                yield t
            return
        pf = self._parquet(f)
        if pf is None:
            return
        offset = 0
        for i in range(pf.num_row_groups):
            t = self._row_group(f, i, offset, None)
            offset += pf.metadata.row_group(i).num_rows
            if t is not None:
                yield t

    def _report_duplicates(self, t: pa.Table, dup: np.ndarray, key: str) -> None:
        idx = np.flatnonzero(dup)
        ids = t.column(key).take(pa.array(idx)).to_pylist()
        files = t.column(_FILE).take(pa.array(idx)).to_pylist()
        rows = t.column(_ROW).take(pa.array(idx)).to_pylist()
        for value, fi, row in zip(ids, files, rows, strict=True):
            f = self._by_index[fi]
            self._report(
                f"duplicate {key}: {value!r}; first kept, this row dropped",
                self._where(f, row, key),
            )

    # ------------------------------------------------------------------ exchanges
    def _plan(self) -> list[_Chunk]:
        """Chunks of the exchanges table with the UTC days each holds, from metadata where possible."""
        if self._plan_cache is not None:
            return self._plan_cache
        files = self._table_files("exchanges")
        if not (self.root / "exchanges").is_dir():
            raise LogError("log has no exchanges/ folder", Location(str(self.root)))
        if not files:
            self._report("no exchanges files", Location("exchanges/"), "warning")
        ts_field = schema.EXCHANGES.field("ts")
        quiet = _Quiet(self)
        chunks: list[_Chunk] = []
        for f in files:
            if f.fmt != "parquet":
                raw = self._read_text(f)
                if raw is None:
                    continue
                resolved = self._resolve(f, "exchanges", raw.column_names)
                if resolved is None:
                    continue
                with quiet:
                    ts, _ = self._cast(raw.column(resolved["ts"]), ts_field, f)
                filled = frozenset(
                    c for c, src in resolved.items() if raw.column(src).null_count < raw.num_rows
                )
                chunks.append(_Chunk(f, None, 0, _days_of(ts), resolved, filled))
                continue
            pf = self._parquet(f)
            if pf is None:
                continue
            resolved = self._resolve(f, "exchanges", pf.schema_arrow.names)
            if resolved is None:
                continue
            ts_col = resolved["ts"]
            ts_type = pf.schema_arrow.field(ts_col).type
            offset = 0
            for i in range(pf.num_row_groups):
                n = pf.metadata.row_group(i).num_rows
                days = (
                    _stat_days(pf.metadata.row_group(i), ts_col)
                    if pa.types.is_timestamp(ts_type)
                    else None
                )
                if days is None:
                    t = self._row_group(f, i, offset, [ts_col])
                    if t is None:
                        offset += n
                        continue
                    with quiet:
                        ts, _ = self._cast(t.column(ts_col), ts_field, f)
                    days = _days_of(ts)
                filled = _filled(pf.metadata.row_group(i), resolved)
                chunks.append(_Chunk(f, i, offset, days, resolved, filled))
                offset += n
        self._plan_cache = chunks
        return chunks

    def _read_chunk(
        self, ch: _Chunk, fields: Sequence[pa.Field], keep_extras: bool
    ) -> pa.Table | None:
        f = ch.file
        if ch.row_group is None:
            wanted = [ch.resolved[fl.name] for fl in fields if fl.name in ch.resolved]
            raw = self._read_text(f, None if keep_extras else wanted)
        else:
            pf = self._parquet(f)
            if pf is None:
                return None
            names = pf.schema_arrow.names
            cols = [ch.resolved[fl.name] for fl in fields if fl.name in ch.resolved]
            if keep_extras:
                cols += self._extras(names, ch.resolved)
            raw = self._row_group(f, ch.row_group, ch.row_offset, cols)
        if raw is None:
            return None
        return self._normalise(raw, f, "exchanges", fields, ch.resolved, keep_extras)

    def _finish_day(self, parts: list[pa.Table], seen: _SeenHashes, ordered: bool = True) -> pa.Table:
        """One day: concatenated, sorted by ts (stable), repeated request_ids reported and dropped."""
        t = _concat(parts)
        if ordered:
            ts = t.column("ts").combine_chunks().cast(pa.int64()).to_numpy()
            if len(ts) > 1 and not bool(np.all(ts[1:] >= ts[:-1])):
                t = t.take(pa.array(np.argsort(ts, kind="stable")))
        dup = seen.add(_hash64(t.column("request_id")))
        if dup.any():
            self._report_duplicates(t, dup, "request_id")
            t = t.filter(pa.array(~dup))
        return t.drop_columns(list(_HIDDEN))


class _Quiet:
    """Context in which a reader records nothing (planning reads values that are read again later)."""

    def __init__(self, reader: LogReader) -> None:
        self._reader = reader

    def __enter__(self) -> None:
        self._reader._quiet += 1

    def __exit__(self, *exc: object) -> None:
        self._reader._quiet -= 1


def _as_text(v: Any) -> str | None:
    """A JSON value as text for a column of mixed types; 3.0 reads as 3 so it still casts to int."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return json.dumps(v)


def _days_of(ts: Any) -> tuple[datetime.date, ...]:
    days = pc.unique(pc.drop_null(pc.cast(ts, pa.date32())))
    return tuple(sorted(days.to_pylist()))


def _stat_days(rg: Any, column: str) -> tuple[datetime.date, ...] | None:
    """The one UTC day a row group holds, from its ts statistics; None when stats can't say."""
    for j in range(rg.num_columns):
        c = rg.column(j)
        if c.path_in_schema != column:
            continue
        st = c.statistics
        if st is None or not st.has_min_max or not isinstance(st.min, datetime.datetime):
            return None
        lo, hi = (_utc_day(st.min), _utc_day(st.max))
        return (lo,) if lo == hi else None
    return None


def _filled(rg: Any, resolved: Mapping[str, str]) -> frozenset[str]:
    """Spec columns of a row group not known (from null counts) to be entirely null."""
    empty = set()
    for j in range(rg.num_columns):
        c = rg.column(j)
        st = c.statistics
        if st is not None and st.has_null_count and st.null_count == rg.num_rows and rg.num_rows:
            empty.add(c.path_in_schema)
    return frozenset(c for c, src in resolved.items() if src not in empty)


def _utc_day(t: datetime.datetime) -> datetime.date:
    if t.tzinfo is not None:
        t = t.astimezone(datetime.UTC)
    return t.date()


def _concat(parts: list[pa.Table]) -> pa.Table:
    """Concatenate normalised pieces whose extra columns may differ; clashing extras become text."""
    if len(parts) == 1:
        return parts[0]
    try:
        return pa.concat_tables(parts, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        spec = set(schema.EXCHANGES.names) | set(schema.ACCOUNTS.names) | set(_HIDDEN)
        fixed = []
        for p in parts:
            for i, name in enumerate(p.column_names):
                if name not in spec and not _is_text(p.schema.field(i).type):
                    p = p.set_column(i, name, _to_text(p.column(i)))
            fixed.append(p)
        return pa.concat_tables(fixed, promote_options="permissive")


def _to_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    try:
        return pc.cast(col, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.chunked_array(
            [
                pa.array(
                    [None if v is None else json.dumps(v, default=str) for v in col.to_pylist()],
                    pa.string(),
                )
            ]
        )


# --------------------------------------------------------------------------- validation


@dataclass
class ValidationReport:
    """What :func:`validate_log` found: rows kept per table and every issue, countable and renderable."""

    root: Path
    n_rows: dict[str, int]
    n_files: dict[str, int]
    issues: IssueLog
    tally: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)

    @property
    def n_errors(self) -> int:
        """Errors found (bad rows, files, duplicates); a valid log has none."""
        return self.issues.n_errors

    @property
    def n_warnings(self) -> int:
        """Warnings found (values set to null, inferred units, empty files)."""
        return self.issues.n_warnings

    def render(self, max_issues: int = 20, max_groups: int = 40) -> RenderableType:
        """A rich renderable: rows per table, issue counts by file/column/problem, the first issues."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        tables = Table(title=f"log {self.root}", title_justify="left")
        tables.add_column("table")
        tables.add_column("files", justify="right")
        tables.add_column("rows kept", justify="right")
        for name, n in self.n_rows.items():
            tables.add_row(name, str(self.n_files.get(name, 0)), f"{n:,}")
        parts: list[RenderableType] = [tables]
        if self.tally:
            groups = Table(title="issues by file, column and problem", title_justify="left")
            for col in ("file", "column", "problem", "severity"):
                groups.add_column(col)
            groups.add_column("count", justify="right")
            for (path, column, problem, sev), n in self.tally.most_common(max_groups):
                style = "red" if sev == "error" else "yellow"
                groups.add_row(path, column, problem, Text(sev, style=style), f"{n:,}")
            parts.append(groups)
            first = Text("first issues:\n", style="bold")
            for issue in self.issues.issues[:max_issues]:
                first.append(f"  {issue}\n", style="red" if issue.severity == "error" else "yellow")
            parts.append(first)
        verdict = (
            Text(f"{self.n_errors:,} errors, {self.n_warnings:,} warnings", style="bold red")
            if self.n_errors
            else Text(f"valid ({self.n_warnings:,} warnings)", style="bold green")
        )
        parts.append(verdict)
        return Group(*parts)


def validate_log(
    root: Path | str, mapping: ColumnMapping | Path | str | None = None, strict: bool = False
) -> ValidationReport:
    """Read a whole log once against the spec and collect every problem.

    Parameters
    ----------
    root
        The log folder.
    mapping
        Column mapping (object or YAML path) for logs whose names differ.
    strict
        Raise :class:`~distillguard.errors.ValidationError` at the first error.

    Returns
    -------
    ValidationReport
        Rows kept per table, and every issue with file, row and column.
    """
    reader = LogReader(root, mapping=mapping, strict=strict)
    accounts = reader.accounts()
    labels = reader.labels()
    n_ex = 0
    unknown = 0
    known = accounts.column("account_id")
    for batch in reader.exchange_batches():
        n_ex += batch.num_rows
        if len(known):
            unknown += batch.num_rows - pc.sum(pc.is_in(batch.column("account_id"), known)).as_py()
    if unknown:
        reader._report(
            f"account_id not in accounts: {unknown:,} exchanges from accounts missing from accounts/",
            Location("exchanges/", column="account_id"),
            "warning",
        )
    n_rows = {"exchanges": n_ex, "accounts": accounts.num_rows}
    if labels is not None:
        n_rows["labels"] = labels.num_rows
    n_files = {name: len(files) for name, files in reader._files.items()}
    return ValidationReport(reader.root, n_rows, n_files, reader.issues, reader.tally)
