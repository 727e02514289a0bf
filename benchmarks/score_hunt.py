"""Score a batch hunt's output against a log's labels, without a replay.

    python benchmarks/score_hunt.py LOG HUNT_OUT [--json OUT]

For logs too large to replay in reasonable time: per archetype, accounts and the share
flagged; per detector cluster, its size and the campaigns and archetypes in it; overall
recall and benign false-positive rate; and, per identity column, the benign accounts that hold
a value some campaign account holds too (a recycled phone number, a stolen card's owner) and
how many of them are flagged. Reads ``HUNT_OUT/accounts.parquet`` (what
``distillguard hunt`` writes), ``LOG/accounts/`` and ``LOG/labels/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import polars as pl

from distillguard.io import LogReader


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", type=Path)
    ap.add_argument("hunt_out", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    labels = LogReader(args.log).labels()
    if labels is None:
        raise SystemExit(f"{args.log}/labels/ holds no labels")
    lab = pl.from_arrow(labels)
    assert isinstance(lab, pl.DataFrame)
    verdicts = pl.read_parquet(args.hunt_out / "accounts.parquet")
    j = lab.join(verdicts.select("account_id", "flagged", "campaign"), on="account_id", how="left").with_columns(
        pl.col("flagged").fill_null(False), attack=pl.col("campaign_id").is_not_null()
    )
    per_arch = j.group_by("archetype").agg(accounts=pl.len(), flagged=pl.col("flagged").sum()).sort("archetype")
    clusters = (
        j.filter(pl.col("campaign").is_not_null())
        .group_by("campaign")
        .agg(size=pl.len(), benign=(~pl.col("attack")).sum(), campaigns=pl.col("campaign_id").drop_nulls().unique().sort())
        .sort("campaign")
    )
    attack, benign = j.filter("attack"), j.filter(~pl.col("attack"))
    accounts = pl.from_arrow(LogReader(args.log).accounts())
    assert isinstance(accounts, pl.DataFrame)
    sharing = {}
    for col in ("phone_hash", "payment_fp", "email_domain"):
        if col not in accounts.columns:
            continue
        held = accounts.select("account_id", col).drop_nulls().join(j.select("account_id", "attack", "flagged"), on="account_id")
        fleet = held.filter("attack").select(col).unique()
        strangers = held.filter(~pl.col("attack")).join(fleet, on=col, how="semi")
        sharing[col] = {"accounts": strangers.height, "flagged": int(strangers["flagged"].sum())}
    result: dict[str, object] = {
        "log": str(args.log),
        "recall": attack["flagged"].mean(),
        "fpr": benign["flagged"].mean(),
        "attack_accounts": attack.height,
        "benign_accounts": benign.height,
        "per_archetype": {r["archetype"]: {"accounts": r["accounts"], "flagged": r["flagged"]} for r in per_arch.to_dicts()},
        "benign_sharing_identity_with_a_campaign": sharing,
        "clusters": clusters.to_dicts(),
    }
    text = json.dumps(result, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
