"""``VolumeBaseline``: flag accounts with an extreme peak daily volume. A baseline, not the product.

Why it exists: a number from the bench means little alone. "Recall 0.93 at FPR 0.1 %"
is only impressive next to what the obvious rule gets, and the obvious rule every API
provider already runs is a per-account volume limit. This detector is that rule, so every
benchmark reports the gap between distillguard's hunt and it. It catches naive scrapers
that hammer the API from one account and, by design, misses campaigns that spread their
volume over many accounts; it never groups accounts into campaigns.

It is fed only ``account_id`` and ``ts``, keeps one count per account for the open UTC
days and a running per-account peak, and scores in a few vectorised numpy passes, so the
bench can call :meth:`VolumeBaseline.verdicts` every simulated hour.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.detectors.base import Detector
from distillguard.errors import ConfigError
from distillguard.policy import DECISIONS
from distillguard.schema import TS
from distillguard.verdicts import Verdicts

__all__ = ["VolumeBaseline"]

_DAY_US = 86_400 * 1_000_000
_EPOCH_DAY = date(1970, 1, 1)

IntArray = npt.NDArray[np.int64]


def _ordinal(q: float) -> str:
    """``0.999 -> '99.9th'``, ``0.99 -> '99th'``, ``0.5 -> '50th'``, ``0.01 -> '1st'``."""
    pct = f"{q * 100:.6g}"
    if "." in pct or "e" in pct:
        return f"{pct}th"
    n = int(pct)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _count(x: float) -> str:
    """A threshold as people read it: ``410 -> '410'``, ``410.6 -> '410.6'``."""
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"


class VolumeBaseline(Detector):
    """Flag an account whose peak daily exchange count is above the population's quantile.

    A deliberately simple baseline for the bench to compare against, not distillguard's
    detector (that is ``hunt``).

    Parameters
    ----------
    quantile
        Flag accounts whose peak daily volume is strictly above this quantile of the peak
        daily volumes of all accounts seen so far with at least one exchange.
    threshold
        A fixed peak daily volume to flag above instead of the quantile.
    decision
        The decision given to flagged accounts (others get ``"allow"``).

    Notes
    -----
    ``risk`` is the empirical CDF of the account's peak daily volume in that population
    (accounts with no exchange get 0); ``campaign`` is always null. Days are UTC. An
    exchange arriving more than a day late counts towards the day before the newest one.

    Examples
    --------
    >>> import pyarrow as pa
    >>> from datetime import datetime, UTC
    >>> det = VolumeBaseline(threshold=2)
    >>> det.observe_accounts(pa.table({"account_id": ["a", "b"]}))
    >>> t = datetime(2026, 4, 23, 10, tzinfo=UTC)
    >>> det.observe(pa.table({"account_id": ["a", "a", "a", "b"], "ts": [t] * 4}))
    >>> v = det.verdicts()
    >>> sorted(v.flagged_ids())
    ['a']
    >>> v.accounts["evidence"][0].as_py()
    ['peak daily volume 3 exchanges on 2026-04-23, above the fixed threshold of 2']
    """

    name: ClassVar[str] = "baseline"
    columns: ClassVar[tuple[str, ...] | None] = ("account_id", "ts")

    def __init__(self, quantile: float = 0.999, threshold: float | None = None, decision: str = "throttle") -> None:
        if not 0.0 < quantile < 1.0:
            raise ConfigError(f"quantile must be in (0, 1), got {quantile}")
        if threshold is not None and threshold < 0:
            raise ConfigError(f"threshold must be >= 0, got {threshold}")
        if decision not in DECISIONS:
            raise ConfigError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
        self.quantile = quantile
        self.threshold = threshold
        self.decision = decision
        self._index: dict[str, int] = {}
        self._ids: list[str] = []
        self._ids_array: pa.Array | None = None
        self._peak: IntArray = np.zeros(0, np.int64)
        self._peak_day: IntArray = np.full(0, -1, np.int64)
        self._open: dict[int, IntArray] = {}
        self._newest: int | None = None

    def __repr__(self) -> str:
        return f"VolumeBaseline(quantile={self.quantile!r}, threshold={self.threshold!r}, decision={self.decision!r})"

    # -- state ---------------------------------------------------------------------------

    @property
    def _n(self) -> int:
        return len(self._ids)

    def _reserve(self, n: int) -> None:
        """Grow the per-account arrays (geometrically) to hold ``n`` accounts."""
        cap = self._peak.size
        if n <= cap:
            return
        new = max(n, 2 * cap, 1024)

        def grow(a: IntArray, fill: int) -> IntArray:
            out = np.full(new, fill, np.int64)
            out[: a.size] = a
            return out

        self._peak = grow(self._peak, 0)
        self._peak_day = grow(self._peak_day, -1)
        self._open = {d: grow(c, 0) for d, c in self._open.items()}

    def _codes(self, ids: pa.Array) -> IntArray:
        """Dense account indexes for a column of ids, registering unseen ones."""
        enc = ids.dictionary_encode()
        lookup = np.empty(len(enc.dictionary), np.int64)
        for i, aid in enumerate(enc.dictionary.to_pylist()):
            code = self._index.get(aid)
            if code is None:
                code = self._index[aid] = len(self._ids)
                self._ids.append(aid)
                self._ids_array = None
            lookup[i] = code
        self._reserve(self._n)
        return lookup[np.asarray(enc.indices.to_numpy(zero_copy_only=False), np.int64)]

    def _close_days(self, before: int) -> None:
        """Fold finished days into the running peak."""
        for day in sorted(d for d in self._open if d < before):
            counts = self._open.pop(day)
            higher = counts > self._peak
            self._peak[higher] = counts[higher]
            self._peak_day[higher] = day

    # -- Detector ------------------------------------------------------------------------

    def observe_accounts(self, accounts: pa.Table) -> None:
        """Register every account, so quiet ones still get a verdict (risk 0)."""
        ids = accounts["account_id"].combine_chunks().cast(pa.string())
        self._codes(ids.filter(pc.is_valid(ids)))

    def observe(self, batch: pa.Table) -> None:
        """Add the batch's exchanges to each account's count for their UTC day."""
        table = batch.select(["account_id", "ts"])
        table = table.filter(pc.and_(pc.is_valid(table["account_id"]), pc.is_valid(table["ts"])))
        if table.num_rows == 0:
            return
        codes = self._codes(table["account_id"].combine_chunks().cast(pa.string()))
        micros = np.asarray(pc.cast(table["ts"], TS).cast(pa.int64()).to_numpy(), np.int64)
        days = micros // _DAY_US
        if self._newest is not None:
            # Late relative to earlier batches only; a batch may itself span several days.
            days = np.maximum(days, self._newest - 1)
        cap = self._peak.size
        unique = np.unique(days).tolist()
        for day in unique:
            sel = codes if len(unique) == 1 else codes[days == day]
            counts = self._open.get(day)
            if counts is None:
                counts = self._open[day] = np.zeros(cap, np.int64)
            counts += np.bincount(sel, minlength=cap)
        newest = int(days.max()) if self._newest is None else max(self._newest, int(days.max()))
        self._newest = newest
        self._close_days(newest - 1)

    def _peaks(self) -> tuple[IntArray, IntArray]:
        """Per-account peak daily count and its day, open days included."""
        n = self._n
        peak, day = self._peak[:n].copy(), self._peak_day[:n].copy()
        for d in sorted(self._open):
            counts = self._open[d][:n]
            higher = counts > peak
            peak[higher] = counts[higher]
            day[higher] = d
        return peak, day

    def verdicts(self, now: datetime | None = None) -> Verdicts:
        """Score every account seen so far against the current population."""
        n = self._n
        peak, day = self._peaks()
        active = peak > 0
        population = np.sort(peak[active])
        risk = np.zeros(n, np.float64)
        flagged = np.zeros(n, bool)
        cut: float | None = None
        if population.size:
            risk = np.searchsorted(population, peak, side="right") / population.size
            risk[~active] = 0.0
            cut = float(self.threshold) if self.threshold is not None else float(np.quantile(population, self.quantile))
            flagged = active & (peak > cut)
        if self.threshold is not None:
            against = f"the fixed threshold of {_count(self.threshold)}"
        else:
            against = f"the population's {_ordinal(self.quantile)} percentile of {_count(cut or 0.0)}"
        hits = np.flatnonzero(flagged)
        sentences = [
            f"peak daily volume {int(peak[i]):,} exchanges on "
            f"{(_EPOCH_DAY + timedelta(days=int(day[i]))).isoformat()}, above {against}"
            for i in hits.tolist()
        ]
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum(flagged, out=offsets[1:])
        evidence = pa.ListArray.from_arrays(
            pa.array(offsets), pa.array(sentences, pa.string()), mask=pa.array(~flagged)
        )
        if self._ids_array is None:
            self._ids_array = pa.array(self._ids, pa.string())
        flagged_arr = pa.array(flagged)
        table = pa.table(
            {
                "account_id": self._ids_array,
                "risk": pa.array(risk),
                "flagged": flagged_arr,
                "campaign": pa.nulls(n, pa.string()),
                "evidence": evidence,
                "decision": pc.if_else(flagged_arr, self.decision, "allow"),
            }
        )
        meta: dict[str, Any] = {
            "generated_at": (now or datetime.now(UTC)).isoformat(),
            "detector": self.name,
            "params": {"quantile": self.quantile, "threshold": self.threshold, "decision": self.decision},
            "cut": cut,
            "active_accounts": int(population.size),
        }
        return Verdicts(table, campaigns=[], meta=meta)
