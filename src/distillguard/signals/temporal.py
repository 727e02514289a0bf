"""Temporal signal: peak daily volume, round-the-clock activity, inter-arrival regularity.

Scripted harvesting shows in time: far more requests per day than people send, spread
evenly over all 24 hours, with gaps that vary little. Humans cluster requests into
sessions in their waking hours, so the spread of their log inter-arrival gaps is wide.

References: the disclosed campaigns were exposed partly by "peak daily volume far
above normal users"; log-gap dispersion as a bot-vs-human cue follows the web bot
literature (e.g. Tan & Kumar, *Discovery of Web Robot Sessions*, 2002).
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from distillguard.signals.base import Finding, Signal, State, TableSpec, grouped, shrunk, tail_score

MIN_GAPS = 20  # fewer gaps than this say nothing about regularity


def _log_gap(gap: pl.Expr) -> pl.Expr:
    return gap.cast(pl.Float64).clip(1.0, None).log10()


def fold_gaps(rows: pl.DataFrame) -> pl.DataFrame:
    """Combine per-segment gap sums of each account into one row, adding the gap that
    bridges two consecutive segments (the next one's first request minus the last request
    before it).

    So the gap statistics of a log cut into hourly chunks, days or partitions by time equal
    those of the whole log: without the bridge, an hourly replay loses every gap between
    sessions and a human's spread of gaps looks as narrow as a script's. Exact when one
    account's segments do not overlap in time (chunks, days, splits by time or by account);
    segments that overlap (two replicas serving one account at once) add no bridge.
    """
    s = rows.sort("account", "first_s", "last_s")
    prev_last = pl.col("last_s").cum_max().shift(1).over("account")
    bridge = pl.col("first_s") - prev_last
    s = s.with_columns(bridge=pl.when(bridge >= 0).then(bridge))
    return s.group_by("account", maintain_order=True).agg(
        n_gaps=(pl.col("n_gaps").sum() + pl.col("bridge").count()).cast(pl.Int64),
        s1=pl.col("s1").sum() + _log_gap(pl.col("bridge")).sum(),
        s2=pl.col("s2").sum() + (_log_gap(pl.col("bridge")) ** 2).sum(),
        first_s=pl.col("first_s").min(),
        last_s=pl.col("last_s").max(),
    )


def by_account_time(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` sorted by account, then ``epoch_s``: by one u64 key (account in the high 32
    bits) where every time fits the low ones, 5x faster than sorting by two columns."""
    t = rows["epoch_s"]
    if rows.height == 0 or not 0 <= (t.min() or 0) <= (t.max() or 0) < 1 << 32:  # type: ignore[operator]
        return rows.sort("account", "epoch_s")
    return rows.sort(pl.col("account").cast(pl.UInt64) * (1 << 32) + pl.col("epoch_s").cast(pl.UInt64))


class TemporalSignal(Signal):
    name: ClassVar[str] = "temporal"
    features: ClassVar[tuple[str, ...]] = (
        "n", "active_days", "peak_daily", "peak_day", "first_day", "last_day", "entropy", "hours", "n_gaps",
        "lg_std", "lg_mean", "mean_daily", "round_clock", "regularity", "ts_peak_daily", "ts_mean_daily",
        "ts_round_clock", "ts_regularity", "pop_peak_p50", "pop_peak_p99",
    )
    local: ClassVar[bool] = True
    population: ClassVar[tuple[str, ...]] = (
        "ts_peak_daily", "ts_mean_daily", "ts_round_clock", "ts_regularity", "pop_peak_p50", "pop_peak_p99",
    )  # fmt: skip
    tables: ClassVar[dict[str, TableSpec]] = {
        "day": TableSpec(("account", "day"), {"n": "sum"}, {"account": pl.UInt32, "day": pl.Int32}),
        "hour": TableSpec(("account", "hour"), {"n": "sum"}, {"account": pl.UInt32, "hour": pl.Int8}),
        "gap": TableSpec(
            ("account",),
            {"n_gaps": "sum", "s1": "sum", "s2": "sum", "first_s": "min", "last_s": "max"},
            {"account": pl.UInt32, "s1": pl.Float64, "s2": pl.Float64},
            fold=fold_gaps,
        ),
    }

    def update(self, state: State, rows: pl.DataFrame) -> State:
        t = self.tables
        day = grouped(rows, t["day"], {"n": pl.len()})
        hour = grouped(rows, t["hour"], {"n": pl.len()})
        # Sorted by account: a diff where the account repeats (a window would group again);
        # one group-by gives the gaps' sums and the segment's first and last request.
        lg = _log_gap(pl.when(pl.col("account") == pl.col("account").shift()).then(pl.col("epoch_s").diff()))
        gap = grouped(
            by_account_time(rows.select("account", "epoch_s")).with_columns(lg=lg),
            t["gap"],
            {
                "n_gaps": pl.col("lg").count(),
                "s1": pl.col("lg").sum(),
                "s2": (pl.col("lg") ** 2).sum(),
                "first_s": pl.col("epoch_s").min(),
                "last_s": pl.col("epoch_s").max(),
            },
        )
        return {
            "day": t["day"].compact([state["day"], day]),
            "hour": t["hour"].compact([state["hour"], hour]),
            "gap": t["gap"].compact([state["gap"], gap]),
        }

    def finalize(self, state: State, n_accounts: int) -> Finding:
        day = state["day"]
        per_acct = day.group_by("account").agg(
            n=pl.col("n").sum(),
            active_days=pl.len(),
            peak_daily=pl.col("n").max(),
            peak_day=pl.col("day").sort_by(["n", "day"], descending=[True, False]).first(),
            first_day=pl.col("day").min(),
            last_day=pl.col("day").max(),
        )
        hours = (
            state["hour"]
            .with_columns(p=pl.col("n") / pl.col("n").sum().over("account"))
            .group_by("account")
            .agg(entropy=-(pl.col("p") * pl.col("p").log(2)).sum() / 4.584962500721156, hours=pl.len())
        )
        gap = state["gap"].with_columns(
            lg_mean=pl.col("s1") / pl.col("n_gaps"),
            lg_std=((pl.col("s2") / pl.col("n_gaps")) - (pl.col("s1") / pl.col("n_gaps")) ** 2).clip(0.0, None).sqrt(),
        )
        f = (
            per_acct.join(hours, on="account", how="left")
            .join(gap.select("account", "n_gaps", "lg_std", "lg_mean"), on="account", how="left")
            .with_columns(
                mean_daily=pl.col("n") / pl.col("active_days"),
                # Entropy of the 24-hour histogram only speaks once there is enough traffic.
                round_clock=pl.when(pl.col("n") >= 48).then(pl.col("entropy")).otherwise(0.0),
                regularity=pl.when(pl.col("n_gaps") >= MIN_GAPS).then(3.0 - pl.col("lg_std")).otherwise(0.0),
            )
        )
        return Finding(self.with_population(f), explain=_explain)

    def with_population(self, features: pl.DataFrame) -> pl.DataFrame:
        return features.with_columns(
            ts_peak_daily=tail_score(pl.col("peak_daily")),
            ts_mean_daily=tail_score(pl.col("mean_daily")),
            ts_round_clock=tail_score(pl.col("round_clock")),
            ts_regularity=tail_score(shrunk(3.0 - pl.col("lg_std"), pl.col("n_gaps"), MIN_GAPS)),
            pop_peak_p50=pl.col("peak_daily").median(),
            pop_peak_p99=pl.col("peak_daily").quantile(0.99),
        )


def _explain(r: dict[str, Any]) -> list[str]:
    out = []
    if (r.get("ts_peak_daily") or 0) >= 1.5:
        import datetime as _dt

        d = _dt.date(1970, 1, 1) + _dt.timedelta(days=int(r["peak_day"]))
        out.append(
            f"peak daily volume {int(r['peak_daily']):,} requests on {d.isoformat()}, against a population "
            f"median of {r['pop_peak_p50']:,.0f} and 99th percentile of {r['pop_peak_p99']:,.0f}"
        )
    if (r.get("ts_round_clock") or 0) >= 1.0 and (r.get("hours") or 0) >= 20:
        out.append(
            f"active in {int(r['hours'])} of 24 hours of the day with near-uniform spread "
            f"(normalised hour entropy {r['entropy']:.2f})"
        )
    if (r.get("ts_regularity") or 0) >= 1.0:
        out.append(
            f"inter-arrival gaps unusually regular: spread of log10 gaps {r['lg_std']:.2f} over "
            f"{int(r['n_gaps']):,} gaps (human sessions are burstier)"
        )
    return out
