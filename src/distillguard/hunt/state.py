"""The hunt's state: every signal's mergeable per-account state, and the account index.

``HuntState`` maps account ids to dense u32 indices, prepares each exchange batch once
(:func:`~distillguard.signals.prepare.prepare`), lets every signal enrich and fold it into
its state, and merges with another state by account id. Engines fill it (batch hunt,
time-ordered replay, Spark partitions, the gateway); increments are buffered and
compacted lazily so an hourly replay stays cheap.
"""

from __future__ import annotations

import io
import json
import os
import queue
import struct
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import polars as pl
import pyarrow as pa

from distillguard.errors import SignalStateError
from distillguard.hunt.budget import MemoryBudget
from distillguard.hunt.config import HuntConfig
from distillguard.signals import Signal
from distillguard.signals.base import State
from distillguard.signals.prepare import COLUMNS, account_index, prepare

T = TypeVar("T")
_HUNT_MAGIC = b"DGHUNT01"




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


def _bytes(parts: list[State]) -> int:
    return sum(int(t.estimated_size()) for part in parts for t in part.values())


def available(requires: str, present: set[str]) -> bool:
    """``requires`` is ``a|b|c``: any one of the columns having data is enough."""
    return any(c in present for c in requires.split("|"))


def settled(snap: dict[str, Any]) -> dict[str, Any]:
    """A :meth:`HuntState.snapshot` with its folds in flight waited for and put in place
    (state or run), as :meth:`HuntState._settle` would have: what a checkpoint pickles."""
    for name, fold in snap.pop("folds", {}).items():
        _put(snap["states"], snap["runs"], name, fold)
    return snap


def _put(
    states: dict[str, State], runs: dict[str, list[tuple[int, State]]], name: str, fold: tuple[Future[State], int | None]
) -> None:
    """A fold's result in its place: the signal's state (level None) or a run of that level."""
    out, level = fold[0].result(), fold[1]
    if level is None:
        states[name] = out
    else:
        runs[name].append((level, out))


class IdLookup:
    """An account index's ids by 64-bit hash: the hashes sorted, and each one's index row.

    Grows as accounts arrive (an insert into two arrays of the index's length: a copy, no
    hashing of the index again); the index it describes is ``of``."""

    def __init__(self, index: pl.DataFrame) -> None:
        h = _id_hashes(index["account_id"])
        order = np.argsort(h, kind="stable")
        self.of, self._hashes, self._rows = index, h[order], order.astype(np.int64)

    def rows(self, ids: pl.Series) -> np.ndarray:
        """Each id's index row, or -1 where no id of its hash is held."""
        h = _id_hashes(ids)
        if not len(self._hashes):
            return np.full(len(h), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self._hashes, h), len(self._hashes) - 1)
        return np.where(self._hashes[at] == h, self._rows[at], -1)

    def add(self, ids: pl.Series, index: pl.DataFrame) -> None:
        """``ids``, the last rows of ``index`` (the index they were appended to), added."""
        h = _id_hashes(ids)
        order = np.argsort(h, kind="stable")
        at = np.searchsorted(self._hashes, h[order])
        self._hashes = np.insert(self._hashes, at, h[order])
        self._rows = np.insert(self._rows, at, index.height - len(h) + order)
        self.of = index


def _id_hashes(ids: pl.Series) -> np.ndarray:
    return ids.hash(seed=0x1D).to_numpy()


class HuntState:
    """Per-account mergeable state of every signal, plus the account index."""

    def __init__(
        self, signals: Sequence[Signal] | None = None, compact_every: int = 24, budget: MemoryBudget | None = None
    ) -> None:
        self.signals: list[Signal] = (
            list(signals) if signals is not None else HuntConfig().build_signals()
        )
        self.index = pl.DataFrame(schema={"account_id": pl.String, "account": pl.UInt32})
        self._lookup: IdLookup | None = None  # the index's ids by hash (rebuilt when the index is replaced)
        self.states: dict[str, State] = {s.name: s.empty() for s in self.signals}
        self._pending: dict[str, list[State]] = {s.name: [] for s in self.signals}
        self.compact_every = compact_every
        self.max_inflight = 1  # batches enriched ahead of the one being folded
        self.compact_rows = 2_000_000
        self.budget = budget  # bounds the piles below (hunt/budget.py); None: as fast as memory allows
        self._inflight: list[tuple[int, list[Future[State]]]] = []  # (batch number, a future per signal)
        self._batches = 0  # the batch being observed (a day read or worked in pieces is one)
        # A fold of pending batches into a signal's state runs in the pool while the next
        # batches are enriched; ``_base_rows`` (the state size that went into the last fold)
        # times the next one, so when to fold never depends on thread timing.
        # the fold in flight per signal, and where it goes: the state (None) or a run of that level
        self._folds: dict[str, tuple[Future[State], int | None]] = {}
        self._base_rows: dict[str, int] = {s.name: 0 for s in self.signals}
        # Under a budget, piles fold into runs (level, state), oldest first, not into the state
        # itself: see ``_compact``.
        self._runs: dict[str, list[tuple[int, State]]] = {s.name: [] for s in self.signals}
        # per signal, since its last fold into the state: [batches, rows] of the piles, in runs or pending
        self._since: dict[str, list[int]] = {s.name: [0, 0] for s in self.signals}
        self._last_batch: dict[str, int] = {}
        self._pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="enrich")
        self.nonnull: dict[str, int] = {}
        self.n_exchanges = 0
        self.timings: dict[str, float] = {}  # seconds per stage, for profiling
        # per signal: folds, rows of the state and runs re-read by them, rows of the pending batches (profiling)
        self.fold_rows: dict[str, list[int]] = {}
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self._touched: list[pl.Series] = []  # accounts with new rows since the last ``take_touched``

    # -- accounts ----------------------------------------------------------------------------
    def ensure_accounts(self, ids: pl.Series) -> pl.DataFrame:
        """Give new account ids the next indices; returns the index rows of ``ids`` (distinct).

        Found by hash in a sorted array kept beside the index (:class:`IdLookup`), not by a
        join with all of it: a join costs every batch time in proportion to the accounts seen
        so far (a 185,000-row full-scale slice: 24 ms here and 54 ms more in the prepare's
        join at 196,017 accounts, against 7 and 0 at 19,602; 315 slices a full-scale hunt)."""
        asked = ids.unique()
        if self._lookup is None or self._lookup.of is not self.index:
            self._lookup = IdLookup(self.index)
        rows = self._lookup.rows(asked)
        hit = rows >= 0
        known = self.index[rows[hit]]
        if not known["account_id"].equals(asked.filter(hit).alias("account_id")):  # two ids of one hash
            return self._ensure_by_join(ids)
        if hit.all():
            return known
        new = account_index(asked.filter(~hit), start=self.index.height)
        self.index = pl.concat([self.index, new])
        self._lookup.add(new["account_id"], self.index)
        return pl.concat([known, new])

    def _ensure_by_join(self, ids: pl.Series) -> pl.DataFrame:
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

    def observe(self, batch: pa.Table | pl.DataFrame, ends_batch: bool = True) -> None:
        """Enrich and fold a batch of exchanges (a day, an hour); on a budget, one larger
        than its chunk is worked in slices (rows in order, no copy). ``ends_batch`` False:
        a piece of a batch that goes on in the next call (a day read in pieces), counted
        with it where folds count batches."""
        size = batch.nbytes if isinstance(batch, pa.Table) else int(batch.estimated_size())
        if self.budget is not None and size > self.budget.chunk_bytes:
            n = len(batch)
            step = max(1, n * self.budget.chunk_bytes // size)
            for at in range(0, n, step):
                self._observe(batch.slice(at, step))
        else:
            self._observe(batch)
        self._batches += ends_batch

    def _observe(self, batch: pa.Table | pl.DataFrame) -> None:
        if batch.num_rows if isinstance(batch, pa.Table) else batch.height:
            df = self.prepare(batch)
        else:
            return
        self.n_exchanges += df.height
        self._touched.append(df["account"].unique())
        lo, hi = df["epoch_s"].min(), df["epoch_s"].max()
        assert isinstance(lo, int) and isinstance(hi, int)
        self.first_ts = lo if self.first_ts is None else min(self.first_ts, lo)
        self.last_ts = hi if self.last_ts is None else max(self.last_ts, hi)
        for c in COLUMNS:
            self.nonnull[c] = self.nonnull.get(c, 0) + df.height - df[c].null_count()
        # Each signal enriches and folds its own columns in a pool task (Polars releases
        # the GIL), and the next batch starts before this one is done: no barrier between
        # stages, so both cores stay busy. Results are folded in batch order.
        self._inflight.append((self._batches, [self._pool.submit(self._enrich_update, s, df) for s in self.signals]))
        while len(self._inflight) > self.max_inflight:
            self._drain_one()

    def _enrich_update(self, s: Signal, df: pl.DataFrame) -> State:
        if not s.tables:  # keeps no per-exchange state (e.g. reads only the accounts table)
            return {}
        own = self._timed(f"enrich.{s.name}", s.enrich, df)
        return self._timed(f"aggregate.{s.name}", s.update, s.empty(), pl.concat([df, own], how="horizontal"))

    def _drain_one(self) -> None:
        batch, futures = self._inflight.pop(0)
        for s, fut in zip(self.signals, futures, strict=True):
            pile = fut.result()
            self._add_pile(s.name, pile, batch)
            # Fold into the state once ``compact_every`` batches (a day cut in slices by the
            # budget counts once) have come in since the last such fold and hold twice the
            # rows of the state (its rows at the last fold: known without waiting on that
            # fold, so when to fold never depends on thread timing); unbounded, also once
            # the pending rows outgrow it (memory: a day of a large log holds millions of
            # per-account rows). A fold into the state rewrites all of it: a fold every
            # ``compact_every`` batches costs time quadratic in the log, as the state grows
            # with it. At full-scale qwen-2026 that rewrote the template state 14 times
            # (1.6x its folded rows again); with the twice-the-rows rule 7 times, when slices
            # counted as batches; counted as days, twice, as at --scale 0.1 (docs/scale.md).
            batches, rows = self._since[s.name]
            base = self._base_rows[s.name]
            pending_rows = sum(t.height for part in self._pending[s.name] for t in part.values())
            if (batches >= self.compact_every and rows >= 2 * base) or (
                self.budget is None and pending_rows > max(self.compact_rows, base)
            ):
                self._compact(s)
        if self.budget is not None:  # the largest piles first, until all of them fit
            sizes = {s.name: _bytes(self._pending[s.name]) for s in self.signals}
            for s in sorted(self.signals, key=lambda s: -sizes[s.name]):
                if sum(sizes.values()) <= self.budget.pending_bytes:
                    break
                if sizes[s.name]:
                    self._compact(s, budget=True)
                    sizes[s.name] = 0

    def _add_pile(self, name: str, pile: State, batch: int | None) -> None:
        """A batch's per-account rows join the signal's pending piles (``batch`` None: a
        merged state, a batch of its own)."""
        self._pending[name].append(pile)
        since = self._since[name]
        if batch is None or self._last_batch.get(name) != batch:
            since[0] += 1
        if batch is not None:
            self._last_batch[name] = batch
        since[1] += sum(t.height for t in pile.values())

    def _settle(self, name: str) -> None:
        """Wait for the signal's fold in flight and put its result in place (state or run)."""
        fold = self._folds.pop(name, None)
        if fold is not None:
            _put(self.states, self._runs, name, fold)

    def _timed(self, stage: str, fn: Callable[..., T], *args: Any) -> T:
        t = time.perf_counter()
        out = fn(*args)
        self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t
        return out

    def _compact(self, s: Signal, budget: bool = False) -> None:
        """Start folding the pending batches (in the pool; see ``_settle``): into the state,
        with every run, or, for a pile the budget forces out, into a run.

        A tight budget forces its largest pile out every few slices, however large the state
        has grown: folded into the state each time, that rewrote the whole state at every
        fold, a cost quadratic in the log (68x the rows folded in, re-read, in
        ``tests/hunt/test_state.py``). At ``--memory auto`` full-scale ``qwen-2026``'s
        piles are forced out here, between the two folds into the state its days allow (docs/scale.md).
        So such a pile folds into a run instead, with the youngest runs as a binary counter does (levels 0, 1, 2, ... carry
        into one run a level up: a row is re-read once per level, log2 of the runs), and the
        runs fold into the state only once they hold as many rows as it: each rewrite of the
        state is paid for by as many rows folded in. Both linear in the log but for the
        logarithm; runs are mergeable states, so any fold order gives the same state but for
        the heavy-hitter summaries' cut points (``TableSpec.top_k``).
        """
        name = s.name
        self._settle(name)
        runs = self._runs[name]
        base_rows = sum(t.height for t in self.states[name].values())
        run_rows = sum(t.height for _, r in runs for t in r.values())
        if not budget or run_rows >= base_rows:
            self._base_rows[name] = base_rows
            parts, level, reread = [self.states[name], *(r for _, r in runs)], None, base_rows + run_rows
            self._runs[name] = []
            self._since[name] = [0, 0]
        else:
            carry = 0
            while carry < len(runs) and runs[-1 - carry][0] == carry:
                carry += 1
            taken = runs[len(runs) - carry :]
            parts, level = [r for _, r in taken], carry
            reread = sum(t.height for _, r in taken for t in r.values())
            self._runs[name] = runs[: len(runs) - carry]
        piles = self._pending[name]
        seen = self.fold_rows.setdefault(name, [0, 0, 0])
        seen[0] += 1
        seen[1] += reread
        seen[2] += sum(t.height for part in piles for t in part.values())
        parts += piles
        self._pending[name] = []

        def fold() -> State:
            return {k: spec.compact([p[k] for p in parts]) for k, spec in s.tables.items()}

        self._folds[name] = (self._pool.submit(self._timed, f"fold.{name}", fold), level)

    def take_touched(self) -> pl.Series:
        """The accounts (u32 indices) given new rows since the last call, by :meth:`observe`
        or a merge; the live re-score finalizes only those again (hunt/rescore.py)."""
        seen = pl.concat(self._touched) if self._touched else pl.Series("account", [], pl.UInt32)
        self._touched = []
        return seen.unique().sort().cast(pl.UInt32).alias("account")

    def compacted(self) -> dict[str, State]:
        while self._inflight:
            self._drain_one()
        for s in self.signals:
            self._settle(s.name)
            if self._pending[s.name] or self._runs[s.name]:
                self._compact(s)
        for s in self.signals:
            self._settle(s.name)
        return self.states

    def snapshot(self, settle: bool = True) -> dict[str, Any]:
        """The state exactly as it stands, folded and pending parts apart (nothing folded
        that would not have been), for a checkpoint; :meth:`restore` puts it back. Later
        batches and folds do not change it. ``settle`` False: folds still in flight stay in
        it as futures (``"folds"``), for :func:`settled` to wait on in another thread (the
        checkpoint's writer), so the hunt does not wait for them."""
        while self._inflight:  # in batch order, as the next observe() would
            self._drain_one()
        if settle:
            for s in self.signals:
                self._settle(s.name)
        # Containers copied, frames shared (never changed in place): a checkpoint is written
        # from it in a thread while the hunt goes on (hunt/checkpoint.py).
        return {
            "signals": [s.name for s in self.signals], "params": {s.name: s.state_params() for s in self.signals},
            "index": self.index, "states": dict(self.states),
            "pending": {k: list(v) for k, v in self._pending.items()}, "base_rows": dict(self._base_rows),
            "runs": {k: list(v) for k, v in self._runs.items()}, "since": {k: list(v) for k, v in self._since.items()},
            "last_batch": dict(self._last_batch), "batches": self._batches, "folds": dict(self._folds),
            "nonnull": dict(self.nonnull), "n_exchanges": self.n_exchanges, "first_ts": self.first_ts, "last_ts": self.last_ts,
        }  # fmt: skip

    def restore(self, snap: dict[str, Any]) -> None:
        """Become the state :meth:`snapshot` saved (same signals and settings, or it refuses)."""
        self._check_same_signals(snap["signals"], snap["params"])
        self.index, self.states, self._pending = snap["index"], snap["states"], snap["pending"]
        self._base_rows, self.nonnull, self.n_exchanges = snap["base_rows"], snap["nonnull"], snap["n_exchanges"]
        self._runs = snap.get("runs") or {s.name: [] for s in self.signals}
        self._since = snap.get("since") or {
            n: [len(p), sum(t.height for part in p for t in part.values())] for n, p in self._pending.items()
        }
        self._last_batch, self._batches = snap.get("last_batch", {}), snap.get("batches", 0)
        self.first_ts, self.last_ts = snap["first_ts"], snap["last_ts"]
        self._inflight, self._folds = [], {}

    def merge(self, other: HuntState) -> None:
        """Fold another state (a partition's, another process's) into this one, by account id.

        Refuses a state whose signals differ in name or settings (:meth:`Signal.check_compatible`).
        """
        self._check_same_signals([s.name for s in other.signals], {s.name: s.state_params() for s in other.signals})
        self._merge_parts(other.index, other.compacted(), other.nonnull, other.n_exchanges, other.first_ts, other.last_ts)

    def _check_same_signals(self, names: list[str], params: dict[str, dict[str, Any]]) -> None:
        mine = [s.name for s in self.signals]
        if names != mine:
            raise SignalStateError(f"the other state holds signals {names}, this one {mine}")
        for s in self.signals:
            s.check_compatible(params[s.name])

    def _merge_parts(
        self,
        index: pl.DataFrame,
        states: dict[str, State],
        nonnull: dict[str, int],
        n_exchanges: int,
        first_ts: int | None,
        last_ts: int | None,
    ) -> None:
        remap = index.join(self.ensure_accounts(index["account_id"]), on="account_id", suffix="_new")
        mapping = dict(zip(remap["account"].to_list(), remap["account_new"].to_list(), strict=True))
        self._touched.append(remap["account_new"])
        for s in self.signals:
            theirs = {
                k: (t.with_columns(pl.col("account").replace_strict(mapping, return_dtype=pl.UInt32)) if "account" in t.columns else t)
                for k, t in states[s.name].items()
            }
            self._add_pile(s.name, theirs, None)
        for c, v in nonnull.items():
            self.nonnull[c] = self.nonnull.get(c, 0) + v
        self.n_exchanges += n_exchanges
        for ts in (first_ts, last_ts):
            if ts is not None:
                self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
                self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)

    def to_bytes(self, shard: int = 0, shards: int = 1) -> bytes:
        """The state as bytes keyed by account id (its index travels with it), for a file,
        a Spark partial aggregate or a store shared by gateway replicas.

        ``shard`` of ``shards``: only the accounts whose id hashes to that shard (a store
        holds a population in ``shards`` pieces, each read and written on its own); tables
        not keyed by account (readable texts) go with shard 0. Counters (exchanges, columns
        seen) go with shard 0 too, so merging every shard counts each once.
        """
        if not 0 <= shard < shards:
            raise SignalStateError(f"shard {shard} is not one of 0..{shards - 1}")
        states = self.compacted()
        index = self.index
        if shards > 1:
            index = index.filter(pl.col("account_id").hash(5) % shards == shard)
        keep = index["account"].implode()
        parts: list[bytes] = []
        for s in self.signals:
            st = {
                k: (t.filter(pl.col("account").is_in(keep)) if "account" in t.columns else t if shard == 0 else t.head(0))
                for k, t in states[s.name].items()
            }
            parts.append(s.to_bytes(st))
        head = {
            "signals": [s.name for s in self.signals],
            "params": {s.name: s.state_params() for s in self.signals},
            "n_exchanges": self.n_exchanges if shard == 0 else 0,
            "nonnull": self.nonnull if shard == 0 else {},
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
        }
        ipc = io.BytesIO()
        index.write_ipc(ipc)
        blobs = [json.dumps(head).encode(), ipc.getvalue(), *parts]
        return _HUNT_MAGIC + b"".join(struct.pack("<Q", len(b)) + b for b in blobs)

    def merge_bytes(self, data: bytes) -> None:
        """Merge a state written by :meth:`to_bytes` (this process's or another's)."""
        if not data.startswith(_HUNT_MAGIC):
            raise SignalStateError("these bytes are not a distillguard hunt state")
        blobs, pos = [], len(_HUNT_MAGIC)
        while pos < len(data):
            (n,) = struct.unpack_from("<Q", data, pos)
            blobs.append(data[pos + 8 : pos + 8 + n])
            pos += 8 + n
        head = json.loads(blobs[0])
        self._check_same_signals(head["signals"], head["params"])
        index = pl.read_ipc(io.BytesIO(blobs[1]))
        states = {s.name: s.from_bytes(b) for s, b in zip(self.signals, blobs[2:], strict=True)}
        self._merge_parts(index, states, head["nonnull"], head["n_exchanges"], head["first_ts"], head["last_ts"])

    def unused(self) -> dict[str, str]:
        """Signals that had no data to work on, with the reason."""
        present = {c for c, v in self.nonnull.items() if v > 0}
        out = {}
        for s in self.signals:
            missing = [r for r in s.requires if not available(r, present)]
            if missing:
                out[s.name] = f"the log has no {' or '.join(missing[0].split('|'))} values"
        return out
