"""Hand-made artifact tables for the link and cluster tests."""

from __future__ import annotations

import polars as pl


def arts(rows: list[tuple[int, str, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"account": a, "kind": k, "value": v, "share": 1.0} for a, k, v in rows],
        schema={"account": pl.UInt32, "kind": pl.String, "value": pl.UInt64, "share": pl.Float64},
    )
