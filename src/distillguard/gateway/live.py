"""Online detection: the hunt's own signals fed by the gateway's traffic, and decisions for the
next request.

Each served exchange is queued (:meth:`LiveScorer.observe`, no work on the request path). A
background thread feeds the queue to a :class:`~distillguard.hunt.detector.HuntDetector` in
micro-batches (the same enrich and aggregate code as the batch hunt, so the two cannot
disagree on what a signal means) and re-runs link, cluster and score every ``every_s``
seconds over a snapshot of that state. The verdicts replace a dictionary in one assignment,
so a request reads either the old or the new decisions, never half of each.

Decisions from a batch ``distillguard hunt`` (its ``accounts.parquet``) and from imported
intel load at start and again whenever the file changes (:meth:`LiveScorer.watch`); for an
account both know, the stronger action wins.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import polars as pl

from distillguard.gateway.clock import Clock, as_datetime
from distillguard.gateway.directory import Account
from distillguard.hunt.config import HuntConfig
from distillguard.hunt.detector import HuntDetector
from distillguard.policy import DECISIONS, Policy
from distillguard.schema import ACCOUNTS, EXCHANGES

__all__ = ["AccountVerdict", "LiveScorer", "LiveVerdicts", "next_rescore_at", "read_decisions"]

_RANK: dict[str, int] = {d: i for i, d in enumerate(DECISIONS)}


@dataclass(frozen=True)
class AccountVerdict:
    """What the hunt (live or batch) says of one account."""

    decision: str
    risk: float
    flagged: bool
    campaign: str | None
    source: str  # "live" or the file it came from


def stronger(a: AccountVerdict | None, b: AccountVerdict | None) -> AccountVerdict | None:
    if a is None or b is None:
        return a or b
    return a if _RANK.get(a.decision, 0) >= _RANK.get(b.decision, 0) else b


def read_decisions(path: Path) -> dict[str, AccountVerdict]:
    """A hunt's verdicts: its output folder or its ``accounts.parquet`` (``account_id, risk,
    flagged, campaign, decision``)."""
    file = path / "accounts.parquet" if path.is_dir() else path
    t = pl.read_parquet(file, columns=["account_id", "risk", "flagged", "campaign", "decision"])
    return {
        r["account_id"]: AccountVerdict(r["decision"], float(r["risk"] or 0.0), bool(r["flagged"]), r["campaign"], str(file))
        for r in t.filter(pl.col("decision") != "allow").iter_rows(named=True)
    }


class LiveVerdicts:
    """What the door reads (the live verdicts, those of decision files and of other replicas)
    and the queue it feeds; :class:`LiveScorer` scores in this process,
    :class:`~distillguard.gateway.scorer.ScorerClient` in a scorer process shared by workers."""

    def __init__(self, *, every_s: float = 5.0, score: bool = True, clock: Clock | None = None) -> None:
        """``clock``: the time re-scoring is "as of" (the gateway's replay clock when a log is
        replayed); None scores as of the traffic itself."""
        self.clock = clock
        self.every_s = every_s if score else float("inf")
        self.ingest_s = min(2.0, every_s)
        self.score = score
        self.live: dict[str, AccountVerdict] = {}
        self.imported: dict[str, AccountVerdict] = {}
        self.remote: dict[str, AccountVerdict] = {}  # other replicas' (gateway/bus.py)
        self.on_rescore: Callable[[dict[str, AccountVerdict]], object] | None = None
        self.rescore_seconds: float | None = None
        self.rescores = 0
        self.errors = 0
        self._queue: collections.deque[dict[str, Any]] = collections.deque(maxlen=1_000_000)
        self._accounts: dict[str, Account] = {}
        self._accounts_dirty = False
        self._watched: dict[Path, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the request path: O(1), no I/O ---------------------------------------------------
    def observe(self, row: dict[str, Any]) -> None:
        if self.score:
            self._queue.append(row)

    def observe_many(self, rows: Iterable[dict[str, Any]]) -> None:
        if self.score:
            self._queue.extend(rows)

    def account_seen(self, account: Account) -> None:
        if self.score and self._accounts.get(account.account_id) != account:
            self._accounts[account.account_id] = account
            self._accounts_dirty = True

    def verdict(self, account_id: str) -> AccountVerdict | None:
        mine = stronger(self.live.get(account_id), self.imported.get(account_id))
        return stronger(mine, self.remote.get(account_id)) if self.remote else mine

    def drain(self) -> list[dict[str, Any]]:
        """The queued exchanges, taken off the queue."""
        rows = []
        while self._queue:
            rows.append(self._queue.popleft())
        return rows

    def watch(self, paths: Iterable[Path]) -> None:
        """Load decision files now and again whenever one changes (checked each cycle)."""
        for p in paths:
            self._watched[Path(p)] = -1.0
        self._reload()

    def _reload(self) -> None:
        merged: dict[str, AccountVerdict] = {}
        changed = False
        for p in list(self._watched):
            target = p / "accounts.parquet" if p.is_dir() else p
            try:
                mtime = target.stat().st_mtime
            except FileNotFoundError:
                continue
            if mtime != self._watched[p]:
                changed = True
                self._watched[p] = mtime
        if not changed:
            return
        for p in self._watched:
            try:
                for k, v in read_decisions(p).items():
                    merged[k] = stronger(merged.get(k), v) or v
            except Exception:  # a half-written file is read again next cycle
                self.errors += 1
                self._watched[p] = -1.0
        self.imported = merged

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="live-scorer", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        raise NotImplementedError


class LiveScorer(LiveVerdicts):
    """The hunt, fed per request and re-scored every ``every_s`` seconds in a background thread."""

    def __init__(
        self, policy: Policy | None = None, *, every_s: float = 5.0, config: HuntConfig | None = None, score: bool = True,
        clock: Clock | None = None, hold_s: float = 86_400.0,
    ) -> None:
        """``score=False``: decisions from files only (no live signals, nothing queued).
        ``hold_s``: how long a campaign member's action holds after the last re-scoring that
        flagged it (replayed through the gateway, 54 accounts were cleared again once refused
        traffic stopped adding to their evidence; an analyst's allow still lifts it)."""
        super().__init__(every_s=every_s, score=score, clock=clock)
        self.hold_s = hold_s
        self._held: dict[str, tuple[AccountVerdict, float]] = {}
        config = config or HuntConfig()
        if policy is not None:
            config = dataclasses.replace(config, policy=policy)
        self.detector = HuntDetector(config)

    # -- background work --------------------------------------------------------------------
    def ingest(self) -> int:
        """Feed the queued exchanges to the detector; returns how many."""
        rows = self.drain()
        if self._accounts_dirty:
            self._accounts_dirty = False
            self.detector.observe_accounts(_accounts_table(self._accounts.values()))
        if rows:
            with self._lock:
                self.detector.observe(_exchanges_table(rows))
        return len(rows)

    def rescore(self, now: dt.datetime | None = None) -> float:
        """Link, cluster and score the live state; returns the seconds it took."""
        t0 = time.perf_counter()
        self.ingest()
        if self.detector.state.n_exchanges == 0:
            return 0.0
        if now is None and self.clock is not None:
            now = as_datetime(self.clock.now())
        with self._lock:
            flags = pl.from_arrow(self.detector.flags(now, incremental=True))
        assert isinstance(flags, pl.DataFrame)
        acted = flags.filter(pl.col("decision") != "allow")
        fresh = {
            r["account_id"]: AccountVerdict(r["decision"], float(r["risk"]), bool(r["flagged"]), r["campaign"], "live")
            for r in acted.iter_rows(named=True)
        }
        self.live = self.hold(fresh, self.clock.now() if self.clock is not None else time.time())
        self.rescore_seconds = time.perf_counter() - t0
        self.rescores += 1
        if self.on_rescore is not None:
            self.on_rescore(self.live)
        return self.rescore_seconds

    def hold(self, fresh: dict[str, AccountVerdict], now_s: float) -> dict[str, AccountVerdict]:
        """``fresh`` plus the campaign members flagged within ``hold_s`` that it no longer flags."""
        for account, v in fresh.items():
            if v.flagged:
                self._held[account] = (v, now_s + self.hold_s)
        self._held = {a: held for a, held in self._held.items() if held[1] > now_s}
        out = {a: v for a, (v, _) in self._held.items()}
        out.update(fresh)
        return out

    def _run(self) -> None:
        # Feeding the detector costs per call more than per row (benchmarks/results/gateway/
        # latency.json: fed every 0.2 s it took most of the gateway's CPU), so rows are fed in
        # batches of ``ingest_s`` seconds of traffic.
        next_score = time.monotonic() + self.every_s
        next_ingest = time.monotonic() + self.ingest_s
        while not self._stop.wait(0.2):
            try:
                if time.monotonic() >= next_ingest:
                    self.ingest()
                    next_ingest = time.monotonic() + self.ingest_s
                self._reload()
                started = time.monotonic()
                if started >= next_score:
                    self.rescore()
                    next_score = next_rescore_at(next_score, started, self.every_s)
            except Exception:  # scoring must never take the gateway down; counted for /metrics
                self.errors += 1


def next_rescore_at(due: float, started: float, every_s: float) -> float:
    """When the re-scoring after one due at ``due`` (begun at ``started``) is due: at a fixed
    rate, as the offline replay re-scores every hour, so a re-scoring's own time does not stretch
    the period (counted from its end, a 1-s re-scoring every 8.7 s would come every 9.7 s); once late,
    the next one starts at once rather than a burst catching up."""
    return max(due + every_s, started)


_EXCHANGE_TYPES: dict[str, pl.DataType] = dict(pl.DataFrame(EXCHANGES.empty_table()).schema)


def _exchanges_table(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """Rows (dicts with spec column names) as a frame of the spec's types."""
    cols = [c for c in _EXCHANGE_TYPES if c in rows[0]]
    return pl.DataFrame([{c: r.get(c) for c in cols} for r in rows], schema={c: _EXCHANGE_TYPES[c] for c in cols})


def _accounts_table(accounts: Iterable[Account]) -> Any:
    import pyarrow as pa

    rows = [{n: getattr(a, n) for n in ACCOUNTS.names} for a in accounts if a.created_at is not None]
    return pa.Table.from_pylist(rows, schema=ACCOUNTS)
