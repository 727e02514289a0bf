"""Score a replay against the labels: the arithmetic of the bench, kept apart from I/O.

Why separate: every number a user quotes from ``distillguard bench`` comes from here, so
it is plain functions over small tables that tests can check by hand. Labels enter only
here, after the replay has finished.

Conventions
-----------
- An account is an *attack* account when its label has a ``campaign_id``; every other
  account is *benign*, including accounts that never sent an exchange and accounts in the
  accounts table with no label row (archetype ``"(unlabelled)"``).
- An account is *flagged* when the final verdicts flag it; an account missing from the
  verdicts is not flagged.
- A ratio whose denominator is zero is ``None`` (JSON ``null``), never ``NaN``.
- *Harvesting* starts at the label's optional ``harvest_start`` (an extra labels column the
  simulator writes: after a campaign account's warm-up of ordinary chat); an attack account
  without one harvests from its first exchange.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pyarrow as pa

__all__ = [
    "UNLABELLED",
    "account_metrics",
    "campaign_metrics",
    "flagged_by_decision",
    "harvest_metrics",
    "leaked_exchanges",
    "leaked_total",
    "normalise_labels",
    "per_archetype",
    "ratio",
    "scan_attack_exchanges",
    "time_to_detect",
    "truth_frame",
]

UNLABELLED = "(unlabelled)"
"""Archetype given to accounts that are in the accounts table but not in the labels."""

_HOUR = timedelta(hours=1)
_TS = pl.Datetime("us", "UTC")


def ratio(num: float, den: float) -> float | None:
    """``num / den``, or ``None`` when ``den`` is zero (a rate with no population is unknown)."""
    return num / den if den else None


def normalise_labels(labels: pa.Table) -> pl.DataFrame:
    """Labels as ``account_id, campaign_id, archetype`` strings and ``harvest_start`` (UTC, null
    when the labels have none), one row per account (first kept)."""
    cols = {}
    for name in ("account_id", "campaign_id", "archetype"):
        if name in labels.column_names:
            cols[name] = labels[name].cast(pa.string())
        else:
            cols[name] = pa.nulls(labels.num_rows, pa.string())
    df = pl.from_arrow(pa.table(cols))
    assert isinstance(df, pl.DataFrame)
    if "harvest_start" in labels.column_names:
        col = pl.Series("harvest_start", labels["harvest_start"].combine_chunks())
        if col.dtype == pl.String:  # JSON Lines and CSV carry it as ISO text
            col = col.str.to_datetime(time_zone="UTC", strict=False)
        df = df.with_columns(col.cast(_TS))
    else:
        df = df.with_columns(pl.lit(None, _TS).alias("harvest_start"))
    return df.filter(pl.col("account_id").is_not_null()).unique("account_id", keep="first", maintain_order=True)


def truth_frame(
    labels: pa.Table,
    account_ids: pa.Array | pa.ChunkedArray,
    verdicts: pa.Table,
    first_flags: pa.Table,
) -> pl.DataFrame:
    """One row per account in the labels or the accounts table, with truth and outcome.

    Columns: ``account_id, campaign_id, archetype, attack, flagged, cluster, decision,
    first_flagged_at``.
    """
    lab = normalise_labels(labels)
    ids = _frame(pa.table({"account_id": account_ids})).with_columns(pl.col("account_id").cast(pl.String))
    extra = ids.filter(pl.col("account_id").is_not_null()).unique("account_id", maintain_order=True)
    extra = extra.join(lab.select("account_id"), on="account_id", how="anti").with_columns(
        pl.lit(None, pl.String).alias("campaign_id"), pl.lit(UNLABELLED).alias("archetype")
    )
    extra = extra.with_columns(pl.lit(None, _TS).alias("harvest_start"))
    universe = pl.concat([lab, extra.select(lab.columns)]).with_columns(
        pl.col("archetype").fill_null(UNLABELLED)
    )
    ver = _verdict_frame(verdicts)
    flags = _frame(first_flags.select(["account_id", "first_flagged_at"]))
    out = (
        universe.join(ver, on="account_id", how="left")
        .join(flags.unique("account_id", keep="first"), on="account_id", how="left")
        .with_columns(
            pl.col("campaign_id").is_not_null().alias("attack"),
            pl.col("flagged").fill_null(False),
            pl.col("first_flagged_at").cast(_TS),
        )
    )
    return out.select(
        "account_id", "campaign_id", "archetype", "attack", "flagged", "cluster", "decision", "first_flagged_at",
        "harvest_start",
    )


def _frame(table: pa.Table) -> pl.DataFrame:
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    return df


def _verdict_frame(verdicts: pa.Table) -> pl.DataFrame:
    """Final verdicts as ``account_id, flagged, cluster, decision``, one row per account."""
    df = _frame(verdicts.select(["account_id", "flagged", "campaign", "decision"]))
    return (
        df.rename({"campaign": "cluster"})
        .with_columns(pl.col("flagged").fill_null(False), pl.col("cluster").cast(pl.String), pl.col("decision").cast(pl.String))
        .filter(pl.col("account_id").is_not_null())
        .unique("account_id", keep="first", maintain_order=True)
    )


def account_metrics(truth: pl.DataFrame) -> dict[str, Any]:
    """Account-level precision, recall and false-positive rate, with the counts behind them."""
    attack = truth["attack"]
    flagged = truth["flagged"]
    tp = int((attack & flagged).sum())
    fp = int((~attack & flagged).sum())
    fn = int((attack & ~flagged).sum())
    tn = int((~attack & ~flagged).sum())
    n_attack, n_benign = tp + fn, fp + tn
    precision = ratio(tp, tp + fp)
    recall = ratio(tp, n_attack)
    f1 = None
    if precision is not None and recall is not None and precision + recall:
        f1 = 2 * precision * recall / (precision + recall)
    return {
        "precision": precision,
        "recall": recall,
        "fpr": ratio(fp, n_benign),
        "f1": f1,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "flagged": tp + fp,
        "attack_accounts": n_attack,
        "benign_accounts": n_benign,
        "ever_flagged": int(truth["first_flagged_at"].is_not_null().sum()),
    }


def per_archetype(truth: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """``archetype -> {accounts, flagged, rate, kind}``; for attack kinds ``rate`` is recall, else FPR.

    An archetype is ``"attack"`` when any of its accounts belongs to a campaign.
    """
    grouped = (
        truth.group_by("archetype")
        .agg(
            pl.len().alias("accounts"),
            pl.col("flagged").sum().alias("flagged"),
            pl.col("attack").any().alias("attack"),
        )
        .sort(["attack", "archetype"], descending=[True, False])
    )
    out: dict[str, dict[str, Any]] = {}
    for row in grouped.iter_rows(named=True):
        out[row["archetype"]] = {
            "accounts": int(row["accounts"]),
            "flagged": int(row["flagged"]),
            "rate": ratio(row["flagged"], row["accounts"]),
            "kind": "attack" if row["attack"] else "benign",
        }
    return out


def campaign_metrics(truth: pl.DataFrame, verdicts: pa.Table) -> dict[str, dict[str, Any]]:
    """How well the detector's clusters recover each labelled campaign.

    The best cluster is the ``campaign`` value of the final verdicts holding the most of the
    campaign's accounts (ties: higher precision, then the smaller id); precision is the
    campaign's accounts in it over its size, recall over the campaign's accounts. ``None``
    when no account of the campaign was put in any cluster.
    """
    sizes = dict(
        _verdict_frame(verdicts)
        .filter(pl.col("cluster").is_not_null())
        .group_by("cluster")
        .len()
        .iter_rows()
    )
    attack = truth.filter(pl.col("attack"))
    counts = attack.group_by("campaign_id").agg(
        pl.len().alias("accounts"),
        pl.col("flagged").sum().alias("flagged"),
        (pl.col("first_flagged_at").is_not_null() & ~pl.col("flagged")).sum().alias("cleared"),
    )
    hits = (
        attack.filter(pl.col("cluster").is_not_null())
        .group_by(["campaign_id", "cluster"])
        .len()
    )
    by_campaign: dict[str, list[tuple[str, int]]] = {}
    for cid, cluster, n in hits.iter_rows():
        by_campaign.setdefault(cid, []).append((cluster, int(n)))

    out: dict[str, dict[str, Any]] = {}
    for cid, n_accounts, n_flagged, n_cleared in sorted(counts.iter_rows()):
        entry: dict[str, Any] = {
            "accounts": int(n_accounts),
            "flagged": int(n_flagged),
            # Flagged at some point of the replay, not in the final verdicts.
            "flagged_then_cleared": int(n_cleared),
            "flag_rate": ratio(n_flagged, n_accounts),
            "best_cluster": None,
            "cluster_size": None,
            "precision": None,
            "recall": None,
        }
        options = by_campaign.get(cid, [])
        if options:
            cluster, n_in = min(options, key=lambda o: (-o[1], -o[1] / sizes.get(o[0], o[1]), o[0]))
            size = int(sizes.get(cluster, n_in))
            entry.update(best_cluster=cluster, cluster_size=size, precision=n_in / size, recall=n_in / n_accounts)
        out[cid] = entry
    return out


def flagged_by_decision(truth: pl.DataFrame) -> dict[str, dict[str, int]]:
    """``decision -> {accounts, attack, benign}`` over the flagged accounts."""
    grouped = (
        truth.filter(pl.col("flagged"))
        .with_columns(pl.col("decision").fill_null("(none)"))
        .group_by("decision")
        .agg(pl.len().alias("accounts"), pl.col("attack").sum().alias("attack"))
        .sort("decision")
    )
    return {
        d: {"accounts": int(n), "attack": int(a), "benign": int(n - a)}
        for d, n, a in grouped.iter_rows()
    }


def scan_attack_exchanges(
    batches: Iterable[pa.Table], truth: pl.DataFrame, flag_changes: pa.Table | None = None
) -> pl.DataFrame:
    """One streaming pass over ``(account_id, ts)``: per campaign, exchanges, leaked ones, first ts.

    An exchange is *leaked* when it was served before its account was first flagged in
    the replay (every exchange of an account never flagged), and *unflagged* when its
    account was not flagged as it was served: before the first flag, or after a flag was
    cleared and before it was set again (``flag_changes``, the replay's
    :data:`~distillguard.bench.replay.FLAG_CHANGES`; without it, the first flags are the only
    changes and the two counts agree). Memory stays bounded by the number of campaigns and
    the flag changes, whatever the size of the log.

    Returns ``campaign_id, total, leaked, unflagged, before_campaign, first_ts`` and the same
    from harvest start on: ``harvest_total, harvest_leaked, harvest_unflagged, harvest_ts``.
    ``before_campaign``: served before any account of the campaign was first flagged (all of
    them leaked): the part of the leak only an earlier campaign saves, where the rest is a
    faster membership's to save.
    """
    cols = ["account_id", "campaign_id", "first_flagged_at"]
    attack = truth.filter(pl.col("attack")).select(cols + (["harvest_start"] if "harvest_start" in truth.columns else []))
    if "harvest_start" not in attack.columns:
        attack = attack.with_columns(pl.lit(None, _TS).alias("harvest_start"))
    if flag_changes is None:
        changes = attack.filter(pl.col("first_flagged_at").is_not_null()).select(
            "account_id", pl.col("first_flagged_at").alias("at"), pl.lit(True).alias("flagged_now")
        )
    else:
        changes = _frame(flag_changes).select(
            pl.col("account_id").cast(pl.String), pl.col("at").cast(_TS), pl.col("flagged").alias("flagged_now")
        )
    changes = changes.join(attack.select("account_id"), on="account_id", how="semi").sort("at")
    # The campaign's first flag: what its accounts sent before it, no faster membership saves.
    attack = attack.with_columns(campaign_flagged_at=pl.col("first_flagged_at").min().over("campaign_id"))
    parts: list[pl.DataFrame] = []
    for batch in batches:
        if batch.num_rows == 0:
            continue
        df = _frame(batch.select(["account_id", "ts"])).with_columns(
            pl.col("account_id").cast(pl.String), pl.col("ts").cast(_TS)
        )
        joined = df.join(attack, on="account_id", how="inner")
        if joined.height == 0:
            continue
        # the account's last flag change at or before the exchange: flagged then, or not
        joined = joined.sort("ts").join_asof(
            changes, left_on="ts", right_on="at", by="account_id", strategy="backward", check_sortedness=False
        )  # both sorted by time here
        leaked = pl.col("first_flagged_at").is_null() | (pl.col("ts") < pl.col("first_flagged_at"))
        unflagged = ~pl.col("flagged_now").fill_null(False)
        harvest = pl.col("harvest_start").is_null() | (pl.col("ts") >= pl.col("harvest_start"))
        before_campaign = pl.col("campaign_flagged_at").is_null() | (pl.col("ts") < pl.col("campaign_flagged_at"))
        parts.append(
            joined.group_by("campaign_id").agg(
                pl.len().alias("total"),
                leaked.sum().alias("leaked"),
                unflagged.sum().alias("unflagged"),
                before_campaign.sum().alias("before_campaign"),
                pl.col("ts").min().alias("first_ts"),
                harvest.sum().alias("harvest_total"),
                (harvest & leaked).sum().alias("harvest_leaked"),
                (harvest & unflagged).sum().alias("harvest_unflagged"),
                pl.col("ts").filter(harvest).min().alias("harvest_ts"),
            )
        )
    schema = pl.Schema(
        {"campaign_id": pl.String(), "total": pl.Int64(), "leaked": pl.Int64(), "unflagged": pl.Int64(),
         "before_campaign": pl.Int64(), "first_ts": _TS, "harvest_total": pl.Int64(), "harvest_leaked": pl.Int64(),
         "harvest_unflagged": pl.Int64(), "harvest_ts": _TS}
    )  # fmt: skip
    if not parts:
        return pl.DataFrame(schema=schema)
    counts = [c for c, t in schema.items() if t == pl.Int64()]
    return (
        pl.concat([p.cast(schema) for p in parts])
        .group_by("campaign_id")
        .agg(*(pl.col(c).sum() for c in counts), pl.col("first_ts").min(), pl.col("harvest_ts").min())
        .select(schema.names())
    )


def harvest_metrics(truth: pl.DataFrame, scan: pl.DataFrame, share: float = 0.9) -> dict[str, dict[str, Any]]:
    """``campaign -> {start, first, p90, leaked, total, share}`` counted from harvest start.

    A campaign that warms its accounts up with ordinary chat is only harvesting from its
    first exchange at or after a ``harvest_start``: time to detect counts from there, and
    ``leaked`` counts only harvesting exchanges served before their account was flagged.
    """
    if "harvest_ts" not in scan.columns:
        return {}
    ttd = time_to_detect(truth, scan.with_columns(pl.col("harvest_ts").alias("first_ts")), share)
    got = {cid: (ts, int(t), int(lk), int(un)) for cid, ts, t, lk, un in
           scan.select("campaign_id", "harvest_ts", "harvest_total", "harvest_leaked", "harvest_unflagged").iter_rows()}
    out: dict[str, dict[str, Any]] = {}
    for cid, times in ttd.items():
        ts, total, leaked, unflagged = got.get(cid, (None, 0, 0, 0))
        out[cid] = {"start": ts, **times, "leaked": leaked, "total": total, "share": ratio(leaked, total),
                    "unflagged": unflagged, "unflagged_share": ratio(unflagged, total)}  # fmt: skip
    return out


def time_to_detect(truth: pl.DataFrame, scan: pl.DataFrame, share: float = 0.9) -> dict[str, dict[str, float | None]]:
    """``campaign -> {first, p90}`` in hours from the campaign's first exchange.

    ``first``: to its first flagged account; ``p90``: to the time ``share`` of its
    accounts had been flagged. ``None`` when that never happened in the replay, or when
    the campaign sent no exchange. Negative when accounts were flagged before the
    campaign's first exchange (e.g. from registration data).
    """
    starts: dict[str, datetime] = {cid: ts for cid, ts in scan.select("campaign_id", "first_ts").iter_rows()}
    flags: dict[str, list[datetime]] = {}
    sizes: dict[str, int] = {}
    for cid, at in truth.filter(pl.col("attack")).select("campaign_id", "first_flagged_at").iter_rows():
        sizes[cid] = sizes.get(cid, 0) + 1
        if at is not None:
            flags.setdefault(cid, []).append(at)
    out: dict[str, dict[str, float | None]] = {}
    for cid in sorted(sizes):
        start = starts.get(cid)
        times = sorted(flags.get(cid, []))
        need = max(1, math.ceil(share * sizes[cid] - 1e-9))
        first = p90 = None
        if start is not None and times:
            first = (times[0] - start) / _HOUR
            if len(times) >= need:
                p90 = (times[need - 1] - start) / _HOUR
        out[cid] = {"first": first, "p90": p90}
    return out


def leaked_exchanges(truth: pl.DataFrame, scan: pl.DataFrame, count: str = "leaked") -> dict[str, dict[str, Any]]:
    """``campaign -> {count, share, total}``: exchanges a campaign got before being flagged
    (``count="unflagged"``: while not flagged, a cleared flag included; ``"before_campaign"``:
    before any of its accounts was flagged)."""
    got = {cid: (int(total), int(leaked)) for cid, total, leaked in scan.select("campaign_id", "total", count).iter_rows()}
    campaigns = sorted(set(truth.filter(pl.col("attack"))["campaign_id"].to_list()))
    out: dict[str, dict[str, Any]] = {}
    for cid in campaigns:
        total, leaked = got.get(cid, (0, 0))
        out[cid] = {"count": leaked, "share": ratio(leaked, total), "total": total}
    return out


def leaked_total(leaked: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """All campaigns together: ``{count, share, total}``."""
    count = sum(int(v["count"]) for v in leaked.values())
    total = sum(int(v["total"]) for v in leaked.values())
    return {"count": count, "share": ratio(count, total), "total": total}
