"""The live re-score: :meth:`HuntDetector.flags` on a state that grows by small batches.

The gateway re-scores its whole live state every few seconds, while a batch of those
seconds touches a few hundred of 200,000 accounts. Finalizing every signal over the whole
state each time costs far more than the batch (``benchmarks/bench_rescore.py``), so
between two *full* re-scores only the accounts whose state changed (:meth:`HuntState.
take_touched`, plus accounts whose row of the accounts table changed or that ``now`` made
visible) are finalized again, each signal as it can (:meth:`Signal.refinalize`):

* a ``local`` signal (an account's features and artifacts come from its own rows) finalizes
  the dirty accounts' rows and recomputes its population columns (tail scores, medians)
  over the patched whole: the same features and artifacts as a full finalize;
* lived time fits only the dirty accounts, against the day shapes of the last full
  re-score (see below);
* every other signal, and link, cluster and score, run in full, as in :meth:`flags`; what
  reads only the accounts table (registration, lived time's identity rings, the row hashes
  below) is computed again only when that table changed.

When the two can differ: only through lived time's day shapes (``reference``), a population
calibration kept from the last full re-score. A fit against them can differ from a fit
against today's shapes, so an account's lived offset, confidence and ``ts_misplaced`` (and
through them behaviour, links and decisions) can differ until the next full re-score,
which happens every ``refresh_every`` calls, after :meth:`refresh_next` or
:meth:`reset`, and whenever nothing was scored before. A full re-score is the same code as
:meth:`HuntDetector.verdicts`' findings, so its result equals a from-scratch one.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from distillguard.signals.base import Finding

if TYPE_CHECKING:
    from distillguard.hunt.detector import HuntDetector

__all__ = ["Rescorer"]


class Rescorer:
    """Incremental :meth:`HuntDetector.flags`, with a full re-score every ``refresh_every`` calls
    or ``refresh_s`` seconds of ``now``, whichever comes first."""

    def __init__(self, detector: HuntDetector, refresh_every: int = 60, refresh_s: float = 300.0) -> None:
        """``refresh_every``: calls between two full re-scores (60: every five minutes at
        the gateway's five-second cycle). ``refresh_s``: when calls give ``now`` (a replay
        clock's time), also a full re-score once ``now`` is that much past the last one's:
        lived time's day shapes calibrate the traffic's own time, so they are as stale as the
        time they missed, not the calls (replayed through the gateway at 900x, 60 calls were
        60 simulated hours)."""
        self.detector = detector
        self.refresh_every = refresh_every
        self.refresh_s = refresh_s
        self._full_at: dt.datetime | None = None  # ``now`` of the last full re-score
        self.last_mode: str | None = None  # "full" or "incremental", for benchmarks and /metrics
        self._previous: tuple[dict[str, Finding], dict[str, Finding | None]] | None = None
        self._accounts = pl.DataFrame()  # ``account, row`` hashes of the accounts table last read
        self._accounts_seen: tuple[pl.DataFrame, int, int] | None = None  # what they were read from
        self._since_full = 0
        self._full_next = True

    def reset(self) -> None:
        """Forget every cache: the next call re-scores in full."""
        self._previous = None
        self._accounts = pl.DataFrame()
        self._accounts_seen = None
        self._full_next = True

    def refresh_next(self) -> None:
        """Make the next call a full re-score (its result equals a from-scratch one)."""
        self._full_next = True

    def flags(self, now: dt.datetime | None = None) -> pa.Table:
        det = self.detector
        touched = det.state.take_touched()
        full = (
            self._full_next or self._previous is None or self._since_full + 1 >= self.refresh_every
            or (now is not None and self._full_at is not None and (now - self._full_at).total_seconds() >= self.refresh_s)
        )  # fmt: skip
        # The accounts table's rows are hashed again only when it may have changed: another
        # table, more accounts indexed, or more of them registered by ``now`` (a threshold on
        # ``created_at``: equal counts are equal sets). Hashing it: 0.2 s at 196,017 accounts.
        visible = det.accounts.height
        if now is not None and visible:
            visible = int(det.accounts.select((pl.col("created_at") <= now).sum()).item())
        seen = (det.accounts, det.state.index.height, visible)
        same = self._accounts_seen is not None and self._accounts_seen[0] is seen[0] and self._accounts_seen[1:] == seen[1:]
        rows = self._accounts if same else _row_hashes(det.accounts, det.state.index, now)
        self._accounts_seen = seen
        if full:
            own, from_accounts, orgs, _ = det.signal_findings(now)
            self._since_full = 0
            self._full_at = now
        else:
            # Dirty: new exchanges, or a new, changed or newly visible row of the accounts table.
            dirty = touched
            if rows.height != self._accounts.height or not rows.equals(self._accounts):
                changed = pl.concat(
                    [rows.join(self._accounts, on=["account", "row"], how="anti"),
                     self._accounts.join(rows, on=["account", "row"], how="anti")]
                )["account"]  # fmt: skip
                dirty = pl.concat([dirty, changed]).unique().sort()
            own, from_accounts, orgs, _ = det.signal_findings(now, dirty, self._previous)
            self._since_full += 1
        self._accounts = rows
        self._previous = (own, from_accounts)
        self._full_next = False
        self.last_mode = "full" if full else "incremental"
        findings = {**own, **{k: f for k, f in from_accounts.items() if f is not None}}
        return det.verdicts_of(findings, orgs, now, explain=False).accounts


def _row_hashes(accounts: pl.DataFrame, index: pl.DataFrame, now: dt.datetime | None) -> pl.DataFrame:
    """``account, row``: a hash of each visible account's row of the accounts table."""
    if accounts.height == 0:
        return pl.DataFrame(schema={"account": pl.UInt32, "row": pl.UInt64})
    acc = accounts.join(index, on="account_id", how="inner")
    if now is not None:
        acc = acc.filter(pl.col("created_at") <= now)
    return acc.select("account", row=pl.struct(pl.all()).hash(11)).sort("account")
