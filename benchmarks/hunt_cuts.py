"""When a batch hunt first flags each campaign: the log hunted on its first N hours, for several N.

    python benchmarks/hunt_cuts.py LOG HOURS [HOURS ...] [--json OUT]

Each cut is a fresh batch hunt of the exchanges before ``log start (midnight UTC) + HOURS``,
with the accounts registered by then, as ``distillguard hunt`` would see a log that ended
there. Per cut and campaign (labels read only to count, never by the hunt): accounts,
flagged accounts and the hunt's campaigns they are in; benign accounts flagged. The hourly
replay (``distillguard bench --replay-every 1``) says when each account is first flagged;
this says when a campaign stays flagged, which the replay's first flag does not (a
transient campaign counts there). ``counts``: the cut's association and pair count tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from distillguard.hunt.detector import HuntDetector
from distillguard.hunt.score import score
from distillguard.io import LogReader


def cut_counts(log: Path, hours: float) -> dict[str, object]:
    reader = LogReader(log)
    labels = reader.labels()
    if labels is None:
        raise SystemExit(f"{log}: no labels/ to count campaigns against")
    det = HuntDetector()
    det.observe_accounts(reader.accounts())
    start = None
    # Days come in order (a day perhaps in several pieces), so the log's first day is in its
    # first batch and no day after the cut's is read: a full-scale log cut early fits in memory.
    for b in reader.exchange_batches(columns=det.columns):
        if not b.num_rows:
            continue
        start = start or pc.min(b["ts"]).as_py().replace(hour=0, minute=0, second=0, microsecond=0)
        cut = start + dt.timedelta(hours=hours)
        if pc.min(b["ts"]).as_py() >= start + dt.timedelta(days=math.ceil(hours / 24)):
            break
        kept = b.filter(pc.less(b["ts"], pa.scalar(cut, b["ts"].type)))
        if kept.num_rows:
            det.observe(kept)
    if start is None:
        raise SystemExit(f"{log}: no exchanges")
    findings, orgs = det.findings(cut)
    scored = score(findings, orgs, det.state.index, det.config, cut)
    table = pl.from_arrow(labels)
    assert isinstance(table, pl.DataFrame)
    lab = table.select("account_id", group=pl.col("campaign_id").fill_null("benign"))
    per = (
        scored.feats.join(lab, on="account_id", how="left")
        .group_by("group")
        .agg(
            accounts=pl.len(),
            flagged=pl.col("flagged").sum(),
            campaigns=pl.col("campaign").drop_nulls().unique().sort(),
        )
        .sort("group")
    )
    # The association's and the pairs' count tests (``campaigns.json`` meta): what made the cut's small campaigns.
    counts = {k: scored.meta.get(k) for k in ("rotating_rings", "roaming_rings", "rotating_senders", "signup_cohorts", "outlier_pairs")}
    return {"hours": hours, "cut": cut.isoformat(), "groups": {r.pop("group"): r for r in per.to_dicts()}, "counts": counts}


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", type=Path)
    ap.add_argument("hours", type=float, nargs="+")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    out: dict[str, object] = {"log": str(args.log), "cuts": [cut_counts(args.log, h) for h in args.hours]}
    text = json.dumps(out, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
