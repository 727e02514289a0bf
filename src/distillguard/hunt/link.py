"""Link: which shared artifacts tie accounts into one campaign.

An artifact (a template, an IP prefix, a device fingerprint, an email domain, a sign-up
hour, a model-adoption window) is evidence only if the accounts sharing it behave unlike
the population. For each artifact with ``k`` carriers, ``m`` of which rank in the
population's top ``1 - high_quantile`` for scripted behaviour, the chance of seeing
``m`` or more such carriers among ``k`` accounts drawn at random from the population is
a binomial tail. An artifact is *significant* when that chance, Bonferroni-corrected
for the number of artifacts tested, stays under ``alpha`` and most of its carriers are
unusual. A university NAT (ordinary people) or a popular SDK fingerprint fails the
test however many accounts share it; a proxy pool or a harvesting template passes it.

Campaigns are the connected components of the bipartite graph accounts–significant
artifacts, over carriers that are themselves above the population median.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.stats import binom


@dataclass(frozen=True)
class LinkParams:
    high_quantile: float = 0.9
    link_quantile: float = 0.5
    min_carriers: int = 3
    min_high_share: float = 0.5
    alpha: float = 0.01


def test_artifacts(artifacts: pl.DataFrame, behaviour: pl.DataFrame, p: LinkParams) -> pl.DataFrame:
    """Score each artifact ``(kind, value)``; ``behaviour`` has ``account, b``.

    Returns one row per artifact with ``k``, ``m``, ``neglog_p`` and ``significant``.
    """
    if artifacts.height == 0 or behaviour.height == 0:
        return pl.DataFrame(
            schema={"kind": pl.String, "value": pl.UInt64, "k": pl.UInt32, "m": pl.UInt32,
                    "neglog_p": pl.Float64, "significant": pl.Boolean}
        )  # fmt: skip
    q_high = behaviour["b"].quantile(p.high_quantile)
    assert q_high is not None
    # Strictly above: ties at the quantile (e.g. many identical scores) are not "unusual".
    base = float(np.mean(behaviour["b"].to_numpy() > q_high))
    base = min(max(base, 1e-6), 1.0 - 1e-6)
    a = artifacts.join(behaviour.select("account", high=pl.col("b") > q_high), on="account", how="inner")
    g = a.group_by("kind", "value").agg(k=pl.len().cast(pl.UInt32), m=pl.col("high").sum().cast(pl.UInt32))
    k = g["k"].to_numpy().astype(np.int64)
    m = g["m"].to_numpy().astype(np.int64)
    with np.errstate(divide="ignore"):
        logp = binom.logsf(m - 1, k, base) / np.log(10.0)
    neglog_p = np.minimum(-logp, 300.0)
    tested = int((k >= p.min_carriers).sum())
    cut = -np.log10(p.alpha / max(tested, 1))
    sig = (k >= p.min_carriers) & (m >= p.min_high_share * k) & (neglog_p >= cut)
    return g.with_columns(
        neglog_p=pl.Series(neglog_p), significant=pl.Series(sig), cut=pl.lit(float(cut)), q_high=pl.lit(float(q_high))
    )


def components(
    artifacts: pl.DataFrame, tested: pl.DataFrame, behaviour: pl.DataFrame, p: LinkParams
) -> pl.DataFrame:
    """``account -> component`` over carriers of significant artifacts above the link quantile."""
    q_link = behaviour["b"].quantile(p.link_quantile)
    sig = tested.filter(pl.col("significant")).select("kind", "value").with_row_index("node")
    edges = artifacts.join(sig, on=["kind", "value"]).join(
        behaviour.filter(pl.col("b") >= q_link).select("account"), on="account"
    )
    if edges.height == 0:
        return pl.DataFrame(schema={"account": pl.UInt32, "component": pl.Int64})
    accts = edges["account"].unique().sort()
    local = pl.DataFrame({"account": accts, "i": np.arange(accts.len())})
    e = edges.join(local, on="account")
    n_a, n_n = accts.len(), sig.height
    rows = e["i"].to_numpy()
    cols = e["node"].to_numpy().astype(np.int64) + n_a
    adj = sparse.coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n_a + n_n, n_a + n_n))
    _, labels = connected_components(adj, directed=False)
    return local.with_columns(component=pl.Series(labels[:n_a]).cast(pl.Int64)).select("account", "component")
