"""Score: account behaviour, campaigns, risk in [0, 1] and the policy's decision; numbers only.

*Behaviour* ``b`` is the sum of each signal's tail scores (``<signal>.ts_*``: how rare a
value this high is in the population, capped at ``cap``), so it is calibrated on the
population, not on constants. Campaigns come from :mod:`distillguard.hunt.link` and
:mod:`distillguard.hunt.cluster`. An account is flagged when it belongs to a campaign of
at least ``min_campaign`` accounts whose shared artifacts pass the population test at the
target false-positive rate. A lone outlier with no campaign is never flagged (enterprise
apps and eval runners are lone outliers); it is an ``outlier`` when it is in the top
``target_fpr`` of the population, and :class:`~distillguard.policy.Policy` decides what
that means. Evidence sentences are :mod:`distillguard.hunt.explain`'s.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import operator
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa

from distillguard.errors import ConfigError
from distillguard.hunt.cluster import components, drop_unlike_bystanders, rejoin_same_profile
from distillguard.hunt.config import HuntConfig
from distillguard.hunt.link import (
    CountTest,
    associates,
    declared_organisations,
    identity_components,
    outlier_pairs,
    shared_identity,
    shared_identity_without,
    test_artifacts,
)
from distillguard.signals.base import Finding
from distillguard.signals.registration import RegistrationSignal

__all__ = ["VOLUME", "Scored", "accounts_table", "join_features", "score"]

# Features the hunt itself reads, by their namespaced names (the temporal signal's).
VOLUME = "temporal.n"  # exchanges per account: below ``score.min_exchanges`` an account is not ranked
FIRST_DAY = "temporal.first_day"  # the day of an account's first request
CREATED = "registration.created_at"  # when the account registered
REISSUED = "registration.reissued"  # signed up on a phone number a week after its last earlier holder
# Tail scores that say an account harvests outputs (long, long for their prompt, in a targeted
# capability, reasoning or structure asked for): a pair of top accounts must (``link.outlier_pairs``).
HARVEST = ("output_harvesting.ts_mean_out", "output_harvesting.ts_out_in", "capability.ts_target",
           "elicitation.ts_elicit", "elicitation.ts_struct")  # fmt: skip
HARVEST_TAIL = 1.0  # -log10 units: the population's top tenth
ROTATION = "proxy_pool.rotation"  # operators whose networks an account used, once it sent enough to tell


@dataclass
class Scored:
    """What scoring found, before any sentence is written.

    ``feats``: one row per account with ``account, account_id``, every feature as
    ``<signal>.<feature>``, ``b`` (behaviour), ``ecdf`` (its rank), ``component``,
    ``campaign``, ``c_risk``, ``flagged``, ``risk``, ``outlier`` and ``decision``.
    ``campaigns``: one row per campaign (``component, size, strength, margin, campaign,
    c_risk``). The rest is what :mod:`distillguard.hunt.explain` quotes.
    """

    feats: pl.DataFrame
    campaigns: pl.DataFrame
    components: pl.DataFrame  # account -> component, for every linked account
    campaign_artifacts: pl.DataFrame
    member_artifacts: pl.DataFrame  # account, component, kind, value, k, neglog_p, inside: the above, per holder
    campaign_webs: pl.DataFrame
    web_ties: pl.DataFrame
    associated: pl.DataFrame
    meta: dict[str, Any]
    artifacts_tested: pl.DataFrame  # every shared artifact's test (k, m, u, w, neglog_p, cut, significant, test)
    webs_tested: pl.DataFrame  # every identity web's test
    # Taken out of a campaign: tied to it by networks alone, behaving unlike its members
    # (``account, campaign, distance, spread, feature``; :func:`~distillguard.hunt.cluster.drop_unlike_bystanders`),
    # and the campaign's values each of them holds (``account, kind, value, k, inside, neglog_p``).
    unlike: pl.DataFrame
    unlike_artifacts: pl.DataFrame
    # Kept out by the reissue rule alone (:func:`~distillguard.hunt.link.associates`): accounts
    # too new to rank on a campaign's number they took up a week after its last earlier holder
    # (``account, campaign, kind, value, k, inside``).
    reissue_only: pl.DataFrame
    # Campaigns of accounts at the very top of those outside every campaign, paired by a rare
    # wording and a rare origin (:func:`~distillguard.hunt.link.outlier_pairs`): ``account,
    # kind, value, k, inside, component``.
    outlier_pairs: pl.DataFrame


def join_features(findings: dict[str, Finding], index: pl.DataFrame) -> pl.DataFrame:
    """Every finding's features on one row per account, named ``<signal>.<feature>``.

    Namespaced, so two signals may use the same feature name without one hiding the other.
    """
    feats = index
    for name, f in findings.items():
        if f.features.height and "account" in f.features.columns:
            own = f.features.rename({c: f"{name}.{c}" for c in f.features.columns if c != "account"})
            taken = sorted(set(own.columns) & set(feats.columns) - {"account"})
            if taken:
                raise ConfigError(f"two findings are both named {name!r}: feature {taken[0]!r} twice")
            feats = feats.join(own, on="account", how="left")
    return feats


@contextmanager
def stage(timings: dict[str, float] | None, name: str) -> Iterator[None]:
    """Add the seconds the block took to ``timings[name]`` (profiling; nothing when None)."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0


@dataclass
class Linked:
    """One pass of link and cluster: every artifact's test, the significant identity webs
    (``account, web``), every web's test, the webs' ties, and ``account -> component``."""

    tested: pl.DataFrame
    webs: pl.DataFrame
    web_stats: pl.DataFrame
    ties: pl.DataFrame
    comp: pl.DataFrame
    unlike: pl.DataFrame  # members taken out: tied by networks alone, behaving unlike the campaign

    def with_second_pass(self, rest: Linked, min_campaign: int) -> Linked:
        """This pass plus the campaigns ``rest`` (a pass over the accounts outside this one's
        campaigns) found: their components and webs renumbered after this pass's, and the
        tests of artifacts significant only there."""
        new = rest.comp.filter(pl.len().over("component") >= min_campaign)
        if new.height == 0:
            return self
        c_off = int(self.comp["component"].max() or 0) + 1  # type: ignore[arg-type]
        w_off = int(self.web_stats["web"].max() or 0) + 1 if self.web_stats.height else 0  # type: ignore[arg-type]
        new = new.with_columns(pl.col("component") + c_off)
        comp = pl.concat([self.comp.join(new, on="account", how="anti"), new])
        webs2 = rest.webs.join(new.select("account"), on="account").with_columns(pl.col("web") + w_off)
        kept = webs2.select("web").unique()
        stats2 = rest.web_stats.with_columns(pl.col("web") + w_off).join(kept, on="web")
        ties2 = rest.ties.with_columns(pl.col("web") + w_off).join(kept, on="web")
        keys = ["kind", "value"]
        added = rest.tested.filter("significant").join(self.tested.filter("significant").select(keys), on=keys, how="anti")
        tested = pl.concat([self.tested.join(added.select(keys), on=keys, how="anti"), added], how="vertical_relaxed")
        unlike2 = rest.unlike.with_columns(pl.col("component") + c_off).filter(pl.col("component").is_in(new["component"].unique().implode()))
        return Linked(
            tested,
            pl.concat([self.webs, webs2]),
            pl.concat([self.web_stats, stats2], how="vertical_relaxed"),
            pl.concat([self.ties, ties2], how="vertical_relaxed"),
            comp,
            pl.concat([self.unlike.join(new, on="account", how="anti"), unlike2]),
        )


def _link(
    artifacts: pl.DataFrame,
    behaviour: pl.DataFrame,
    orgs: pl.DataFrame,
    profile: pl.DataFrame,
    config: HuntConfig,
    shared: tuple[pl.DataFrame, pl.DataFrame] | None,
    timings: dict[str, float] | None,
    began: pl.DataFrame | None = None,
) -> Linked:
    """Test the artifacts and identity webs against ``behaviour``'s population, then cluster
    (``began``: each account's first day, for :func:`~distillguard.hunt.link.began_together`)."""
    with stage(timings, "rescore.link.artifacts"):
        tested = declared_organisations(test_artifacts(artifacts, behaviour, config.link), artifacts, orgs)
    with stage(timings, "rescore.link.identity"):
        webs, web_stats, ties = identity_components(artifacts, behaviour, orgs, config.link, shared, profile, began)
    with stage(timings, "rescore.cluster"):
        comp = components(artifacts, tested, behaviour, config.link, ties=ties)
        own = comp.select("account", "own")
        comp = rejoin_same_profile(comp, profile, config.score)
        comp, unlike = drop_unlike_bystanders(comp, own, profile, config.score, config.min_campaign)
    return Linked(tested, webs, web_stats, ties, comp, unlike)


def first_requests(feats: pl.DataFrame) -> pl.DataFrame | None:
    """``account, day, dated, registered``: the day of each account's first request in the
    log (null before its first); whether that is the day it began (``dated``: it registered
    on or after the first day the log shows, so no request of it came before; null before
    its first); and when it registered, as its quantile among every account's registration
    time (``registered``, null where unknown).

    An account registered earlier may have been busy for months before the log opens: its
    requests start on the log's first days because the log does, and every such account
    "begins" there together. On variant-2027 at 0.5 (seed 4206) with the accounts table's
    ``org_id`` left empty, as a provider that records no organisations would have it, 1,144
    members of organisations (each a web of a company domain and card, ranking at the 66th
    percentile) joined campaigns as webs that "began" on the log's first three days
    (:func:`~distillguard.hunt.link.began_together`, which asks such webs for registrations
    close together as well).
    """
    if FIRST_DAY not in feats.columns:
        return None
    day = pl.col(FIRST_DAY)
    out = feats.select("account", day=day)
    if CREATED not in feats.columns:
        return out.with_columns(dated=pl.when(pl.col("day").is_not_null()).then(False), registered=pl.lit(None, pl.Float64))
    opened = out["day"].min()
    created = pl.col(CREATED)
    known = max(int(feats.select(created.is_not_null().sum()).item()), 1)
    inside = (created.dt.epoch("s") // 86400 >= opened).fill_null(False) if opened is not None else pl.lit(False)
    return feats.select(
        "account", day=day, dated=pl.when(day.is_not_null()).then(inside), registered=created.rank("average") / known
    )


def _count_meta(test: CountTest | None, joined: pl.DataFrame) -> dict[str, Any] | None:
    """A count test of association (``link.CountTest``) as ``campaigns.json`` meta carries it."""
    if test is None:
        return None
    out = {"observed": test.observed, "expected": round(test.expected, 6), "neglog10_p": round(test.neglog_p, 2),
           "joined": int(joined["account"].n_unique())}  # fmt: skip
    return out | ({"counted": test.counted} if test.counted else {})


def score(
    findings: dict[str, Finding],
    accounts: pl.DataFrame,
    index: pl.DataFrame,
    config: HuntConfig,
    now: dt.datetime | None = None,
    timings: dict[str, float] | None = None,
) -> Scored:
    """Join every finding, compute behaviour, link and cluster campaigns, risk and decisions.

    ``timings``: seconds per stage are added to it under ``rescore.*`` (profiling)."""
    with stage(timings, "rescore.join"):
        feats = join_features(findings, index)
    ts_cols = [c for c in feats.columns if c.split(".", 1)[-1].startswith("ts_")]
    n_col = VOLUME if VOLUME in feats.columns else None
    active = pl.col(n_col).fill_null(0) >= config.score.min_exchanges if n_col else pl.lit(True)
    # Added left to right, one column after another: ``sum_horizontal``'s order of addition
    # varied from run to run, so two hunts of one log disagreed in b's last bit.
    parts = [pl.col(c).fill_null(0.0).clip(0.0, config.score.cap) for c in ts_cols]
    feats = feats.with_columns(
        b=pl.when(active).then(functools.reduce(operator.add, parts) if parts else 0.0).otherwise(0.0)
    )
    behaviour = feats.filter(active).select("account", "b")
    arts = [f.artifacts for f in findings.values() if f.artifacts is not None and f.artifacts.height]
    # One buffer: findings patched cycle after cycle by the live re-score arrive in thousands
    # of chunks, and every join and group-by of the link step below pays for each.
    artifacts = pl.concat(arts, rechunk=True) if arts else pl.DataFrame(schema={"account": pl.UInt32, "kind": pl.String, "value": pl.UInt64, "share": pl.Float64})
    orgs = accounts.select("account", "org_id") if "org_id" in accounts.columns else accounts.select("account", org_id=pl.lit(None, pl.String))
    with stage(timings, "rescore.link.identity"):
        shared = shared_identity(artifacts, orgs, config.link)
    profile = feats.select("account", *ts_cols)
    began = first_requests(feats)
    linked = _link(artifacts, behaviour, orgs, profile, config, shared, timings, began)
    # Second pass, without the campaigns found: their members fill the top of the population
    # that every test measures against (in a log's first hours, or wherever campaigns are a
    # tenth of the active accounts), so a second campaign's accounts cannot look unusual
    # beside them. Measured against the accounts left, the second campaign stands out as the
    # first did; what the first pass found stays as it is.
    inside = linked.comp.filter(pl.len().over("component") >= config.min_campaign).select("account")
    if inside.height and behaviour.height > inside.height:
        with stage(timings, "rescore.link.identity"):
            shared_rest = shared_identity_without(shared, inside)
        rest = _link(
            artifacts.join(inside, on="account", how="anti"),
            behaviour.join(inside, on="account", how="anti"),
            orgs, profile, config, shared_rest, timings, began,
        )  # fmt: skip
        linked = linked.with_second_pass(rest, config.min_campaign)
    tested, webs, web_stats, ties, comp = linked.tested, linked.webs, linked.web_stats, linked.ties, linked.comp
    sig = tested.filter(pl.col("significant"))

    # Campaigns: components with enough accounts; strength = their strongest artifact.
    members = comp.join(feats.select("account", "account_id", "b"), on="account")
    sizes = members.group_by("component").agg(size=pl.len())
    held = artifacts.join(sig.select("kind", "value", "k", "m", "u", "w", "test", "neglog_p"), on=["kind", "value"]).join(comp, on="account")
    comp_arts = (
        held.group_by("component", "kind", "value")
        .agg(pl.col("k", "m", "u", "w", "test", "neglog_p").first(), inside=pl.len())
        .sort("component", "neglog_p", "k", "value", "kind", descending=[False, True, True, False, False])
    )
    # Which of those values each member holds: its own evidence names what tied it in.
    member_arts = held.select("account", "component", "kind", "value", "k", "neglog_p").join(
        comp_arts.select("component", "kind", "value", "inside"), on=["component", "kind", "value"]
    )
    # Strength: how far the strongest evidence clears its own significance cut (-log10 units).
    margin_a = sig.select("kind", "value", margin=pl.col("neglog_p") - pl.col("cut"))
    web_sig = web_stats.filter("significant").select(
        "web", "size", "n", "u", "seconded", "loose", "z", "rank_neglog_p", "feature", "feature_u", "feature_neglog_p", "neglog_p", "joined", "began", "by_registration",
        margin=pl.col("neglog_p") - pl.col("cut"),
    )
    comp_webs = webs.join(comp, on="account").select("web", "component").unique().join(web_sig, on="web")
    strength = pl.concat(
        [
            comp_arts.join(margin_a, on=["kind", "value"]).select("component", "neglog_p", "margin"),
            comp_webs.select("component", "neglog_p", "margin"),
        ]
    ).group_by("component").agg(strength=pl.col("neglog_p").max(), margin=pl.col("margin").max())
    camp = sizes.join(strength, on="component").filter(pl.col("size") >= config.min_campaign)
    # Accounts that slipped through join the campaign whose members hold their phone, card,
    # device or small mail domain (campaigns are fixed first: only rings of rotators make one, link._rotating_rings).
    with stage(timings, "rescore.link.associates"):
        reissued = feats.filter(pl.col(REISSUED)).select("account", kind=pl.lit(RegistrationSignal.reissued_kind)) if REISSUED in feats.columns else None
        tenured = (RegistrationSignal.reissued_kind,) if reissued is not None else ()
        operators = feats.select("account", n=pl.col(ROTATION)) if ROTATION in feats.columns else None
        own = int(comp.select(pl.col("component").max()).item() or 0) + 1 if comp.height else 0  # a campaign of rotating rings, where none rotates
        assoc, reissue_only, rings, senders, cohorts, roaming = associates(
            artifacts, comp.join(camp.select("component"), on="component"), behaviour, orgs, config.link, shared, reissued, tenured,
            operators, own,
        )  # fmt: skip
    if assoc.height:
        comp = pl.concat([comp.join(assoc, on="account", how="anti"), assoc.select("account", "component").unique()])
        members = comp.join(feats.select("account", "account_id", "b"), on="account")
        made_by = [t.neglog_p for t in (rings, roaming) if t is not None and t.passes(config.link.alpha / 2, config.link.count_chance_share)]
        if made_by and assoc.filter(pl.col("component") == own).height:
            # Its strength is the rings' count test (the stronger of the two that passed), its margin how far that clears its cut (half of ``alpha``).
            made = pl.DataFrame({"component": [own], "size": [0], "strength": [max(made_by)], "margin": [max(made_by) + math.log10(config.link.alpha / 2)]})
            camp = pl.concat([camp, made.cast(camp.schema)])  # type: ignore[arg-type]
        camp = camp.drop("size").join(members.group_by("component").agg(size=pl.len()), on="component").filter(pl.col("size") >= config.min_campaign)
    # The very top of the accounts left, in pairs that share a rare wording and a rare origin
    # (a disposable wave's first accounts, fewer than a campaign): each group a campaign.
    with stage(timings, "rescore.link.outlier_pairs"):
        outside = behaviour.join(comp.join(camp.select("component"), on="component"), on="account", how="anti")
        first = int(comp.select(pl.col("component").max()).item() or 0) + 1 if comp.height else 0
        harvest = [pl.col(c).fill_null(0.0) >= HARVEST_TAIL for c in HARVEST if c in feats.columns]
        outside = outside.join(feats.select("account", harvest=pl.any_horizontal(harvest) if harvest else pl.lit(False)), on="account")
        pairs, pair_count = outlier_pairs(artifacts, outside, config.target_fpr, config.link, max(first, own + 1))
    if pairs.height:
        made = pairs.select("account", "component").unique()
        comp = pl.concat([comp.join(made, on="account", how="anti"), made])
        members = comp.join(feats.select("account", "account_id", "b"), on="account")
        assert pair_count is not None
        margin = pair_count.neglog_p + math.log10(config.link.alpha / 2)
        pair_camps = made.group_by("component").agg(size=pl.len()).with_columns(
            strength=pl.lit(pair_count.neglog_p), margin=pl.lit(margin)
        )
        camp = pl.concat([camp, pair_camps.select(camp.columns).cast(camp.schema)])  # type: ignore[arg-type]
    camp = (
        camp.join(members.group_by("component").agg(first_id=pl.col("account_id").min()), on="component")
        .sort(["size", "first_id"], descending=[True, False])
        .with_row_index("rank", offset=1)
        .with_columns(
            campaign=pl.format("C{}", pl.col("rank").cast(pl.String).str.zfill(3)),
            c_risk=(0.5 + 0.5 * (1 - (-pl.col("margin").clip(0.0, None) / 20.0).exp())).clip(0.5, 1.0),
        )
    )
    feats = feats.join(comp, on="account", how="left").join(
        camp.select("component", "campaign", "c_risk"), on="component", how="left"
    )
    q_top = behaviour["b"].quantile(1.0 - config.target_fpr) if behaviour.height else None
    feats = feats.with_columns(ecdf=(pl.col("b").rank("max") / pl.col("b").count()).fill_null(0.0))
    feats = feats.with_columns(
        flagged=pl.col("campaign").is_not_null(),
        risk=pl.when(pl.col("campaign").is_not_null())
        .then(0.5 + (pl.col("c_risk") - 0.5) * (0.5 + 0.5 * pl.col("ecdf")))
        .otherwise(0.49 * pl.col("ecdf")),
    )
    outlier = pl.lit(q_top is not None) & (pl.col("b") >= (q_top if q_top is not None else math.inf)) & (pl.col("b") > 0)
    feats = feats.with_columns(outlier=outlier).with_columns(
        decision=config.policy.expr(pl.col("flagged"), pl.col("risk"), pl.col("outlier"))
    )

    meta = {
        "generated_at": (now or dt.datetime.now(dt.UTC)).isoformat(),
        "accounts": feats.height,
        "artifacts_tested": int((tested["k"] >= config.link.min_carriers).sum()) if tested.height else 0,
        "artifacts_significant": sig.height,
        "identity_webs_significant": web_sig.height,
        # Of those, unions of webs too weak alone that began on one day (``link.began_together``).
        "identity_webs_began_together": web_sig.filter(pl.col("joined").is_not_null()).height,
        "accounts_associated": assoc["account"].n_unique(),
        # Rings of rotators outside every campaign against the ordinary rate (``link._rotating_rings``),
        # and rotators sending a campaign's script line against the ordinary rate of sending one
        # (``link._rotating_senders``).
        "rotating_rings": _count_meta(rings, assoc.filter(pl.col("by_rotation") & ~pl.col("by_roaming") & ~pl.col("kind").is_in(list(config.link.signature)))),
        # Rings left by that count every holder of which used as many operators' networks as a bar below the rotators' (``link._roaming_rings``).
        "roaming_rings": _count_meta(roaming, assoc.filter(pl.col("by_roaming"))),
        "rotating_senders": _count_meta(senders, assoc.filter(pl.col("by_rotation") & pl.col("kind").is_in(list(config.link.signature)))),
        # High-ranked accounts that signed up beside a member against the others' rate (``link._signup_cohorts``).
        "signup_cohorts": _count_meta(cohorts, assoc.filter(pl.col("kind").is_in(list(config.link.cohort)))),
        # Accounts at the top of those outside every campaign, paired by a rare wording and origin (``link.outlier_pairs``).
        "outlier_pairs": _count_meta(pair_count, pairs),
        "behaviour_quantile_high": float(tested["q_high"][0]) if tested.height else None,
        "params": {
            "target_fpr": config.target_fpr,
            "min_campaign": config.min_campaign,
            **dataclasses.asdict(config.link),
            "score": dataclasses.asdict(config.score),
            "policy": dataclasses.asdict(config.policy),
        },
    }
    unlike = linked.unlike.join(comp, on="account", how="anti").join(camp.select("component", "campaign"), on="component")
    unlike_arts = (
        artifacts.join(unlike.select("account", "component"), on="account")
        .join(comp_arts.select("component", "kind", "value", "k", "inside", "neglog_p"), on=["component", "kind", "value"])
        .select("account", "kind", "value", "k", "inside", "neglog_p")
    )
    meta["accounts_unlike_campaign"] = unlike.height
    reissue_only = reissue_only.join(camp.select("component", "campaign"), on="component").select("account", "campaign", "kind", "value", "k", "inside")
    meta["accounts_held_on_reissued_numbers"] = reissue_only["account"].n_unique()
    return Scored(
        feats, camp, comp, comp_arts, member_arts, comp_webs, ties, assoc, meta, tested, web_stats,
        unlike.select("account", "campaign", "distance", "spread", "feature"), unlike_arts, reissue_only, pairs,
    )  # fmt: skip


def accounts_table(feats: pl.DataFrame) -> pa.Table:
    return (
        feats.select(
            "account_id",
            pl.col("risk").fill_null(0.0).clip(0.0, 1.0),
            pl.col("flagged").fill_null(False),
            "campaign",
            "evidence",
            "decision",
        )
        .sort("account_id")
        .to_arrow()
    )
