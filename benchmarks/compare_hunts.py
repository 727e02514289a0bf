"""Compare two hunt outputs (``accounts.parquet``): same flagged set, same campaign membership,
risk within a tolerance. For checking that a change kept the hunt's answers, and that two
ways of running it (batch, replay, engines, split-and-merged) agree.

    python benchmarks/compare_hunts.py OUT_A OUT_B [--tol 1e-9] [--json result.json]

Campaign ids are names (``C001`` is the largest), so membership is compared as a partition:
two outputs agree when every pair of flagged accounts shares a campaign in one exactly when
it does in the other. Exits 1 when the flagged sets or partitions differ.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import polars as pl


def compare(a: pl.DataFrame, b: pl.DataFrame, tol: float = 1e-9) -> dict[str, Any]:
    """The differences between two ``accounts.parquet`` tables, as a JSON-able dict."""
    fa = set(a.filter("flagged")["account_id"].to_list())
    fb = set(b.filter("flagged")["account_id"].to_list())
    j = a.select("account_id", "risk", "campaign", "decision").join(
        b.select("account_id", "risk", "campaign", "decision"), on="account_id", how="full", suffix="_b", coalesce=True
    )
    both = j.filter(pl.col("risk").is_not_null() & pl.col("risk_b").is_not_null())
    diff = both.with_columns(d=(pl.col("risk") - pl.col("risk_b")).abs())
    # A partition is the same when campaign names map one-to-one over the accounts both flag.
    common = both.filter(pl.col("campaign").is_not_null() & pl.col("campaign_b").is_not_null())
    pairs = common.select("campaign", "campaign_b").unique()
    same_partition = (
        pairs["campaign"].n_unique() == pairs.height == pairs["campaign_b"].n_unique() and fa == fb
    )
    return {
        "accounts_a": a.height,
        "accounts_b": b.height,
        "accounts_only_a": a.height - both.height,
        "accounts_only_b": b.height - both.height,
        "flagged_a": len(fa),
        "flagged_b": len(fb),
        "flagged_only_a": sorted(fa - fb),
        "flagged_only_b": sorted(fb - fa),
        "same_flagged": fa == fb,
        "campaigns_a": a["campaign"].drop_nulls().n_unique(),
        "campaigns_b": b["campaign"].drop_nulls().n_unique(),
        "same_campaign_membership": bool(same_partition),
        "decisions_differ": int(both.filter(pl.col("decision") != pl.col("decision_b")).height),
        "max_risk_diff": float(diff["d"].max() or 0.0),
        "risk_diff_over_tol": int(diff.filter(pl.col("d") > tol).height),
        "tol": tol,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="a hunt output folder (or accounts.parquet)")
    ap.add_argument("b", type=Path)
    ap.add_argument("--tol", type=float, default=1e-9)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    def load(p: Path) -> pl.DataFrame:
        return pl.read_parquet(p / "accounts.parquet" if p.is_dir() else p)

    out = compare(load(args.a), load(args.b), args.tol)
    out["a"], out["b"] = str(args.a), str(args.b)
    text = json.dumps(out, indent=2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    return 0 if out["same_flagged"] and out["same_campaign_membership"] else 1


if __name__ == "__main__":
    sys.exit(main())
