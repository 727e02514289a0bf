"""The one protocol every detector implements, and what it produces.

A detector is fed registration data once, then exchange batches in time order, and can
be asked at any moment for its verdicts. It never sees labels: the bench, the hunt and
the gateway drive every detector through these three calls and nothing else.

Output (also what ``distillguard hunt`` writes): ``accounts.parquet`` with
``account_id, risk, flagged, campaign, evidence, decision``; ``campaigns.json``;
``decisions.json`` for the gateway.
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.errors import ConfigError

DECISIONS = ("allow", "throttle", "verify", "block")

VERDICTS = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("risk", pa.float64(), nullable=False),
        pa.field("flagged", pa.bool_(), nullable=False),
        pa.field("campaign", pa.string()),
        pa.field("evidence", pa.list_(pa.string())),
        pa.field("decision", pa.string()),
    ]
)


@dataclass
class Verdicts:
    """Per-account risk and decisions, plus the campaigns they were grouped into."""

    accounts: pa.Table
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    unused_signals: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.accounts = self.accounts.select(VERDICTS.names).cast(VERDICTS)

    def flagged_ids(self) -> set[str]:
        t = self.accounts.filter(self.accounts["flagged"])
        return set(t["account_id"].to_pylist())

    def write(self, out: Path) -> None:
        """Write ``accounts.parquet``, ``campaigns.json`` and ``decisions.json`` into ``out``."""
        out.mkdir(parents=True, exist_ok=True)
        pq.write_table(self.accounts, out / "accounts.parquet")
        doc = {"campaigns": self.campaigns, "unused_signals": self.unused_signals, "meta": self.meta}
        (out / "campaigns.json").write_text(json.dumps(doc, indent=2, default=str))
        acted = self.accounts.filter(pa.compute.not_equal(self.accounts["decision"], "allow"))
        decisions = {
            "version": 1,
            "generated_at": self.meta.get("generated_at"),
            "accounts": {
                r["account_id"]: {"decision": r["decision"], "risk": round(r["risk"], 4), "campaign": r["campaign"]}
                for r in acted.to_pylist()
            },
        }
        (out / "decisions.json").write_text(json.dumps(decisions, indent=1, default=str))

    @classmethod
    def read(cls, out: Path) -> Verdicts:
        doc = json.loads((out / "campaigns.json").read_text())
        return cls(
            pq.read_table(out / "accounts.parquet"),
            doc.get("campaigns", []),
            doc.get("unused_signals", {}),
            doc.get("meta", {}),
        )


class Detector(ABC):
    """Consume accounts and exchange batches (never labels); produce :class:`Verdicts`.

    ``columns`` names the exchange columns the detector wants (``None``: all), so a
    reader can skip the rest; a column absent from the log arrives as nulls.
    """

    name: ClassVar[str]
    columns: ClassVar[tuple[str, ...] | None] = None

    @abstractmethod
    def observe_accounts(self, accounts: pa.Table) -> None:
        """Registration data, given once before any exchange."""

    @abstractmethod
    def observe(self, batch: pa.Table) -> None:
        """A batch of exchanges; batches arrive in time order in a replay."""

    @abstractmethod
    def verdicts(self, now: datetime | None = None) -> Verdicts:
        """Verdicts on everything observed so far (``now``: the replay clock)."""

    def flags(self, now: datetime | None = None) -> pa.Table:
        """At least ``account_id, flagged, risk`` of :meth:`verdicts`: what a replay records
        between two full verdicts. Override it where flags cost less than evidence."""
        return self.verdicts(now).accounts


# name -> "module:Class"; imported on first use so heavy detectors cost nothing until asked for.
DETECTORS: dict[str, str] = {
    "baseline": "distillguard.detectors.baseline:VolumeBaseline",
    "hunt": "distillguard.hunt.detector:HuntDetector",
}


def get_detector(name: str, **params: Any) -> Detector:
    """Build a registered detector by name."""
    try:
        target = DETECTORS[name]
    except KeyError:
        raise ConfigError(f"unknown detector {name!r}; known: {', '.join(sorted(DETECTORS))}") from None
    module, cls = target.split(":")
    factory: Callable[..., Detector] = getattr(importlib.import_module(module), cls)
    return factory(**params)
