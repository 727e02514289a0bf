"""What ties a labelled campaign's missed accounts to the campaign the hunt found for it.

    python benchmarks/missed_ties.py LOG --campaign qwen-stealth [--json OUT]

Hunts the log (embedded engine, defaults), takes the label campaign's accounts left
unflagged and the hunt campaign holding most of its flagged accounts, and counts, per
artifact kind, the missed accounts' artifacts that campaign members also hold: how many
holders each has, how many are members, other accounts of the label campaign (missed) and
benign accounts. Association (``hunt/link.py``, ``associates``) joins an account through
an identity artifact only where at least half its holders are members; this shows how
far the missed ones stand from that. The hunt never reads labels; this script does, after.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import polars as pl

from distillguard.hunt.budget import MemoryBudget
from distillguard.hunt.detector import HuntDetector
from distillguard.hunt.engines import get_engine
from distillguard.hunt.score import score
from distillguard.io import LogReader


def missed_ties(log: Path, campaign: str) -> dict[str, Any]:
    reader = LogReader(log)
    det = HuntDetector(budget=MemoryBudget.of("auto"))
    det.observe_accounts(reader.accounts())
    get_engine("polars").aggregate([reader], det.state, lambda n: None)
    findings, orgs = det.findings()
    scored = score(findings, orgs, det.state.index, det.config, None)
    labels = pl.from_arrow(reader.labels())
    assert isinstance(labels, pl.DataFrame)
    feats = scored.feats.select("account", "account_id", "campaign", "flagged", "ecdf").join(
        labels.select("account_id", "campaign_id"), on="account_id", how="left"
    )
    ours = feats.filter(pl.col("campaign_id") == campaign)
    found = ours.filter("flagged").group_by("campaign").len().sort("len", descending=True)
    if found.height == 0:
        return {"log": str(log), "campaign": campaign, "accounts": ours.height, "flagged": 0}
    hunt_campaign = found["campaign"][0]
    missed = ours.filter(~pl.col("flagged"))
    arts = pl.concat(
        [f.artifacts.select("account", "kind", "value") for f in findings.values() if f.artifacts is not None and f.artifacts.height]
    )
    held = arts.join(missed.select("account"), on="account")
    holders = arts.join(held.select("kind", "value").unique(), on=["kind", "value"]).join(
        feats.select("account", "campaign", "campaign_id"), on="account"
    )
    per = (
        holders.group_by("kind", "value")
        .agg(
            k=pl.len(),
            members=(pl.col("campaign") == hunt_campaign).sum(),
            missed=((pl.col("campaign_id") == campaign) & pl.col("campaign").is_null()).sum(),
            benign=pl.col("campaign_id").is_null().sum(),
        )
        .filter(pl.col("members") > 0)
    )
    kinds = (
        per.group_by("kind")
        .agg(
            artifacts=pl.len(),
            holders_median=pl.col("k").median(),
            half_members=(2 * pl.col("members") >= pl.col("k")).sum(),
            no_benign=(pl.col("benign") == 0).sum(),
        )
        .sort("kind")
    )
    touching = held.join(per.select("kind", "value"), on=["kind", "value"])["account"].n_unique()
    return {
        "log": str(log),
        "campaign": campaign,
        "accounts": ours.height,
        "flagged": ours.height - missed.height,
        "hunt_campaign": hunt_campaign,
        "missed": missed.height,
        "missed_rank_median": missed["ecdf"].median(),
        "flagged_rank_median": ours.filter("flagged")["ecdf"].median(),
        "missed_touching_members": touching,
        "kinds": kinds.to_dicts(),
        "small_artifacts": per.filter(pl.col("k") <= 12).sort("kind", "k", "members").select("kind", "k", "members", "missed", "benign").to_dicts(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", type=Path)
    ap.add_argument("--campaign", required=True, help="a campaign_id of the log's labels")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    text = json.dumps(missed_ties(args.log, args.campaign), indent=2, default=str)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
