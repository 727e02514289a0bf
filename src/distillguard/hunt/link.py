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

The top tenth holds a tenth of the ranked accounts, so where fleets outnumber it (a
log's first hours, when a few fleets are a third of the accounts active) a fleet cannot
have most of its members there however scripted it is. A linking artifact is therefore
also tested on its carriers' mean behaviour rank (the identity webs' statistic), with
the half rule one tail wider: most carriers in the top ``1 - rank_quantile``.

Artifacts that unrelated actors share by nature (user agents, model-launch windows,
sign-up hours; each signal declares which of its kinds link) support a campaign's
evidence but never link accounts, so two campaigns that both jump on a new model the day
it launches stay two campaigns. :mod:`distillguard.hunt.cluster` turns the significant
links into campaigns.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import polars as pl
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.stats import binom, norm, poisson

from distillguard.hunt.config import LinkParams


def test_artifacts(artifacts: pl.DataFrame, behaviour: pl.DataFrame, p: LinkParams) -> pl.DataFrame:
    """Score each artifact ``(kind, value)``; ``behaviour`` has ``account, b``.

    Returns one row per artifact with ``k``, ``m``, ``neglog_p`` and ``significant``; ``u``
    (the carriers' mean behaviour rank), ``w`` (carriers in the top ``1 - rank_quantile``)
    and ``test``: ``"tail"`` where the binomial test passed, ``"rank"`` where only the
    rank test did (its p is then ``neglog_p``), null where neither did.

    Rank test (linking kinds only): under the null the carriers' ranks are uniform, so
    ``z = (u - 1/2) sqrt(12 k)``; held to half the tail test's ``alpha`` (together under 1.5
    ``alpha``), and most carriers in the top ``1 - rank_quantile``. Why: at hour 5 of the
    demo, 102 of the 240 ranked accounts are campaign members and 24 make the top tenth; the
    naive fleet has 8 of its 29 there (the half rule fails) while its template's 46 carriers
    average the 82nd percentile, p = 10^-13.8 by their mean rank
    (``benchmarks/results/unseen/rank/tests-demo11-h5.json``).
    """
    if artifacts.height == 0 or behaviour.height == 0:
        return pl.DataFrame(
            schema={"kind": pl.String, "value": pl.UInt64, "k": pl.UInt32, "m": pl.UInt32, "u": pl.Float64,
                    "w": pl.UInt32, "neglog_p": pl.Float64, "significant": pl.Boolean, "test": pl.String,
                    "cut": pl.Float64, "q_high": pl.Float64}
        )  # fmt: skip
    q_high = behaviour["b"].quantile(p.high_quantile)
    assert q_high is not None
    # Strictly above: ties at the quantile (e.g. many identical scores) are not "unusual".
    base = float(np.mean(behaviour["b"].to_numpy() > q_high))
    base = min(max(base, 1e-6), 1.0 - 1e-6)
    ranked = behaviour.select("account", high=pl.col("b") > q_high, u=_rank())
    g = _carriers(artifacts, ranked.with_columns(wide=pl.col("u") > p.rank_quantile))
    k = g["k"].to_numpy().astype(np.int64)
    m = g["m"].to_numpy().astype(np.int64)
    with np.errstate(divide="ignore"):
        logp = binom.logsf(m - 1, k, base) / np.log(10.0)
    neglog_p = np.minimum(-logp, 300.0)
    tested = int((k >= p.min_carriers).sum())
    cut = -np.log10(p.alpha / max(tested, 1))
    tail = (k >= p.min_carriers) & (m >= p.min_high_share * k) & (neglog_p >= cut)
    rank_p = mean_rank_neglog_p(g["u"].to_numpy(), k)
    links = ~g["kind"].is_in(list(p.supporting)).to_numpy()
    w = g["w"].to_numpy().astype(np.int64)
    rank = links & ~tail & (k >= p.min_carriers) & (w >= p.min_high_share * k) & (rank_p >= cut + np.log10(2.0))
    return g.with_columns(
        neglog_p=pl.Series(np.where(rank, rank_p, neglog_p)),
        significant=pl.Series(tail | rank),
        test=pl.when(pl.Series(tail)).then(pl.lit("tail")).when(pl.Series(rank)).then(pl.lit("rank")),
        cut=pl.lit(float(cut)),
        q_high=pl.lit(float(q_high)),
    )


def declared_organisations(tested: pl.DataFrame, artifacts: pl.DataFrame, orgs: pl.DataFrame) -> pl.DataFrame:
    """``tested`` with every significant artifact held only by one declared organisation's
    members set not significant (``test`` ``"org"``): its card, its domain, its office
    network or its internal tool's prompt show the organisation, which says it is one.

    Why: the identity webs never counted such artifacts (:func:`shared_identity`), but the
    links did. On tactics-2026 (seed 2602, held out) an organisation of 21 developers
    sharing its office /24, its card and its domain averaged the 79th percentile of a
    population that is two thirds casual users, so the three passed the rank test and the
    organisation was called a campaign (10 % of that trap). Its members still speak for
    themselves: an organisation whose accounts harvest is flagged by what else they share.
    """
    sig = tested.filter("significant").select("kind", "value")
    if sig.height == 0 or orgs.height == 0:
        return tested
    held = artifacts.join(sig, on=["kind", "value"], how="semi").select("account", "kind", "value").join(orgs, on="account", how="left")
    one_org = _org_counts(held).filter("one_org").select("kind", "value", org=pl.lit(True))
    if one_org.height == 0:
        return tested
    out = tested.join(one_org, on=["kind", "value"], how="left", maintain_order="left")
    return out.with_columns(
        significant=pl.col("significant") & pl.col("org").is_null(),
        test=pl.when(pl.col("org").is_not_null()).then(pl.lit("org")).otherwise(pl.col("test")),
    ).drop("org")


def _rank() -> pl.Expr:
    """Each account's behaviour rank in (0, 1), the uniform variable both rank tests average."""
    return (pl.col("b").rank("average") - 0.5) / pl.col("b").count()


def mean_rank_neglog_p(u: np.ndarray, n: np.ndarray) -> np.ndarray:
    """-log10 of the chance that ``n`` accounts drawn at random average a behaviour rank of
    ``u`` or more (ranks uniform on (0, 1): ``z = (u - 1/2) sqrt(12 n)``), capped at 300."""
    out: np.ndarray = np.minimum(-norm.logsf((u - 0.5) * np.sqrt(12.0 * n)) / np.log(10.0), 300.0)
    return out


def _carriers(artifacts: pl.DataFrame, ranked: pl.DataFrame) -> pl.DataFrame:
    """``kind, value, k, m, u, w``: each artifact's ranked carriers (``ranked``: ``account,
    high, u, wide``), how many are high, their mean rank ``u`` and how many are wide; one
    row per artifact, sorted by kind and value.

    Counted with numpy, one kind at a time (a sort of its values), because this runs twice
    per re-score over every artifact: at 196,017 accounts (1.75 million rows) the polars
    join and group-by on ``(kind, value)`` took 0.54 s, this 0.39 s, measured side by side.
    """
    n = max(int(artifacts["account"].max()), int(ranked["account"].max())) + 1  # type: ignore[arg-type]
    acct = ranked["account"].to_numpy()
    flag = np.full(n, -1, dtype=np.int8)  # -1: not ranked, so not counted
    flag[acct] = ranked["high"].to_numpy().astype(np.int8)
    rank = np.zeros(n)
    rank[acct] = ranked["u"].to_numpy()
    wide = np.zeros(n, dtype=np.int8)
    wide[acct] = ranked["wide"].to_numpy().astype(np.int8)
    at = artifacts["account"].to_numpy()
    h = flag[at]
    kinds = sorted(artifacts["kind"].unique().to_list())
    code = artifacts["kind"].cast(pl.Enum(kinds)).to_physical().to_numpy()
    values = artifacts["value"].to_numpy()
    is_ranked = h >= 0
    schema = {"kind": pl.String, "value": pl.UInt64, "k": pl.UInt32, "m": pl.UInt32, "u": pl.Float64, "w": pl.UInt32}
    parts = [pl.DataFrame(schema=schema)]
    for c, kind in enumerate(kinds):
        sel = is_ranked & (code == c)
        if sel.any():
            uniq, inv, k = np.unique(values[sel], return_inverse=True, return_counts=True)
            m = np.bincount(inv, weights=h[sel], minlength=len(uniq))
            u = np.bincount(inv, weights=rank[at[sel]], minlength=len(uniq)) / k
            w = np.bincount(inv, weights=wide[at[sel]], minlength=len(uniq))
            parts.append(
                pl.DataFrame({"value": uniq, "k": k.astype(np.uint32), "m": m.astype(np.uint32), "u": u, "w": w.astype(np.uint32)})
                .select(pl.lit(kind, pl.String).alias("kind"), "value", "k", "m", "u", "w")
            )  # fmt: skip
    return pl.concat(parts)


def identity_components(
    artifacts: pl.DataFrame,
    behaviour: pl.DataFrame,
    orgs: pl.DataFrame,
    p: LinkParams,
    shared: tuple[pl.DataFrame, pl.DataFrame] | None = None,
    profile: pl.DataFrame | None = None,
    began: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Webs of accounts that share identity artifacts, kept when their members behave unusually.

    Stealthy campaigns keep each account under every per-account threshold, but an operator
    reuses phones, cards, devices and domains across its accounts. Accounts are joined
    through identity artifacts held by at most ``identity_max_share`` of the population (so
    a webmail domain or an SDK fingerprint joins nothing) and not explained by a declared
    organisation (``orgs``: ``account, org_id``). A member firmly held has ``identity_min_ties``
    of them, or one and a script line that another holder of it sends too (:func:`_seconded`);
    a loose one holds one alone, a ring of fewer than ``identity_testable`` that a firm member
    holds too, and counts in its web's test but is returned only where it ranks at or above
    ``link_quantile`` (:func:`_drop_ordinary_loose`; one too new to rank is left to association).
    Each web of at least ``min_campaign`` accounts is then tested as a whole: under the
    null its members' behaviour ranks are uniform, so the mean rank ``U`` of ``n`` members
    gives ``z = (U - 1/2) sqrt(12 n)``, held to Holm's step-down over the webs tested
    (:func:`holm`). Where ``profile`` (``account`` and one column per behaviour feature) is
    given, the web is also tested on the one feature its members share most
    (:func:`profile_neglog_p`), at half the cut. Where ``began`` (``account, day``: the day
    of its first request) is given, webs that fail alone and began on one day are then tested
    together (:func:`began_together`).

    Returns ``(account, web)`` for accounts in significant webs, one row per web tested
    (``n, u, seconded, loose, accounts, z, rank_neglog_p, feature, feature_u, feature_neglog_p, neglog_p,
    cut, significant``; ``seconded``: members held by one identity artifact and a script line,
    ``loose``: by one identity artifact alone; ``accounts``: every member, so a web that
    failed can be named to a reviewer;
    ``rank_neglog_p`` the mean rank test's, ``feature*`` the profile test's, ``neglog_p`` the
    better of the two that Holm's cut judges), and the web's ties ``(account, kind, value, web)``.
    """
    empty = pl.DataFrame(schema={"account": pl.UInt32, "web": pl.Int64})
    stats_empty = pl.DataFrame(
        schema={"web": pl.Int64, "size": pl.UInt32, "n": pl.UInt32, "u": pl.Float64, "seconded": pl.UInt32, "loose": pl.UInt32,
                "accounts": pl.List(pl.UInt32), "z": pl.Float64,
                "rank_neglog_p": pl.Float64, "feature": pl.String, "feature_u": pl.Float64, "feature_neglog_p": pl.Float64,
                "neglog_p": pl.Float64, "cut": pl.Float64, "significant": pl.Boolean, "joined": pl.UInt32, "began": pl.Int32,
                "by_registration": pl.UInt32}
    )  # fmt: skip
    ties_empty = pl.DataFrame(schema={"account": pl.UInt32, "kind": pl.String, "value": pl.UInt64, "web": pl.Int64})
    n_pop = behaviour.height
    if artifacts.height == 0 or n_pop == 0:
        return empty, stats_empty, ties_empty
    kmax = max(p.min_campaign * 2, int(p.identity_max_share * n_pop))
    ident, keep = _shared_identity(artifacts, orgs, p, kmax, shared)
    ranks = behaviour.select("account", u=_rank())
    keep = _unusual_carriers(ident.join(keep.select("kind", "value"), on=["kind", "value"]), ranks, p)
    edges = ident.join(keep, on=["kind", "value"]).select("account", "kind", "value")
    signed = _unusual_signatures(artifacts, ranks, p)
    # Keep accounts tied by at least two shared artifacts: one coincidence (a popular
    # regional mail domain, a recycled phone number) is not common control. A signature
    # sent by another holder of the same artifact is the second (:func:`_seconded`). A ring
    # of fewer than ``identity_testable`` that one such firm account holds brings its other
    # holders too, loose (:func:`_drop_ordinary_loose`): an operator that cuts its identities
    # into rings of two to five, one card or one phone each, is one web only through the
    # accounts that hold two.
    edges = edges.filter(pl.len().over("kind", "value") >= 2)
    for _ in range(10):
        before = edges.height
        firm = _held_firmly(edges, signed, p)
        small = edges.filter(pl.len().over("kind", "value") < p.identity_testable)
        ring = small.join(firm, on="account").select("kind", "value").unique()
        loose_ties = edges.join(firm, on="account", how="anti").join(ring, on=["kind", "value"])
        edges = pl.concat([edges.join(firm, on="account"), loose_ties]).filter(pl.len().over("kind", "value") >= 2)
        if edges.height == before:
            break
    firm = _held_firmly(edges, signed, p)
    ties_of = edges.group_by("account").agg(n=pl.len())
    # The accounts kept on one identity tie and a script line: a reviewer reads how many.
    seconded = ties_of.filter(pl.col("n") < p.identity_min_ties).join(firm, on="account").select("account", second=pl.lit(1))
    loose = ties_of.join(firm, on="account", how="anti").select("account", loose=pl.lit(1))
    # Candidate groups a signal found (proxy pools) join whole, one tie each; the web test
    # judges them, and their members are held by the group, never loose.
    groups = artifacts.filter(pl.col("kind").is_in(list(p.group))).select("account", "kind", "value")
    groups = groups.filter(pl.len().over("kind", "value") >= 2)
    loose = loose.join(groups.select("account"), on="account", how="anti")
    edges = pl.concat([edges, groups])
    if edges.height == 0:
        return empty, stats_empty, ties_empty
    nodes = edges.select("kind", "value").unique(maintain_order=True).with_row_index("node")
    accts = edges["account"].unique().sort()
    local = pl.DataFrame({"account": accts, "i": np.arange(accts.len())})
    e = edges.join(nodes, on=["kind", "value"]).join(local, on="account")
    n_a = accts.len()
    size = n_a + nodes.height
    adj = sparse.coo_matrix(
        (np.ones(e.height, dtype=np.int8), (e["i"].to_numpy(), e["node"].to_numpy().astype(np.int64) + n_a)),
        shape=(size, size),
    )
    _, labels = connected_components(adj, directed=False)
    webs = local.with_columns(web=pl.Series(labels[:n_a]).cast(pl.Int64)).select("account", "web")
    webs, joins = join_rings(webs, artifacts, ranks, p)
    edges = pl.concat([edges, joins])
    # Only members with enough traffic to be ranked speak; the rest (accounts just
    # registered with a reused phone and card) ride with the web's verdict.
    stats = (
        webs.join(ranks, on="account", how="left")
        .join(seconded, on="account", how="left")
        .join(loose, on="account", how="left")
        .group_by("web")
        .agg(
            size=pl.len().cast(pl.UInt32), n=pl.col("u").count().cast(pl.UInt32), u=pl.col("u").mean(),
            seconded=pl.col("second").count().cast(pl.UInt32), loose=pl.col("loose").count().cast(pl.UInt32),
            accounts=pl.col("account").sort(),
        )
        .with_columns(
            u=pl.col("u").fill_null(0.5),
            z=((pl.col("u").fill_null(0.5) - 0.5) * (12.0 * pl.col("n").cast(pl.Float64)).sqrt()),
        )
    )
    testable = (pl.col("size") >= p.min_campaign) & (pl.col("n") >= 2)
    neglog_p = mean_rank_neglog_p(stats["u"].to_numpy(), stats["n"].to_numpy().astype(np.float64))
    stats = stats.with_columns(rank_neglog_p=pl.Series(neglog_p)).join(profile_neglog_p(webs, behaviour, profile), on="web", how="left")
    # The profile test at half the cut (the two together under 1.5 ``alpha``, as the rank
    # test beside the tail test in :func:`test_artifacts`).
    best = np.maximum(neglog_p, stats["feature_neglog_p"].fill_null(0.0).to_numpy() - np.log10(2.0))
    stats = holm(stats.with_columns(neglog_p=pl.Series(best), testable=testable), p.alpha)
    together, joined = began_together(stats, began, p)
    stats = pl.concat([stats_empty, stats, together], how="diagonal_relaxed").select(stats_empty.columns)
    if together.height:
        webs = pl.concat([webs, joined.select("account", "web")])
    sig = stats.filter("significant").select("web")
    members = _drop_ordinary_loose(webs.join(sig, on="web"), loose, ranks, p)
    ties = edges.join(members, on="account")
    if together.height:
        # The day the union's webs began is what ties them: the one value all of them hold.
        day = joined.join(members, on=["account", "web"]).select("account", kind=pl.lit(BEGAN_KIND), value=pl.col("day").cast(pl.UInt64), web="web")
        ties = pl.concat([ties, day.cast(dict(ties.schema))])  # type: ignore[arg-type]
    return members, stats, ties


# The tie that joins the webs :func:`began_together` unites: the day they began.
BEGAN_KIND = "began_on_day"


def began_together(stats: pl.DataFrame, began: pl.DataFrame | None, p: LinkParams) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Webs that failed alone (``stats``: every web's test, with ``accounts``), tested as one
    where they began on the same day (``began``: ``account, day`` of each account's first
    request, null before it; ``dated``: that day is when it began, not when the log opened;
    ``registered``: its registration time's quantile, see
    :func:`~distillguard.hunt.score.first_requests`; a web's day is its members' median).

    Why: an operator that cuts its identities into cells of two to six accounts, none
    sharing anything with another, leaves each cell a web too small to clear the test (on
    variant-2027, seed 4202, the office fleet's 24 first active accounts made five webs of two
    to six, mean ranks 0.67 to 0.79, none significant at hour 150) and nothing joins the
    cells (:func:`join_rings` needs a pool, a script line or a clock they share). Cells put to
    work at once begin on one day. Which webs are united is fixed by the day alone, never
    by their ranks, so under the null the union's members rank uniformly and the mean rank
    test holds; the unions are a second family of tests, held by Holm to half of ``alpha``.
    A union that passes takes in its webs whose own members average above the median (a
    family's card that began that day does not ride in on the fleet's test).

    A web whose members registered before the log opened has no known beginning: its first
    requests fall on the log's first days because the log starts there, as every busy
    account's do. Such a web is united by its day only where its members also registered
    together, closer than ``registered_together`` of random draws from the population would
    (:func:`registered_together`): an aged fleet's cells were registered in one batch, an
    organisation's members joined it over years. On variant-2027 at 0.5 (seed 4206) with
    ``org_id`` left empty, unions of the first three days took in 1,144 organisation members
    without that condition.

    Returns the unions' test rows (``web`` numbered after every web, ``joined``: the webs
    united, ``by_registration``: how many of them by registering together, ``began``: the day;
    ``significant`` where they passed) and, for the unions that
    passed, ``account, web, day`` of the members they take in.
    """
    joined_empty = pl.DataFrame(schema={"account": pl.UInt32, "web": pl.Int64, "day": pl.Int32})
    if began is None or stats.height < 2:
        return stats.clear(), joined_empty
    failed = stats.filter(~pl.col("significant") & (pl.col("size") >= 2) & (pl.col("n") >= 1))
    began = began if "dated" in began.columns else began.with_columns(dated=pl.lit(True))
    began = began if "registered" in began.columns else began.with_columns(registered=pl.lit(None, pl.Float64))
    day = (
        failed.select("web", account="accounts").explode("account")
        .join(began.select("account", "day", "dated", "registered"), on="account")
        .group_by("web").agg(
            day=pl.col("day").median().floor().cast(pl.Int32), dated=pl.col("dated").mean(),
            together=registered_together(pl.col("registered").count(), pl.col("registered").max() - pl.col("registered").min()),
        )
        # Half its members began in the log, or (registered before it opened, so their
        # first day in it may be the log's, not theirs) they registered together.
        .with_columns(by_registration=pl.col("dated") < 0.5)
        .filter(pl.col("day").is_not_null() & (~pl.col("by_registration") | (pl.col("together") <= p.registered_together)))
        .select("web", "day", "by_registration")
    )  # fmt: skip
    cells = failed.join(day, on="web").filter(pl.len().over("day") >= 2)
    if cells.height == 0:
        return stats.clear(), joined_empty
    first = int(stats["web"].max() or 0) + 1  # type: ignore[arg-type]
    unions = (
        cells.group_by("day")
        .agg(
            size=pl.col("size").sum(), n=pl.col("n").sum(), u=(pl.col("u") * pl.col("n")).sum() / pl.col("n").sum(),
            seconded=pl.col("seconded").sum(), loose=pl.col("loose").sum(), joined=pl.len().cast(pl.UInt32),
            by_registration=pl.col("by_registration").sum().cast(pl.UInt32),
            accounts=pl.col("accounts").explode().sort(),
        )
        .sort("day")
        .with_row_index("web", offset=first)
        .with_columns(pl.col("web").cast(pl.Int64), z=(pl.col("u") - 0.5) * (12.0 * pl.col("n").cast(pl.Float64)).sqrt())
    )
    neglog_p = mean_rank_neglog_p(unions["u"].to_numpy(), unions["n"].to_numpy().astype(np.float64))
    unions = unions.with_columns(rank_neglog_p=pl.Series(neglog_p), neglog_p=pl.Series(neglog_p))
    testable = (pl.col("size") >= p.min_campaign) & (pl.col("n") >= 2)
    unions = holm(unions.with_columns(testable=testable), p.alpha / 2).rename({"day": "began"})
    passed = unions.filter("significant").select("web", day="began")
    taken = cells.filter(pl.col("u") > 0.5).select(account="accounts", day="day").join(passed, on="day")
    joined = taken.explode("account").select("account", "web", "day")
    return unions.cast({"size": pl.UInt32, "n": pl.UInt32, "seconded": pl.UInt32, "loose": pl.UInt32}), joined


def registered_together(n: pl.Expr, spread: pl.Expr) -> pl.Expr:
    """The chance that ``n`` accounts drawn at random from the population registered within
    ``spread`` of each other, ``spread`` the range of their registration quantiles: the range
    ``R`` of ``n`` uniform draws has ``P(R <= r) = n r^(n-1) - (n-1) r^n``. Uniform on [0, 1]
    for webs of strangers (an organisation's members, who joined it over years); small for a
    fleet's cells, registered in one batch or bought aged from one seller. One where fewer
    than two registration times are known."""
    r = spread.clip(0.0, 1.0)
    nf = n.cast(pl.Float64)
    return pl.when(n >= 2).then(nf * r.pow(nf - 1.0) - (nf - 1.0) * r.pow(nf)).otherwise(1.0)


def _held_firmly(edges: pl.DataFrame, signed: pl.DataFrame, p: LinkParams) -> pl.DataFrame:
    """``account`` of ``edges``' holders with ``identity_min_ties`` shared identity artifacts,
    or one and a signature another holder of it sends (:func:`_seconded`)."""
    held = pl.len().over("account") + pl.col("account").is_in(_seconded(edges, signed).implode()).cast(pl.UInt32)
    return edges.filter(held >= p.identity_min_ties).select("account").unique()


def _drop_ordinary_loose(members: pl.DataFrame, loose: pl.DataFrame, ranks: pl.DataFrame, p: LinkParams) -> pl.DataFrame:
    """``members`` (``account, web``) of significant webs less the loose ones (``loose``: held
    by one identity artifact alone, a ring a firmly held member holds too) that do not rank
    at or above ``link_quantile``.

    Why: the web's test counts every ranked member, loose ones included (an ordinary one
    only lowers its mean), but a stranger who shares one recycled phone with a fleet rides
    with its verdict only if it behaves like one. An account too new to rank is left to
    :func:`associates`, whose evidence names the one value that ties it. On variant-2026
    (seed 4102), the slow fleet's rings of two to five, one card or one phone each, put 28
    of its accounts in campaigns hunted on the first 96 hours, where firm ties alone put 14
    (and none of 3,652 ordinary accounts either way).
    """
    kept = loose.join(ranks, on="account").filter(pl.col("u") >= p.link_quantile).select("account")
    return members.join(loose.join(kept, on="account", how="anti").select("account"), on="account", how="anti")


def profile_neglog_p(webs: pl.DataFrame, behaviour: pl.DataFrame, profile: pl.DataFrame | None) -> pl.DataFrame:
    """``web, feature, feature_u, feature_neglog_p``: each web's members' mean rank on every
    behaviour feature of ``profile`` (ranked among ``behaviour``'s accounts), the feature whose
    mean is least likely by chance, that mean, and that chance Bonferroni-corrected for the
    features tried.

    Why: ``b`` adds sixteen tail scores, and a fleet that stands out on two of them (long
    outputs for short prompts, many networks) while sitting at the median on the rest
    ranks near the middle by its sum. On variant-2026 (seed 4102) at 120 hours, a web of
    nine of the slow fleet's accounts averaged the 65th percentile of ``b`` (p = 10^-1.2);
    on mean output length, p = 10^-2.8 after the correction for sixteen scores.
    Ranks tie on features most accounts score zero on, which only makes the test
    conservative (their variance is below the uniform's 1/12 that ``z`` assumes).
    """
    out = pl.DataFrame(schema={"web": pl.Int64, "feature": pl.String, "feature_u": pl.Float64, "feature_neglog_p": pl.Float64})
    if profile is None or webs.height == 0:
        return out
    cols = [c for c in profile.columns if c != "account"]
    if not cols:
        return out
    ranked = behaviour.select("account").join(profile, on="account", how="left").select(
        "account", *[((pl.col(c).fill_null(0.0).rank("average") - 0.5) / pl.len()).alias(c) for c in cols]
    )
    means = webs.join(ranked, on="account").group_by("web").agg(pl.len().alias("n"), *[pl.col(c).mean() for c in cols])
    if means.height == 0:
        return out
    n = means["n"].to_numpy().astype(np.float64)
    z = np.stack([(means[c].to_numpy() - 0.5) * np.sqrt(12.0 * n) for c in cols], axis=1)
    top = z.argmax(axis=1)
    rows = np.arange(len(n))
    nlp = -norm.logsf(z[rows, top]) / np.log(10.0) - np.log10(len(cols))
    u = means.select(cols).to_numpy()[rows, top]
    return means.select("web").with_columns(
        feature=pl.Series([cols[i] for i in top], dtype=pl.String),
        feature_u=pl.Series(u, dtype=pl.Float64),
        feature_neglog_p=pl.Series(np.clip(nlp, 0.0, 300.0)),
    )


def holm(stats: pl.DataFrame, alpha: float) -> pl.DataFrame:
    """``cut`` and ``significant`` per row of ``stats`` (``neglog_p``, ``testable``) by Holm's
    step-down: the k-th smallest p of m tests (k from 0) is held to ``alpha / (m - k)``, and testing stops
    at the first that fails. The same family-wise error as Bonferroni (every cut
    ``alpha / m``), and never less power: a web judged in a pass where another, weaker web
    is tested beside it is not held to the cut of two (replayed through the gateway, a
    5-account fleet waited an hour longer for that: benchmarks/results/gateway/replay.json).

    >>> s = holm(pl.DataFrame({"neglog_p": [2.51, 2.24, 9.0], "testable": [True, True, False]}), 0.01)
    >>> s["cut"].round(2).to_list(), s["significant"].to_list()
    ([2.3, 2.0, 2.0], [True, True, False])
    >>> holm(pl.DataFrame({"neglog_p": [2.2, 2.25], "testable": [True, True]}), 0.01)["significant"].to_list()
    [False, False]
    """
    m = int(stats["testable"].sum())
    order = stats.with_row_index("_row").with_columns(
        _rank=pl.when("testable").then(pl.col("neglog_p").rank("ordinal", descending=True).over("testable") - 1)
    )
    left = (m - pl.col("_rank").fill_null(m - 1)).clip(1, None).cast(pl.Float64)  # tests still standing
    order = order.with_columns(cut=-(alpha / left).log10())
    passed = order.sort("_rank", nulls_last=True).with_columns(
        significant=(pl.col("testable") & (pl.col("neglog_p") >= pl.col("cut"))).cum_min().fill_null(False)
    )
    return passed.sort("_row").drop("_row", "_rank", "testable")


def join_rings(
    webs: pl.DataFrame, artifacts: pl.DataFrame, ranks: pl.DataFrame, p: LinkParams
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Webs joined into one where most members of each carry the same linking artifact.

    A careful operator keeps identities in small cells (one card, one phone, one front
    domain per three to eight accounts, nothing across cells), so each cell is a web too
    small to test. What the cells share is the operator: its proxy pool, its script, the
    timezone it lives in. Two webs are joined when at least ``join_share`` of each web's
    members carry one joining artifact (any kind that links and is not an identity kind,
    or a kind declared ``joins``) whose ranked carriers sit above the population median, and
    significantly so where ``identity_testable`` of them rank; the joined web is then tested
    as a whole, like any web. A coincidence touching one or two members of a web (a
    popular template, a shared NAT) joins nothing, and a web of ordinary people joined to
    another stays unremarkable under the test.

    Returns the webs relabelled (joined webs take the smallest label) and the joining ties
    ``(account, kind, value)`` of every member that carries the joining artifact.
    """
    joiners = [
        k for k in artifacts["kind"].unique().to_list() if (k not in p.supporting and k not in p.identity) or k in p.joining
    ]
    empty = pl.DataFrame(schema={"account": pl.UInt32, "kind": pl.String, "value": pl.UInt64})
    if not joiners or webs.height == 0:
        return webs, empty
    size = webs.group_by("web").agg(size=pl.len())
    joinable = artifacts.filter(pl.col("kind").is_in(joiners)).select("account", "kind", "value")
    # Members' artifacts first: the carriers' mean rank is needed only for the artifacts
    # most of a web holds, not for every joinable artifact of the population.
    held = joinable.join(webs, on="account").unique()
    candidates = (
        held.group_by("web", "kind", "value")
        .agg(c=pl.len())
        .join(size, on="web")
        .filter(pl.col("c") >= p.join_share * pl.col("size"))
    )
    carriers = joinable.join(candidates.select("kind", "value"), on=["kind", "value"], how="semi").unique()
    # Held as identity artifacts are (:func:`_unusual_carriers`): the webs were kept for
    # averaging above the median, so a line that hundreds of ordinary people send, a little
    # above it by chance, would join ordinary families into a web whose mean is biased upwards.
    unusual = _unusual_carriers(carriers, ranks, p, unranked=False)
    per_web = candidates.join(unusual, on=["kind", "value"]).filter(pl.len().over("kind", "value") >= 2)
    if per_web.height == 0:
        return webs, empty
    # Webs joined through the shared artifacts: connected pieces of the web-artifact graph,
    # as everywhere in this module; a joined web keeps its smallest label.
    ids = webs.select(pl.col("web").unique().sort())
    n_w = ids.height
    arts = per_web.select("kind", "value").unique(maintain_order=True).with_row_index("j")
    e = per_web.join(ids.with_row_index("i"), on="web").join(arts, on=["kind", "value"])
    adj = sparse.coo_matrix(
        (np.ones(e.height, dtype=np.int8), (e["i"].to_numpy().astype(np.int64), e["j"].to_numpy().astype(np.int64) + n_w)),
        shape=(n_w + arts.height, n_w + arts.height),
    )
    _, labels = connected_components(adj, directed=False)
    remap = ids.with_columns(piece=pl.Series(labels[:n_w])).with_columns(joined=pl.col("web").min().over("piece"))
    joined = webs.join(remap.select("web", "joined"), on="web", how="left", maintain_order="left").select(
        "account", web=pl.col("joined").cast(pl.Int64)
    )
    ties = held.join(per_web.select("web", "kind", "value"), on=["web", "kind", "value"]).select("account", "kind", "value")
    return joined, ties


def shared_identity(artifacts: pl.DataFrame, orgs: pl.DataFrame, p: LinkParams) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Identity artifact rows (with the holder's ``org_id``), and the artifacts ``(kind,
    value, k)`` held by two accounts or more and not all by one declared organisation's
    members (that artifact is the organisation's: its card, its domain). Computed once by
    the score for :func:`identity_components` and :func:`associates`, which cap ``k`` each
    their own way."""
    ident = artifacts.filter(pl.col("kind").is_in(list(p.identity))).join(orgs, on="account", how="left")
    return ident, _shared_of(ident)


def shared_identity_without(
    shared: tuple[pl.DataFrame, pl.DataFrame], accounts: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """:func:`shared_identity` of the artifacts less ``accounts``' rows, from ``shared`` (the
    whole table's): the score's second pass without reading every artifact again."""
    ident = shared[0].join(accounts, on="account", how="anti")
    return ident, _shared_of(ident)


def _shared_of(ident: pl.DataFrame) -> pl.DataFrame:
    return _org_counts(ident).filter((pl.col("k") >= 2) & ~pl.col("one_org")).select("kind", "value", "k")


def _org_counts(held: pl.DataFrame) -> pl.DataFrame:
    """``kind, value, k, one_org`` of artifact rows with the holder's ``org_id``: how many
    hold each, and whether all of them are one declared organisation's members."""
    return held.group_by("kind", "value").agg(
        k=pl.len().cast(pl.UInt32), one_org=(pl.col("org_id").n_unique() == 1) & (pl.col("org_id").null_count() == 0)
    )


def _shared_identity(
    artifacts: pl.DataFrame, orgs: pl.DataFrame, p: LinkParams, kmax: int, shared: tuple[pl.DataFrame, pl.DataFrame] | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """:func:`shared_identity` (``shared`` where the caller has it) held by at most ``kmax`` accounts."""
    ident, per = shared if shared is not None else shared_identity(artifacts, orgs, p)
    return ident, per.filter(pl.col("k") <= kmax)


def _unusual_signatures(artifacts: pl.DataFrame, ranks: pl.DataFrame, p: LinkParams) -> pl.DataFrame:
    """``account, s_kind, s_value``: the signature rows (:attr:`LinkParams.signature`, script
    lines) of values whose carriers are unusual as :func:`_unusual_carriers` tests identity
    artifacts: a line ordinary people send ("thanks", "explain more") has hundreds of
    carriers averaging near the median, and seconds nothing; a line none of whose senders
    ranks yet (accounts with a handful of requests) seconds, as their phone or card joins a web that
    is still judged by its ranked members."""
    sig = artifacts.filter(pl.col("kind").is_in(list(p.signature))).select("account", "kind", "value").unique()
    unusual = _unusual_carriers(sig, ranks, p)
    return sig.join(unusual, on=["kind", "value"]).select("account", s_kind="kind", s_value="value")


def _seconded(edges: pl.DataFrame, signed: pl.DataFrame) -> pl.Series:
    """Accounts holding an identity artifact (``edges``: ``account, kind, value``) with
    another holder who sends one of the same signatures (``signed``, :func:`_unusual_signatures`).

    Why: a careful operator cuts identities into rings of two to five, one card or one phone
    each, so most of its accounts hold a single shared artifact, and one is a coincidence (a
    recycled number, a family's card). The same card and the same reworded follow-up line
    from its holders are two: on variant-2026 (seed 4102), hunted on its first 144 hours,
    68 of the slow fleet's 120 accounts were flagged where none had been, and its hourly
    replay leaked 6,656 exchanges where it had leaked 7,147.
    """
    both = edges.join(signed, on="account").unique()
    out: pl.Series = both.filter(pl.len().over("kind", "value", "s_kind", "s_value") >= 2)["account"].unique()
    return out


def _unusual_carriers(held: pl.DataFrame, ranks: pl.DataFrame, p: LinkParams, unranked: bool = True) -> pl.DataFrame:
    """``(kind, value)`` of artifacts (``account, kind, value``) whose ranked carriers sit
    above the median.

    Why: the share cap alone lets a mid-sized webmail domain (a few hundred customers, a few
    of them attackers) through, and one such domain joins every campaign that used it. An
    artifact with ``identity_testable`` ranked carriers or more must be unusual on its own
    (mean rank ``z`` past the one-sided ``alpha`` cut); a smaller one (a phone, a card)
    must only average above the population median. Unranked carriers (accounts with no
    traffic yet) do not speak; an artifact none of whose carriers is ranked is kept where
    ``unranked`` (a web's phone or card), dropped otherwise (what joins webs must speak).
    """
    cut = float(norm.isf(p.alpha))
    per = (
        held.join(ranks, on="account", how="left")
        .group_by("kind", "value")
        .agg(n=pl.col("u").count(), u=pl.col("u").mean())
        .with_columns(z=(pl.col("u") - 0.5) * (12.0 * pl.col("n").cast(pl.Float64)).sqrt())
    )
    ok = ((pl.col("n") == 0) & unranked) | ((pl.col("u") > 0.5) & ((pl.col("n") < p.identity_testable) | (pl.col("z") >= cut)))
    return per.filter(ok).select("kind", "value")


def _inside_outside(held: pl.DataFrame, members: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Of artifacts ``held`` (``account, kind, value, k``): how many carriers each campaign
    holds inside (``kind, value, component, inside``), and the carriers outside every campaign."""
    carriers = held.join(members.select("account", "component"), on="account", how="left")
    inside = (
        carriers.filter(pl.col("component").is_not_null())
        .group_by("kind", "value", "component")
        .agg(inside=pl.len().cast(pl.UInt32))
    )
    return inside, carriers.filter(pl.col("component").is_null()).drop("component")


def _signature_ties(signed: pl.DataFrame, members: pl.DataFrame, ranked: pl.DataFrame, p: LinkParams) -> pl.DataFrame:
    """Signature ties ``(account, kind, value, k, inside, component)`` of accounts outside
    every campaign that carry ``signature_min_ties`` of one campaign's signatures (at least
    half of each one's carriers are its members) and rank at or above the ordinary link
    quantile (``ranked.ok``; an account too new to rank does not)."""
    inside, outside = _inside_outside(signed, members)
    return (
        outside.join(ranked.filter("ok").select("account"), on="account", how="semi")
        .join(inside, on=["kind", "value"])
        .filter((pl.col("inside") >= p.associate_min) & (2 * pl.col("inside") >= pl.col("k")))
        .filter(pl.len().over("account", "component") >= p.signature_min_ties)
    )


# A tie of an account outside every campaign to one: the artifact, its holders, how many of
# them are the campaign's members.
_TIE_SCHEMA = {"account": pl.UInt32, "kind": pl.String, "value": pl.UInt64, "k": pl.UInt32, "inside": pl.UInt32, "component": pl.Int64}


class Association(NamedTuple):
    """What :func:`associates` found: ties that joined accounts to campaigns, and ties the
    reissue rule alone held back (both ``account, component, kind, value, k, inside, by_tenure,
    by_rotation``); and the count tests of rings of rotators (:func:`_rotating_rings`), of
    rotators that send a campaign's script line (:func:`_rotating_senders`) and of accounts
    that rank high and signed up beside a member (:func:`_signup_cohorts`)."""

    joined: pl.DataFrame
    reissue_only: pl.DataFrame
    rings: CountTest | None = None
    senders: CountTest | None = None
    cohorts: CountTest | None = None
    roaming_rings: CountTest | None = None


class CountTest(NamedTuple):
    """A count of coincidences against chance: how many were seen (``observed``), how many
    the ordinary rates give (``expected``) and the Poisson tail of the first given the second
    (``neglog_p``, ``-log10``)."""

    observed: int
    expected: float
    neglog_p: float
    counted: str = ""  # what was counted, where a test chooses between two counts

    @classmethod
    def of(cls, observed: int, expected: float, counted: str = "") -> CountTest:
        if not observed:
            return cls(0, expected, 0.0, counted)
        tail = -poisson.logsf(observed - 1, expected) / np.log(10.0) if expected > 0 else 300.0
        return cls(observed, expected, float(min(tail, 300.0)), counted)

    def passes(self, alpha: float, chance_share: float) -> bool:
        """Whether what was counted joins: the count beats chance at ``alpha``, and chance
        accounts for at most ``chance_share`` of it (every counted account joins, so a count
        that clears its p-value but is half chance would let the chance half in: at full-scale
        qwen-2026, 44 high-ranked accounts signed up beside a member where 21 were expected,
        p 1e-5, and 29 of the 44 were people)."""
        return self.observed > 0 and self.neglog_p >= -np.log10(alpha) and self.expected <= chance_share * self.observed

    @classmethod
    def among(cls, chosen: pl.Series, tied: pl.Series) -> CountTest:
        """Of accounts (two boolean columns, a row each): the ``chosen`` ones that are ``tied``,
        against the chosen times the share of the others that are (half an account added, so
        a population where none is still expects some)."""
        n = int(chosen.sum())
        share = (int((~chosen & tied).sum()) + 0.5) / (chosen.len() - n + 1.0)
        return cls.of(int((chosen & tied).sum()), n * share)


def associates(
    artifacts: pl.DataFrame,
    members: pl.DataFrame,
    behaviour: pl.DataFrame,
    orgs: pl.DataFrame,
    p: LinkParams,
    shared: tuple[pl.DataFrame, pl.DataFrame] | None = None,
    reissued: pl.DataFrame | None = None,
    tenured: tuple[str, ...] = (),
    operators: pl.DataFrame | None = None,
    new_component: int | None = None,
) -> Association:
    """Accounts outside every campaign tied to one by a small identity artifact its members hold.

    A stealthy operator gives most accounts their own phone, card and device and hides each
    one below every per-account threshold, but a front mail domain or a reused card still
    ties an account that slipped through to siblings already caught. Guilt by association
    is kept narrow: the artifact has at most ``identity_testable`` carriers (a webmail or
    company domain links nothing), is not one declared organisation's, and at least
    ``associate_min`` of its carriers are members of the same campaign (``members``:
    ``account, component``), and either half of all carriers are, or none of the others ranks
    under the ordinary median defined next (a ring of the campaign's stragglers, not strangers: at full
    scale the stealth fleet's missed accounts sit two or three to a front domain with one
    member; one ordinary holder keeps the artifact out). The account itself must rank at or
    above the link quantile of the accounts outside every campaign, or be too new to rank,
    or be tied to the campaign by ``identity_min_ties`` such artifacts (a card and a device:
    two coincidences are not one): an ordinary user who shares a recycled phone with a fraud
    ring stays out, a quiet sibling holding a member's card and device does not. A phone
    number the account took up a week or more after its last earlier holder (``reissued``:
    ``account, kind``, from the registration signal's ``reissued`` feature) may be the carrier's reissue
    to a stranger, so it ties an account too new to rank only beside a second artifact: on
    traps-2026 at 0.5 (seed 2612) 49 of the 101 people given a fleet's number joined its
    campaign with two or three requests each. Where that test was made (``tenured``: the
    artifact kinds whose holders the registration read for reissues), a number the account
    took up *within* a week of an earlier holder is one subscriber's, so it ties the account
    whatever its rank: the rank guard was there for the stranger on a recycled number, whom
    the reissue test now names. On demo seed 11 a stealth account on a member's number,
    ranked under the ordinary median, joins so, and five siblings through it. An account
    that joined brings in its own siblings in the next round, until nothing joins (at most
    ``associate_rounds`` rounds): on demo seed 11 two stealth accounts join in the fourth
    round, past the old fixed three.

    An account that rotates passes the rank guard as a ranked one does (``operators``:
    ``account, n``, the operators whose networks it used): more of them than all but
    ``1 - rotator_quantile`` of the ordinary accounts and at least three (home and mobile
    make two). A quiet fleet behind a residential pool reads as ordinary people, request
    by request, and lands on a member's exit no more than chance in a pool of tens of
    thousands, but no ordinary holder of a card rotates through ten operators: on
    variant-2027 at 0.5 (seed 4206) 192 of the 198 attacking accounts left out rotate
    above the ordinary 99th percentile (four operators) and no benign account does. A
    number reissued to the account still needs a second tie.

    An operator's signatures (script lines, :attr:`ArtifactKind.signature`) tie too, more
    narrowly: an account that carries ``signature_min_ties`` of them, each carried by at
    least half campaign members, and that ranks at or above the ordinary link quantile,
    joins. A fleet's accounts that hold no shared phone or card (webmail, no card on a free
    plan) still send its script: on variant-2026 (seed 4102) six such accounts
    carried two to five of the fleet's lines, each sent by 28-72 accounts and by no
    ordinary one. A person who happens to send one of a fleet's lines stays out, and a
    popular line ("thanks", "explain more") has too many ordinary carriers to count.

    Before those rounds, two counts against the ordinary rate of rotation: rings of rotators
    outside every campaign (:func:`_rotating_rings`; they make a campaign of their own,
    ``new_component``, where none rotates) and rotators sending one of a campaign's lines
    (:func:`_rotating_senders`); and one against the ordinary rate of signing up beside a
    member: accounts that rank high and registered from a member's network that week
    (:func:`_signup_cohorts`, a wave's siblings); what joins there brings its siblings in
    the rounds.

    Returns :class:`Association`: ``joined``, ``account, component, kind, value, k, inside,
    by_tenure, by_rotation`` (the tie joined an account under the median through a ``tenured``
    value; the account joined by one of the two counts: a ring's holder, or a rotator sending
    a line), one row per tie, every tie of an associated account to the campaign it joins
    (the one it shares most artifacts with); ``reissue_only``, the same columns, the ties of
    accounts that the reissue rule alone kept out (what a reviewer of a near miss asks
    first); ``rings``, ``senders`` and ``cohorts``, the three count tests.
    """
    out_schema = {"account": pl.UInt32, "component": pl.Int64, "kind": pl.String, "value": pl.UInt64,
                  "k": pl.UInt32, "inside": pl.UInt32, "by_tenure": pl.Boolean, "by_rotation": pl.Boolean, "by_roaming": pl.Boolean}  # fmt: skip
    if artifacts.height == 0 or (members.height == 0 and new_component is None):
        return Association(pl.DataFrame(schema=out_schema), pl.DataFrame(schema=out_schema))
    ident, per = _shared_identity(artifacts, orgs, p, p.identity_testable, shared)
    # The bar is the ordinary account's: campaign members, scripted by definition, would
    # otherwise lift the median they are measured against (a tenth of the population in a
    # busy log), and a straggler at the ordinary median would stay out.
    ordinary = behaviour.join(members.select("account"), on="account", how="anti")
    q_link = ordinary["b"].quantile(p.link_quantile) if ordinary.height else None
    ranked = behaviour.select("account", ok=pl.col("b") >= (q_link if q_link is not None else 0.0))
    ranked = ranked.join(_rotators(operators, members, p), on="account", how="full", coalesce=True).with_columns(pl.col("rot").fill_null(False))
    held = ident.select("account", "kind", "value").join(per.select("kind", "value", "k"), on=["kind", "value"])
    signed = (
        artifacts.filter(pl.col("kind").is_in(list(p.signature)))
        .select("account", "kind", "value")
        .unique()
        .with_columns(k=pl.len().over("kind", "value").cast(pl.UInt32))
        .filter(pl.col("k") >= 2)
    )
    # A tie through a reissued number: no pass for being too new to rank.
    late = pl.DataFrame(schema={"account": pl.UInt32, "kind": pl.String}) if reissued is None else reissued.select("account", "kind")
    late = late.unique().with_columns(late=pl.lit(True))
    found: list[pl.DataFrame] = []
    ringed = _rotating_rings(held, members, ranked, p, new_component, operators)
    for rings, roaming in ((ringed.rotating, False), (ringed.roaming, True)):
        if rings.height:
            found.append(rings.with_columns(by_tenure=pl.lit(False), by_rotation=pl.lit(True), by_roaming=pl.lit(roaming)).select(list(out_schema)))
            members = pl.concat([members.select("account", "component"), rings.select("account", "component").unique()])
    senders, sent = _rotating_senders(signed, members, ranked, p)
    if senders.height:
        found.append(senders.with_columns(by_tenure=pl.lit(False), by_rotation=pl.lit(True), by_roaming=pl.lit(False)).select(list(out_schema)))
        members = pl.concat([members.select("account", "component"), senders.select("account", "component").unique()])
    cohort, grouped = _signup_cohorts(artifacts, orgs, members, ordinary.join(members.select("account"), on="account", how="anti"), p)
    if cohort.height:
        found.append(cohort.with_columns(by_tenure=pl.lit(False), by_rotation=pl.lit(False), by_roaming=pl.lit(False)).select(list(out_schema)))
        members = pl.concat([members.select("account", "component"), cohort.select("account", "component").unique()])
    for _ in range(p.associate_rounds):
        candidates = _identity_ties(held, members, ranked, late, p, tenured)
        ties = candidates.filter("joins").drop("joins", "reissue_only").with_columns(by_rotation=pl.lit(False), by_roaming=pl.lit(False))
        ties = pl.concat([ties, _signature_ties(signed, members, ranked, p).with_columns(by_tenure=pl.lit(False), by_rotation=pl.lit(False), by_roaming=pl.lit(False)).select(ties.columns)])
        if ties.height == 0:
            break
        best = _best_campaign(ties)
        found.append(ties.join(best, on=["account", "component"]).select(list(out_schema)))
        members = pl.concat([members.select("account", "component"), best])
    # Left out by the reissue rule alone, for the reviewer (against the final campaigns).
    reissue_only = (
        _identity_ties(held, members, ranked, late, p, tenured).filter("reissue_only").with_columns(by_rotation=pl.lit(False), by_roaming=pl.lit(False))
        .select(list(out_schema)).cast(out_schema)  # type: ignore[arg-type]
    )  # fmt: skip
    joined = pl.concat(found).select(list(out_schema)).cast(out_schema) if found else pl.DataFrame(schema=out_schema)  # type: ignore[arg-type]
    return Association(
        joined.sort("account", "kind", "value"), reissue_only.sort("account", "kind", "value"), ringed.rotated, sent, grouped, ringed.roamed
    )


def _rotating_senders(signed: pl.DataFrame, members: pl.DataFrame, ranked: pl.DataFrame, p: LinkParams) -> tuple[pl.DataFrame, CountTest | None]:
    """Ties ``(account, kind, value, k, inside, component)`` of rotators (``ranked.rot``,
    :func:`_rotators`) outside every campaign that send one of a campaign's script lines (at
    least ``associate_min`` of its senders are members, and half), when more rotators send one
    than the ordinary rate of sending one explains.

    Why: one line is a coincidence (a person who also asks "can you explain further?"), and
    one rotating account is too (a traveller, a VPN), so each needs a second tie; but the
    two are independent in ordinary accounts, so among them rotators send a campaign's line
    at the rate the others do. A quiet fleet's stragglers rotate and send its script: on
    variant-2027 (seed 50) 34 of the 76 rotators left out send one of its lines and no other
    account left out sends any. The test is one Poisson tail of the rotating senders against
    the rotators times the share of the other accounts outside that send one (half an
    account added, so a log where none does still expects some), held to ``alpha``; each
    sender joins the campaign whose lines it sends most."""
    empty = pl.DataFrame(schema=_TIE_SCHEMA)
    if signed.height == 0 or members.height == 0:
        return empty, None
    rot = ranked.select("account", rot=pl.col("rot").fill_null(False)).join(members.select("account"), on="account", how="anti")
    n_rot = int(rot["rot"].sum())
    if n_rot == 0:
        return empty, None
    inside, outside = _inside_outside(signed, members)
    lines = inside.join(signed.select("kind", "value", "k").unique(["kind", "value"]), on=["kind", "value"]).filter(
        (pl.col("inside") >= p.associate_min) & (2 * pl.col("inside") >= pl.col("k"))
    )
    ties = outside.drop("k").join(lines, on=["kind", "value"]).join(rot, on="account")
    count = CountTest.among(rot["rot"], rot["account"].is_in(ties["account"].implode()))
    if not count.passes(p.alpha, p.count_chance_share):
        return empty, count
    ties = ties.filter("rot").drop("rot")
    return ties.join(_best_campaign(ties), on=["account", "component"]).select(empty.columns).cast(empty.schema), count  # type: ignore[arg-type]


def _signup_cohorts(
    artifacts: pl.DataFrame, orgs: pl.DataFrame, members: pl.DataFrame, ordinary: pl.DataFrame, p: LinkParams
) -> tuple[pl.DataFrame, CountTest | None]:
    """Ties ``(account, kind, value, k, inside, component)`` of accounts outside every campaign
    that rank at or above ``high_quantile`` of the ordinary accounts (``ordinary``: ``account,
    b``, members left out) and signed up from a network a campaign member signed up from
    that week (:attr:`LinkParams.cohort` kinds, at most ``identity_testable`` holders, not
    one declared organisation's), when more of them did than the other accounts' rate of
    signing up beside a member explains.

    Why: a wave of disposable accounts registers from a few networks within hours, and those
    given no shared phone or card hold nothing else of the wave's; one such sign-up is a
    coincidence (a neighbour, an office), and one busy account is another, so neither links.
    But the two are independent in ordinary accounts: on variant-2027 (seed 4205) 10 of the
    12 wave accounts left out rank in the top tenth and signed up beside a member, where
    the accounts below give 0.06; on the large logs (variant-2027 at 0.5, traps, tactics)
    the top tenth does so at the rate of the rest. The test is one Poisson tail of the
    count against the high-ranked accounts times the share of the others that signed up
    beside a member (half an account added), held to ``alpha`` and to ``count_chance_share``
    (:meth:`CountTest.passes`: at full-scale qwen-2026 developers and agent users sign up
    beside members twice as often as the accounts below them, 44 against 21); each joins
    the campaign it shares most sign-up networks with."""
    empty = pl.DataFrame(schema=_TIE_SCHEMA)
    rows = artifacts.filter(pl.col("kind").is_in(list(p.cohort))).select("account", "kind", "value").unique()
    if rows.height == 0 or members.height == 0 or ordinary.height == 0:
        return empty, None
    rows = rows.join(orgs, on="account", how="left")
    per = _org_counts(rows).filter((pl.col("k") >= 2) & (pl.col("k") <= p.identity_testable) & ~pl.col("one_org"))
    inside, outside = _inside_outside(rows.select("account", "kind", "value").join(per.select("kind", "value", "k"), on=["kind", "value"]), members)
    beside = outside.join(inside.filter(pl.col("inside") >= p.associate_min), on=["kind", "value"])
    high = ordinary.select("account", high=(pl.col("b") >= ordinary["b"].quantile(p.high_quantile)).fill_null(False))
    count = CountTest.among(high["high"], high["account"].is_in(beside["account"].implode()))
    if not count.passes(p.alpha, p.count_chance_share):
        return empty, count
    ties = beside.join(high.filter("high").select("account"), on="account")
    return ties.join(_best_campaign(ties), on=["account", "component"]).select(empty.columns).cast(empty.schema), count  # type: ignore[arg-type]


def _best_campaign(ties: pl.DataFrame) -> pl.DataFrame:
    """``account, component``: for each account of ``ties``, the campaign it has most ties
    to (the lowest component among equals)."""
    return (
        ties.group_by("account", "component").agg(n=pl.len())
        .sort(["account", "n", "component"], descending=[False, True, False])
        .unique("account", keep="first").select("account", "component")
    )  # fmt: skip


class RingCounts(NamedTuple):
    """What :func:`_rotating_rings` found: the ties of rings of rotators and their count
    (``rotating``, ``rotated``), and of rings every holder of which used as many operators'
    networks as a bar below the rotators' (``roaming``, ``roamed``: :func:`_roaming_rings`)."""

    rotating: pl.DataFrame
    rotated: CountTest | None
    roaming: pl.DataFrame
    roamed: CountTest | None


def _rotating_rings(
    held: pl.DataFrame, members: pl.DataFrame, ranked: pl.DataFrame, p: LinkParams, new_component: int | None = None,
    operators: pl.DataFrame | None = None,
) -> RingCounts:
    """Ties ``(account, kind, value, k, inside, component)`` of the holders of small identity
    artifacts (``held``: ``account, kind, value, k``) that no member holds and at least half
    of whose holders rotate (``ranked.rot``, :func:`_rotators`), when such rings are more
    than the ordinary rate of rotation explains: they join the campaign most of whose members
    rotate (at least half of them), or, where none does, make one of their own
    (``new_component``; None: they join none).

    Why: a careful operator cuts its cards and numbers into rings of two to four and rotates
    every account through a residential pool so large that two accounts rarely meet on one
    exit; association needs a member in the ring, and a ring of stragglers has none, nor has
    a fleet none of whose accounts is flagged yet. But a ring at least half of whose holders
    rotate is a coincidence of rate ``P(Binomial(k, r) >= k / 2)`` (``r``: the share of
    ordinary accounts that rotate; ``2r`` for a pair, about ``3r^2`` for three), and a fleet
    makes many: on variant-2027 at 0.5 (seed 4206) the accounts left out hold 82 such rings
    where chance gives 2.1, and on seed 4202 hunted on its first 96 hours, before any of
    the slow fleet's accounts is flagged, 8 where chance gives 0.2. The test is one Poisson
    tail of the count against the sum of those rates over the rings outside every campaign,
    held to half of ``alpha``; every holder of a ring that passes joins, as it shares the
    ring. Rings as large as a family's or an office's card rarely reach half rotating by
    chance, so the pairs and triples of ordinary people carry the expected count; where
    they are many, a fleet's few rings stand out only as rings *every* holder of which
    rotates (rate ``r ** k``), the second count, held to the other half of ``alpha``.

    Where ``operators`` (``account, n``) is given, a third count reads the rings left by the
    first two against bars below the rotators' (:func:`_roaming_rings`): a fleet that opens
    a session a few times a day has used three or four operators' networks by its third
    day, under the ordinary 99th percentile that makes a rotator, but a ring every holder of
    which uses three is still rare (on variant-2027, seed 4202, hunted on its first 72 hours:
    3 such rings of the quiet fleet where the ordinary accounts' 4 % that use three give
    0.03). Its rings join as the others do; the three counts are held together under 1.5 ``alpha``.
    """
    empty = pl.DataFrame(schema=_TIE_SCHEMA)
    rot = ranked.select("account", "rot")
    ordinary = rot.join(members.select("account"), on="account", how="anti")
    if held.height == 0 or ordinary.height == 0 or (members.height == 0 and new_component is None):
        return RingCounts(empty, None, empty, None)
    r = int(ordinary["rot"].sum()) / ordinary.height
    rings = (
        held.join(members.select("account"), on="account", how="anti")
        .join(rot, on="account", how="left")
        .group_by("kind", "value")
        .agg(pl.col("k").first(), n=pl.len(), nrot=pl.col("rot").fill_null(False).sum())
        .filter(pl.col("n") == pl.col("k"))  # no member holds it
        .with_columns(need=(pl.col("k") + 1) // 2)
    )
    # Two counts, each held to half of ``alpha``: rings at least half rotating (more of them,
    # and more by chance: pairs with one rotator), and rings every holder of which rotates
    # (fewer, and far fewer by chance: a fleet's few rings among thousands of ordinary pairs).
    chosen = rings.filter(pl.col("nrot") >= pl.col("need"))
    k = rings["k"].to_numpy()
    count = CountTest.of(chosen.height, float(binom.sf(rings["need"].to_numpy() - 1, k, r).sum()), "half")
    if not count.passes(p.alpha / 2, p.count_chance_share):
        chosen = rings.filter(pl.col("nrot") == pl.col("k"))
        count = CountTest.of(chosen.height, float((r ** k.astype(np.float64)).sum()), "every")
    share = (
        members.select("account", "component").join(rot, on="account", how="left")
        .group_by("component").agg(share=pl.col("rot").fill_null(False).mean())
        .sort(["share", "component"], descending=[True, False])
    )  # fmt: skip
    component = int(share["component"][0]) if share.height and float(share["share"][0]) >= 0.5 else new_component
    passed = component is not None and chosen.height > 0 and count.passes(p.alpha / 2, p.count_chance_share)
    roaming, roamed = chosen.clear(), None
    if operators is not None and operators.height:
        left = rings.join(chosen.select("kind", "value"), on=["kind", "value"], how="anti") if passed else rings
        roaming, roamed = _roaming_rings(held, left, ordinary.select("account"), operators, r)

    def ties(picked: pl.DataFrame, ok: bool) -> pl.DataFrame:
        if component is None or picked.height == 0 or not ok:
            return empty
        return held.join(picked.select("kind", "value"), on=["kind", "value"]).select(
            "account", "kind", "value", "k", inside=pl.lit(0, pl.UInt32), component=pl.lit(component, pl.Int64)
        )

    ok = roamed is not None and roamed.passes(p.alpha / 2, p.count_chance_share)
    return RingCounts(ties(chosen, passed), count, ties(roaming, ok), roamed)


def _roaming_rings(
    held: pl.DataFrame, rings: pl.DataFrame, ordinary: pl.DataFrame, operators: pl.DataFrame, r: float
) -> tuple[pl.DataFrame, CountTest | None]:
    """Of ``rings`` (``kind, value, k``: small identity artifacts no member holds), those every
    holder of which used at least ``m`` operators' networks, for the bar ``m`` of three or more
    (home and mobile make two) that beats chance most: ``m`` runs over the bars more ordinary
    accounts (``ordinary``: ``account``, members left out) reach than rotate (``r``), each a
    count against ``sum(r_m ** k)`` (``r_m``: the share of ordinary accounts that reach ``m``),
    Bonferroni over the bars. Returns the rings chosen and the count (``counted``: ``every>=m``),
    or no ring and None where no bar is below the rotators'."""
    n = ordinary.join(operators.select("account", "n"), on="account", how="left")["n"].fill_null(0).to_numpy()
    least = (
        held.join(rings.select("kind", "value"), on=["kind", "value"])
        .join(operators.select("account", "n"), on="account", how="left")
        .group_by("kind", "value").agg(least=pl.col("n").fill_null(0).min())
    )  # fmt: skip
    rings = rings.join(least, on=["kind", "value"])
    k = rings["k"].to_numpy().astype(np.float64)
    reach = {m: float((n >= m).mean()) for m in range(3, int(n.max(initial=0)) + 2)}
    bars = [m for m, r_m in reach.items() if r_m > r]
    best: tuple[pl.DataFrame, CountTest | None] = (rings.clear(), None)
    for m in bars:
        chosen = rings.filter(pl.col("least") >= m)
        test = CountTest.of(chosen.height, float((reach[m] ** k).sum()), f"every>={m}")
        test = test._replace(neglog_p=max(0.0, test.neglog_p - float(np.log10(len(bars)))))
        if best[1] is None or test.neglog_p > best[1].neglog_p:
            best = (chosen, test)
    return best


def _rotators(operators: pl.DataFrame | None, members: pl.DataFrame, p: LinkParams) -> pl.DataFrame:
    """``account, rot``: accounts that use more operators than all but ``1 - rotator_quantile``
    of the ordinary accounts (campaign members left out: a fleet lifts the quantile it is
    measured against) and at least three."""
    if operators is None or operators.height == 0:
        return pl.DataFrame(schema={"account": pl.UInt32, "rot": pl.Boolean})
    ordinary = operators.join(members.select("account"), on="account", how="anti")
    q = ordinary["n"].quantile(p.rotator_quantile) if ordinary.height else None
    bar = max(float(q) if q is not None else 0.0, 2.0)
    return operators.select("account", rot=pl.col("n") > bar)


def _identity_ties(
    held: pl.DataFrame, members: pl.DataFrame, ranked: pl.DataFrame, late: pl.DataFrame, p: LinkParams, tenured: tuple[str, ...] = ()
) -> pl.DataFrame:
    """Identity ties ``(account, kind, value, k, inside, component)`` of accounts outside every
    campaign to a campaign whose members hold the artifact (at least ``associate_min`` of
    them, and half its carriers or a ring of stragglers), with ``joins`` (the account ranks,
    is too new to rank, has ``identity_min_ties`` such ties, or holds a ``tenured`` kind's
    value not reissued to it), ``reissue_only`` (it would join but for the reissue rule:
    too new to rank, one tie, through a reissued number) and ``by_tenure`` (it joins only
    through the ``tenured`` rule: ranked under the median, one tie)."""
    inside, outside = _inside_outside(held, members)
    outside = outside.join(ranked, on="account", how="left")
    # A ring of the campaign's stragglers, not strangers: no carrier outside it ranks below the ordinary median.
    ring = outside.group_by("kind", "value").agg(ring=(pl.col("ok") | pl.col("rot")).fill_null(True).all())
    many = pl.len().over("account", "component") >= p.identity_min_ties
    return (
        outside.join(inside, on=["kind", "value"])
        .join(ring, on=["kind", "value"], how="left")
        .filter((pl.col("inside") >= p.associate_min) & ((2 * pl.col("inside") >= pl.col("k")) | pl.col("ring")))
        .join(late, on=["account", "kind"], how="left")
        .with_columns(held=pl.col("kind").is_in(list(tenured)) & pl.col("late").is_null())  # one subscriber's number
        .with_columns(
            joins=pl.col("ok").fill_null(pl.col("late").is_null()) | (pl.col("rot").fill_null(False) & pl.col("late").is_null()) | many | pl.col("held"),
            reissue_only=pl.col("ok").is_null() & pl.col("late").is_not_null() & ~many,
            # joined only for holding a number within a week of its earlier holder: said in the evidence
            by_tenure=(~pl.col("ok")).fill_null(False) & ~many & pl.col("held"),
        )
        .drop("ok", "rot", "ring", "late", "held")
    )


def outlier_pairs(
    artifacts: pl.DataFrame, outside: pl.DataFrame, top_share: float, p: LinkParams, new_component: int
) -> tuple[pl.DataFrame, CountTest | None]:
    """Ties ``(account, kind, value, k, inside, component)`` of accounts at the very top of the
    accounts outside every campaign (``outside``: ``account, b, harvest``; behaviour ``b`` in
    the top ``top_share``, the hunt's false-positive target) that harvest (``harvest``: long or
    targeted outputs, elicited reasoning) and share with another such account a rare value of
    the requests' wording and a rare value of their origin (:attr:`ArtifactKind.wording`,
    :attr:`ArtifactKind.origin`; rare: at most ``identity_testable`` holders), when such pairs
    are more than the top accounts' ties to everyone else explain. Each group of them tied
    pair by pair makes a campaign of its own, numbered from ``new_component``.

    Why: a disposable wave's first accounts are too few for a campaign (``min_campaign``) and
    too new to share anything with a flagged one, yet used hard from the first hour they are
    the top two of the population, on one sign-up network with one template (variant-2027
    seed 4202: two accounts from hour 38, flagged only at hour 59 when the next wave made
    five; 549 exchanges served). Two accounts of one lab running a benchmark are as loud and as
    alike (its answer format, its cloud /24) but ask for one-word answers: harvesting keeps
    them out. Chance: each top account's ties (a wording value and an origin value, both rare)
    to accounts outside every campaign, each of which is another top account at the rate top
    accounts are among the others, halved (a pair is seen from both ends). A Poisson tail of
    the pairs seen against that, held to half of ``alpha`` and to ``count_chance_share``, as
    association's other counts are (:meth:`CountTest.passes`).
    """
    empty = pl.DataFrame(schema=_TIE_SCHEMA)
    ranked = outside.filter(pl.col("b") > 0)
    n = ranked.height
    q = ranked["b"].quantile(1.0 - top_share) if n else None
    if q is None or not p.wording or not p.origin:
        return empty, None
    top = ranked.filter((pl.col("b") >= q) & pl.col("harvest")).select("account")
    m = top.height
    if m < 2 or n < 3:
        return empty, None
    arts = artifacts.filter(pl.col("kind").is_in([*p.wording, *p.origin])).select("account", "kind", "value")
    mine = arts.join(top, on="account").unique()
    holders = arts.join(mine.select("kind", "value").unique(), on=["kind", "value"]).unique()
    rare = holders.group_by("kind", "value").agg(k=pl.len().cast(pl.UInt32)).filter(pl.col("k") <= p.identity_testable)
    mine = mine.join(rare, on=["kind", "value"])
    others = holders.join(rare.select("kind", "value"), on=["kind", "value"]).join(outside.select("account"), on="account")
    ties = (
        mine.join(others.rename({"account": "other"}), on=["kind", "value"])
        .filter(pl.col("other") != pl.col("account"))
        .with_columns(said=pl.col("kind").is_in(list(p.wording)))
    )
    pairs = ties.group_by("account", "other").agg(said=pl.col("said").any(), came=(~pl.col("said")).any())
    pairs = pairs.filter(pl.col("said") & pl.col("came")).select("account", "other")
    expected = pairs.height * (m - 1) / (n - 1) / 2
    both = pairs.join(top.rename({"account": "other"}), on="other")
    count = CountTest.of(both.filter(pl.col("account") < pl.col("other")).height, expected)
    if not count.passes(p.alpha / 2, p.count_chance_share):
        return empty, count
    ids = pl.concat([both["account"], both["other"]]).unique().sort()
    at = {a: i for i, a in enumerate(ids.to_list())}
    graph = sparse.coo_matrix(
        (np.ones(both.height), ([at[a] for a in both["account"].to_list()], [at[a] for a in both["other"].to_list()])),
        shape=(len(at), len(at)),
    )
    _, label = connected_components(graph, directed=False)
    groups = pl.DataFrame({"account": ids, "component": (label + new_component).astype(np.int64)})
    out = ties.join(both, on=["account", "other"]).select("account", "kind", "value", "k").unique()
    out = out.join(groups, on="account").with_columns(inside=pl.len().over("component", "kind", "value").cast(pl.UInt32))
    return out.select(list(_TIE_SCHEMA)).sort("component", "account", "kind", "value"), count
