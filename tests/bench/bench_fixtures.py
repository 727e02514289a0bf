"""A hand-made labelled log, an in-memory reader and a scripted detector for the bench tests.

The numbers every test asserts are worked out by hand from the tables below; see the
comments in ``test_bench_metrics.py``.

Campaigns: C1 (hydra: c1a, c1b, c1c), C2 (naive_scraper: c2a, c2b), C3 (stealth: c3a,
a single-account campaign). Benign: n1, n2, n3 casual, n4 enterprise_app, n5 casual with
no exchange, u1 in the accounts table but not in the labels.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from distillguard import schema
from distillguard.detectors import Detector
from distillguard.verdicts import Verdicts

T0 = datetime(2026, 4, 22, tzinfo=UTC)


def benchmark_script(name: str) -> ModuleType:
    """``benchmarks/NAME.py`` loaded as a module: the scripts are files, not a package."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


# account -> exchange times, in hours after T0 (day 2 starts at 24).
TRAFFIC: dict[str, list[float]] = {
    "c1a": [10 / 60, 20 / 60, 1 + 10 / 60, 2.5],
    "c1b": [40 / 60, 1 + 50 / 60, 3 + 10 / 60],
    "c1c": [2 + 5 / 60, 5.0],
    "c2a": [1.0, 1.5],
    "c2b": [4.0],
    "c3a": [0.5, 10.0],
    "n1": [5 / 60, 3.0],
    "n2": [1.25],
    "n3": [25.0],
    "n4": [2.0, 26.0],
}

LABELS = [
    ("c1a", "C1", "hydra"),
    ("c1b", "C1", "hydra"),
    ("c1c", "C1", "hydra"),
    ("c2a", "C2", "naive_scraper"),
    ("c2b", "C2", "naive_scraper"),
    ("c3a", "C3", "stealth"),
    ("n1", None, "casual"),
    ("n2", None, "casual"),
    ("n3", None, "casual"),
    ("n4", None, "enterprise_app"),
    ("n5", None, "casual"),
]
ACCOUNT_IDS = [a for a, _, _ in LABELS] + ["u1"]

# The scripted detector: flag windows [from, until) in replay hours, cluster ids, decisions.
FLAG_WINDOWS: dict[str, tuple[float, float | None]] = {
    "c1a": (1.0, None),
    "c1b": (2.5, None),
    "c2a": (1.75, None),
    "c2b": (1.75, None),  # flagged before its first exchange
    "n2": (5.5, None),
    "n1": (0.5, 2.5),  # flagged, then cleared: ever flagged but not in the final verdicts
}
CLUSTERS = {"c1a": "K1", "c1b": "K1", "n4": "K1", "c1c": "K2", "c2a": "K3", "c2b": "K4", "n3": "K4"}
DECISIONS = {"n2": "verify"}


def exchanges_table() -> pa.Table:
    rows = sorted((at(h), a) for a, hs in TRAFFIC.items() for h in hs)
    n = len(rows)
    cols: dict[str, Any] = {
        "request_id": [f"r{i}" for i in range(n)],
        "ts": [t for t, _ in rows],
        "account_id": [a for _, a in rows],
        "input_tokens": [100] * n,
        "output_tokens": [500] * n,
    }
    arrays = [
        pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(n, f.type) for f in schema.EXCHANGES
    ]
    return pa.Table.from_arrays(arrays, schema=schema.EXCHANGES)


def accounts_table() -> pa.Table:
    n = len(ACCOUNT_IDS)
    cols: dict[str, Any] = {"account_id": ACCOUNT_IDS, "created_at": [T0 - timedelta(days=3)] * n}
    arrays = [pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(n, f.type) for f in schema.ACCOUNTS]
    return pa.Table.from_arrays(arrays, schema=schema.ACCOUNTS)


def labels_table() -> pa.Table:
    return pa.table(
        {
            "account_id": [a for a, _, _ in LABELS],
            "campaign_id": [c for _, c, _ in LABELS],
            "archetype": [k for _, _, k in LABELS],
        },
        schema=schema.LABELS,
    )


class FakeReader:
    """In-memory stand-in for ``LogReader``: one table per UTC day, sorted by ts."""

    def __init__(
        self,
        exchanges: pa.Table | None = None,
        accounts: pa.Table | None = None,
        labels: pa.Table | None = None,
        events: list[str] | None = None,
        no_labels: bool = False,
    ) -> None:
        self._exchanges = exchanges_table() if exchanges is None else exchanges
        self._accounts = accounts_table() if accounts is None else accounts
        self._labels = None if no_labels else (labels_table() if labels is None else labels)
        self.events = [] if events is None else events
        self.issues: list[str] = []
        self.columns_asked: list[list[str] | None] = []

    def accounts(self) -> pa.Table:
        self.events.append("reader.accounts")
        return self._accounts

    def labels(self) -> pa.Table | None:
        self.events.append("reader.labels")
        return self._labels

    def exchange_batches(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
        self.events.append("reader.exchange_batches")
        self.columns_asked.append(columns)
        t = self._exchanges.sort_by("ts")
        day = pc.cast(t["ts"], pa.date32())
        for d in pc.unique(day).to_pylist():
            part = t.filter(pc.equal(day, pa.scalar(d, pa.date32())))
            yield part if columns is None else part.select(columns)


class ScriptedDetector(Detector):
    """Flags by script, whatever it is fed; records everything it is given."""

    name: ClassVar[str] = "scripted"
    columns: ClassVar[tuple[str, ...] | None] = ("account_id", "ts", "output_tokens")

    def __init__(
        self,
        windows: dict[str, tuple[float, float | None]] | None = None,
        clusters: dict[str, str] | None = None,
        decisions: dict[str, str] | None = None,
        events: list[str] | None = None,
    ) -> None:
        self.windows = FLAG_WINDOWS if windows is None else windows
        self.clusters = CLUSTERS if clusters is None else clusters
        self.decisions = DECISIONS if decisions is None else decisions
        self.events = [] if events is None else events
        self.ids: list[str] = []
        self.batches: list[pa.Table] = []
        self.accounts_seen: pa.Table | None = None
        self.nows: list[datetime | None] = []

    def observe_accounts(self, accounts: pa.Table) -> None:
        self.events.append("detector.observe_accounts")
        self.accounts_seen = accounts
        self.ids = list(accounts["account_id"].to_pylist())

    def observe(self, batch: pa.Table) -> None:
        self.events.append("detector.observe")
        self.batches.append(batch)
        for a in batch["account_id"].to_pylist():
            if a not in self.ids:
                self.ids.append(a)

    def verdicts(self, now: datetime | None = None) -> Verdicts:
        self.events.append("detector.verdicts")
        self.nows.append(now)
        clock = now or datetime.max.replace(tzinfo=UTC)
        flagged = []
        for a in self.ids:
            w = self.windows.get(a)
            flagged.append(w is not None and at(w[0]) <= clock and (w[1] is None or clock < at(w[1])))
        return Verdicts(
            pa.table(
                {
                    "account_id": self.ids,
                    "risk": [0.9 if f else 0.1 for f in flagged],
                    "flagged": flagged,
                    "campaign": [self.clusters.get(a) for a in self.ids],
                    "evidence": [["scripted"] if f else None for f in flagged],
                    "decision": [self.decisions.get(a, "block") if f else "allow" for a, f in zip(self.ids, flagged, strict=True)],
                }
            )
        )


class AccountOnlyDetector(ScriptedDetector):
    """Asks for ``account_id`` only, so the replay must read ``ts`` without passing it on."""

    columns: ClassVar[tuple[str, ...] | None] = ("account_id",)


class AllColumnsDetector(ScriptedDetector):
    columns: ClassVar[tuple[str, ...] | None] = None
