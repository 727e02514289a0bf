"""Where a replay's leaked exchanges are: warm-up or harvest, never-flagged accounts, ring-mates.

    python benchmarks/leak_by_account.py LOG [--every HOURS] [--flags FILE] [--json OUT] [--accounts FILE]

Replays a labelled log through the hunt (``--flags``: keep the first flags in a Parquet file
and read them from there next time), then per campaign: its accounts' exchanges before their
first flag (leaked), how many of those came before the account's harvesting start (warm-up
chat), how many before the campaign's first flag (only an earlier campaign saves those; the
rest, a faster membership), how many belong to accounts never flagged, and how many accounts had a ring-mate (the
same card or phone in the accounts table) flagged before their own first flag: only those
can association (``hunt/link.py``, ``associates``) flag earlier. The hunt never reads labels.

Two bounds say how much a faster membership could save at most, before anyone builds one
(an oracle: each reads the labels, which is why they live here and not in the hunt):
``leaked_if_ring_mates_tied``, each account flagged as soon as a ring-mate was (any rank,
any reissue: the most identity association can do), and ``leaked_if_joined_after_K_active_hours``,
each account flagged once its campaign was and it had been active in K distinct hours (the
most any per-account association after the campaign's first flag can do when it needs K
hours of the account's own activity: a clock, a script, a pool).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import polars as pl

from distillguard.bench.replay import replay
from distillguard.hunt.detector import HuntDetector
from distillguard.io import LogReader

RINGS = ("payment_fp", "phone_hash")
ACTIVE_HOURS = (6, 10, 20)  # the bounds' K: a lived-time fit needs 20 (``LivedTimeSignal.min_cells``)
NEVER = dt.datetime.max.replace(tzinfo=dt.UTC)


def first_flags(log: Path, every: float, keep: Path | None) -> pl.DataFrame:
    if keep is not None and keep.exists():
        return pl.read_parquet(keep)
    out = pl.from_arrow(replay(HuntDetector(), LogReader(log), every=dt.timedelta(hours=every), progress=False).first_flags)
    assert isinstance(out, pl.DataFrame)
    if keep is not None:
        out.write_parquet(keep)
    return out


def leaks(log: Path, flags: pl.DataFrame, per_account: Path | None = None) -> dict[str, dict[str, int]]:
    reader = LogReader(log)
    labels, accounts = pl.from_arrow(reader.labels()), pl.from_arrow(reader.accounts())  # type: ignore[arg-type]
    assert isinstance(labels, pl.DataFrame) and isinstance(accounts, pl.DataFrame)
    camp = (
        labels.filter(pl.col("campaign_id").is_not_null())
        .join(accounts.select("account_id", *RINGS), on="account_id", how="left")
        .join(flags.select("account_id", "first_flagged_at"), on="account_id", how="left")
    )
    rows = pl.concat(
        [pl.from_arrow(b.select(["account_id", "ts"])) for b in reader.exchange_batches(["account_id", "ts"])]  # type: ignore[misc]
    ).join(camp.select("account_id", "first_flagged_at", "harvest_start"), on="account_id")
    # The campaign's first flag: what its accounts leaked before it, only an earlier
    # campaign could have saved; what they leaked after it, a faster membership could.
    known = camp.group_by("campaign_id").agg(campaign_flagged_at=pl.col("first_flagged_at").min())
    rows = rows.join(camp.select("account_id", "campaign_id"), on="account_id").join(known, on="campaign_id")
    leaked = pl.col("first_flagged_at").is_null() | (pl.col("ts") < pl.col("first_flagged_at"))
    # The end of each account's K-th distinct active hour.
    hours = rows.select("account_id", hour=pl.col("ts").dt.truncate("1h")).unique().sort("account_id", "hour")
    hours = hours.with_columns(i=pl.int_range(1, pl.len() + 1).over("account_id"))
    for k in ACTIVE_HOURS:
        kth = hours.filter(pl.col("i") == k).select("account_id", (pl.col("hour") + pl.duration(hours=1)).alias(f"active_{k}"))
        rows = rows.join(kth, on="account_id", how="left")
    per = rows.group_by("account_id").agg(
        first_ts=pl.col("ts").min(),
        exchanges=pl.len(),
        leaked=leaked.sum(),
        warm=(leaked & (pl.col("ts") < pl.col("harvest_start"))).sum(),
        before_campaign=(leaked & (pl.col("campaign_flagged_at").is_null() | (pl.col("ts") < pl.col("campaign_flagged_at")))).sum(),
    )
    camp = camp.join(per, on="account_id", how="left")
    mate_first: list[pl.Expr] = []
    for kind in RINGS:  # the earliest first flag among the account's ring-mates
        held = camp.filter(pl.col(kind).is_not_null()).select("account_id", kind, "first_flagged_at")
        mates = held.join(held, on=kind, suffix="_m").filter(pl.col("account_id") != pl.col("account_id_m"))
        camp = camp.join(mates.group_by("account_id").agg(pl.col("first_flagged_at_m").min().alias(f"mate_{kind}")), on="account_id", how="left")
        mate_first.append(pl.col(f"mate_{kind}"))
    camp = camp.with_columns(mate=pl.min_horizontal(mate_first))
    own = pl.col("first_flagged_at").fill_null(NEVER)
    bound = rows.join(camp.select("account_id", "mate"), on="account_id").select(
        "account_id",
        mates=pl.col("ts") < pl.min_horizontal(own, pl.col("mate").fill_null(NEVER)),
        **{
            f"after_{k}": pl.col("ts")
            < pl.min_horizontal(own, pl.max_horizontal(pl.col("campaign_flagged_at").fill_null(NEVER), pl.col(f"active_{k}").fill_null(NEVER)))
            for k in ACTIVE_HOURS
        },
    )
    camp = camp.join(bound.group_by("account_id").agg(pl.all().sum()), on="account_id", how="left")
    if per_account is not None:
        camp.drop(*RINGS).write_parquet(per_account)
    out: dict[str, dict[str, int]] = {}
    for (cid,), g in camp.sort("campaign_id").group_by(["campaign_id"], maintain_order=True):
        never = g.filter(pl.col("first_flagged_at").is_null())
        helped = pl.col("mate") < own
        out[str(cid)] = {
            "accounts": g.height,
            "exchanges": int(g["exchanges"].sum()),
            "leaked": int(g["leaked"].sum()),
            "leaked_warm_up": int(g["warm"].sum()),
            "leaked_before_campaign_flagged": int(g["before_campaign"].sum()),
            "never_flagged": never.height,
            "leaked_never_flagged": int(never["leaked"].sum()),
            "ring_mate_flagged_first": int(g.select(helped.fill_null(False).sum()).item()),
            "leaked_without_ring_mate_flagged_first": int(g.filter(~helped.fill_null(False))["leaked"].sum()),
            "leaked_if_ring_mates_tied": int(g["mates"].sum()),
            **{f"leaked_if_joined_after_{k}_active_hours": int(g[f"after_{k}"].sum()) for k in ACTIVE_HOURS},
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, dict[str, int]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", type=Path)
    ap.add_argument("--every", type=float, default=1.0, help="simulated hours between two re-scores (bench --replay-every)")
    ap.add_argument("--flags", type=Path, help="Parquet file of first flags: written after a replay, read instead of one")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--accounts", type=Path, help="Parquet file of every campaign account's first flag, exchanges and leak")
    args = ap.parse_args(argv)
    result = leaks(args.log, first_flags(args.log, args.every, args.flags), args.accounts)
    text = json.dumps({"log": str(args.log), "every_hours": args.every, "campaigns": result}, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
