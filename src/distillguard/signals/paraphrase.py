"""Paraphrase: near-duplicate prompts that survive rewording, within and across accounts.

A careful operator rewords every request (synonyms, reordered clauses, a varied opening
or closing, another language now and then), so no exact, head or tail fingerprint of
:mod:`~distillguard.signals.template_repetition` reaches a share worth noticing. The
*tasks* still recur: drawn from public instruction sets, the same task comes back
reworded across the fleet's accounts, and a reworded wrapper around changing tasks comes
back within each account. Each distinct prompt gets ``bands`` LSH keys of a MinHash of
its masked content words (:mod:`~distillguard.signals.minhash`): 8 bands of 3 rows. Of
3,000 corpus tasks reworded (synonyms, an opening or closing, all with a clause moved:
word-set Jaccard 0.71-0.86) 0.91-0.98 share a key with the original; with a pasted
sentence (Jaccard 0.57) 0.74 (``benchmarks/results/minhash.json``). More bands recall
more but cost a row per band per exchange in every fold.

Per account the state keeps two bounded tables of keys:

* ``cluster``: Misra-Gries heavy hitters (``top_k``): a near-duplicate cluster holding a
  large share of an account's prompts (``concentration``) is an artifact, like a template;
* ``sample``: the ``SAMPLE_K`` smallest keys the account sent, a bottom-k sample
  coordinated across accounts (a key is kept by every account that sent it and whose
  ``SAMPLE_K``-th smallest key is larger), so keys shared across accounts show in the
  samples. ``shared`` is the share of an account's sampled keys that at least
  ``min_sharers`` other accounts also hold, each such key an artifact.

Sharing alone is common (popular questions are asked by thousands, reworded), so the
features are tail scores against the population and the link step keeps a shared key
only when its carriers behave unlike it.

References: Broder, "On the resemblance and containment of documents" (1997); bottom-k
sketches: Cohen and Kaplan, "Summarizing data using bottom-k sketches" (PODC 2007).
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from distillguard.signals.base import (
    ARTIFACTS_SCHEMA,
    ArtifactKind,
    DType,
    Finding,
    Signal,
    State,
    TableSpec,
    concentrated,
    count_values,
    grouped,
    on_unique,
    tail_score,
)
from distillguard.signals.minhash import lsh_keys

_U: dict[str, DType] = {"account": pl.UInt32, "value": pl.UInt64}
# Keys kept per account in each table. ``cluster``: any key with over 1/33 of an account's
# prompts survives (the concentration that matters is 10% or more); ``sample``: 64 keys
# estimate a share to about +-6 points.
TOP_K = 32
SAMPLE_K = 64


def _bottom_k(rows: pl.DataFrame) -> pl.DataFrame:
    """Per account, the ``SAMPLE_K`` smallest keys with their summed counts: the bottom-k
    of a union is the bottom-k of the parts' bottom-k, so the merge is exact and associative."""
    g = rows.group_by("account", "value").agg(pl.col("n").sum()).sort("account", "value")
    return g.filter(pl.int_range(pl.len()).over("account") < SAMPLE_K)


class ParaphraseSignal(Signal):
    name: ClassVar[str] = "paraphrase"
    features: ClassVar[tuple[str, ...]] = (
        "n_prompts", "top_cluster", "top_cluster_value", "concentration", "n_sampled", "n_shared", "shared",
        "rank_concentration", "rank_shared",
    )
    requires: ClassVar[tuple[str, ...]] = ("prompt",)
    tables: ClassVar[dict[str, TableSpec]] = {
        "cluster": TableSpec(("account", "value"), {"n": "sum"}, _U, top_k=TOP_K),
        "sample": TableSpec(("account", "value"), {"n": "sum"}, _U, fold=_bottom_k),
        "acct": TableSpec(("account",), {"n": "sum"}, {"account": pl.UInt32}),
    }
    artifact_kinds: ClassVar[dict[str, ArtifactKind]] = {
        "para_cluster": ArtifactKind("reworded prompt template (near-duplicate prompts)", wording=True),
        # Evidence only: on the demo log, developers' popular coding questions collide with
        # harvesters' coding tasks, and linking on these keys tied 18 of them into campaigns.
        "para_shared": ArtifactKind("task reworded across accounts (near-duplicate prompt)", links=False, wording=True),
    }

    def __init__(
        self,
        bands: int = 8,
        rows: int = 3,
        min_words: int = 4,
        min_count: int = 5,
        min_share: float = 0.2,
        min_sharers: int = 2,
        max_carrier_share: float = 0.05,
        min_cap: int = 25,
    ) -> None:
        self.bands = bands
        self.rows = rows
        self.min_words = min_words
        self.min_count = min_count
        self.min_share = min_share
        self.min_sharers = min_sharers
        self.max_carrier_share = max_carrier_share
        self.min_cap = min_cap

    def state_params(self) -> dict[str, Any]:
        return {**super().state_params(), "sample.bottom_k": SAMPLE_K}

    def enrich(self, batch: pl.DataFrame) -> pl.DataFrame:
        def keys(u: pl.DataFrame) -> pl.DataFrame:
            return pl.DataFrame([lsh_keys(u["prompt"], self.bands, self.rows, self.min_words, "para_keys")])

        return on_unique(batch, "prompt", keys)

    def update(self, state: State, rows: pl.DataFrame) -> State:
        t = self.tables
        r = rows.select("account", value="para_keys").filter(pl.col("value").is_not_null())
        flat = r.select("account", pl.col("value").arr.to_list()).explode("value")
        out: State = {"cluster": count_values(state, flat, t["cluster"], "cluster", "value")}
        mine = flat.group_by("account", "value").agg(n=pl.len().cast(pl.Int64))
        out["sample"] = t["sample"].compact([state["sample"], _bottom_k(mine.cast(_U))])  # type: ignore[arg-type]
        acct = grouped(r, t["acct"], {"n": pl.len()})
        out["acct"] = t["acct"].compact([state["acct"], acct])
        return out

    def finalize(self, state: State, n_accounts: int) -> Finding:
        acct = state["acct"].rename({"n": "n_prompts"})
        totals = acct.select("account", tot="n_prompts")
        cl = state["cluster"]
        top = cl.group_by("account").agg(
            top_cluster=pl.col("n").max(),
            top_cluster_value=pl.col("value").sort_by(["n", "value"], descending=[True, False]).first(),
        )
        s = state["sample"]
        holders = s.group_by("value").agg(k=pl.len())
        active = max(acct.height, 1)
        # A key held by a large share of all accounts is a popular question, not a fleet's
        # task (small populations: any key held by up to ``min_cap`` accounts counts).
        cap = max(self.min_cap, int(self.max_carrier_share * active))
        s = s.join(holders, on="value").with_columns(
            shared=(pl.col("k") > self.min_sharers) & (pl.col("k") <= cap)
        )
        per = s.group_by("account").agg(n_sampled=pl.len(), n_shared=pl.col("shared").sum())
        feats = (
            acct.join(top, on="account", how="left")
            .join(per, on="account", how="left")
            .with_columns(pl.col("top_cluster", "n_sampled", "n_shared").fill_null(0))
            .with_columns(
                # Shares only speak once an account has sent enough prompts.
                concentration=pl.when(pl.col("n_prompts") >= 20)
                .then(pl.col("top_cluster").cast(pl.Float64) / pl.col("n_prompts"))
                .otherwise(0.0),
                shared=pl.when(pl.col("n_prompts") >= 20)
                .then(pl.col("n_shared").cast(pl.Float64) / pl.col("n_sampled").clip(lower_bound=1))
                .otherwise(0.0),
            )
        )
        # Tail ranks, not ``ts_`` scores: they do not feed the behaviour score yet. On the demo
        # log (seed 11) as ``ts_`` columns they flagged 18 benign accounts and no more attackers:
        # the median stealth account shares 20% of its keys, the median developer 31%.
        feats = feats.with_columns(
            rank_concentration=tail_score(pl.col("concentration")), rank_shared=tail_score(pl.col("shared"))
        )
        arts = [
            concentrated(cl, totals, "para_cluster", self.min_count, self.min_share),
            s.filter("shared").join(per, on="account").select(
                "account", kind=pl.lit("para_shared"), value="value", share=pl.col("n_shared") / pl.col("n_sampled")
            ),
        ]
        artifacts = pl.concat(arts).cast(ARTIFACTS_SCHEMA)  # type: ignore[arg-type]
        return Finding(feats, artifacts, _explain)


def _explain(r: dict[str, Any]) -> list[str]:
    out = []
    n = int(r.get("n_prompts") or 0)
    if (r.get("rank_concentration") or 0) >= 1.0 and n:
        top = int(r.get("top_cluster") or 0)
        s = f"{top:,} of {n:,} prompts ({top / n:.0%}) are rewordings of one prompt"
        out.append(s)
    if (r.get("rank_shared") or 0) >= 1.0 and r.get("n_sampled"):
        out.append(
            f"{r['shared']:.0%} of a sample of its prompts are reworded tasks that other accounts also sent "
            f"({int(r['n_shared'])} of {int(r['n_sampled'])} sampled near-duplicate keys)"
        )
    return out
