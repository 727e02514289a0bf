"""``HuntDetector``: the hunt's flow behind the :class:`~distillguard.detectors.Detector` protocol."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, ClassVar

import polars as pl
import pyarrow as pa

from distillguard.detectors.base import Detector
from distillguard.hunt.link import LinkParams
from distillguard.hunt.score import ScoreParams, score
from distillguard.hunt.state import HuntState
from distillguard.signals.base import TEXT_SPEC_DTYPES, Finding
from distillguard.signals.prepare import ACCOUNT_COLUMNS, COLUMNS, fill_missing
from distillguard.signals.registration import RegistrationSignal
from distillguard.verdicts import Verdicts


class HuntDetector(Detector):
    """Enrich → aggregate (per batch) and link → cluster → score (per verdict)."""

    name: ClassVar[str] = "hunt"
    columns: ClassVar[tuple[str, ...] | None] = COLUMNS

    def __init__(self, target_fpr: float = 0.001, min_campaign: int = 5, **state_params: Any) -> None:
        # The campaign tests' family-wise error is tied to the target: at 0.1 % of benign
        # accounts, at most a 1 % chance that any artifact or web is called by chance.
        link = LinkParams(alpha=min(0.05, 10 * target_fpr), min_campaign=min_campaign)
        self.params = ScoreParams(target_fpr=target_fpr, min_campaign=min_campaign, link=link)
        self.state = HuntState(**state_params)
        self.registration = RegistrationSignal()
        self.accounts = pl.DataFrame()

    def observe_accounts(self, accounts: pa.Table) -> None:
        df = pl.from_arrow(accounts)
        assert isinstance(df, pl.DataFrame)
        if "account_id" not in df.columns or df.height == 0:
            return
        df = fill_missing(df, ACCOUNT_COLUMNS)
        self.state.ensure_accounts(df["account_id"])
        self.accounts = df

    def observe(self, batch: pa.Table) -> None:
        self.state.observe(batch)

    def verdicts(self, now: dt.datetime | None = None) -> Verdicts:
        return self._timed(now, explain=True)

    def flags(self, now: dt.datetime | None = None) -> pa.Table:
        """The verdicts without evidence or campaign summaries (about 2/3 of the cost)."""
        return self._timed(now, explain=False).accounts

    def _timed(self, now: dt.datetime | None, explain: bool) -> Verdicts:
        t0 = time.perf_counter()
        v = self._verdicts(now, explain)
        self.state.timings["link+cluster+score"] = self.state.timings.get("link+cluster+score", 0.0) + time.perf_counter() - t0
        return v

    def _verdicts(self, now: dt.datetime | None, explain: bool) -> Verdicts:
        states = self.state.compacted()
        n = self.state.index.height
        findings: dict[str, Finding] = {s.name: s.finalize(states[s.name], n) for s in self.state.signals}
        index = self.state.index
        acc = index
        if self.accounts.height:
            acc = self.accounts.join(index, on="account_id", how="inner")
            if now is not None and "created_at" in acc.columns:
                acc = acc.filter(pl.col("created_at") <= now)  # no look-ahead in a replay
            findings["registration"] = self.registration.finalize(acc)
        found = [f.texts for f in findings.values() if f.texts is not None and f.texts.height]
        texts = pl.concat(found) if found else pl.DataFrame(schema=TEXT_SPEC_DTYPES)
        v = score(findings, index.join(acc.select("account", *(["org_id"] if "org_id" in acc.columns else [])), on="account", how="left"), index, texts, self.params, now, explain=explain)
        v.unused_signals = self.state.unused()
        if not self.accounts.height:
            v.unused_signals["registration"] = "the log has no accounts table"
        v.meta["exchanges"] = self.state.n_exchanges
        return v
