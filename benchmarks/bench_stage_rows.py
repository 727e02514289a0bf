"""Each signal's enrich and aggregate alone, and the batch's prepare (its account ids looked up in
an index that holds every account of the log), on one batch of each log: cost per 100,000 rows.

    PYTHONPATH=src python benchmarks/bench_stage_rows.py LOG [LOG ...] [--day 20] [--json F]

The per-stage times ``bench_hunt.py`` reports are wall time inside a pool thread, so a stage
that waits on Polars' shared threads behind a large fold reads slower than it is. This
measures each stage alone (best of three, same process, nothing else running) on the batch
the hunt would work first on day ``--day``: the whole day, or its first slice where the
default ``--memory auto`` budget cuts the day. Equal costs per row at two scales mean the
stage itself grows linearly with the log.
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
from distillguard.io import LogReader


def best(fn: Any, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def measure(log: Path, day_index: int) -> dict[str, Any]:
    budget = MemoryBudget.of("auto")
    assert budget is not None
    state = HuntState()
    reader = LogReader(log)
    day = reader.days()[day_index]
    table = reader.day_exchanges(day, ordered=True)
    assert table is not None
    rows = len(table)
    if table.nbytes > budget.chunk_bytes:  # as HuntState.observe slices it
        table = table.slice(0, max(1, rows * budget.chunk_bytes // table.nbytes))
    # The index as it stands late in a hunt: every account of the log known (preparing a batch
    # looks its ids up in the index, so what that costs may grow with the accounts).
    ids = pl.from_arrow(reader.accounts().column("account_id"))
    assert isinstance(ids, pl.Series)
    state.ensure_accounts(ids)
    df = state.prepare(table)
    per_100k = 1e5 / df.height
    prepare_ms = round(best(lambda: state.prepare(table)) * 1e3 * per_100k, 2)
    stages: dict[str, dict[str, float]] = {}
    for s in state.signals:
        own = s.enrich(df)
        rows_in = pl.concat([df, own], how="horizontal")
        enrich = best(lambda s=s: s.enrich(df))
        aggregate = best(lambda s=s, rows_in=rows_in: s.update(s.empty(), rows_in))
        stages[s.name] = {"enrich_ms_per_100k": round(enrich * 1e3 * per_100k, 2), "aggregate_ms_per_100k": round(aggregate * 1e3 * per_100k, 2)}
    return {"log": str(log), "day": str(day), "day_rows": rows, "batch_rows": df.height, "accounts": state.index.height,
            "prepare_ms_per_100k": prepare_ms, "stages": stages}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("logs", type=Path, nargs="+")
    ap.add_argument("--day", type=int, default=20, help="which day of each log (index into its days)")
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args()
    out = [measure(log, args.day) for log in args.logs]
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
