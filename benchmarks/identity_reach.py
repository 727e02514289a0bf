"""How many of each campaign's accounts any identity link could reach, beside what a hunt flagged.

    python benchmarks/identity_reach.py LOG [HUNT_OUT] [--json OUT]

A stealth fleet hides every account under the per-account thresholds and is found through
what its accounts share: a card, a phone, a front domain, a device. An account that shares
none of these with anyone (webmail, its own phone and card and device) can be caught only
by behaviour, and a piece of fewer than ``min_campaign`` accounts cut off from the rest is
too small to test. Per campaign: accounts ``alone`` (no identity value held by another
account, a value held by more than ``identity_max_share`` of the population counting as
none: webmail links nothing), accounts in pieces under ``min_campaign`` (``small_piece``),
the rest (``reachable``), and with ``HUNT_OUT`` how many of each were flagged. Why: a
recall that differs between two logs of one scenario is the hunt's only where the
reachable accounts differ in how many were flagged. Reads labels: a measurement, never
a detector.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import polars as pl
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from distillguard.hunt.config import HuntConfig
from distillguard.io import LogReader

REGISTRATION = ("payment_fp", "phone_hash", "email_domain")


def identity_values(log: Path) -> pl.DataFrame:
    """``account_id, kind, value``: registration identities and every device an account used."""
    reader = LogReader(log)
    accounts = pl.from_arrow(reader.accounts())
    assert isinstance(accounts, pl.DataFrame)
    reg = accounts.unpivot(on=list(REGISTRATION), index="account_id", variable_name="kind").drop_nulls("value")
    devices = (
        pl.scan_parquet(str(log / "exchanges" / "**" / "*.parquet"))
        .select("account_id", value="device_fp")
        .drop_nulls("value")
        .unique()
        .with_columns(kind=pl.lit("device"))
        .select("account_id", "kind", "value")
        .collect()
    )
    return pl.concat([reg, devices])


def reach(values: pl.DataFrame, n_accounts: int, max_share: float) -> pl.DataFrame:
    """``account_id, piece, piece_size`` of every account holding a linking value."""
    linking = values.filter(pl.len().over("kind", "value").is_between(2, max(2, int(max_share * n_accounts))))
    if linking.height == 0:
        return pl.DataFrame(schema={"account_id": pl.String, "piece": pl.Int64, "piece_size": pl.UInt32})
    accts = linking.select("account_id").unique().with_row_index("i")
    vals = linking.select("kind", "value").unique().with_row_index("j")
    e = linking.join(accts, on="account_id").join(vals, on=["kind", "value"])
    size = accts.height + vals.height
    adj = sparse.coo_matrix(
        (np.ones(e.height, np.int8), (e["i"].to_numpy().astype(np.int64), e["j"].to_numpy().astype(np.int64) + accts.height)),
        shape=(size, size),
    )
    _, labels = connected_components(adj, directed=False)
    out = accts.with_columns(piece=pl.Series(labels[: accts.height]).cast(pl.Int64)).drop("i")
    return out.with_columns(piece_size=pl.len().over("piece").cast(pl.UInt32))


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", type=Path)
    ap.add_argument("hunt_out", type=Path, nargs="?")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    reader = LogReader(args.log)
    labels = reader.labels()
    if labels is None:
        raise SystemExit(f"{args.log}/labels/ holds no labels")
    lab = pl.from_arrow(labels)
    assert isinstance(lab, pl.DataFrame)
    cfg = HuntConfig()
    values = identity_values(args.log)
    pieces = reach(values, lab.height, cfg.link.identity_max_share)
    j = lab.filter(pl.col("campaign_id").is_not_null()).join(pieces, on="account_id", how="left")
    j = j.with_columns(
        where=pl.when(pl.col("piece").is_null())
        .then(pl.lit("alone"))
        .when(pl.col("piece_size") < cfg.min_campaign)
        .then(pl.lit("small_piece"))
        .otherwise(pl.lit("reachable"))
    )
    if args.hunt_out is not None:
        flags = pl.read_parquet(args.hunt_out / "accounts.parquet").select("account_id", "flagged")
        j = j.join(flags, on="account_id", how="left").with_columns(pl.col("flagged").fill_null(False))
    else:
        j = j.with_columns(flagged=pl.lit(None, pl.Boolean))
    per: dict[str, dict[str, object]] = {}
    for camp in sorted(j["campaign_id"].unique().to_list()):
        c = j.filter(pl.col("campaign_id") == camp)
        row: dict[str, object] = {"accounts": c.height}
        for where in ("alone", "small_piece", "reachable"):
            w = c.filter(pl.col("where") == where)
            row[where] = w.height
            if args.hunt_out is not None:
                row[f"{where}_flagged"] = int(w["flagged"].sum())
        per[camp] = row
    result: dict[str, object] = {
        "log": str(args.log),
        "hunt_out": str(args.hunt_out) if args.hunt_out else None,
        "identity_max_share": cfg.link.identity_max_share,
        "min_campaign": cfg.min_campaign,
        "campaigns": per,
    }
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    main()
