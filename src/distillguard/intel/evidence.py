"""What a hunt found that is worth telling other providers: each campaign's own artifacts.

The hunt's output names campaigns and their members (``campaigns.json``); the values a
partner can act on (addresses, networks, devices, mail domains, phones, cards, prompt
templates) are in the log the hunt read, so they are taken from there, per campaign:

* a value is kept when at least ``min_carriers`` members hold it and at least half of
  all its holders in the log are members: a university NAT or a popular SDK's
  fingerprint, shared with ordinary accounts, never leaves (it would block bystanders
  at every partner and it says nothing about the campaign);
* free-mail domains never leave (:data:`~distillguard.intel.keyed.FREE_MAIL`);
* templates are the hunt's own shared-template artifacts (``tpl_*``), with one member
  prompt that carries the template as its text (only ever sketched, never exported).

Counts and first/last times come with each value for the bundle's sightings.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from distillguard.errors import ConfigError
from distillguard.intel.keyed import FREE_MAIL, canonical, ip_kind

__all__ = ["Artifact", "Campaign", "HuntIntel", "Template", "collect"]

MIN_CARRIERS = 2
MIN_MEMBER_SHARE = 0.5
TEMPLATE_KINDS = ("tpl_head", "tpl_tail", "tpl_exact")
# exchanges column -> how its values are told apart (IPs: v4 or v6, decided per value)
_EXCHANGE_KINDS = {"ip": "ip", "ip_prefix": "prefix", "device_fp": "device-fp"}
_ACCOUNT_KINDS = {"email_domain": "email-domain", "phone_hash": "phone", "payment_fp": "payment"}


@dataclass(frozen=True)
class Artifact:
    """One identifier value a campaign's members share."""

    campaign: str
    kind: str  # a :data:`~distillguard.intel.keyed.KINDS` kind
    value: str  # canonical, in clear (hashed only at export)
    carriers: int  # members holding it
    carriers_total: int  # accounts in the log holding it
    exchanges: int  # members' exchanges with it (0 for account attributes)
    first_seen: dt.datetime
    last_seen: dt.datetime


@dataclass(frozen=True)
class Template:
    """A prompt template a campaign's members send; ``text`` is one member prompt carrying it."""

    campaign: str
    label: str
    text: str
    carriers: int
    exchanges: int
    first_seen: dt.datetime
    last_seen: dt.datetime


@dataclass(frozen=True)
class Campaign:
    """What the bundle says of a campaign: counts and times, never a member id."""

    id: str
    size: int
    risk: float
    exchanges: int
    first_seen: dt.datetime
    last_seen: dt.datetime


@dataclass
class HuntIntel:
    """Everything an export needs from one hunt."""

    campaigns: list[Campaign]
    artifacts: list[Artifact] = field(default_factory=list)
    templates: list[Template] = field(default_factory=list)
    generated_at: dt.datetime | None = None


def _log_path(hunt_dir: Path, doc: dict[str, Any], log: Path | None) -> Path:
    if log is not None:
        if not log.is_dir():
            raise ConfigError(f"--log {log}: no such log folder")
        return log
    logs = doc.get("meta", {}).get("logs") or []
    for p in logs:
        if Path(p).is_dir():
            return Path(p)
    said = f" (it records {', '.join(logs)}, which is not there)" if logs else ""
    raise ConfigError(f"the hunt in {hunt_dir} names no log folder that exists{said}; pass --log LOG")


def collect(
    hunt_dir: Path,
    log: Path | None = None,
    *,
    min_carriers: int = MIN_CARRIERS,
    min_member_share: float = MIN_MEMBER_SHARE,
) -> HuntIntel:
    """The campaigns of the hunt in ``hunt_dir`` and the artifacts their members share."""
    from distillguard.io import LogReader

    path = hunt_dir / "campaigns.json"
    if not path.is_file():
        raise ConfigError(f"{hunt_dir} is not a hunt output folder: no campaigns.json (run `distillguard hunt LOG --out DIR`)")
    doc = json.loads(path.read_text())
    raw = doc.get("campaigns", [])
    generated = doc.get("meta", {}).get("generated_at")
    intel = HuntIntel([], generated_at=dt.datetime.fromisoformat(generated) if generated else None)
    if not raw:
        return intel
    members = pl.DataFrame(
        [(a, c["id"]) for c in raw for a in c["accounts"]], schema={"account_id": pl.String, "campaign": pl.String}, orient="row"
    )
    reader = LogReader(_log_path(hunt_dir, doc, log))
    cols = ["account_id", "ts", "ip", "ip_prefix", "device_fp", "prompt"]
    parts: list[pl.DataFrame] = []
    prompts: list[pl.DataFrame] = []
    for batch in reader.exchange_batches(cols, ordered=False):
        df = pl.from_arrow(batch)
        assert isinstance(df, pl.DataFrame)
        df = _with_prefix(df)
        for col in _EXCHANGE_KINDS:
            parts.append(
                df.select("account_id", "ts", value=pl.col(col)).drop_nulls("value")
                .group_by("account_id", "value").agg(n=pl.len(), first=pl.col("ts").min(), last=pl.col("ts").max())
                .with_columns(column=pl.lit(col))
            )  # fmt: skip
        prompts.append(df.join(members, on="account_id").select("account_id", "campaign", "ts", "prompt").drop_nulls("prompt"))
    held = (
        pl.concat(parts).group_by("column", "account_id", "value")
        .agg(pl.col("n").sum(), pl.col("first").min(), pl.col("last").max())
    ) if parts else pl.DataFrame()  # fmt: skip
    acc = pl.from_arrow(reader.accounts())
    assert isinstance(acc, pl.DataFrame)
    acc_parts = []
    for col in _ACCOUNT_KINDS:
        if col in acc.columns:
            acc_parts.append(
                acc.select("account_id", value=pl.col(col).cast(pl.String), n=pl.lit(0, pl.UInt32),
                           first=pl.col("created_at"), last=pl.col("created_at"), column=pl.lit(col)).drop_nulls("value")
            )  # fmt: skip
    if "email_domain" not in acc.columns and "email" in acc.columns:
        acc_parts.append(
            acc.select("account_id", value=pl.col("email").str.split("@").list.last(), n=pl.lit(0, pl.UInt32),
                       first=pl.col("created_at"), last=pl.col("created_at"), column=pl.lit("email_domain")).drop_nulls("value")
        )  # fmt: skip
    if acc_parts:
        a = pl.concat(acc_parts)
        held = pl.concat([held, a.select(held.columns).cast(held.schema)]) if held.height else a
    span = {}
    if held.height:
        span = {
            r["account_id"]: (r["first"], r["last"])
            for r in held.filter(pl.col("column").is_in(list(_EXCHANGE_KINDS)))
            .group_by("account_id").agg(first=pl.col("first").min(), last=pl.col("last").max()).to_dicts()
        }  # fmt: skip
    for c in raw:
        times = [span[a] for a in c["accounts"] if a in span]
        first = min((t[0] for t in times), default=None) or _day(c.get("span", [None])[0])
        last = max((t[1] for t in times), default=None) or _day((c.get("span") or [None, None])[-1])
        intel.campaigns.append(
            Campaign(c["id"], int(c["size"]), float(c["risk"]), int(c.get("exchanges") or 0), _utc(first), _utc(last))
        )
    if held.height:
        intel.artifacts = _artifacts(held, members, min_carriers, min_member_share)
    if prompts:
        intel.templates = _templates(raw, pl.concat(prompts))
    return intel


def _with_prefix(df: pl.DataFrame) -> pl.DataFrame:
    """``ip_prefix`` filled from ``ip`` where the log left it out (/24 for v4, /48 for v6)."""
    from distillguard.privacy import ip_prefix

    ips = df["ip"].drop_nulls().unique()
    if ips.len() == 0:
        return df
    table = pl.DataFrame({"ip": ips, "_p": [ip_prefix(v) for v in ips.to_list()]}, schema={"ip": pl.String, "_p": pl.String})
    return df.join(table, on="ip", how="left").with_columns(ip_prefix=pl.coalesce("ip_prefix", "_p")).drop("_p")


def _artifacts(held: pl.DataFrame, members: pl.DataFrame, min_carriers: int, share: float) -> list[Artifact]:
    totals = held.group_by("column", "value").agg(total=pl.col("account_id").n_unique())
    inside = (
        held.join(members, on="account_id").group_by("campaign", "column", "value")
        .agg(k=pl.col("account_id").n_unique(), n=pl.col("n").sum(), first=pl.col("first").min(), last=pl.col("last").max())
        .join(totals, on=["column", "value"])
        .filter((pl.col("k") >= min_carriers) & (pl.col("k") >= share * pl.col("total")))
        .sort("campaign", "column", "value")
    )  # fmt: skip
    out = []
    for r in inside.to_dicts():
        kind = _EXCHANGE_KINDS.get(r["column"]) or _ACCOUNT_KINDS[r["column"]]
        value = r["value"]
        if kind in ("ip", "prefix"):
            base = ip_kind(value.split("/")[0])
            if base is None:
                continue  # an HMAC'd log: its values only match this provider's own hashing
            kind = base if kind == "ip" else base.replace("-addr", "-prefix")
        if kind == "email-domain" and value.lower().lstrip("@") in FREE_MAIL:
            continue
        norm = canonical(kind, value)
        if norm is None:
            continue
        out.append(Artifact(r["campaign"], kind, norm, int(r["k"]), int(r["total"]), int(r["n"]), _utc(r["first"]), _utc(r["last"])))
    return out


def _masked(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[0-9]+", "0", text.lower()))


def _templates(raw: list[dict[str, Any]], prompts: pl.DataFrame) -> list[Template]:
    out = []
    for c in raw:
        mine = prompts.filter(pl.col("campaign") == c["id"])
        masked = mine.with_columns(m=pl.col("prompt").str.to_lowercase().str.replace_all("[0-9]+", "0").str.replace_all(r"\s+", " "))
        for a in c.get("shared_artifacts", []):
            value = a.get("value") or ""
            if a.get("kind") not in TEMPLATE_KINDS or not value or value.startswith("#"):
                continue
            hit = masked.filter(pl.col("m").str.contains(_masked(value), literal=True))
            if hit.height == 0:
                continue
            text = hit.group_by("prompt").len().sort(["len", "prompt"], descending=[True, False])["prompt"][0]
            out.append(
                Template(c["id"], a.get("label", a["kind"]), text, hit["account_id"].n_unique(), hit.height,
                         _utc(hit["ts"].min()), _utc(hit["ts"].max()))
            )  # fmt: skip
    return out


def _day(s: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(s).replace(tzinfo=dt.UTC) if s else None


def _utc(t: Any) -> dt.datetime:
    if t is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    if isinstance(t, dt.date) and not isinstance(t, dt.datetime):
        t = dt.datetime(t.year, t.month, t.day)
    assert isinstance(t, dt.datetime)
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
