"""Reading exchange logs: discovery of the files of a log folder, their formats, day-by-day
streaming, duplicates across files, and every problem reported with file, row and column.

Values are normalised by :mod:`distillguard.io.normalise`, the same pure code a Spark
partition or a gateway batch uses.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from distillguard import schema
from distillguard.config import ColumnMapping
from distillguard.errors import Issue, IssueLog, Location, LogError, Severity, ValidationError
from distillguard.io.formats import COMPRESSED, EXTENSIONS
from distillguard.io.normalise import (
    FILE,
    HIDDEN,
    ROW,
    cast_column,
    extras,
    is_text,
    normalise_rows,
    resolve,
)

__all__ = ["LogReader", "Loss", "RequestIds"]


@dataclass
class Loss:
    """What a reader could not keep: rows per table (``exchanges``, ``accounts``, ...) and
    whole files (their rows unknown)."""

    rows: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def total_rows(self) -> int:
        return sum(self.rows.values())

    @classmethod
    def of(cls, readers: Sequence[LogReader]) -> Loss:
        """Everything the given readers could not keep, added up."""
        out = cls()
        for r in readers:
            for table, n in r.lost.rows.items():
                out.rows[table] = out.rows.get(table, 0) + n
            out.files += [f"{r.root}/{f}" if len(readers) > 1 else f for f in r.lost.files]
        return out

    def summary(self, kept: Mapping[str, int]) -> dict[str, Any]:
        """JSON-able: rows kept and lost per table, the share lost, the files skipped."""
        tables = sorted(set(kept) | set(self.rows))
        lost = {t: self.rows.get(t, 0) for t in tables}
        total = sum(kept.values()) + sum(lost.values())
        return {
            "kept": {t: int(kept.get(t, 0)) for t in tables},
            "lost": lost,
            "lost_share": (sum(lost.values()) / total) if total else 0.0,
            "files_skipped": list(self.files),
        }


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


class RequestIds:
    """Set of 64-bit hashes kept as a few sorted numpy runs, behind a Bloom filter.

    Scales to tens of millions of ids at 8 bytes each (and 2 bytes each for the filter),
    where a Python set of strings would not. Two distinct ids colliding (about 1e-4 odds
    at 60M ids) would drop one row as a duplicate; that risk is accepted and documented.

    Why the filter: nearly every id is new, and telling so by a binary search in every run
    cost 35 s at 57.8 million ids, 19x the cost at a tenth of them (cache misses in runs
    larger than the cache, and more runs). An id that the filter has not seen is new; only
    the rest (repeats, and under 1 % false positives) are looked up in the runs. The filter
    is blocked: an id's three bits lie in one 64-bit word chosen by the hash's top bits, and
    the ids of a batch are read in hash order, so the filter is read as a stream. Runs merge
    ``FANOUT`` at a time (tiered), so an id is copied log_8 of the batches times, not log_2
    (``benchmarks/bench_request_ids.py`` has the numbers).
    """

    FANOUT = 8
    BITS_PER_ID = 16  # the filter grows to keep at least this many bits per id

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []
        self._levels: list[int] = []  # per run: merged that many times (-1: restored, never merged again)
        self._n = 0
        self._words = np.zeros(0, dtype=np.uint64)
        self._shift = np.uint64(0)
        self._empty()

    def _empty(self) -> None:
        self._runs, self._levels, self._n = [], [], 0
        self._words, self._shift = np.zeros(1 << 14, dtype=np.uint64), np.uint64(64 - 14)  # 2**20 bits to start

    def add(self, hashes: np.ndarray) -> np.ndarray:
        """Record ``hashes``; return a mask of those seen before (earlier call or earlier in this one)."""
        dup = np.ones(len(hashes), dtype=bool)
        if not len(hashes):
            return dup
        order = np.argsort(hashes)  # not stable (5x faster): the first occurrence is found below
        ordered = hashes[order]
        lead = np.empty(len(ordered), dtype=bool)
        lead[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=lead[1:])
        starts = np.flatnonzero(lead)
        uniq, first = ordered[starts], np.minimum.reduceat(order, starts)
        word, bits = self._where(uniq)
        maybe = np.flatnonzero((self._words[word] & bits) == bits)
        fresh = np.ones(len(uniq), dtype=bool)
        if len(maybe):
            cand, seen = uniq[maybe], np.zeros(len(maybe), dtype=bool)
            for run in self._runs:  # runs are never empty
                pos = np.searchsorted(run, cand)
                pos[pos == len(run)] = 0
                seen |= run[pos] == cand
            fresh[maybe[seen]] = False
        dup[first[fresh]] = False
        new = uniq[fresh]
        if len(new):
            self._remember(new)
        return dup

    def _where(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each hash's word in the filter (its top bits) and its three bits there (low bits)."""
        one, six = np.uint64(1), np.uint64(63)
        bits = (one << (hashes & six)) | (one << ((hashes >> np.uint64(6)) & six)) | (one << ((hashes >> np.uint64(12)) & six))
        return (hashes >> self._shift).astype(np.intp), bits

    def _mark(self, sorted_hashes: np.ndarray) -> None:
        word, bits = self._where(sorted_hashes)
        starts = np.flatnonzero(np.concatenate(([True], word[1:] != word[:-1])))
        self._words[word[starts]] |= np.bitwise_or.reduceat(bits, starts)

    def _remember(self, new: np.ndarray) -> None:
        self._n += len(new)
        if self._n * self.BITS_PER_ID > 64 * len(self._words):  # grow the filter: mark every id again
            size = len(self._words)
            while self._n * self.BITS_PER_ID > 64 * size:
                size *= 2
            self._words = np.zeros(size, dtype=np.uint64)
            self._shift = np.uint64(64 - size.bit_length() + 1)
            for run in self._runs:
                self._mark(run)
        self._mark(new)
        self._runs.append(new)
        self._levels.append(0)
        # The last FANOUT runs of one level merge into one of the next (disjoint sorted runs).
        while len(self._levels) >= self.FANOUT and self._levels[-1] >= 0 and len(set(self._levels[-self.FANOUT :])) == 1:
            merged = np.concatenate(self._runs[-self.FANOUT :])
            merged.sort(kind="stable")  # timsort: merges the sorted runs
            level = self._levels[-1] + 1
            del self._runs[-self.FANOUT :], self._levels[-self.FANOUT :]
            self._runs.append(merged)
            self._levels.append(level)

    @property
    def runs(self) -> list[np.ndarray]:
        """The ids as sorted runs (a checkpoint keeps these; runs never change once made)."""
        return list(self._runs)

    def restore(self, runs: list[np.ndarray]) -> None:
        """Become the set a checkpoint's :attr:`runs` describe (in place: readers share it)."""
        self._empty()
        for run in runs:
            if len(run):
                self._remember(run)
                self._levels[-1] = -1


def _hash64(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Vectorised 64-bit hash of a string column (Polars' hash; stable within one process)."""
    import polars as pl

    series = pl.from_arrow(col)
    assert isinstance(series, pl.Series)
    return series.hash(seed=0x5EED).to_numpy()


Report = tuple[str, Location, Severity, "int | None"]
"""One issue as :meth:`LogReader._report` took it: message, where, severity, rows lost."""


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
        request_ids: RequestIds | None = None,
    ) -> None:
        self.root = Path(root)
        # Shared by the readers of one hunt, so a request seen in another log (the same log
        # given twice) is a duplicate too; such a reader's exchanges are read once.
        self._request_ids = request_ids
        if not self.root.is_dir():
            raise LogError("log folder not found", Location(str(self.root)))
        self.mapping = ColumnMapping.coerce(mapping)
        self.strict = strict
        self.issues = IssueLog()
        self.tally: Counter[tuple[str, str, str, str]] = Counter()
        """Issue counts by (file, column, problem, severity), for reports."""
        self.lost = Loss()
        """Input rows and files that could not be kept, by table."""
        self._reported: set[tuple[str, str, str]] = set()
        self._by_index: list[_File] = []
        self._files: dict[str, list[_File]] = {}
        self._line_maps: dict[str, np.ndarray] = {}
        self._plan_cache: list[_Chunk] | None = None
        self._accounts: pa.Table | None = None
        self._labels: pa.Table | None = None
        self._created: Any = None  # account_id -> created_at, once read (polars)
        self._pf: tuple[Path, pq.ParquetFile] | None = None
        self._quiet = 0
        self.reports: list[Report] | None = None
        """Every issue as reported, when a list is set: a reader on a Spark executor hands
        them to the driver's reader (:meth:`replay`), which counts and raises as if it read."""
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

    def exchange_batches(
        self, columns: Sequence[str] | None = None, ordered: bool = True
    ) -> Iterator[pa.Table]:
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
        for batch, _ in self._pieces(columns, ordered):
            yield batch

    def exchange_pieces(
        self, columns: Sequence[str] | None = None, max_bytes: int | None = None, first_day: datetime.date | None = None
    ) -> Iterator[tuple[pa.Table, bool]]:
        """Exchanges as :meth:`exchange_batches` yields them unordered, in pieces of about
        ``max_bytes`` (row groups of a day gathered in plan order until they pass it) with
        whether each piece ends its day: a hunt on a memory budget never holds a whole large
        day. ``first_day``: start there (a resumed hunt; the request ids of the days before
        come from its checkpoint). The rows, their order and the repeats dropped are those
        of :meth:`exchange_batches`."""
        return self._pieces(columns, False, max_bytes, first_day)

    def _pieces(
        self, columns: Sequence[str] | None, ordered: bool, max_bytes: int | None = None,
        first_day: datetime.date | None = None,
    ) -> Iterator[tuple[pa.Table, bool]]:  # fmt: skip
        fields = self._wanted(columns)
        keep_extras = columns is None
        plan = self._plan()
        by_day: dict[datetime.date, list[_Chunk]] = defaultdict(list)
        for ch in plan:
            if ch.days:
                by_day[ch.days[0]].append(ch)
            elif first_day is None:  # nothing usable; read anyway so that its problems are reported
                self._read_chunk(ch, fields, keep_extras)
        pending: dict[datetime.date, list[pa.Table]] = defaultdict(list)
        seen = self._request_ids if self._request_ids is not None else RequestIds()
        for day in sorted({d for ch in plan for d in ch.days}):
            parts = pending.pop(day, [])
            size = sum(p.nbytes for p in parts)  # kept as parts come (summed anew each time: quadratic in a day's row groups)
            held: pa.Table | None = None  # a full piece waits until it is known whether it ends the day
            for ch in by_day.get(day, []):
                if first_day is not None and max(ch.days) < first_day:
                    continue  # read before the restart
                t = self._read_chunk(ch, fields, keep_extras)
                if t is None or t.num_rows == 0:
                    continue
                if len(ch.days) == 1:
                    parts.append(t)
                    size += t.nbytes
                else:
                    tday = pc.cast(t.column("ts"), pa.date32())
                    for d in pc.unique(tday).to_pylist():
                        piece = t.filter(pc.equal(tday, pa.scalar(d, pa.date32())))
                        (parts if d <= day else pending[d]).append(piece)
                        size += piece.nbytes if d <= day else 0
                if max_bytes is not None and (first_day is None or day >= first_day) and size >= max_bytes:
                    batch = self._finish_day(parts, seen, ordered)
                    parts, size = [], 0
                    if batch.num_rows:
                        if held is not None:
                            yield held, False
                        held = batch
            if first_day is not None and day < first_day:
                continue
            batch = self._finish_day(parts, seen, ordered) if parts else None
            if batch is not None and batch.num_rows:
                if held is not None:
                    yield held, False
                held = batch
            if held is not None:
                yield held, True

    def day_exchanges(
        self, day: datetime.date, columns: Sequence[str] | None = None, ordered: bool = False, locate: bool = False
    ) -> pa.Table | None:
        """One UTC day's exchanges as :meth:`exchange_batches` yields it (same rows, same
        order), for engines that read days in parallel (Spark). A repeated ``request_id`` is
        dropped within the day only: across days and logs that is the caller's to do
        (keeping the first in log, day and row order, as :meth:`exchange_batches` does, and
        reporting the others with :meth:`report_repeats`). ``locate``: keep the source file and row of
        each exchange (columns ``__file`` and ``__row``) for that report."""
        fields = self._wanted(columns)
        keep_extras = columns is None
        plan = self._plan()
        # exchange_batches reads a chunk at its first day and carries later days' rows forward:
        # chunks begun on earlier days first, each day's in plan order.
        mine = sorted((ch.days[0], i, ch) for i, ch in enumerate(plan) if day in ch.days)
        parts = []
        for _, _, ch in mine:
            t = self._read_chunk(ch, fields, keep_extras)
            if t is None or t.num_rows == 0:
                continue
            if len(ch.days) > 1:
                t = t.filter(pc.equal(pc.cast(t.column("ts"), pa.date32()), pa.scalar(day, pa.date32())))
            parts.append(t)
        if not parts:
            return None
        batch = self._finish_day(parts, RequestIds(), ordered, locate)
        return batch if batch.num_rows else None

    def report_repeats(self, repeats: pa.Table) -> None:
        """Report rows dropped as repeats of an earlier ``request_id`` (columns ``request_id``,
        ``__file``, ``__row`` as :meth:`day_exchanges` kept them), as this reader would have."""
        self._report_duplicates(repeats, np.ones(repeats.num_rows, dtype=bool), "request_id")

    def issue_state(self) -> dict[str, Any]:
        """Everything this reader has reported so far, for a checkpoint (:mod:`distillguard.hunt.checkpoint`)."""
        return {"issues": self.issues, "tally": self.tally, "lost": self.lost, "reported": self._reported}

    def restore_issue_state(self, saved: dict[str, Any]) -> None:
        self.issues, self.tally, self.lost, self._reported = saved["issues"], saved["tally"], saved["lost"], saved["reported"]

    def request_ids_state(self) -> list[np.ndarray] | None:
        """The request ids seen so far (shared by a hunt's readers), for a checkpoint."""
        return None if self._request_ids is None else self._request_ids.runs

    def restore_request_ids(self, runs: list[np.ndarray]) -> None:
        if self._request_ids is None:
            self._request_ids = RequestIds()
        self._request_ids.restore(runs)

    @property
    def request_ids(self) -> RequestIds | None:
        """The set of request ids this reader drops repeats against (shared across a hunt's logs)."""
        return self._request_ids

    def replay(self, reports: Sequence[Report]) -> None:
        """Report issues another reader of the same log recorded (:attr:`reports`), each once."""
        for message, source, severity, rows_lost in reports:
            self._report(message, source, severity, rows_lost)

    def read_exchanges(self, columns: Sequence[str] | None = None) -> pa.Table:
        """All exchanges in one table (small logs and tests); see :meth:`exchange_batches`."""
        batches = list(self.exchange_batches(columns))
        if not batches:
            return pa.Table.from_pylist([], schema=pa.schema(self._wanted(columns)))
        return pa.concat_tables(batches, promote_options="permissive")

    # ------------------------------------------------------------------ issues
    def _report(self, message: str, source: Location, severity: Severity = "error", rows_lost: int | None = None) -> None:
        """Record one issue; ``rows_lost`` (by default 1 for a message ending in "row dropped" or
        "row skipped") counts towards :attr:`lost`, and so does a file a message says was skipped."""
        if self._quiet:
            return
        key = (str(source), message, severity)
        if key in self._reported:
            return
        self._reported.add(key)
        if self.reports is not None:
            self.reports.append((message, source, severity, rows_lost))
        table = source.path.split("/", 1)[0]
        if rows_lost is None:
            rows_lost = 1 if message.endswith(("row dropped", "row skipped")) else 0
        self.lost.rows[table] = self.lost.rows.get(table, 0) + rows_lost
        if message.endswith("file skipped") and source.path not in self.lost.files:
            self.lost.files.append(source.path)
        if self.strict and severity == "error":
            raise ValidationError(message, source)
        self.issues.add(Issue(message, source, severity))
        problem = message.split(":")[0]
        self.tally[(source.path, source.column or "-", problem, severity)] += 1

    def _where(self, f: _File, row: int | None = None, column: str | None = None) -> Location:
        """Location of a data row; JSON Lines also get their 1-based line number."""
        line = None
        if row is not None and f.fmt in ("jsonl", "csv"):
            lines = self._line_map(f)
            line = int(lines[row]) if row < len(lines) else None
        return Location(f.rel, row=row, column=column, line=line)

    def _line_map(self, f: _File) -> np.ndarray:
        """Line number of each data row (blank lines hold no row); computed only when needed."""
        if f.rel not in self._line_maps:
            with pa.input_stream(str(f.path), compression="detect") as s:
                raw = s.read()
            if f.fmt == "csv":  # the line each record starts on (a quoted value may span lines)
                rd = csv.reader(io.StringIO(raw.decode("utf-8", errors="replace"), newline=""))
                starts, prev = [], 0
                for _ in rd:
                    starts.append(prev + 1)
                    prev = rd.line_num
                self._line_maps[f.rel] = np.array(starts[1:], dtype=np.int64)  # less the header
            else:
                lines = raw.split(b"\n")
                self._line_maps[f.rel] = np.array([i + 1 for i, ln in enumerate(lines) if ln.strip()], dtype=np.int64)
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
                for comp in COMPRESSED:
                    name = name.removesuffix(comp)
                fmt = EXTENSIONS.get(Path(name).suffix)
                rel = p.relative_to(self.root).as_posix()
                if fmt is None:
                    self._report("file ignored: unknown extension", Location(rel), "warning")
                    continue
                self._by_index.append(_File(p, rel, fmt, len(self._by_index)))
                out.append(self._by_index[-1])
        self._files[table] = out
        return out

    def _parquet(self, f: _File) -> pq.ParquetFile | None:
        if self._pf is not None and self._pf[0] == f.path:
            return self._pf[1]
        if f.path.stat().st_size == 0:  # as for text formats: nothing lost, nothing to read
            self._report("empty file", Location(f.rel), "warning")
            return None
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
                rows_lost=n,
            )
            return None
        return t.append_column(
            ROW, pa.array(np.arange(offset, offset + t.num_rows, dtype=np.int64))
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
            t = t.append_column(ROW, pa.array(np.arange(t.num_rows, dtype=np.int64)))
        except (pa.ArrowException, OSError):
            t = self._read_jsonl_slow(f)
        if t is not None and columns is not None:
            t = t.select([c for c in [*columns, ROW] if c in t.column_names])
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
        return t.append_column(ROW, pa.array(rows, pa.int64()))

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
        # A malformed row that is not UTF-8 either makes Arrow fail while handing it to
        # ``on_invalid`` (it is skipped, the failure goes to sys.unraisablehook): catch those.
        undecodable: list[Any] = []
        hook, sys.unraisablehook = sys.unraisablehook, undecodable.append
        try:
            t = pacsv.read_csv(
                f.path,
                read_options=pacsv.ReadOptions(use_threads=False),
                parse_options=pacsv.ParseOptions(
                    invalid_row_handler=on_invalid, newlines_in_values=True
                ),
                convert_options=pacsv.ConvertOptions(
                    # As bytes: a value that is not UTF-8 is then reported and nulled on its
                    # own (as in JSON Lines and Parquet), not the whole file lost.
                    column_types={c: pa.binary() for c in header},
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                    include_columns=include,
                ),
            )
        except (pa.ArrowException, OSError) as exc:
            self._report(f"cannot parse CSV: {exc}; file skipped", Location(f.rel))
            return None
        finally:
            sys.unraisablehook = hook
        if undecodable:
            self._report(
                f"{len(undecodable):,} rows are neither valid UTF-8 nor of the header's width; rows skipped",
                Location(f.rel),
                rows_lost=len(undecodable),
            )
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
        return t.append_column(ROW, pa.array(rows[: t.num_rows]))

    # ------------------------------------------------------------------ casting
    # ------------------------------------------------------------------ tables
    def _resolve(self, f: _File, table: str, names: Sequence[str]) -> dict[str, str] | None:
        """Spec column -> file column for one file, or None (reported) when a required one is missing."""
        out, missing = resolve(table, names, self.mapping)
        mapping: Mapping[str, str] = getattr(self.mapping, table)
        for spec_col, provider in mapping.items():
            if provider not in names and spec_col not in missing:
                self._report(
                    f"the column mapping names {provider!r} for {table}.{spec_col}, but this file has no such "
                    f"column{_did_you_mean(provider, names)}; {spec_col} is null here",
                    Location(f.rel, column=spec_col),
                    "warning",
                )
        spec_names = schema.TABLES[table].names
        for extra in extras(names, out):
            hint = _did_you_mean(extra, list(spec_names))
            if hint:
                self._report(
                    f"column {extra!r} is not in the spec{hint} (kept and ignored; rename it or map it)",
                    Location(f.rel, column=extra),
                    "warning",
                )
        for c in missing:
            via = f" (mapped from {mapping[c]!r})" if c in mapping else ""
            hint = _did_you_mean(c, [n for n in names if n not in out.values()], reverse=True)
            self._report(f"missing required column: {c!r}{via}{hint}; file skipped", Location(f.rel, column=c))
        return None if missing else out

    def _cast(self, col: Any, fld: pa.Field, f: _File) -> tuple[Any, np.ndarray]:
        out, bad, issues = cast_column(
            col, fld, self.mapping.ts_unit, Location(f.rel, column=fld.name)
        )
        self._report_all(issues)
        return out, bad

    def _normalise(
        self,
        raw: pa.Table,
        f: _File,
        table: str,
        fields: Sequence[pa.Field],
        resolved: Mapping[str, str],
        keep_extras: bool,
    ) -> pa.Table:
        """:func:`~distillguard.io.normalise.normalise_rows` on one piece of ``f``, issues reported."""
        t, issues = normalise_rows(
            raw, fields, resolved, where=lambda row, column: self._where(f, row, column),
            ts_unit=self.mapping.ts_unit, keep_extras=keep_extras, file_index=f.index,
        )  # fmt: skip
        self._report_all(issues)
        return t

    def _report_all(self, issues: Sequence[Issue]) -> None:
        for issue in issues:
            self._report(issue.message, issue.source, issue.severity)

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
        dup = RequestIds().add(_hash64(t.column(key)))
        if dup.any():
            self._report_duplicates(t, dup, key)
            t = t.filter(pa.array(~dup))
        return t.drop_columns(list(HIDDEN))

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
        files = t.column(FILE).take(pa.array(idx)).to_pylist()
        rows = t.column(ROW).take(pa.array(idx)).to_pylist()
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
                cols += extras(names, ch.resolved)
            raw = self._row_group(f, ch.row_group, ch.row_offset, cols)
        if raw is None:
            return None
        return self._normalise(raw, f, "exchanges", fields, ch.resolved, keep_extras)

    def _finish_day(
        self, parts: list[pa.Table], seen: RequestIds, ordered: bool = True, locate: bool = False
    ) -> pa.Table:
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
        self._check_accounts(t)
        return t if locate else t.drop_columns(list(HIDDEN))

    def _check_accounts(self, t: pa.Table) -> None:
        """Warn, once per account, of exchanges whose account is not in ``accounts/`` or that
        came before the account was created, and of timestamps more than a day in the future.
        The rows are kept: the spec does not forbid them, but each is worth a look."""
        import polars as pl

        if self._created is None:
            acc = self.accounts() if self._table_files("accounts") else None
            self._created = (
                pl.DataFrame(schema={"account_id": pl.String, "created_at": pl.Datetime("us", "UTC")})
                if acc is None or acc.num_rows == 0
                else pl.from_arrow(acc.select(["account_id", "created_at"]))  # type: ignore[assignment]
            )
        if self._created.height == 0 or t.num_rows == 0:
            return
        df = pl.from_arrow(t.select(["account_id", "ts", ROW, FILE]))
        assert isinstance(df, pl.DataFrame)
        j = df.join(self._created, on="account_id", how="left")
        when = "%Y-%m-%d %H:%M:%S UTC"  # as text: a timestamp past year 9999 has no Python datetime
        firsts = [pl.len().alias("n"), pl.col(ROW).first(), pl.col(FILE).first(), pl.col("created_at").first().dt.strftime(when)]
        for r in j.filter(pl.col("created_at").is_null()).group_by("account_id").agg(*firsts).iter_rows(named=True):
            self._report(
                f"account {r['account_id']!r} is not in accounts/ ({r['n']:,} exchanges in this day); "
                "its registration signals are empty",
                self._where(self._by_index[r[FILE]], r[ROW], "account_id"),
                "warning",
            )
        early = j.filter(pl.col("ts") < pl.col("created_at")).group_by("account_id").agg(*firsts)
        for r in early.iter_rows(named=True):
            self._report(
                f"{r['n']:,} exchanges of account {r['account_id']!r} in this day come before its created_at "
                f"({r['created_at']})",
                self._where(self._by_index[r[FILE]], r[ROW], "ts"),
                "warning",
            )
        horizon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
        late = df.filter(pl.col("ts") > horizon)
        if late.height:
            r = late.head(1).with_columns(pl.col("ts").dt.strftime(when)).row(0, named=True)
            self._report(
                f"{late.height:,} exchanges in this day are more than a day in the future (first: {r['ts']})",
                self._where(self._by_index[r[FILE]], r[ROW], "ts"),
                "warning",
            )


def _did_you_mean(name: str, candidates: Sequence[str], reverse: bool = False) -> str:
    """``": did you mean 'prompt'?"`` for a name one typo away from a candidate (``reverse``:
    the candidate is the file's column, the name the spec's)."""
    import difflib

    close = difflib.get_close_matches(name.lower(), [c.lower() for c in candidates], n=1, cutoff=0.75)
    if not close:
        return ""
    match = next(c for c in candidates if c.lower() == close[0])
    return f" (the file has {match!r}: a typo?)" if reverse else f": did you mean {match!r}?"


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
        spec = set(schema.EXCHANGES.names) | set(schema.ACCOUNTS.names) | set(HIDDEN)
        fixed = []
        for p in parts:
            for i, name in enumerate(p.column_names):
                if name not in spec and not is_text(p.schema.field(i).type):
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
