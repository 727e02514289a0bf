"""Readable terminal output of verdicts: campaigns first, then the riskiest accounts.

Fits the console (80 columns when piped): one line per campaign and per account, ids and
numbers never cut (a reviewer copies them); the evidence column gets what is left, cut with
"…", and a line says where the whole of it is (``campaigns.json``, ``accounts.parquet`` and
the HTML page ``distillguard report`` draws). :func:`summary` is the same for machines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.compute as pc
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from distillguard.verdicts import Verdicts

__all__ = ["print_verdicts", "report_command", "summary"]


def _cut(text: str, width: int) -> str:
    if cell_len(text) <= width:
        return text
    out = ""
    for ch in text:
        if cell_len(out + ch) > width - 1:
            break
        out += ch
    return out + "…"


def _table(console: Console, title: str, header: list[str], rows: list[list[str]]) -> Table:
    """A table whose last column takes the width the others leave, its cells cut to one line."""
    fixed = [max(cell_len(h), *(cell_len(r[i]) for r in rows)) for i, h in enumerate(header[:-1])]
    # Rich's heavy box: a border before each column and after the last, one space of padding each side.
    last = max(12, console.width - sum(fixed) - 3 * len(header) - 1)
    t = Table(title=title, title_justify="left")
    for h, w in zip(header[:-1], fixed, strict=True):
        t.add_column(h, no_wrap=True, min_width=w)
    t.add_column(header[-1], no_wrap=True, width=last, overflow="ellipsis")
    for r in rows:
        t.add_row(*r[:-1], _cut(r[-1], last))
    return t


def _span(span: Any) -> str:
    """``2026-04-22..05-01``: the year once, to save a column at 80."""
    first, last = [*list(span or []), None, None][:2]
    if not first:
        return "-"
    if not last or last == first:
        return str(first)
    return f"{first}..{str(last)[5:] if str(last)[:4] == str(first)[:4] else last}"


def report_command(out: Path | None) -> str:
    """The command that draws the whole evidence of a hunt written to ``out``."""
    where = str(out) if out is not None else "HUNT_DIR"
    return f"distillguard report {where} --out {where}/report.html"


def print_verdicts(v: Verdicts, console: Console, top: int = 5, out: Path | None = None) -> None:
    """Campaigns (one line each) and the ``top`` riskiest accounts, fitted to ``console.width``."""
    acc = v.accounts
    n_flag = int(pc.sum(acc["flagged"]).as_py() or 0)
    console.print(
        f"[bold]{len(v.campaigns)} campaign(s)[/bold], {n_flag:,} of {acc.num_rows:,} accounts flagged"
    )
    if v.campaigns:
        rows = [
            [
                c["id"],
                f"{c['size']:,}",
                f"{c['exchanges']:,}" if c.get("exchanges") is not None else "-",
                _span(c.get("span")),
                f"{c['risk']:.2f}",
                (c["evidence"] or ["-"])[0],
            ]
            for c in v.campaigns
        ]
        header = ["id", "accounts", "exchanges", "active (UTC)", "risk", "strongest evidence"]
        console.print(_table(console, "Campaigns", header, rows))
    top_rows = acc.sort_by([("risk", "descending")]).slice(0, top).to_pylist()
    common = _campaign_sentences(v)
    if top_rows:
        rows = [
            [r["account_id"], f"{r['risk']:.2f}", r["decision"], r["campaign"] or "-",
             _top_evidence(r["evidence"], common.get(r["campaign"], set()))]
            for r in top_rows
        ]
        header = ["account", "risk", "decision", "campaign", "top evidence"]
        console.print(_table(console, f"Top {len(rows)} accounts by risk", header, rows))
    if v.campaigns:
        console.print("Evidence is cut to fit; all of it, with charts:")
        console.print(f"  [bold]{report_command(out)}[/bold]", highlight=False)
    if v.unused_signals:
        console.print(
            "[yellow]signals not used:[/yellow] " + "; ".join(f"{k}: {m}" for k, m in v.unused_signals.items())
        )


def _top_evidence(evidence: list[str] | None, common: set[str]) -> str:
    """The first sentence about the account itself: its campaign's own sentences, which come
    first, are on the campaign's line already."""
    ev = list(evidence or [])
    own = [e for e in ev if e not in common and not e.startswith("member of campaign")]
    return (own or ev or ["-"])[0]


def _campaign_sentences(v: Verdicts) -> dict[str | None, set[str]]:
    return {c["id"]: set(c.get("evidence") or []) for c in v.campaigns}


def summary(v: Verdicts, out: Path | None = None, top: int = 10) -> dict[str, Any]:
    """What :func:`print_verdicts` shows, for machines (``distillguard hunt --json``)."""
    acc = v.accounts
    decisions = pc.value_counts(acc["decision"]).to_pylist()
    top_rows = acc.sort_by([("risk", "descending")]).slice(0, top).to_pylist()
    common = _campaign_sentences(v)
    return {
        "accounts": acc.num_rows,
        "flagged": int(pc.sum(acc["flagged"]).as_py() or 0),
        "decisions": {d["values"]: d["counts"] for d in decisions},
        "campaigns": [
            {
                "id": c["id"],
                "accounts": c.get("size"),
                "exchanges": c.get("exchanges"),
                "span": c.get("span"),
                "risk": c.get("risk"),
                "evidence": list(c.get("evidence") or [])[:3],
            }
            for c in v.campaigns
        ],
        "top_accounts": [
            {
                "account_id": r["account_id"],
                "risk": round(r["risk"], 4),
                "decision": r["decision"],
                "campaign": r["campaign"],
                "evidence": _top_evidence(r["evidence"], common.get(r["campaign"], set())),
            }
            for r in top_rows
        ],
        "unused_signals": dict(v.unused_signals),
        "input": v.meta.get("input"),
        "outputs": None
        if out is None
        else {n: str(out / n) for n in ("accounts.parquet", "features.parquet", "campaigns.json", "decisions.json")},
        "report": report_command(out) if v.campaigns else None,
    }
