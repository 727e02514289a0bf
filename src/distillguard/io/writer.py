"""Writing exchange logs: a folder at once (:class:`LogWriter`), or appended to by a
long-running producer such as the gateway's exchange sink (:class:`AppendingLogWriter`)."""

from __future__ import annotations

import datetime
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from distillguard import schema
from distillguard.errors import LogError
from distillguard.io.formats import FORMATS, TABLE_DIRS, conform_for_write, iso_strings, write_jsonl

__all__ = ["AppendingLogWriter", "LogWriter", "by_day", "write_log"]


class _Closing:
    """``with writer:`` closes it."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def by_day(t: pa.Table) -> Iterator[tuple[datetime.date, pa.Table]]:
    """The rows of each UTC day of ``ts``: how exchanges are partitioned on disk."""
    if t.num_rows == 0:
        return
    day = pc.cast(t.column("ts"), pa.date32())
    for d in pc.unique(day).to_pylist():
        yield d, t.filter(pc.equal(day, pa.scalar(d, pa.date32())))


class LogWriter(_Closing):
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
        for name in TABLE_DIRS:
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
        t = conform_for_write(table, schema.EXCHANGES, "exchanges")
        if self.fmt != "parquet":
            self._write(t, self.root / "exchanges")
            return
        for d, part in by_day(t):
            self._write(part, self.root / "exchanges" / f"date={d.isoformat()}")

    def write_accounts(self, table: pa.Table) -> None:
        """Append accounts (cast to :data:`schema.ACCOUNTS`) as a new part file."""
        self._write(conform_for_write(table, schema.ACCOUNTS, "accounts"), self.root / "accounts")

    def write_labels(self, table: pa.Table) -> None:
        """Append labels (cast to :data:`schema.LABELS`) as a new part file."""
        self._write(conform_for_write(table, schema.LABELS, "labels"), self.root / "labels")

    def close(self) -> None:
        """Finish writing. Every part is complete when its call returns; this only forbids more."""
        self._closed = True

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
            pacsv.write_csv(iso_strings(table), path)
        else:
            write_jsonl(iso_strings(table), path)


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


class AppendingLogWriter(_Closing):
    """Append exchanges to a log folder from a long-running producer (the gateway's exchange sink).

    Rows are buffered in memory and written as a new Parquet part when the oldest buffered
    row is ``roll_seconds`` old or the buffer holds ``roll_rows`` rows, whichever comes
    first; :meth:`start` does the time check in a background thread. Each part is written
    to a hidden temporary file and renamed into place, so a crash or ``kill -9`` leaves only
    whole parts (readers skip names starting with ``.``) and loses at most the rows of the
    last ``roll_seconds``. Part names carry a time, the writer's id and a sequence number,
    so several writers (gateway replicas) can append to one folder. What lands is the spec,
    partitioned by UTC day like :class:`LogWriter`'s output: the hunt reads it unchanged.

    Examples
    --------
    >>> import datetime as dt, tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> w = AppendingLogWriter(root, roll_rows=2)
    >>> t0 = dt.datetime(2026, 4, 22, tzinfo=dt.UTC)
    >>> for i in range(3):
    ...     w.append([{"request_id": f"r{i}", "ts": t0, "account_id": "a", "input_tokens": 1, "output_tokens": 1}])
    >>> w.close()
    >>> len(list((root / "exchanges").rglob("*.parquet"))), w.rows_written
    (2, 3)
    """

    def __init__(
        self,
        root: Path | str,
        *,
        roll_seconds: float = 1.0,
        roll_rows: int = 50_000,
        table: str = "exchanges",
    ) -> None:
        if table not in schema.TABLES:
            raise LogError(f"unknown table {table!r}; expected one of {', '.join(schema.TABLES)}")
        if roll_seconds <= 0 or roll_rows <= 0:
            raise LogError(
                f"roll_seconds and roll_rows must be positive, got {roll_seconds} and {roll_rows}"
            )
        self.root = Path(root)
        self.table = table
        self.roll_seconds = roll_seconds
        self.roll_rows = roll_rows
        self.rows_written = 0
        self.parts_written = 0
        self._target = schema.TABLES[table]
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._oldest: float | None = None
        self._lock = threading.Lock()  # the buffer
        self._flushing = threading.Lock()  # one flush at a time
        self._id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        (self.root / table).mkdir(parents=True, exist_ok=True)

    def append(self, rows: pa.Table | list[dict[str, object]]) -> None:
        """Buffer rows (a table or a list of dicts, cast to the spec now so a bad row fails
        here, at its producer, not in a later flush); writes a part when one is due."""
        t = pa.Table.from_pylist(rows) if isinstance(rows, list) else rows
        t = conform_for_write(t, self._target, self.table)
        with self._lock:
            if self._closed:
                raise LogError(f"AppendingLogWriter for {self.root} is closed")
            if t.num_rows:
                self._buffer.append(t)
                self._buffered += t.num_rows
                self._oldest = self._oldest if self._oldest is not None else time.monotonic()
            due = self._buffered >= self.roll_rows
        if due:
            self.flush()

    def flush(self) -> int:
        """Write whatever is buffered as new part files now; returns the rows written.

        One flush at a time, so parts land in the order their rows were appended."""
        with self._flushing:
            return self._flush()

    def _flush(self) -> int:
        with self._lock:
            parts, self._buffer, self._buffered, self._oldest = self._buffer, [], 0, None
        if not parts:
            return 0
        t = pa.concat_tables(parts, promote_options="permissive")
        if self.table == "exchanges":
            for d, part in by_day(t):
                self._write(part, self.root / self.table / f"date={d.isoformat()}")
        else:
            self._write(t, self.root / self.table)
        self.rows_written += t.num_rows
        return int(t.num_rows)

    def due(self) -> bool:
        """Whether the oldest buffered row has waited ``roll_seconds``."""
        oldest = self._oldest
        return oldest is not None and time.monotonic() - oldest >= self.roll_seconds

    def start(self) -> AppendingLogWriter:
        """Flush in a background thread whenever a part is due (every ``roll_seconds / 4``)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="log-appender", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the background thread, write what is buffered, refuse further rows."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()
        with self._lock:
            self._closed = True

    def _run(self) -> None:
        while not self._stop.wait(self.roll_seconds / 4):
            if self.due():
                self.flush()

    def _write(self, table: pa.Table, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        name = (
            f"part-{time.time_ns() // 1_000_000:013d}-{self._id}-{self.parts_written:06d}.parquet"
        )
        tmp = folder / f".{name}.tmp"
        pq.write_table(table, tmp, compression="zstd", use_dictionary=True)
        os.replace(tmp, folder / name)  # atomic: a reader sees the whole part or none of it
        self.parts_written += 1
