"""A hunt's output as the dashboard shows it: campaigns, accounts with their evidence, and what
stands for each account once the analysts' decisions are laid over the hunt's.

The output is read again when its files change (a new ``distillguard hunt`` into the same
folder), so the dashboard never needs a restart.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from distillguard.errors import ConfigError
from distillguard.review import Standing

__all__ = ["AccountRow", "Campaign", "Hunt", "HuntSource", "standing_of"]


@dataclass(frozen=True)
class AccountRow:
    account_id: str
    risk: float
    flagged: bool
    campaign: str | None
    evidence: tuple[str, ...]
    decision: str  # the hunt's


@dataclass(frozen=True)
class Campaign:
    id: str
    accounts: tuple[str, ...]
    risk: float
    evidence: tuple[str, ...]
    doc: Mapping[str, Any]  # the whole campaigns.json entry (span, capabilities, shared artifacts)

    @property
    def targeted(self) -> list[str]:
        caps = self.doc.get("capabilities") or {}
        return [k for k, v in caps.items() if k != "target" and isinstance(v, Mapping) and v.get("targeted")]


@dataclass
class Hunt:
    path: Path
    accounts: dict[str, AccountRow]
    campaigns: dict[str, Campaign]
    meta: Mapping[str, Any] = field(default_factory=dict)
    near_misses: Sequence[Mapping[str, Any]] = ()

    @classmethod
    def read(cls, path: Path) -> Hunt:
        acc, doc_path = path / "accounts.parquet", path / "campaigns.json"
        for f in (acc, doc_path):
            if not f.is_file():
                raise ConfigError(f"--hunt {path}: no {f.name} (write one with `distillguard hunt LOG --out {path}`)")
        cols = ["account_id", "risk", "flagged", "campaign", "evidence", "decision"]
        rows = pq.read_table(acc, columns=cols).to_pylist()
        accounts = {
            r["account_id"]: AccountRow(
                r["account_id"], float(r["risk"] or 0.0), bool(r["flagged"]), r["campaign"], tuple(r["evidence"] or ()),
                r["decision"] or "allow",
            )
            for r in rows
        }
        doc = json.loads(doc_path.read_text())
        campaigns = {
            str(c["id"]): Campaign(str(c["id"]), tuple(c.get("accounts", ())), float(c.get("risk", 0.0)), tuple(c.get("evidence", ())), c)
            for c in doc.get("campaigns", [])
        }
        return cls(path, accounts, campaigns, doc.get("meta", {}), doc.get("near_misses", []))

    def to_watch(self) -> list[Mapping[str, Any]]:
        """The near misses that name accounts (identity webs and small linked groups), as
        ``campaigns.json`` orders them: the groups an analyst would look at next."""
        return [n for n in self.near_misses if n.get("members")]

    def members(self, campaign: str) -> list[AccountRow]:
        c = self.campaigns[campaign]
        return sorted((self.accounts[a] for a in c.accounts if a in self.accounts), key=lambda r: -r.risk)

    def acted(self) -> list[AccountRow]:
        """Accounts the hunt flagged or acts on, riskiest first."""
        return sorted((r for r in self.accounts.values() if r.flagged or r.decision != "allow"), key=lambda r: -r.risk)


class HuntSource:
    """The hunt in ``path``, read again when its files change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sig: tuple[float, ...] = ()
        self._hunt = Hunt.read(path)
        self._sig = self._signature()

    def _signature(self) -> tuple[float, ...]:
        return tuple((self.path / f).stat().st_mtime for f in ("accounts.parquet", "campaigns.json"))

    def get(self) -> Hunt:
        try:
            sig = self._signature()
        except FileNotFoundError:  # being rewritten: keep showing the last complete one
            return self._hunt
        if sig != self._sig:
            with contextlib.suppress(OSError, ValueError, ConfigError):  # half-written: read again next page
                self._hunt, self._sig = Hunt.read(self.path), sig
        return self._hunt


def standing_of(row: AccountRow, analyst: Standing | None) -> dict[str, Any]:
    """What stands for one account: the analyst's latest block or allow, else the hunt's decision."""
    d = analyst.decision if analyst is not None else None
    return {
        "decision": d.action if d is not None else row.decision,
        "source": "analyst" if d is not None else "hunt",
        "id": d.id if d is not None else None,
    }
