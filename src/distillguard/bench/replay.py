"""Replay a log through any detector in simulated time.

Why a replay and not one call over the whole log: a distillation campaign does its damage
while it runs, so what matters is *when* each account would have been flagged had the
detector been live. The replay feeds the exchanges in time order, cut into chunks of
``every`` simulated hours, asks the detector for its verdicts at the end of each chunk, and
records the first replay time each account was flagged. It knows nothing about labels and
nothing about any particular detector: it drives the three calls of
:class:`~distillguard.detectors.Detector` and times them.

Chunk boundaries are multiples of ``every`` since the Unix epoch (UTC), so hourly chunks
start on the hour and daily chunks at midnight UTC. A chunk with no exchange is skipped:
nothing new arrived, so there is nothing new to score.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from distillguard.detectors.base import Detector
from distillguard.errors import ConfigError
from distillguard.schema import TS
from distillguard.verdicts import Verdicts

__all__ = ["FIRST_FLAGS", "FLAG_CHANGES", "ExchangeSource", "ReplayResult", "peak_rss_bytes", "replay"]

FIRST_FLAGS = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("first_flagged_at", TS, nullable=False),
        pa.field("first_risk", pa.float64()),
    ]
)
"""Schema of :attr:`ReplayResult.first_flags`: one row per account ever flagged."""

FLAG_CHANGES = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("at", TS, nullable=False),
        pa.field("flagged", pa.bool_(), nullable=False),
    ]
)
"""Schema of :attr:`ReplayResult.flag_changes`: a row each time an account's flag is set or
cleared, in replay order (every account starts unflagged)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ExchangeSource(Protocol):
    """What the replay needs from a log reader (``distillguard.io.LogReader`` has it).

    Deliberately without ``labels()``: the replay cannot leak ground truth to a detector
    because it never has it.
    """

    def accounts(self) -> pa.Table: ...

    def exchange_batches(self, columns: list[str] | None = None) -> Iterator[pa.Table]: ...


@dataclass
class ReplayResult:
    """What one replay observed: first-flag times, final verdicts, volume, time and memory.

    ``seconds`` counts only the detector's own calls (``observe_accounts``, ``observe``,
    ``verdicts``); reading the log and recording flags are excluded, so throughput
    compares detectors, not readers.
    """

    detector: str
    every: timedelta
    final: Verdicts
    first_flags: pa.Table
    account_ids: pa.Array
    exchanges: int
    chunks: int
    seconds: float
    seconds_observe: float
    seconds_verdicts: float
    wall_seconds: float
    peak_rss_bytes: int
    start: datetime | None = None
    end: datetime | None = None
    meta: dict[str, object] = field(default_factory=dict)
    # every set and clear of a flag (FLAG_CHANGES): an account flagged, cleared and flagged
    # again is served unflagged in between, which ``first_flags`` alone cannot show
    flag_changes: pa.Table = field(default_factory=FLAG_CHANGES.empty_table)

    def first_flag_times(self) -> dict[str, datetime]:
        """``account_id -> first replay time it was flagged`` (a dict, for small logs and tests)."""
        ids = self.first_flags["account_id"].to_pylist()
        times = self.first_flags["first_flagged_at"].to_pylist()
        return dict(zip(ids, times, strict=True))


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes (0 where unknown).

    ``ru_maxrss`` is the process-wide high-water mark, so it includes whatever ran earlier
    in the same process; run one bench per process for a clean number.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return 0
    rss = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return rss if sys.platform == "darwin" else rss * 1024


def _ts_micros(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Timestamps as int64 microseconds since the epoch (UTC), whatever unit they came in."""
    return np.asarray(pc.cast(col, TS).cast(pa.int64()).to_numpy(), dtype=np.int64)


class _FlagRecorder:
    """Keeps every set and clear of a flag, and the first time and risk at which each
    account was flagged (a first flag is always a set, so only the accounts set at this
    call reach the Python loop; the sets are found with a vectorised ``is_in``).
    """

    def __init__(self) -> None:
        self.first: dict[str, tuple[datetime, float | None]] = {}
        self._flagged = pa.array([], pa.string())  # flagged at the last call
        self._changes: list[pa.Table] = []

    def record(self, table: pa.Table, now: datetime) -> None:
        flagged = table.filter(pc.fill_null(table["flagged"], False))
        flagged = flagged.filter(pc.is_valid(flagged["account_id"]))
        ids = flagged["account_id"].combine_chunks().cast(pa.string())
        is_set = pc.invert(pc.is_in(ids, value_set=self._flagged))
        set_now = ids.filter(is_set)
        cleared = self._flagged.filter(pc.invert(pc.is_in(self._flagged, value_set=ids)))
        for changed, value in ((set_now, True), (cleared, False)):
            if len(changed):
                self._changes.append(pa.table(
                    {"account_id": changed, "at": pa.array([now] * len(changed), TS),
                     "flagged": pa.array([value] * len(changed), pa.bool_())},
                    schema=FLAG_CHANGES,
                ))  # fmt: skip
        self._flagged = ids
        for aid, risk in zip(set_now.to_pylist(), flagged["risk"].filter(is_set).to_pylist(), strict=True):
            self.first.setdefault(aid, (now, risk))

    def changes(self) -> pa.Table:
        return pa.concat_tables(self._changes) if self._changes else FLAG_CHANGES.empty_table()

    def table(self) -> pa.Table:
        ids = list(self.first)
        return pa.table(
            {
                "account_id": pa.array(ids, pa.string()),
                "first_flagged_at": pa.array([self.first[a][0] for a in ids], TS),
                "first_risk": pa.array([self.first[a][1] for a in ids], pa.float64()),
            },
            schema=FIRST_FLAGS,
        )


def replay(
    detector: Detector,
    reader: ExchangeSource,
    every: timedelta = timedelta(hours=1),
    progress: bool = True,
) -> ReplayResult:
    """Drive ``detector`` through ``reader``'s log in time order, re-scoring every ``every``.

    Parameters
    ----------
    detector
        Any :class:`~distillguard.detectors.Detector`. It receives the accounts table once,
        then exchange tables holding only the columns it names in ``detector.columns``
        (all columns when that is ``None``), never labels.
    reader
        A log reader; only ``accounts()`` and ``exchange_batches(columns)`` are used.
    every
        Simulated time between two ``verdicts(now=...)`` calls.
    progress
        Show a rich progress line on stderr.

    Returns
    -------
    ReplayResult
        First-flag times (``now`` of the first ``verdicts`` call that flagged each account),
        the verdicts after the last chunk, exchanges seen, detector seconds and peak RSS.
    """
    every_us = int(every / timedelta(microseconds=1))
    if every_us <= 0:
        raise ConfigError(f"replay interval must be positive, got {every}")
    want = None if detector.columns is None else list(detector.columns)
    read = None if want is None else list(dict.fromkeys([*want, "ts"]))

    wall0 = time.perf_counter()
    t_observe = 0.0
    t_verdicts = 0.0
    recorder = _FlagRecorder()
    exchanges = 0
    chunks = 0
    first_chunk: int | None = None
    current: int | None = None

    def chunk_end(index: int) -> datetime:
        return _EPOCH + timedelta(microseconds=(index + 1) * every_us)

    def tick(index: int) -> None:
        # Between two chunks only the flags are recorded (``Detector.flags``).
        nonlocal t_verdicts, chunks
        now = chunk_end(index)
        t0 = time.perf_counter()
        flags = detector.flags(now=now)
        t_verdicts += time.perf_counter() - t0
        chunks += 1
        recorder.record(flags, now)

    def last(index: int | None) -> Verdicts:
        nonlocal t_verdicts, chunks
        now = chunk_end(index) if index is not None else None
        t0 = time.perf_counter()
        verdicts = detector.verdicts(now=now)
        t_verdicts += time.perf_counter() - t0
        if now is not None:
            chunks += 1
            recorder.record(verdicts.accounts, now)
        return verdicts

    accounts = reader.accounts()
    t0 = time.perf_counter()
    detector.observe_accounts(accounts)
    t_accounts = time.perf_counter() - t0
    account_ids = accounts["account_id"].combine_chunks()

    days = getattr(reader, "days", None)  # LogReader knows its days up front: a real bar
    n_days = len(days()) if progress and callable(days) else None
    columns = [
        SpinnerColumn(),
        TextColumn("[bold]replay[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("days, {task.fields[exchanges]:,} exchanges"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=True, disable=not progress) as bar:
        task = bar.add_task(getattr(detector, "name", type(detector).__name__), total=n_days, exchanges=0)
        for batch in reader.exchange_batches(columns=read):
            if batch.num_rows and batch["ts"].null_count:
                batch = batch.filter(pc.is_valid(batch["ts"]))
            if batch.num_rows == 0:
                bar.advance(task)
                continue
            ts = _ts_micros(batch["ts"])
            if ts.size > 1 and bool(np.any(ts[1:] < ts[:-1])):
                order = np.argsort(ts, kind="stable")
                batch, ts = batch.take(pa.array(order)), ts[order]
            index = ts // every_us
            if current is not None:
                # A row older than the chunk being filled arrives late: it counts as now.
                index = np.maximum(index, current)
            cuts = np.flatnonzero(np.diff(index)) + 1
            bounds = [0, *cuts.tolist(), int(index.size)]
            for lo, hi in pairwise(bounds):
                chunk = int(index[lo])
                if current is not None and chunk != current:
                    tick(current)
                if first_chunk is None:
                    first_chunk = chunk
                current = chunk
                piece = batch.slice(lo, hi - lo)
                if want is not None and piece.column_names != want:
                    # Readers may add columns (the required ones, ts); pass on only those asked for.
                    piece = piece.select([c for c in want if c in piece.column_names])
                t0 = time.perf_counter()
                detector.observe(piece)
                t_observe += time.perf_counter() - t0
                exchanges += hi - lo
                bar.update(task, exchanges=exchanges, description=f"{chunk_end(chunk):%Y-%m-%d %H:%M}")
            bar.advance(task)
        final = last(current)

    return ReplayResult(
        detector=getattr(detector, "name", type(detector).__name__),
        every=every,
        final=final,
        first_flags=recorder.table(),
        account_ids=account_ids,
        exchanges=exchanges,
        chunks=chunks,
        seconds=t_accounts + t_observe + t_verdicts,
        seconds_observe=t_accounts + t_observe,
        seconds_verdicts=t_verdicts,
        wall_seconds=time.perf_counter() - wall0,
        peak_rss_bytes=peak_rss_bytes(),
        start=None if first_chunk is None else chunk_end(first_chunk) - every,
        end=None if current is None else chunk_end(current),
        flag_changes=recorder.changes(),
    )
