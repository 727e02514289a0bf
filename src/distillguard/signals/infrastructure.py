"""Infrastructure: shared IP prefixes, device fingerprints and user agents; datacenter ASNs.

Shared infrastructure is an *artifact*: the link step weighs it by what the accounts
behind it do, so a university NAT or a popular SDK fingerprint (many ordinary accounts)
is weak evidence and a proxy pool driving scripted accounts is strong. Per account, the
signal also measures traffic from hosting ASNs (a small list kept as data in
``rules/asn.yaml``) and how fast device fingerprints rotate.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any, ClassVar

import polars as pl
import yaml

from distillguard.signals.base import (
    ARTIFACTS_SCHEMA,
    TEXT_SPEC_DTYPES,
    ArtifactKind,
    DType,
    Finding,
    Signal,
    State,
    TableSpec,
    concentrated,
    count_values,
    grouped,
    tail_score,
    texts_seen,
)

_U: dict[str, DType] = {"account": pl.UInt32, "value": pl.UInt64}
ARTIFACT_COLUMNS = {"prefix": "ip_prefix", "device": "device_fp", "ua": "user_agent"}


def network_of(ip: pl.Expr) -> pl.Expr:
    """The /24 of an IPv4 address as the log's ``ip_prefix`` writes it (``a.b.c.0/24``); null otherwise."""
    return ip.str.extract(r"^(\d+\.\d+\.\d+)\.\d+$", 1) + ".0/24"


@cache
def hosting_asns() -> frozenset[int]:
    doc = yaml.safe_load(resources.files("distillguard").joinpath("rules/asn.yaml").read_text())
    return frozenset(int(a) for a in doc.get("hosting", {}))


class InfrastructureSignal(Signal):
    name: ClassVar[str] = "infrastructure"
    features: ClassVar[tuple[str, ...]] = (
        "n", "dc", "n_asn", "distinct_prefix", "distinct_device", "distinct_ua", "dc_share", "rotation",
        "ts_datacenter", "ts_rotation",
    )
    requires: ClassVar[tuple[str, ...]] = ("ip_prefix|ip|asn|device_fp|user_agent",)
    local: ClassVar[bool] = True
    population: ClassVar[tuple[str, ...]] = ('ts_datacenter', 'ts_rotation')
    tables: ClassVar[dict[str, TableSpec]] = {
        **{k: TableSpec(("account", "value"), {"n": "sum"}, _U) for k in ARTIFACT_COLUMNS},
        "acct": TableSpec(("account",), {"n": "sum", "dc": "sum", "n_asn": "sum"}, {"account": pl.UInt32}),
        "text": TableSpec(("value",), {"text": "min"}, TEXT_SPEC_DTYPES),
    }
    artifact_kinds: ClassVar[dict[str, ArtifactKind]] = {
        "prefix": ArtifactKind("IP prefix", bystander=True, origin=True),
        "device": ArtifactKind("device fingerprint", bystander=True, identity=True, origin=True),
        "ua": ArtifactKind("user agent", links=False),
    }

    def __init__(self, min_count: int = 3, min_share: float = 0.2) -> None:
        self.min_count = min_count
        self.min_share = min_share

    def enrich(self, batch: pl.DataFrame) -> pl.DataFrame:
        prefix = pl.coalesce(pl.col("ip_prefix"), network_of(pl.col("ip")))
        def h(e: pl.Expr, seed: int) -> pl.Expr:
            return pl.when(e.is_not_null()).then(e.hash(seed))

        return batch.select(
            inf_prefix_text=prefix,
            inf_prefix=h(prefix, 11),
            inf_device=h(pl.col("device_fp"), 12),
            inf_ua=h(pl.col("user_agent"), 13),
            inf_dc=pl.col("asn").is_in(list(hosting_asns())),
        )

    def update(self, state: State, rows: pl.DataFrame) -> State:
        t = self.tables
        out: State = {}
        for k in ARTIFACT_COLUMNS:
            out[k] = count_values(state, rows, t[k], k, f"inf_{k}")
        acct = grouped(
            rows,
            t["acct"],
            {"n": pl.len(), "dc": pl.col("inf_dc").fill_null(False).sum(), "n_asn": pl.col("asn").is_not_null().sum()},
        )
        out["acct"] = t["acct"].compact([state["acct"], acct])
        txt = [
            texts_seen(pl.col("inf_prefix"), pl.col("inf_prefix_text"), rows),
            texts_seen(pl.col("inf_device"), pl.col("device_fp"), rows),
            texts_seen(pl.col("inf_ua"), pl.col("user_agent"), rows),
        ]
        out["text"] = t["text"].compact([state["text"], *txt])
        return out

    def finalize(self, state: State, n_accounts: int) -> Finding:
        acct = state["acct"]
        feats = acct
        arts = []
        for k in ARTIFACT_COLUMNS:
            feats = feats.join(
                state[k].group_by("account").agg(**{f"distinct_{k}": pl.len()}), on="account", how="left"
            )
            arts.append(concentrated(state[k], acct.select("account", tot="n"), k, self.min_count, self.min_share))
        feats = feats.with_columns(
            dc_share=pl.when(pl.col("n_asn") > 0).then(pl.col("dc") / pl.col("n_asn")).otherwise(0.0),
            rotation=pl.when(pl.col("n") >= 20)
            .then(pl.col("distinct_device").fill_null(0) / pl.col("n"))
            .otherwise(0.0),
        )
        return Finding(self.with_population(feats), pl.concat(arts).cast(ARTIFACTS_SCHEMA), _explain, texts=state["text"])  # type: ignore[arg-type]

    def with_population(self, features: pl.DataFrame) -> pl.DataFrame:
        return features.with_columns(ts_datacenter=tail_score(pl.col("dc_share")), ts_rotation=tail_score(pl.col("rotation")))


def _explain(r: dict[str, Any]) -> list[str]:
    out = []
    if (r.get("ts_datacenter") or 0) >= 0.5 and (r.get("dc_share") or 0) >= 0.5:
        out.append(f"{r['dc_share']:.0%} of requests came from hosting-provider networks (datacenter ASNs)")
    if (r.get("ts_rotation") or 0) >= 1.0:
        out.append(
            f"{int(r['distinct_device'] or 0):,} distinct device fingerprints over {int(r['n']):,} requests"
        )
    return out
