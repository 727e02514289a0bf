"""The hunt's state: every signal's mergeable per-account state, and the account index.

``HuntState`` maps account ids to dense u32 indices, prepares each exchange batch once
(:func:`~distillguard.signals.prepare.prepare`), lets every signal enrich and fold it into
its state, and merges with another state by account id. Engines fill it (batch hunt,
time-ordered replay, Spark partitions, the gateway); increments are buffered and
compacted lazily so an hourly replay stays cheap.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import polars as pl
import pyarrow as pa

from distillguard.hunt.config import HuntConfig
from distillguard.signals import Signal
from distillguard.signals.base import State
from distillguard.signals.prepare import COLUMNS, account_index, prepare

T = TypeVar("T")




def prefetch(items: Iterable[T], depth: int = 2) -> Generator[T, None, None]:
    """Produce ``items`` in a background thread, ``depth`` ahead of the consumer.

    Reading Parquet (decompression, decoding) releases the GIL, so the next day is read
    while this one is enriched: on two cores the read stage nearly disappears from the
    wall time. An error in the producer is raised in the consumer, at the item it hit.
    """
    q: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put((True, item))
            q.put((False, None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            q.put((False, exc))

    worker = threading.Thread(target=produce, name="prefetch", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(0.01)


def available(requires: str, present: set[str]) -> bool:
    """``requires`` is ``a|b|c``: any one of the columns having data is enough."""
    return any(c in present for c in requires.split("|"))


class HuntState:
    """Per-account mergeable state of every signal, plus the account index."""

    def __init__(self, signals: Sequence[Signal] | None = None, compact_every: int = 24) -> None:
        self.signals: list[Signal] = (
            list(signals) if signals is not None else HuntConfig().build_signals()
        )
        self.index = pl.DataFrame(schema={"account_id": pl.String, "account": pl.UInt32})
        self.states: dict[str, State] = {s.name: s.empty() for s in self.signals}
        self._pending: dict[str, list[State]] = {s.name: [] for s in self.signals}
        self.compact_every = compact_every
        self.max_inflight = 1  # batches enriched ahead of the one being folded
        self.compact_rows = 2_000_000
        self._inflight: list[list[Future[State]]] = []
        # A fold of pending batches into a signal's state runs in the pool while the next
        # batches are enriched; ``_base_rows`` (the state size that went into the last fold)
        # times the next one, so when to fold never depends on thread timing.
        self._folds: dict[str, Future[State]] = {}
        self._base_rows: dict[str, int] = {s.name: 0 for s in self.signals}
        self._pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="enrich")
        self.nonnull: dict[str, int] = {}
        self.n_exchanges = 0
        self.timings: dict[str, float] = {}  # seconds per stage, for profiling
        self.first_ts: int | None = None
        self.last_ts: int | None = None

    # -- accounts ----------------------------------------------------------------------------
    def ensure_accounts(self, ids: pl.Series) -> pl.DataFrame:
        """Give new account ids the next indices; returns the index."""
        new = ids.unique().to_frame("account_id").join(self.index, on="account_id", how="anti")
        if new.height:
            self.index = pl.concat([self.index, account_index(new["account_id"], start=self.index.height)])
        return self.index

    # -- exchanges ---------------------------------------------------------------------------
    def prepare(self, batch: pa.Table | pl.DataFrame) -> pl.DataFrame:
        """:func:`~distillguard.signals.prepare.prepare` on this state's account index."""
        df = batch if isinstance(batch, pl.DataFrame) else pl.from_arrow(batch)
        assert isinstance(df, pl.DataFrame)
        return prepare(df, self.ensure_accounts(df["account_id"]))

    def observe(self, batch: pa.Table | pl.DataFrame) -> None:
        if batch.num_rows if isinstance(batch, pa.Table) else batch.height:
            df = self.prepare(batch)
        else:
            return
        self.n_exchanges += df.height
        lo, hi = df["epoch_s"].min(), df["epoch_s"].max()
        assert isinstance(lo, int) and isinstance(hi, int)
        self.first_ts = lo if self.first_ts is None else min(self.first_ts, lo)
        self.last_ts = hi if self.last_ts is None else max(self.last_ts, hi)
        for c in COLUMNS:
            self.nonnull[c] = self.nonnull.get(c, 0) + df.height - df[c].null_count()
        # Each signal enriches and folds its own columns in a pool task (Polars releases
        # the GIL), and the next batch starts before this one is done: no barrier between
        # stages, so both cores stay busy. Results are folded in batch order.
        self._inflight.append([self._pool.submit(self._enrich_update, s, df) for s in self.signals])
        while len(self._inflight) > self.max_inflight:
            self._drain_one()

    def _enrich_update(self, s: Signal, df: pl.DataFrame) -> State:
        if not s.tables:  # keeps no per-exchange state (e.g. reads only the accounts table)
            return {}
        own = self._timed(f"enrich.{s.name}", s.enrich, df)
        return self._timed(f"aggregate.{s.name}", s.update, s.empty(), pl.concat([df, own], how="horizontal"))

    def _drain_one(self) -> None:
        for s, fut in zip(self.signals, self._inflight.pop(0), strict=True):
            pending = self._pending[s.name]
            pending.append(fut.result())
            # Fold every ``compact_every`` batches, or sooner once the pending rows outgrow
            # the state (memory: a day of a large log holds millions of per-account rows).
            rows = sum(t.height for part in pending for t in part.values())
            if len(pending) >= self.compact_every or rows > max(self.compact_rows, self._base_rows[s.name]):
                self._compact(s)

    def _state(self, name: str) -> State:
        """The signal's state, waiting for a fold in flight."""
        fold = self._folds.pop(name, None)
        if fold is not None:
            self.states[name] = fold.result()
        return self.states[name]

    def _timed(self, stage: str, fn: Callable[..., T], *args: Any) -> T:
        t = time.perf_counter()
        out = fn(*args)
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t
        return out

    def _compact(self, s: Signal) -> None:
        """Start folding the pending batches into the state (in the pool; see ``_state``)."""
        base = self._state(s.name)
        self._base_rows[s.name] = sum(t.height for t in base.values())
        parts = [base, *self._pending[s.name]]
        self._pending[s.name] = []

        def fold() -> State:
            return {k: spec.compact([p[k] for p in parts]) for k, spec in s.tables.items()}

        self._folds[s.name] = self._pool.submit(self._timed, f"fold.{s.name}", fold)

    def compacted(self) -> dict[str, State]:
        while self._inflight:
            self._drain_one()
        for s in self.signals:
            if self._pending[s.name]:
                self._compact(s)
        for s in self.signals:
            self._state(s.name)
        return self.states

    def merge(self, other: HuntState) -> None:
        """Fold another state (e.g. a partition's) into this one; account ids are re-indexed."""
        remap = other.index.join(self.ensure_accounts(other.index["account_id"]), on="account_id", suffix="_new")
        mapping = dict(zip(remap["account"].to_list(), remap["account_new"].to_list(), strict=True))
        for s in self.signals:
            theirs = {
                k: (t.with_columns(pl.col("account").replace_strict(mapping, return_dtype=pl.UInt32)) if "account" in t.columns else t)
                for k, t in other.compacted()[s.name].items()
            }
            self._pending[s.name].append(theirs)
        for c, v in other.nonnull.items():
            self.nonnull[c] = self.nonnull.get(c, 0) + v
        self.n_exchanges += other.n_exchanges

    def unused(self) -> dict[str, str]:
        """Signals that had no data to work on, with the reason."""
        present = {c for c, v in self.nonnull.items() if v > 0}
        out = {}
        for s in self.signals:
            missing = [r for r in s.requires if not available(r, present)]
            if missing:
                out[s.name] = f"the log has no {' or '.join(missing[0].split('|'))} values"
        return out
