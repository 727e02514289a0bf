"""Readable terminal output of verdicts: campaigns first, then the riskiest accounts."""

from __future__ import annotations

import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table

from distillguard.verdicts import Verdicts


def print_verdicts(v: Verdicts, console: Console, top: int = 5) -> None:
    acc = v.accounts
    n_flag = int(pc.sum(acc["flagged"]).as_py() or 0)
    console.print(
        f"[bold]{len(v.campaigns)} campaign(s)[/bold], {n_flag:,} of {acc.num_rows:,} accounts flagged"
    )
    if v.campaigns:
        t = Table(title="Campaigns")
        for col in ("id", "accounts", "exchanges", "span", "capabilities", "risk", "strongest evidence"):
            t.add_column(col)
        for c in v.campaigns:
            t.add_row(
                c["id"],
                f"{c['size']:,}",
                f"{c['exchanges']:,}" if c.get("exchanges") is not None else "-",
                " → ".join(str(x) for x in c["span"]),
                ", ".join(c["capabilities"]) or "-",
                f"{c['risk']:.2f}",
                (c["evidence"] or ["-"])[0],
            )
        console.print(t)
    rows = acc.sort_by([("risk", "descending")]).slice(0, top).to_pylist()
    if rows:
        t = Table(title=f"Top {len(rows)} accounts by risk")
        for col in ("account", "risk", "decision", "campaign", "evidence"):
            t.add_column(col)
        for r in rows:
            t.add_row(r["account_id"], f"{r['risk']:.2f}", r["decision"], r["campaign"] or "-", "\n".join((r["evidence"] or [])[:3]))
        console.print(t)
    if v.unused_signals:
        console.print("[yellow]signals not used:[/yellow] " + "; ".join(f"{k}: {m}" for k, m in v.unused_signals.items()))
