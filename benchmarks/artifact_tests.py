"""How each campaign's shared artifacts fare under the link tests, and how near ordinary groups come.

    python benchmarks/artifact_tests.py LOG [--until 2026-04-22T05:00:00Z] [--json OUT]

Hunts a labelled log (with ``--until``, only what had happened by then: exchanges before it,
accounts registered by it) and reports, from the hunt's own tests
(:func:`distillguard.hunt.link.test_artifacts`): the ranked accounts and the top tenth's
slots, per campaign its ranked members and its strongest linking artifact under each test (the
binomial of carriers in the top tenth, the carriers' mean rank), and the linking artifacts that
ordinary accounts dominate, strongest first, with the rank test's p beside its cut; then the
identity webs tested, strongest first, with their members' campaigns, and how many accounts of
each campaign the hunt flagged. Labels are read only to sort the report; the hunt never sees them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from distillguard.hunt.detector import HuntDetector
from distillguard.hunt.link import mean_rank_neglog_p
from distillguard.hunt.score import VOLUME, score
from distillguard.io import LogReader
from distillguard.signals.prepare import COLUMNS


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", type=Path)
    ap.add_argument("--until", type=dt.datetime.fromisoformat, default=None, help="hunt only what happened before this time (UTC)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--top", type=int, default=5)
    args = ap.parse_args(argv)
    until: dt.datetime | None = args.until
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=dt.UTC)
    reader = LogReader(args.log)
    det = HuntDetector()
    det.observe_accounts(reader.accounts())
    for batch, _ in reader.exchange_pieces(COLUMNS):
        if until is not None:
            t = pl.from_arrow(batch)
            assert isinstance(t, pl.DataFrame)
            t = t.filter(pl.col("ts") < until)
            if t.height == 0:
                continue
            batch = t.to_arrow()
        det.observe(batch)
    findings, orgs = det.findings(until)
    scored = score(findings, orgs, det.state.index, det.config, until)
    index = det.state.index
    labels = pl.read_parquet(args.log / "labels").join(index, on="account_id").select("account", "campaign_id")
    arts = pl.concat([f.artifacts.select("account", "kind", "value") for f in findings.values() if f.artifacts is not None and f.artifacts.height])
    link = det.config.link
    tested = scored.artifacts_tested.filter(pl.col("k") >= link.min_carriers)
    tested = tested.with_columns(
        rank_neglog_p=pl.Series(mean_rank_neglog_p(tested["u"].to_numpy(), tested["k"].to_numpy().astype(np.float64))),
        links=~pl.col("kind").is_in(list(link.supporting)),
    )
    owner = (
        arts.join(labels, on="account", how="left")
        .group_by("kind", "value")
        .agg(camp=pl.col("campaign_id").drop_nulls().mode().first(), in_camp=pl.col("campaign_id").is_not_null().mean())
    )
    tested = tested.join(owner, on=["kind", "value"], how="left")
    cols = ["kind", "k", "m", "u", "w", "neglog_p", "rank_neglog_p", "cut", "test"]
    active = pl.col(VOLUME).fill_null(0) >= det.config.score.min_exchanges
    ranked = scored.feats.filter(active).join(labels, on="account", how="left")
    n_ranked = ranked.height
    q_high = float(scored.artifacts_tested["q_high"][0]) if scored.artifacts_tested.height else float("inf")
    flagged = scored.feats.join(labels, on="account", how="left").filter("flagged")
    camps: dict[str, Any] = {}
    for c in sorted(labels["campaign_id"].drop_nulls().unique().to_list()):
        own = tested.filter((pl.col("camp") == c) & (pl.col("in_camp") >= 0.5) & pl.col("links"))
        camps[c] = {
            "ranked_members": ranked.filter(pl.col("campaign_id") == c).height,
            "in_top_tail": ranked.filter((pl.col("campaign_id") == c) & (pl.col("b") > q_high)).height,
            "flagged": flagged.filter(pl.col("campaign_id") == c).height,
            "strongest_by_tail": own.sort("neglog_p", descending=True).select(cols).head(1).to_dicts(),
            "strongest_by_rank": own.sort("rank_neglog_p", descending=True).select(cols).head(1).to_dicts(),
        }
    benign = tested.filter((pl.col("in_camp") < 0.5) & pl.col("links")).sort("rank_neglog_p", descending=True)
    webs = scored.webs_tested.sort("neglog_p", descending=True).head(args.top)
    out = {
        "log": str(args.log),
        "until": until.isoformat() if until else None,
        "ranked_accounts": n_ranked,
        "top_tail": ranked.filter(pl.col("b") > q_high).height,
        "rank_cut": float(tested["cut"][0]) + float(np.log10(2.0)) if tested.height else None,
        "campaigns": camps,
        "benign_flagged": flagged.filter(pl.col("campaign_id").is_null()).height,
        "strongest_ordinary_linking_artifacts": benign.select([*cols, "in_camp"]).head(args.top).to_dicts(),
        "webs": webs.select("size", "n", "u", "z", "neglog_p", "cut", "significant").to_dicts(),
    }
    text = json.dumps(out, indent=2, default=str)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
