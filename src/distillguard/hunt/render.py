"""Readable terminal output of verdicts: campaigns first, then the riskiest accounts.

Fits the console (80 columns when piped): ids and numbers are never cut (a reviewer copies
them); the evidence column gets what is left, one line per row, cut with "…" (the whole
lists are in ``accounts.parquet`` and ``campaigns.json``).
"""

from __future__ import annotations

import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table

from distillguard.verdicts import Verdicts


def _table(console: Console, title: str, header: list[str], rows: list[list[str]]) -> Table:
    """A table whose last column takes the width the others leave, its cells cut to fit."""
    fixed = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header[:-1])]
    left = console.width - sum(fixed) - 3 * len(header) - 1
    last = max(12, left)
    t = Table(title=title, title_justify="left")
    for h, w in zip(header[:-1], fixed, strict=True):
        t.add_column(h, no_wrap=True, min_width=w)
    t.add_column(header[-1], no_wrap=True, width=last, overflow="ellipsis")
    for r in rows:
        t.add_row(*r[:-1], r[-1] if len(r[-1]) <= last else r[-1][: last - 1] + "…")
    return t


def print_verdicts(v: Verdicts, console: Console, top: int = 5) -> None:
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
                str(c["span"][0] or "-"),
                f"{c['risk']:.2f}",
                (c["evidence"] or ["-"])[0],
            ]
            for c in v.campaigns
        ]
        header = ["id", "accounts", "exchanges", "first day", "risk", "strongest evidence"]
        console.print(_table(console, "Campaigns", header, rows))
    top_rows = acc.sort_by([("risk", "descending")]).slice(0, top).to_pylist()
    if top_rows:
        rows = [
            [r["account_id"], f"{r['risk']:.2f}", r["decision"], r["campaign"] or "-", (r["evidence"] or ["-"])[0]]
            for r in top_rows
        ]
        header = ["account", "risk", "decision", "campaign", "top evidence"]
        console.print(_table(console, f"Top {len(rows)} accounts by risk", header, rows))
    if v.unused_signals:
        console.print(
            "[yellow]signals not used:[/yellow] " + "; ".join(f"{k}: {m}" for k, m in v.unused_signals.items()),
            soft_wrap=True,
        )
