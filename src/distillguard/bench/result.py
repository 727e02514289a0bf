"""The outcome of one bench run: JSON for scripts, a rich table for people.

Why one object: the CLI prints it, ``benchmarks/bench_detect.py`` writes and compares it,
and users' scripts read its JSON keys, so the keys live in exactly one place
(:meth:`BenchResult.to_dict`). Renaming a key here breaks those scripts; add, don't rename.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table

from distillguard.bench.replay import ReplayResult

__all__ = ["BenchResult", "fmt_bytes", "fmt_hours", "fmt_pct"]

DASH = "—"


def fmt_pct(x: float | None, digits: int = 1) -> str:
    """``0.953 -> '95.3%'``; ``None -> '—'``."""
    return DASH if x is None else f"{100 * x:.{digits}f}%"


def fmt_hours(x: float | None) -> str:
    """Hours as ``'3.0 h'``, or days past two days (``'4.2 d'``); ``None -> '—'``."""
    if x is None:
        return DASH
    return f"{x / 24:.1f} d" if abs(x) >= 48 else f"{x:.1f} h"


def fmt_bytes(n: float | None) -> str:
    """``1536 -> '1.5 KiB'``."""
    if n is None:
        return DASH
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - loop always returns


def _num(x: float | None, spec: str = ",.0f") -> str:
    return DASH if x is None else format(x, spec)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN has no JSON; a missing number is null
        return None
    return value


@dataclass
class BenchResult:
    """Scores of one detector on one labelled log.

    Attributes mirror the JSON keys (see :meth:`to_dict`). ``accounts`` holds
    ``precision, recall, fpr, f1, tp, fp, fn, tn, flagged, attack_accounts,
    benign_accounts, ever_flagged``; ``campaigns``, ``time_to_detect_hours`` and
    ``leaked_exchanges`` are keyed by campaign id, and so is ``harvest`` (time to detect and
    leaked exchanges counted from each campaign's harvest start, after any warm-up);
    ``per_archetype`` by archetype.
    ``replay_result`` (not serialised) keeps the raw replay, final verdicts included.
    """

    detector: str
    log: str
    replay_every_hours: float
    n_accounts: int
    exchanges: int
    seconds: float
    throughput_exchanges_per_s: float | None
    peak_rss_bytes: int
    accounts: dict[str, Any]
    per_archetype: dict[str, dict[str, Any]]
    campaigns: dict[str, dict[str, Any]]
    time_to_detect_hours: dict[str, dict[str, float | None]]
    leaked_exchanges: dict[str, dict[str, Any]]
    leaked_exchanges_all: dict[str, Any]
    flagged_by_decision: dict[str, dict[str, int]]
    # Served while the account was not flagged: before its first flag, and between a clear and
    # the next flag (``leaked_exchanges`` counts only the first); keyed as ``leaked_exchanges``.
    leaked_while_unflagged: dict[str, dict[str, Any]] = field(default_factory=dict)
    leaked_while_unflagged_all: dict[str, Any] = field(default_factory=dict)
    # Served before any account of the campaign was flagged (part of ``leaked_exchanges``): only
    # an earlier campaign saves these, the rest a faster membership; keyed as ``leaked_exchanges``.
    leaked_before_campaign_flagged: dict[str, dict[str, Any]] = field(default_factory=dict)
    leaked_before_campaign_flagged_all: dict[str, Any] = field(default_factory=dict)
    # Per campaign, from its harvest start (labels' optional ``harvest_start``): start, first, p90, leaked.
    harvest: dict[str, dict[str, Any]] = field(default_factory=dict)
    replay: dict[str, Any] = field(default_factory=dict)
    detector_params: dict[str, Any] = field(default_factory=dict)
    log_issues: int = 0
    # Rows kept and lost per table, share lost, files skipped (``Loss.summary``).
    input: dict[str, Any] = field(default_factory=dict)
    unused_signals: dict[str, str] = field(default_factory=dict)
    version: str = ""
    replay_result: ReplayResult | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Everything but ``replay_result``, JSON-ready (datetimes as ISO strings, no NaN)."""
        doc = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "replay_result"}
        out = _jsonable(doc)
        assert isinstance(out, dict)
        return out

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> BenchResult:
        """Rebuild from :meth:`to_dict` output (unknown keys ignored, so old readers survive new keys)."""
        names = {f.name for f in fields(cls)} - {"replay_result"}
        return cls(**{k: v for k, v in doc.items() if k in names})

    def write_json(self, path: Path | str) -> None:
        """Write :meth:`to_dict` as indented JSON, creating parent folders."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def read_json(cls, path: Path | str) -> BenchResult:
        """Read a file written by :meth:`write_json`."""
        doc = json.loads(Path(path).read_text())
        assert isinstance(doc, dict)
        return cls.from_dict(doc)

    # -- rendering ---------------------------------------------------------------------

    def tables(self) -> list[Table]:
        """The rich tables :meth:`print` shows: run, accounts, archetypes, campaigns, decisions."""
        tables = [self._run_table(), self._accounts_table(), self._archetype_table()]
        if self.campaigns:
            tables.append(self._campaign_table())
        if self.flagged_by_decision:
            tables.append(self._decision_table())
        return tables

    def print(self, console: Console) -> None:
        """Print the readable summary."""
        console.print(Group(*self.tables()))

    def _run_table(self) -> Table:
        t = Table(title=f"bench: {self.detector} on {self.log}", show_header=False, title_justify="left")
        t.add_column(style="bold")
        t.add_column(justify="right")
        t.add_row("accounts", f"{self.n_accounts:,}")
        t.add_row("exchanges", f"{self.exchanges:,}")
        t.add_row("replay", f"every {self.replay_every_hours:g} h, {self.replay.get('chunks', 0):,} re-scores")
        t.add_row("detector time", f"{self.seconds:,.2f} s")
        t.add_row("throughput", f"{_num(self.throughput_exchanges_per_s)} exchanges/s")
        t.add_row("peak memory (RSS)", fmt_bytes(self.peak_rss_bytes))
        if self.log_issues:
            t.add_row("log issues", f"[yellow]{self.log_issues:,}[/yellow]")
        return t

    def _accounts_table(self) -> Table:
        a = self.accounts
        t = Table(title="accounts", title_justify="left")
        t.add_column("metric", style="bold")
        t.add_column("value", justify="right")
        t.add_column("counts")
        t.add_row("precision", fmt_pct(a.get("precision")), f"{a['tp']:,} of {a['flagged']:,} flagged are attack")
        t.add_row("recall", fmt_pct(a.get("recall")), f"{a['tp']:,} of {a['attack_accounts']:,} attack accounts flagged")
        t.add_row("FPR", fmt_pct(a.get("fpr"), 3), f"{a['fp']:,} of {a['benign_accounts']:,} benign accounts flagged")
        return t

    def _archetype_table(self) -> Table:
        t = Table(
            title="per archetype",
            caption="rate: recall for attack archetypes, false-positive rate for benign ones",
            title_justify="left",
            caption_justify="left",
        )
        t.add_column("archetype")
        t.add_column("kind")
        for name in ("accounts", "flagged", "rate"):
            t.add_column(name, justify="right")
        for name, row in self.per_archetype.items():
            attack = row["kind"] == "attack"
            rate = fmt_pct(row["rate"]) if attack else fmt_pct(row["rate"], 3)
            style = "red" if attack else "green"
            t.add_row(name, f"[{style}]{row['kind']}[/{style}]", f"{row['accounts']:,}", f"{row['flagged']:,}", rate)
        return t

    def _campaign_table(self) -> Table:
        allv, unfl, before = self.leaked_exchanges_all, self.leaked_while_unflagged_all, self.leaked_before_campaign_flagged_all
        t = Table(
            title="campaigns",
            caption=(
                "flagged: accounts flagged in the final verdicts / accounts (+n: flagged during the "
                "replay, then cleared). cluster: the detector's campaign holding most "
                "of its accounts; prec, recall: of that cluster. first, 90%: time from the campaign's "
                "first exchange until its first / 90% of its accounts were flagged. leaked: share of "
                "its exchanges served before their account was flagged "
                f"(all campaigns: {allv.get('count', 0):,} of {allv.get('total', 0):,}); unfl.: "
                "served while it was not flagged, a cleared flag's time included"
                f" (all: {unfl.get('count', 0):,})."
                + (  # absent from results written before it was counted
                    f" Of the leak, {before['count']:,} were served before any account of their campaign was flagged."
                    if before
                    else ""
                )
            ),
            title_justify="left",
            caption_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            collapse_padding=True,  # nine columns fit 80 characters (a log, a pipe)
        )
        t.add_column("campaign", min_width=8, overflow="fold")
        for name in ("flagged", "cluster", "prec", "recall", "first", "90%", "leaked", "unfl."):
            t.add_column(name, justify="left" if name == "cluster" else "right", no_wrap=True)
        for cid, c in self.campaigns.items():
            ttd = self.time_to_detect_hours.get(cid, {})
            t.add_row(
                cid,
                f"{c['flagged']:,}/{c['accounts']:,}"
                + (f" (+{c['flagged_then_cleared']:,})" if c.get("flagged_then_cleared") else ""),
                DASH if c.get("best_cluster") is None else str(c["best_cluster"]),
                fmt_pct(c.get("precision")),
                fmt_pct(c.get("recall")),
                fmt_hours(ttd.get("first")),
                fmt_hours(ttd.get("p90")),
                fmt_pct(self.leaked_exchanges.get(cid, {}).get("share")),
                fmt_pct(self.leaked_while_unflagged.get(cid, {}).get("share")),
            )
        if len(self.campaigns) > 1:
            t.add_section()
            t.add_row("all", "", "", "", "", "", "", fmt_pct(allv.get("share")), fmt_pct(unfl.get("share")))
        return t

    def _decision_table(self) -> Table:
        t = Table(title="flagged accounts by decision", title_justify="left")
        for name in ("decision", "accounts", "attack", "benign"):
            t.add_column(name, justify="left" if name == "decision" else "right")
        for d, row in self.flagged_by_decision.items():
            t.add_row(d, f"{row['accounts']:,}", f"{row['attack']:,}", f"{row['benign']:,}")
        return t
