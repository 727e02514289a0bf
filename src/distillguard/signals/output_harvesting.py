"""Output harvesting: long outputs, replies cut at ``max_tokens``, a pinned ``max_tokens``.

A distiller pays for outputs, so it asks for as many tokens as it can get: the same high
``max_tokens`` on every request, many replies that stop at the cap, and output far
longer than its input. Each alone fits some honest uses; the link step asks whether
accounts that share artifacts also share this profile.
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from distillguard.signals.base import Finding, Signal, State, TableSpec, grouped, shrunk, tail_score


class OutputHarvestingSignal(Signal):
    name: ClassVar[str] = "output_harvesting"
    features: ClassVar[tuple[str, ...]] = (
        "n", "out", "inp", "hit", "n_mt", "mt_top", "mt_top_n", "mean_out", "hit_share", "out_in", "pinned",
        "ts_mean_out", "ts_hit_share", "ts_out_in", "ts_pinned", "pop_mean_out", "pop_hit_share",
    )
    local: ClassVar[bool] = True
    population: ClassVar[tuple[str, ...]] = ('ts_mean_out', 'ts_hit_share', 'ts_out_in', 'ts_pinned', 'pop_mean_out', 'pop_hit_share')
    tables: ClassVar[dict[str, TableSpec]] = {
        "acct": TableSpec(
            ("account",),
            {"n": "sum", "out": "sum", "inp": "sum", "hit": "sum", "n_mt": "sum"},
            {"account": pl.UInt32},
        ),
        "mt": TableSpec(("account", "value"), {"n": "sum"}, {"account": pl.UInt32, "value": pl.Int64}),
    }

    def update(self, state: State, rows: pl.DataFrame) -> State:
        t = self.tables
        hit = (pl.col("stop_reason") == "max_tokens").fill_null(False) | (
            pl.col("output_tokens") >= pl.col("max_tokens")
        ).fill_null(False)
        acct = grouped(
            rows,
            t["acct"],
            {
                "n": pl.len(),
                "out": pl.col("output_tokens").sum(),
                "inp": pl.col("input_tokens").sum(),
                "hit": hit.sum(),
                "n_mt": pl.col("max_tokens").is_not_null().sum(),
            },
        )
        mt = grouped(
            rows.select("account", value=pl.col("max_tokens").cast(pl.Int64)).drop_nulls("value"),
            t["mt"],
            {"n": pl.len()},
        )
        return {"acct": t["acct"].compact([state["acct"], acct]), "mt": t["mt"].compact([state["mt"], mt])}

    def finalize(self, state: State, n_accounts: int) -> Finding:
        mt = state["mt"].group_by("account").agg(
            mt_top=pl.col("value").sort_by(["n", "value"], descending=[True, False]).first(), mt_top_n=pl.col("n").max()
        )
        enough = pl.col("n") >= 20
        f = (
            state["acct"]
            .join(mt, on="account", how="left")
            .with_columns(
                mean_out=pl.col("out") / pl.col("n"),
                hit_share=pl.col("hit") / pl.col("n"),
                out_in=pl.col("out") / pl.col("inp").clip(1, None),
                pinned=pl.when(enough & (pl.col("n_mt") > 0))
                .then(pl.col("mt_top").cast(pl.Float64) * pl.col("mt_top_n") / pl.col("n"))
                .otherwise(0.0),
            )
        )
        return Finding(self.with_population(f), explain=_explain)

    def with_population(self, features: pl.DataFrame) -> pl.DataFrame:
        n = pl.col("n")
        return features.with_columns(
            ts_mean_out=tail_score(shrunk(pl.col("mean_out"), n, 20)),
            ts_hit_share=tail_score(shrunk(pl.col("hit_share"), n, 20)),
            ts_out_in=tail_score(shrunk(pl.col("out_in"), n, 20)),
            ts_pinned=tail_score(pl.col("pinned")),
            pop_mean_out=pl.col("mean_out").median(),
            pop_hit_share=pl.col("hit_share").median(),
        )


def _explain(r: dict[str, Any]) -> list[str]:
    out = []
    if (r.get("ts_hit_share") or 0) >= 1.0:
        out.append(
            f"{int(r['hit']):,} of {int(r['n']):,} replies ({r['hit_share']:.0%}) stopped at max_tokens, "
            f"against {r['pop_hit_share']:.0%} for the median account"
        )
    if (r.get("ts_mean_out") or 0) >= 1.0:
        out.append(
            f"mean output {r['mean_out']:,.0f} tokens per reply, {r['out_in']:.1f}\u00d7 its input, "
            f"against a population median of {r['pop_mean_out']:,.0f}"
        )
    if (r.get("ts_pinned") or 0) >= 1.0 and r.get("mt_top") is not None:
        out.append(f"max_tokens pinned at {int(r['mt_top']):,} on {int(r['mt_top_n']):,} of {int(r['n']):,} requests")
    return out
