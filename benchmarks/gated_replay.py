"""The offline hourly replay as the gateway lives it: an account's rows stop once it is acted on.

The offline bench only watches, so a flagged account's later traffic keeps adding to its
evidence; the gateway refuses it, so nothing more arrives. This replays a log through the batch
detector hourly (incremental re-scores, as the live scorer does), drops the rows of accounts
already given ``verify`` or ``block``, and prints, for one campaign, how many of its accounts
are flagged at each re-score in a window. Labels are read only to name the campaign's accounts.

    PYTHONPATH=src python benchmarks/gated_replay.py /tmp/gwr/q001-first5d qwen-naive \\
        --from 2026-04-24T22:00Z --to 2026-04-25T03:00Z [--watch-only]
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import polars as pl

from distillguard.hunt.detector import HuntDetector
from distillguard.io import LogReader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", type=Path)
    ap.add_argument("campaign")
    ap.add_argument("--from", dest="start", type=dt.datetime.fromisoformat, required=True)
    ap.add_argument("--to", dest="end", type=dt.datetime.fromisoformat, required=True)
    ap.add_argument("--watch-only", action="store_true", help="keep acted-on accounts' rows (the offline bench)")
    args = ap.parse_args()
    reader = LogReader(args.log)
    ex = pl.concat([pl.DataFrame(pl.from_arrow(b)) for b in reader.exchange_batches(None)]).sort("ts")
    labels = pl.read_parquet(args.log / "labels")
    members = labels.filter(pl.col("campaign_id") == args.campaign)["account_id"].implode()
    first = ex["ts"].min()
    assert isinstance(first, dt.datetime)
    now = first.replace(minute=0, second=0, microsecond=0)
    det = HuntDetector()
    det.observe_accounts(reader.accounts())
    prev, refused = now, pl.Series("account_id", [], pl.String)
    while now <= args.end:
        window = ex.filter((pl.col("ts") > prev) & (pl.col("ts") <= now))
        det.observe(window.filter(~pl.col("account_id").is_in(refused.implode())).to_arrow())
        prev = now
        flags = pl.DataFrame(pl.from_arrow(det.flags(now=now, incremental=True)))
        if not args.watch_only:
            acted = flags.filter(pl.col("decision").is_in(["verify", "block"]))["account_id"]
            refused = pl.concat([refused, acted]).unique()
        if now >= args.start:
            mine = flags.filter(pl.col("account_id").is_in(members) & pl.col("flagged"))
            print(f"{now:%Y-%m-%d %H:%M}  {args.campaign} flagged {mine.height}  accounts refused {refused.len()}", flush=True)
        now += dt.timedelta(hours=1)


if __name__ == "__main__":
    main()
