"""What the report shows, computed from the hunt's outputs and the log it read.

The log is streamed one UTC day at a time (:class:`~distillguard.io.LogReader`, only the
columns needed) and folded into small mergeable aggregates: exchanges per account and day,
hour-of-day counts, output-length histograms and the distinct (account, artifact) pairs.
Nothing here reads ``labels``: the groups are the hunt's campaigns and "benign" means
*not flagged by the hunt*, so the report shows what the hunt found, right or wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from distillguard.errors import ConfigError
from distillguard.io import LogReader
from distillguard.signals.registration import signup_network

__all__ = ["BENIGN", "HuntOutput", "LogAggregates", "aggregate_log", "claimed_offsets", "count_batches", "find_log", "read_hunt"]

BENIGN = 0  # group index of the accounts the hunt did not flag; campaigns are 1..k
BINS_PER_OCTAVE = 4  # output-length histogram: quarter-octave bins of output_tokens
_EXCHANGE_ARTIFACTS = ("ip_prefix", "device_fp")
_ACCOUNT_ARTIFACTS = ("email_domain", "phone_hash", "payment_fp", "signup_prefix")


@dataclass
class HuntOutput:
    """A hunt's output folder: verdicts, campaigns and (when written) features."""

    root: Path
    accounts: pl.DataFrame  # accounts.parquet
    campaigns: list[dict[str, Any]]
    meta: dict[str, Any]
    unused_signals: dict[str, str]
    near_misses: list[dict[str, Any]]
    features: pl.DataFrame | None  # the few features.parquet columns the report uses


def read_hunt(root: Path) -> HuntOutput:
    """Read ``accounts.parquet`` and ``campaigns.json`` (and the template columns of
    ``features.parquet`` when present); a missing file is a configuration error."""
    for name in ("accounts.parquet", "campaigns.json"):
        if not (root / name).is_file():
            raise ConfigError(f"{root} is not a hunt output folder: {name} is missing (run `distillguard hunt LOG --out {root}`)")
    doc = json.loads((root / "campaigns.json").read_text())
    feats = None
    fpath = root / "features.parquet"
    if fpath.is_file():
        want = ["account_id", "template.top_head_text", "template.top_share"]
        have = pl.read_parquet_schema(fpath)
        if all(c in have for c in want):
            feats = pl.read_parquet(fpath, columns=want)
    return HuntOutput(
        root=root,
        accounts=pl.read_parquet(root / "accounts.parquet"),
        campaigns=list(doc.get("campaigns", [])),
        meta=dict(doc.get("meta", {})),
        unused_signals=dict(doc.get("unused_signals", {})),
        near_misses=list(doc.get("near_misses", [])),
        features=feats,
    )


def find_log(hunt: HuntOutput, log: Sequence[Path] | None) -> list[Path]:
    """The log folder(s) the hunt read: ``log`` when given, else ``meta.logs`` of
    ``campaigns.json`` (relative paths tried from here, then from the hunt folder's parent)."""
    if log:
        paths = list(log)
    else:
        recorded = [Path(p) for p in hunt.meta.get("logs", [])]
        if not recorded:
            raise ConfigError(f"{hunt.root}/campaigns.json does not say which log the hunt read; give it with --log LOG")
        paths = []
        for p in recorded:
            tries = [p] if p.is_absolute() else [p, hunt.root.parent / p, hunt.root.parent.parent / p]
            found = next((t for t in tries if t.is_dir()), None)
            if found is None:
                raise ConfigError(f"the hunt read the log {p}, which is not found from here; give it with --log LOG")
            paths.append(found)
    for p in paths:
        if not p.is_dir():
            raise ConfigError(f"log folder {p} does not exist")
    return paths


def claimed_offsets(country: pl.Expr) -> pl.Expr:
    """Minutes east of UTC of the billing country's clock: the middle of the offsets its zones
    keep (``rules/countries.yaml``, as the lived-time signal reads it); null when unknown."""
    from distillguard.signals.lived_time import country_offsets

    table = {k: round(sorted(v)[len(v) // 2] * 60) for k, v in country_offsets().items() if v}
    return country.str.strip_chars().str.to_uppercase().replace_strict(table, default=None, return_dtype=pl.Int32)


@dataclass
class LogAggregates:
    """The log folded per account and group; every frame is small next to the log."""

    accounts: pl.DataFrame  # a, account_id, g, created_at, country, off, risk, decision, campaign, evidence
    account_days: pl.DataFrame  # a, day, n
    hours: pl.DataFrame  # g, clock ("utc"|"local"), hour, n
    lengths: pl.DataFrame  # g, bin, n, tokens
    pairs: pl.DataFrame  # a, kind, value: distinct artifacts each account carried
    exchanges: int = 0
    days: list[Any] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)  # index -> campaign id ("" for benign)
    read_issues: int = 0


def _accounts_frame(hunt: HuntOutput, readers: Sequence[LogReader]) -> tuple[pl.DataFrame, list[str]]:
    ids = [str(c["id"]) for c in hunt.campaigns]
    gmap = {cid: i + 1 for i, cid in enumerate(ids)}
    spec = [pl.from_arrow(r.accounts()) for r in readers]
    log_acc = pl.concat([s for s in spec if isinstance(s, pl.DataFrame)], how="diagonal_relaxed").unique("account_id", keep="first")
    cols = {"created_at", "country", "email_domain", "phone_hash", "payment_fp", "signup_ip"}
    log_acc = log_acc.select([c for c in log_acc.columns if c in cols | {"account_id"}])
    for c in cols - set(log_acc.columns):
        log_acc = log_acc.with_columns(pl.lit(None, pl.Datetime("us", "UTC") if c == "created_at" else pl.String).alias(c))
    verdicts = hunt.accounts.select("account_id", "risk", "decision", "campaign", "evidence")
    acc = (
        verdicts.join(log_acc, on="account_id", how="full", coalesce=True)
        .with_columns(
            g=pl.col("campaign").replace_strict(gmap, default=BENIGN, return_dtype=pl.UInt16),
            off=claimed_offsets(pl.col("country")),
            signup_prefix=signup_network(pl.col("signup_ip"), pl.col("created_at")),
        )
        .sort("account_id")  # a full join's order varies from run to run; the index must not
        .with_row_index("a")
    )
    return acc, ["", *ids]


def _parquet_files(log: Path) -> list[Path] | None:
    """The exchanges files of ``log`` when every one is plain Parquet (the fast path), else None."""
    files = sorted(p for p in (log / "exchanges").rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
    if not files or any(p.suffix.lower() not in (".parquet", ".pq") for p in files):
        return None
    return files


def _fast_batches(files: list[Path], wanted: list[str]) -> Iterator[pl.DataFrame]:
    """Parquet read straight into polars, a partition folder (a day) at a time: ~10x faster than
    :class:`LogReader`, which also validates every value and drops repeated ``request_id``s. The
    hunt has read (and reported on) the same log, so here only rows without ``ts`` or
    ``account_id`` are dropped; a missing optional column reads as null."""
    by_dir: dict[Path, list[Path]] = {}
    for f in files:
        by_dir.setdefault(f.parent, []).append(f)
    for group in by_dir.values():
        lf = pl.scan_parquet(group, missing_columns="insert", extra_columns="ignore")
        names = lf.collect_schema().names()
        cols = [pl.col(c) if c in names else pl.lit(None, pl.String).alias(c) for c in wanted]
        df = lf.select(cols).filter(pl.col("ts").is_not_null() & pl.col("account_id").is_not_null()).collect()
        yield df.with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")), pl.col("output_tokens").cast(pl.Int64))


def _batches(
    logs: Sequence[Path], readers: Sequence[LogReader], wanted: list[str], fast: bool
) -> Iterator[pl.DataFrame]:
    for log, reader in zip(logs, readers, strict=True):
        files = _parquet_files(log) if fast else None
        if files is not None:
            yield from _fast_batches(files, wanted)
            continue
        for batch in reader.exchange_batches(wanted, ordered=False):
            df = pl.from_arrow(batch.select(wanted))
            assert isinstance(df, pl.DataFrame)
            yield df


def count_batches(logs: Sequence[Path], mapping: Path | None = None) -> int:
    """How many batches :func:`aggregate_log` will fold (for a progress bar)."""
    total = 0
    for log in logs:
        files = _parquet_files(log) if mapping is None else None
        total += len({f.parent for f in files}) if files is not None else len(LogReader(log, mapping=mapping).days())
    return total


def aggregate_log(
    hunt: HuntOutput, logs: Sequence[Path], *, mapping: Path | None = None, advance: Callable[[int], None] | None = None
) -> LogAggregates:
    """Stream the log once and fold it into :class:`LogAggregates`."""
    readers = [LogReader(p, mapping=mapping) for p in logs]
    acc, groups = _accounts_frame(hunt, readers)
    key = acc.select("account_id", "a", "g", "off")
    present = frozenset().union(*(r.exchange_columns() for r in readers))
    wanted = ["ts", "account_id", "output_tokens", *_EXCHANGE_ARTIFACTS]
    derive_prefix = "ip_prefix" not in present and "ip" in present
    if derive_prefix:
        wanted.append("ip")
    days: list[pl.DataFrame] = []
    hours: list[pl.DataFrame] = []
    lengths: list[pl.DataFrame] = []
    pairs: list[pl.DataFrame] = []
    n = 0
    for df in _batches(logs, readers, wanted, fast=mapping is None):
        n += df.height
        if derive_prefix:
            df = df.with_columns(ip_prefix=pl.col("ip").str.extract(r"^(\d+\.\d+\.\d+)\.\d+$", 1))
        df = df.join(key, on="account_id", how="left").with_columns(pl.col("g").fill_null(BENIGN))
        # An account absent from accounts/ still counts (as benign): index past the table.
        df = df.with_columns(pl.col("a").fill_null(pl.lit(acc.height, pl.UInt32)))
        days.append(df.group_by("a", day=pl.col("ts").dt.date()).agg(n=pl.len()))
        local = pl.col("ts") + pl.duration(minutes=pl.col("off"))
        hours.append(df.group_by("g", hour=pl.col("ts").dt.hour()).agg(n=pl.len()).with_columns(clock=pl.lit("utc")))
        hours.append(
            df.filter(pl.col("off").is_not_null())
            .group_by("g", hour=local.dt.hour())
            .agg(n=pl.len())
            .with_columns(clock=pl.lit("local"))
        )
        b = (pl.col("output_tokens").clip(0) + 1).log(2).mul(BINS_PER_OCTAVE).floor().cast(pl.Int32)
        lengths.append(df.group_by("g", bin=b).agg(n=pl.len(), tokens=pl.col("output_tokens").sum()))
        for kind in _EXCHANGE_ARTIFACTS:
            pairs.append(df.select("a", value=pl.col(kind).cast(pl.String)).drop_nulls().unique().with_columns(kind=pl.lit(kind)))
        if advance is not None:
            advance(1)
    issues = sum(len(r.issues) for r in readers)
    acct_pairs = [
        acc.select("a", value=pl.col(k)).drop_nulls().with_columns(kind=pl.lit(k)) for k in _ACCOUNT_ARTIFACTS
    ]
    empty_days = pl.DataFrame(schema={"a": pl.UInt32, "day": pl.Date, "n": pl.UInt32})
    acc_days = pl.concat(days).group_by("a", "day").agg(pl.col("n").sum()) if days else empty_days
    hours_df = (
        pl.concat(hours).group_by("g", "clock", "hour").agg(pl.col("n").sum())
        if hours
        else pl.DataFrame(schema={"g": pl.UInt16, "clock": pl.String, "hour": pl.Int8, "n": pl.UInt32})
    )
    lengths_df = (
        pl.concat(lengths).group_by("g", "bin").agg(pl.col("n").sum(), pl.col("tokens").sum())
        if lengths
        else pl.DataFrame(schema={"g": pl.UInt16, "bin": pl.Int32, "n": pl.UInt32, "tokens": pl.Int64})
    )
    pair_df = pl.concat([p.select("a", "kind", "value") for p in pairs + acct_pairs]).unique()
    all_days = sorted(acc_days["day"].unique().to_list())
    return LogAggregates(
        accounts=acc,
        account_days=acc_days,
        hours=hours_df,
        lengths=lengths_df,
        pairs=pair_df,
        exchanges=n,
        days=all_days,
        groups=groups,
        read_issues=issues,
    )


def bin_edge(b: int) -> float:
    """Lower edge, in output tokens, of length bin ``b``."""
    return float(max(0.0, math.pow(2.0, b / BINS_PER_OCTAVE) - 1.0))
