"""What a detector produces: per-account verdicts and the campaigns they were grouped into.

``accounts.parquet`` has ``account_id, risk, flagged, campaign, evidence, decision``
(:data:`VERDICTS`); ``campaigns.json`` the campaigns and run metadata; ``decisions.json``
the non-``allow`` decisions, which the gateway loads.

``risk`` is in [0, 1]: at or above 0.5 only for members of a significant campaign, below
0.5 the account's behaviour rank in the population scaled to [0, 0.49]. ``decision`` is
:mod:`distillguard.policy`'s action for that risk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["VERDICTS", "Verdicts"]

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
    # Every account's features (``account_id``, ``<signal>.<feature>``, ``b``, ``ecdf``):
    # what the risk was computed from, for reviewers and reports; ``None`` when not kept.
    features: pa.Table | None = None
    # Groups the hunt looked at and did not call a campaign, with why (``campaigns.json``).
    near_misses: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.accounts = self.accounts.select(VERDICTS.names).cast(VERDICTS)

    def flagged_ids(self) -> set[str]:
        t = self.accounts.filter(self.accounts["flagged"])
        return set(t["account_id"].to_pylist())

    def write(self, out: Path) -> None:
        """Write ``accounts.parquet``, ``campaigns.json``, ``decisions.json`` (and
        ``features.parquet`` when the features were kept) into ``out``."""
        out.mkdir(parents=True, exist_ok=True)
        pq.write_table(self.accounts, out / "accounts.parquet")
        if self.features is not None:
            pq.write_table(self.features, out / "features.parquet")
        doc = {
            "campaigns": self.campaigns,
            "near_misses": self.near_misses,
            "unused_signals": self.unused_signals,
            "meta": self.meta,
        }
        (out / "campaigns.json").write_text(json.dumps(doc, indent=2, default=str))
        acted = self.accounts.filter(pc.not_equal(self.accounts["decision"], "allow"))
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
            near_misses=doc.get("near_misses", []),
        )
