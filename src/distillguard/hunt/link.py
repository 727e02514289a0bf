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
artifacts, over carriers that are themselves above the population median. Artifacts that
unrelated actors share by nature (user agents, model-launch windows, sign-up hours)
support a campaign's evidence but never link accounts, so two campaigns that both jump
on a new model the day it launches stay two campaigns.
"""

from __future__ import annotations

import random

import numpy as np
import polars as pl
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.stats import binom, norm

from distillguard.hunt.config import LinkParams


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
    artifacts: pl.DataFrame,
    tested: pl.DataFrame,
    behaviour: pl.DataFrame,
    p: LinkParams,
    ties: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """``account -> component``: campaigns as groups of accounts tied by shared artifacts.

    The graph joins accounts to the significant linking artifacts they carry (carriers above
    the link quantile) and to the identity artifacts of significant webs (``ties``). Its
    connected components are then split where they are only loosely joined, see
    :func:`split_loose`: two operators who both use a public template stay two campaigns.
    """
    q_link = behaviour["b"].quantile(p.link_quantile)
    sig = tested.filter(pl.col("significant") & ~pl.col("kind").is_in(list(p.supporting))).select("kind", "value")
    # Shared networks and devices also carry bystanders (people behind the same proxy
    # exit); there the carrier must itself be above the link quantile. A template an
    # account leans on, or a phone or card it registered with, is its own doing: it links
    # from the first requests, which is what keeps leaked exchanges low.
    usual = behaviour.filter(pl.col("b") >= q_link).select("account", ok=pl.lit(True))
    edges = (
        artifacts.join(sig, on=["kind", "value"])
        .join(usual, on="account", how="left")
        .filter(pl.col("ok").fill_null(False) | ~pl.col("kind").is_in(list(p.bystander)))
        .select("account", "kind", "value")
    )
    if ties is not None and ties.height:
        edges = pl.concat([edges, ties.select("account", "kind", "value")])
    edges = edges.unique()
    # An account tied only by one shared network (its home /24 is also a proxy exit) met
    # the campaign by coincidence; two shared networks, or any tie of its own, link it.
    byst = pl.col("kind").is_in(list(p.bystander))
    edges = edges.filter(~byst | (~byst).any().over("account") | (byst.sum().over("account") >= p.bystander_min_ties))
    if edges.height == 0:
        return pl.DataFrame(schema={"account": pl.UInt32, "component": pl.Int64, "whole": pl.Int64})
    nodes = (
        edges.group_by("kind", "value")
        .agg(k=pl.len())
        .sort("kind", "value")
        .with_row_index("node")
        # A thing shared by many accounts ties each of them more loosely than a phone shared by three.
        .with_columns(w=1.0 / (1.0 + pl.col("k").cast(pl.Float64)).log(2))
    )
    accts = edges["account"].unique().sort()
    local = pl.DataFrame({"account": accts, "i": np.arange(accts.len())})
    e = edges.join(nodes, on=["kind", "value"]).join(local, on="account").sort("i", "node")
    n_a = accts.len()
    size = n_a + nodes.height
    src = e["i"].to_numpy()
    dst = e["node"].to_numpy().astype(np.int64) + n_a
    adj = sparse.coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(size, size))
    _, whole = connected_components(adj, directed=False)
    # Only identity artifacts bridge two parts: a proxy provider's exit prefixes or a public
    # template can be shared by two operators that buy from it.
    bridge = np.zeros(size, dtype=bool)
    bridge[n_a:] = nodes["kind"].is_in(list(p.identity)).to_numpy()
    labels = split_loose(whole, src, dst, e["w"].to_numpy(), n_a, p, bridge)
    return local.with_columns(
        component=pl.Series(labels[:n_a]).cast(pl.Int64), whole=pl.Series(whole[:n_a]).cast(pl.Int64)
    ).select("account", "component", "whole")


def split_loose(
    labels: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    w: np.ndarray,
    n_accounts: int,
    p: LinkParams,
    bridge: np.ndarray,
) -> np.ndarray:
    """Split components that are several campaigns joined by a few shared artifacts.

    Leiden community detection (modularity, weighted; Traag et al., *From Louvain to
    Leiden*, 2019) proposes communities inside each large component; communities are then
    merged back while the weight between two of them is at least ``merge_ratio`` of the
    larger one's total weight, or while they share specific artifacts worth ``merge_bridge``
    (several phones, cards or devices: the nodes marked in ``bridge``), and any piece
    smaller than ``min_part`` accounts joins the group it is most tied to. So a component
    is only split along a cut that is thin compared with both sides, and one campaign
    behind many proxies stays whole.
    """
    import igraph as ig

    out = labels.copy()
    next_label = int(labels.max()) + 1
    for comp in np.unique(labels[:n_accounts]):
        members = np.flatnonzero(labels[:n_accounts] == comp)
        if len(members) < 2 * p.min_campaign:
            continue
        mask = labels[src] == comp
        s, d, ww = src[mask], dst[mask], w[mask]
        verts, inv = np.unique(np.concatenate([s, d]), return_inverse=True)
        g = ig.Graph(n=len(verts), edges=np.stack([inv[: len(s)], inv[len(s) :]], axis=1).tolist())
        ig.set_random_number_generator(random.Random(0))
        comm = np.asarray(g.community_leiden(objective_function="modularity", weights=ww.tolist(), n_iterations=-1).membership)
        groups = _merge_communities(comm, inv[: len(s)], inv[len(s) :], ww, verts < n_accounts, p, bridge[verts])
        if len(np.unique(groups[verts < n_accounts])) <= 1:
            continue
        for gid in np.unique(groups):
            out[verts[groups == gid]] = next_label
            next_label += 1
    return out


def find_root(parent: list[int], x: int) -> int:
    """Union-find root with path halving."""
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def _merge_communities(
    comm: np.ndarray,
    s: np.ndarray,
    d: np.ndarray,
    w: np.ndarray,
    is_account: np.ndarray,
    p: LinkParams,
    can_bridge: np.ndarray,
) -> np.ndarray:
    n = int(comm.max()) + 1
    cut = np.zeros((n, n))
    np.add.at(cut, (comm[s], comm[d]), w)
    cut = cut + cut.T
    vol = cut.sum(axis=1)
    np.fill_diagonal(cut, 0.0)
    size = np.bincount(comm[is_account], minlength=n)
    parent = list(range(n))

    def find(x: int) -> int:
        return find_root(parent, x)

    # Bridges: artifact nodes tied to accounts of two communities, each counted once with its
    # node weight. Two parts that share several specific artifacts (phones, cards, devices)
    # are one operator even when the cut is thin; a single public template is not enough.
    node_w = np.zeros(len(comm))
    node_w[d] = w
    node_w[~can_bridge] = 0.0
    bridge = np.zeros((n, n))
    pairs = np.unique(np.stack([d, comm[s]], axis=1), axis=0)  # (artifact node, community of a carrier)
    by_node: dict[int, list[int]] = {}
    for node, c in pairs.tolist():
        by_node.setdefault(node, []).append(c)
    for node, cs in by_node.items():
        cs = sorted(set(cs) | {int(comm[node])})
        for i, a in enumerate(cs):
            for b in cs[i + 1 :]:
                bridge[a, b] += node_w[node]
                bridge[b, a] += node_w[node]
    for a, b in zip(*np.nonzero(np.triu(cut + bridge)), strict=True):
        if cut[a, b] >= p.merge_ratio * max(vol[a], vol[b]) or bridge[a, b] >= p.merge_bridge:
            parent[find(int(a))] = find(int(b))
    # Only a split into big parts stands: a piece smaller than ``min_part`` joins the group
    # it is most tied to (sparse webs fall apart into many small communities otherwise).
    min_part = max(2 * p.min_campaign, int(p.min_part_share * size.sum()))
    while True:
        roots = np.array([find(i) for i in range(n)])
        gsize = np.bincount(roots, weights=size, minlength=n)
        small = [r for r in np.unique(roots) if gsize[r] < min_part]
        if not small or len(np.unique(roots)) == 1:
            break
        r = min(small, key=lambda x: (gsize[x], x))
        gcut = np.zeros(n)
        np.add.at(gcut, roots, cut[roots == r].sum(axis=0))
        gcut[r] = 0.0
        if not gcut.any():
            break
        parent[r] = int(np.argmax(gcut))
    return np.array([find(int(c)) for c in comm])


def identity_components(
    artifacts: pl.DataFrame, behaviour: pl.DataFrame, orgs: pl.DataFrame, p: LinkParams
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Webs of accounts that share identity artifacts, kept when their members behave unusually.

    Stealthy campaigns keep each account under every per-account threshold, but an operator
    reuses phones, cards, devices and domains across its accounts. Accounts are joined
    through identity artifacts held by at most ``identity_max_share`` of the population (so
    a webmail domain or an SDK fingerprint joins nothing) and not explained by a declared
    organisation (``orgs``: ``account, org_id``). Each web of at least ``min_campaign``
    accounts is then tested as a whole: under the null its members' behaviour ranks are
    uniform, so the mean rank ``U`` of ``n`` members gives ``z = (U - 1/2) sqrt(12 n)``,
    Bonferroni-corrected over the webs tested.

    Returns ``(account, web)`` for accounts in significant webs, one row per web tested
    (``n, u, z, neglog_p, cut, significant``), and the web's ties ``(account, kind, value, web)``.
    """
    empty = pl.DataFrame(schema={"account": pl.UInt32, "web": pl.Int64})
    stats_empty = pl.DataFrame(
        schema={"web": pl.Int64, "size": pl.UInt32, "n": pl.UInt32, "u": pl.Float64, "z": pl.Float64, "neglog_p": pl.Float64,
                "cut": pl.Float64, "significant": pl.Boolean}
    )  # fmt: skip
    ties_empty = pl.DataFrame(schema={"account": pl.UInt32, "kind": pl.String, "value": pl.UInt64, "web": pl.Int64})
    n_pop = behaviour.height
    if artifacts.height == 0 or n_pop == 0:
        return empty, stats_empty, ties_empty
    kmax = max(p.min_campaign * 2, int(p.identity_max_share * n_pop))
    ident, keep = _shared_identity(artifacts, orgs, p, kmax)
    ranks = behaviour.select("account", u=(pl.col("b").rank("average") - 0.5) / pl.col("b").count())
    keep = _unusual_carriers(ident.join(keep.select("kind", "value"), on=["kind", "value"]), ranks, p)
    edges = ident.join(keep, on=["kind", "value"]).select("account", "kind", "value")
    # Keep accounts tied by at least two shared artifacts: one coincidence (a popular
    # regional mail domain, a recycled phone number) is not common control.
    for _ in range(10):
        before = edges.height
        edges = edges.filter(pl.len().over("account") >= p.identity_min_ties)
        edges = edges.filter(pl.len().over("kind", "value") >= 2)
        if edges.height == before:
            break
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
    # Only members with enough traffic to be ranked speak; the rest (accounts just
    # registered with a reused phone and card) ride with the web's verdict.
    stats = (
        webs.join(ranks, on="account", how="left")
        .group_by("web")
        .agg(size=pl.len().cast(pl.UInt32), n=pl.col("u").count().cast(pl.UInt32), u=pl.col("u").mean())
        .with_columns(
            u=pl.col("u").fill_null(0.5),
            z=((pl.col("u").fill_null(0.5) - 0.5) * (12.0 * pl.col("n").cast(pl.Float64)).sqrt()),
        )
    )
    testable = (pl.col("size") >= p.min_campaign) & (pl.col("n") >= 2)
    n_tested = max(stats.filter(testable).height, 1)
    cut = float(-np.log10(p.alpha / n_tested))
    neglog_p = np.minimum(-norm.logsf(stats["z"].to_numpy()) / np.log(10.0), 300.0)
    stats = stats.with_columns(neglog_p=pl.Series(neglog_p), cut=pl.lit(cut)).with_columns(
        significant=testable & (pl.col("neglog_p") >= cut)
    )
    sig = stats.filter("significant").select("web")
    ties = edges.join(webs, on="account").join(sig, on="web")
    return webs.join(sig, on="web"), stats, ties


def _shared_identity(
    artifacts: pl.DataFrame, orgs: pl.DataFrame, p: LinkParams, kmax: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Identity artifact rows (with the holder's ``org_id``), and the artifacts ``(kind,
    value, k)`` held by 2 to ``kmax`` accounts and not all by one declared organisation's
    members (that artifact is the organisation's: its card, its domain)."""
    ident = artifacts.filter(pl.col("kind").is_in(list(p.identity))).join(orgs, on="account", how="left")
    per = ident.group_by("kind", "value").agg(
        k=pl.len().cast(pl.UInt32), orgs=pl.col("org_id").n_unique(), org_null=pl.col("org_id").null_count()
    )
    one_org = (pl.col("orgs") == 1) & (pl.col("org_null") == 0)
    return ident, per.filter((pl.col("k") >= 2) & (pl.col("k") <= kmax) & ~one_org).select("kind", "value", "k")


def _unusual_carriers(ident: pl.DataFrame, ranks: pl.DataFrame, p: LinkParams) -> pl.DataFrame:
    """``(kind, value)`` of identity artifacts whose ranked carriers sit above the median.

    Why: the share cap alone lets a mid-sized webmail domain (a few hundred customers, a few
    of them attackers) through, and one such domain joins every campaign that used it. An
    artifact with ``identity_testable`` ranked carriers or more must be unusual on its own
    (mean rank ``z`` past the one-sided ``alpha`` cut); a smaller one (a phone, a card)
    must only average above the population median. Unranked carriers (accounts with no
    traffic yet) do not speak; an artifact none of whose carriers is ranked is kept.
    """
    cut = float(norm.isf(p.alpha))
    per = (
        ident.join(ranks, on="account", how="left")
        .group_by("kind", "value")
        .agg(n=pl.col("u").count(), u=pl.col("u").mean())
        .with_columns(z=(pl.col("u") - 0.5) * (12.0 * pl.col("n").cast(pl.Float64)).sqrt())
    )
    ok = (pl.col("n") == 0) | ((pl.col("u") > 0.5) & ((pl.col("n") < p.identity_testable) | (pl.col("z") >= cut)))
    return per.filter(ok).select("kind", "value")


def associates(
    artifacts: pl.DataFrame, members: pl.DataFrame, behaviour: pl.DataFrame, orgs: pl.DataFrame, p: LinkParams
) -> pl.DataFrame:
    """Accounts outside every campaign tied to one by a small identity artifact its members hold.

    A stealthy operator gives most accounts their own phone, card and device and hides each
    one below every per-account threshold, but a front mail domain or a reused card still
    ties an account that slipped through to siblings already caught. Guilt by association
    is kept narrow: the artifact has at most ``identity_testable`` carriers (a webmail or
    company domain links nothing), is not one declared organisation's, and at least
    ``associate_min`` of its carriers, and at least half of all, are members of the same
    campaign (``members``: ``account, component``). The account itself must rank at or
    above the link quantile, or be too new to rank: an ordinary user who shares a recycled
    phone with a fraud ring stays out. An account that joined can bring in its own
    siblings in the next round, up to ``associate_rounds`` rounds.

    Returns ``account, component, kind, value, k, inside``: one row per tie, every tie of an
    associated account to the campaign it joins (the one it shares most artifacts with).
    """
    out_schema = {"account": pl.UInt32, "component": pl.Int64, "kind": pl.String, "value": pl.UInt64,
                  "k": pl.UInt32, "inside": pl.UInt32}  # fmt: skip
    if artifacts.height == 0 or members.height == 0:
        return pl.DataFrame(schema=out_schema)
    ident, per = _shared_identity(artifacts, orgs, p, p.identity_testable)
    q_link = behaviour["b"].quantile(p.link_quantile) if behaviour.height else None
    ranked = behaviour.select("account", ok=pl.col("b") >= (q_link if q_link is not None else 0.0))
    held = ident.select("account", "kind", "value").join(per.select("kind", "value", "k"), on=["kind", "value"])
    found: list[pl.DataFrame] = []
    for _ in range(p.associate_rounds):
        carriers = held.join(members.select("account", "component"), on="account", how="left")
        inside = (
            carriers.filter(pl.col("component").is_not_null())
            .group_by("kind", "value", "component")
            .agg(inside=pl.len().cast(pl.UInt32))
        )
        ties = (
            carriers.filter(pl.col("component").is_null())
            .drop("component")
            .join(inside, on=["kind", "value"])
            .filter((pl.col("inside") >= p.associate_min) & (2 * pl.col("inside") >= pl.col("k")))
            .join(ranked, on="account", how="left")
            .filter(pl.col("ok").fill_null(True))
            .drop("ok")
        )
        if ties.height == 0:
            break
        best = (
            ties.group_by("account", "component")
            .agg(n=pl.len())
            .sort(["account", "n", "component"], descending=[False, True, False])
            .unique("account", keep="first")
            .select("account", "component")
        )
        found.append(ties.join(best, on=["account", "component"]))
        members = pl.concat([members.select("account", "component"), best])
    if not found:
        return pl.DataFrame(schema=out_schema)
    return pl.concat(found).select(list(out_schema)).cast(out_schema).sort("account", "kind", "value")  # type: ignore[arg-type]
