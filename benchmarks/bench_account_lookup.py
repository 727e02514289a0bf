"""Preparing one batch as the index of accounts grows: what ``HuntState.prepare`` costs when the
index holds a log's 196,017 accounts, and ten times as many (1.8 million made-up ids added).

    PYTHONPATH=src python benchmarks/bench_account_lookup.py --log QWEN1 [--json F]

QWEN1 = ``distillguard simulate --scenario qwen-2026 --scale 1 --seed 7 --no-responses``; the
batch is day 20's first 185,000 rows (a full-scale slice under the default budget). Best of five.
A cost that grows with the index is paid by every batch of a hunt, so a hunt of ten times the
accounts pays it ten times as often, each time larger: superlinear. Run it with another
commit's ``src`` on ``PYTHONPATH`` to compare.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from bench_request_ids import commit, report
from bench_stage_rows import best
from distillguard.hunt.state import HuntState
from distillguard.io import LogReader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    reader = LogReader(args.log)
    ids = pl.from_arrow(reader.accounts().column("account_id"))
    assert isinstance(ids, pl.Series)
    batch = reader.day_exchanges(reader.days()[20], ordered=True)
    assert batch is not None
    batch = batch.slice(0, 185_000)
    out: dict[str, object] = {
        "commit": commit(),
        "batch_rows": batch.num_rows,
    }
    for extra in (0, 1_800_000):
        state = HuntState()
        state.ensure_accounts(pl.concat([ids, pl.Series("account_id", [f"other-{i}" for i in range(extra)])]))
        state.prepare(batch)
        out[f"prepare_ms_at_{state.index.height}_accounts"] = round(best(lambda state=state: state.prepare(batch), repeat=5) * 1e3, 1)
    report(out, args.json)


if __name__ == "__main__":
    main()
