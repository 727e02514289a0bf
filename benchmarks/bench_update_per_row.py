"""Each signal's per-batch work (enrich, then aggregate), timed alone, per exchange.

A hunt's stage seconds (``stages`` in `bench_hunt.py`'s JSON) are wall times in threads that
share two cores with the folds, so a stage can read slower at full scale than at 0.1 for no
reason of its own. This times one signal at a time on the pieces the embedded engine reads
(days, or slices of the budget's chunk), nothing beside it: a per-exchange cost that grows
with the log is the signal's; one that does not is the threads'.

    python benchmarks/bench_update_per_row.py --log LOG --skip 20 --pieces 4 --json F
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import polars as pl

from distillguard.hunt.budget import MemoryBudget
from distillguard.hunt.state import HuntState
from distillguard.io.reader import LogReader
from distillguard.signals.prepare import COLUMNS


def per_row(log: Path, skip: int, pieces: int, memory: str = "auto", signals: list[str] | None = None) -> dict[str, Any]:
    """Microseconds per exchange of each signal's enrich and aggregate, over ``pieces``
    pieces after the first ``skip`` (a log's first days are quieter than the rest)."""
    budget = MemoryBudget.of(memory)
    state = HuntState(budget=budget)
    chosen = [s for s in state.signals if s.tables and (signals is None or s.name in signals)]
    seconds: dict[str, list[float]] = {s.name: [0.0, 0.0] for s in chosen}
    rows = used = 0
    reader = LogReader(log).exchange_pieces(COLUMNS, max_bytes=budget.chunk_bytes if budget else None)
    for i, (table, _) in enumerate(reader):
        if i < skip:
            continue
        if used == pieces:
            break
        df = state.prepare(table)
        rows, used = rows + df.height, used + 1
        for s in chosen:
            t0 = time.perf_counter()
            own = s.enrich(df)
            t1 = time.perf_counter()
            s.update(s.empty(), pl.concat([df, own], how="horizontal"))
            seconds[s.name][0] += t1 - t0
            seconds[s.name][1] += time.perf_counter() - t1
    us = {n: {"enrich": round(e / max(rows, 1) * 1e6, 4), "aggregate": round(a / max(rows, 1) * 1e6, 4)} for n, (e, a) in seconds.items()}
    return {"log": str(log), "memory": memory, "pieces": used, "exchanges": rows, "us_per_exchange": us}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--skip", type=int, default=0, help="pieces to pass over first")
    ap.add_argument("--pieces", type=int, default=4, help="pieces to time")
    ap.add_argument("--memory", default="auto", help="the budget whose chunk cuts the days (hunt --memory)")
    ap.add_argument("--signal", action="append", help="only these signals (repeatable); default all")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    emit(per_row(a.log, a.skip, a.pieces, a.memory, a.signal), a.json)


def emit(result: dict[str, Any], path: Path | None) -> None:
    """Print a result as JSON, and write it to ``path`` (folders made) where one is given."""
    text = json.dumps(result, indent=2)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
