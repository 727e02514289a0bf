"""Peers' intel as prior evidence in the hunt: an account holding a value a peer reported
starts with a higher risk, and its evidence names the bundle and the producer.

Applied after the hunt's own verdict, from the log's values (never its labels), so the
detector itself is unchanged and a hunt without ``--intel`` is byte-for-byte what it was.
A peer's word raises risk within the account's own band and never makes a campaign:
risk stays below 0.5 for an account the hunt did not link into one (the rule
:mod:`distillguard.verdicts` states), and the policy re-decides flagged accounts, whose
higher risk may cross ``block_risk``. The raise is a noisy-or of the account's own rank
in its band with ``weight`` times the peer's confidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa

from distillguard.intel.ingest import Source
from distillguard.intel.match import IntelMatcher
from distillguard.policy import Policy
from distillguard.verdicts import Verdicts

__all__ = ["WEIGHT", "account_values", "apply_prior"]

WEIGHT = 0.5
"""How much of a peer's confidence an exact match is worth (a peer's hunt, not ours)."""

_LABEL = {"ipv4-addr": "IP address", "ipv6-addr": "IP address", "ipv4-prefix": "IP prefix", "ipv6-prefix": "IP prefix",
          "device-fp": "device fingerprint", "email-domain": "e-mail domain", "email-addr": "e-mail address",
          "phone": "phone number", "payment": "payment method", "template": "prompt template"}  # fmt: skip

PROMPTS_PER_ACCOUNT = 16
"""Distinct prompts per account sketched against imported template sketches: a harvesting
account sends its template far more often than this, so a sample finds it; every prompt
would cost a keyed MinHash per distinct prompt of the log."""


def account_values(logs: Sequence[Path], prompts_per_account: int = 0) -> pl.DataFrame:
    """``(account_id, kind, value)``: every distinct identifier each account used, from the
    logs, and (kind ``template``) up to ``prompts_per_account`` of its distinct prompts."""
    from distillguard.io import LogReader

    parts = []
    prompts: list[pl.DataFrame] = []
    for log in logs:
        reader = LogReader(log)
        cols = ["account_id", "ip", "ip_prefix", "device_fp"] + (["prompt"] if prompts_per_account else [])
        for batch in reader.exchange_batches(cols, ordered=False):
            df = pl.from_arrow(batch)
            assert isinstance(df, pl.DataFrame)
            for col, kind in (("ip", "ip"), ("ip_prefix", "prefix"), ("device_fp", "device-fp")):
                parts.append(df.select("account_id", value=pl.col(col)).drop_nulls().unique().with_columns(kind=pl.lit(kind)))
            if prompts_per_account:
                p = df.select("account_id", value=pl.col("prompt")).drop_nulls().unique(maintain_order=True)
                prompts.append(p.group_by("account_id", maintain_order=True).head(prompts_per_account))
        acc = pl.from_arrow(reader.accounts())
        assert isinstance(acc, pl.DataFrame)
        if "email_domain" in acc.columns or "email" in acc.columns:
            dom = pl.col("email_domain") if "email_domain" in acc.columns else pl.col("email").str.split("@").list.last()
            parts.append(acc.select("account_id", value=dom.cast(pl.String)).drop_nulls().with_columns(kind=pl.lit("email-domain")))
        for col, kind in (("email", "email-addr"), ("phone_hash", "phone"), ("payment_fp", "payment"), ("signup_ip", "ip")):
            if col in acc.columns:
                parts.append(acc.select("account_id", value=pl.col(col).cast(pl.String)).drop_nulls().with_columns(kind=pl.lit(kind)))
    if prompts:
        p = pl.concat(prompts).unique(maintain_order=True).group_by("account_id", maintain_order=True).head(prompts_per_account)
        parts.append(p.with_columns(kind=pl.lit("template")))
    if not parts:
        return pl.DataFrame(schema={"account_id": pl.String, "value": pl.String, "kind": pl.String})
    return pl.concat(parts, how="vertical_relaxed").unique()


def _match(m: IntelMatcher, kind: str, value: str) -> tuple[str, Source] | None:
    if kind == "ip":
        got = m.ip(value)
        if got is None:
            return None
        k = "ipv4-addr" if ":" not in value else "ipv6-addr"
        return (k if got[0] == "ip" else k.replace("addr", "prefix")), got[1]
    if kind == "prefix":
        base = value.split("/")[0]
        got = m.ip(base) if "/" in value else None
        return ("ipv4-prefix" if ":" not in base else "ipv6-prefix", got[1]) if got is not None and got[0] == "prefix" else None
    src = m.lookup(kind, value)
    return (kind, src) if src is not None else None


def apply_prior(verdicts: Verdicts, matcher: IntelMatcher, logs: Sequence[Path], policy: Policy, weight: float = WEIGHT) -> Verdicts:
    """``verdicts`` with the accounts that hold a reported value raised and explained."""
    values = account_values(logs, PROMPTS_PER_ACCOUNT if matcher.intel.sketches else 0)
    hits: dict[str, tuple[str, Source]] = {}
    for kind, value in values.filter(pl.col("kind") != "template").select("kind", "value").unique().iter_rows():
        got = _match(matcher, kind, value)
        if got is not None:
            hits[f"{kind}\x00{value}"] = got
    texts = values.filter(pl.col("kind") == "template")["value"].unique().to_list()
    for text, src in zip(texts, matcher.templates(texts), strict=True):
        if src is not None:
            hits[f"template\x00{text}"] = ("template", src)
    best: dict[str, tuple[str, Source]] = {}
    for acct, kind, value in values.select("account_id", "kind", "value").iter_rows():
        got = hits.get(f"{kind}\x00{value}")
        if got is not None and (acct not in best or got[1].confidence > best[acct][1].confidence):
            best[acct] = got
    verdicts.meta["intel"] = {"accounts_matched": len(best), "values_matched": len(hits)}
    if not best:
        return verdicts
    rows = verdicts.accounts.to_pylist()
    for r in rows:
        got = best.get(r["account_id"])
        if got is None:
            continue
        kind, src = got
        p = weight * min(max(src.confidence, 0), 100) / 100.0
        before = r["risk"]
        if r["flagged"]:
            r["risk"] = 0.5 + 0.5 * (1 - (1 - (before - 0.5) / 0.5) * (1 - p))
            r["decision"] = policy.decide(True, r["risk"], False)
        else:
            r["risk"] = 0.49 * (1 - (1 - min(before / 0.49, 1.0)) * (1 - p))
        r["evidence"] = [
            *(r["evidence"] or []),
            f"prior evidence: {'sends prompts matching a template' if kind == 'template' else 'holds ' + _LABEL.get(kind, kind)} "
            f"that {src.producer} reported as part of a "
            f"distillation campaign (indicator {src.indicator}, confidence {src.confidence}, bundle {Path(src.bundle).name}); "
            f"risk raised from {before:.2f} to {r['risk']:.2f}",
        ]
    verdicts.accounts = pa.Table.from_pylist(rows, schema=verdicts.accounts.schema)
    return verdicts
