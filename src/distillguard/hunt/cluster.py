"""Cluster: accounts tied by significant shared artifacts into campaigns.

Campaigns are the connected components of the bipartite graph accounts–significant
artifacts (:mod:`distillguard.hunt.link` decides which artifacts are significant),
split with Leiden community detection where two parts are only thinly tied, and put
back together where the parts behave alike (one operator, one script).
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import polars as pl
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from distillguard.hunt.config import LinkParams, ScoreParams
from distillguard.signals import context_relative_features

__all__ = ["components", "drop_unlike_bystanders", "find_root", "rejoin_same_profile", "split_loose"]


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
    ranked = behaviour if q_link is None else behaviour.filter(pl.col("b") >= q_link)  # None: nobody ranked
    usual = ranked.select("account", ok=pl.lit(True))
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
        return pl.DataFrame(schema={"account": pl.UInt32, "component": pl.Int64, "whole": pl.Int64, "own": pl.Boolean})
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
    own = edges.group_by("account").agg(own=(~byst).any())
    return (
        local.with_columns(component=pl.Series(labels[:n_a]).cast(pl.Int64), whole=pl.Series(whole[:n_a]).cast(pl.Int64))
        .join(own, on="account", how="left")
        .select("account", "component", "whole", "own")
    )


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
    # Only components of at least two campaigns' worth of accounts can split: found by their
    # account counts, not by a pass over every account per component.
    sizes = np.bincount(labels[:n_accounts])
    edge_comp = labels[src]
    for comp in np.flatnonzero(sizes >= 2 * p.min_campaign):
        mask = edge_comp == comp
        s, d, ww = src[mask], dst[mask], w[mask]
        verts, inv = np.unique(np.concatenate([s, d]), return_inverse=True)
        is_account, can_bridge = verts < n_accounts, bridge[verts]
        # The split depends on the component's graph alone (Leiden is seeded per component),
        # so a component that did not change since the last call is not split again.
        key = _graph_key(inv, ww, is_account, can_bridge, p)
        groups = _SPLITS.get(key)
        if groups is None:
            g = ig.Graph(n=len(verts), edges=list(zip(inv[: len(s)].tolist(), inv[len(s) :].tolist(), strict=True)))
            ig.set_random_number_generator(random.Random(0))
            # Two passes (igraph's default), not until no vertex moves: on the full-scale web
            # (23,421 accounts, 113,040 edges) 0.34 s instead of 2.3 s, the same campaigns after
            # the merge below; the live re-score splits its changed web every few seconds.
            comm = np.asarray(g.community_leiden(objective_function="modularity", weights=ww.tolist(), n_iterations=2).membership)
            groups = _merge_communities(comm, inv[: len(s)], inv[len(s) :], ww, is_account, p, can_bridge)
            _SPLITS[key] = groups
            while len(_SPLITS) > _SPLITS_KEPT:
                _SPLITS.pop(next(iter(_SPLITS)))
        if len(np.unique(groups[is_account])) <= 1:
            continue
        for gid in np.unique(groups):
            out[verts[groups == gid]] = next_label
            next_label += 1
    return out


# Splits of the components seen last (graph key -> community group of each vertex), oldest
# first: the live re-score clusters every few seconds a graph that mostly did not change.
_SPLITS: dict[bytes, np.ndarray] = {}
_SPLITS_KEPT = 1024


def _graph_key(inv: np.ndarray, w: np.ndarray, is_account: np.ndarray, can_bridge: np.ndarray, p: LinkParams) -> bytes:
    """A digest of everything :func:`split_loose` reads of one component: its edges (local
    vertex numbers, in order), their weights, which vertices are accounts and bridges, and
    the parameters."""
    h = hashlib.blake2b(repr(p).encode(), digest_size=20)
    for a in (inv.astype(np.int64), w.astype(np.float64), is_account, can_bridge):
        h.update(len(a).to_bytes(8, "little"))
        h.update(np.ascontiguousarray(a).tobytes())
    return h.digest()


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
    # (artifact node, community of a carrier) for every node that can bridge, with the node's
    # own community, as one sorted code; only nodes in two communities or more add weight.
    sel = node_w[d] > 0
    nodes = np.unique(d[sel]).astype(np.int64)
    pairs = np.unique(np.concatenate([d[sel].astype(np.int64) * n + comm[s[sel]], nodes * n + comm[nodes]]))
    pair_node = pairs // n
    many = np.flatnonzero(np.bincount(pair_node)[pair_node] >= 2)
    by_node: dict[int, list[int]] = {}
    for node, c in zip(pair_node[many].tolist(), (pairs[many] % n).tolist(), strict=True):
        by_node.setdefault(node, []).append(c)
    for node, cs in by_node.items():
        for i, a in enumerate(cs):
            for b in cs[i + 1 :]:
                bridge[a, b] += node_w[node]
                bridge[b, a] += node_w[node]
    for a, b in zip(*np.nonzero(np.triu(cut + bridge)), strict=True):
        if cut[a, b] >= p.merge_ratio * max(vol[a], vol[b]) or bridge[a, b] >= p.merge_bridge:
            parent[find(int(a))] = find(int(b))
    # Only a split into big parts stands: a piece smaller than ``min_part`` joins the group
    # it is most tied to (sparse webs fall apart into many small communities otherwise),
    # unless it is closed: almost all of its ties inside. ``min_part`` is a share of the
    # whole component, so where several campaigns meet in one (a full-scale log) a whole
    # campaign can be under it; tied to another by a shared network or two, it stays apart.
    min_part = max(2 * p.min_campaign, int(p.min_part_share * size.sum()))
    closed: set[int] = set()
    while True:
        roots = np.array([find(i) for i in range(n)])
        gsize = np.bincount(roots, weights=size, minlength=n)
        small = [r for r in np.unique(roots) if gsize[r] < min_part and r not in closed]
        if not small or len(np.unique(roots)) == 1:
            break
        r = min(small, key=lambda x: (gsize[x], x))
        gcut = np.zeros(n)
        np.add.at(gcut, roots, cut[roots == r].sum(axis=0))
        gcut[r] = 0.0
        if not gcut.any():
            break
        if gcut.sum() < p.closed_share * vol[roots == r].sum():
            closed.add(int(r))
            continue
        target = int(np.argmax(gcut))
        parent[r] = target
        closed.discard(target)  # its ties changed with the piece it took in
    final: np.ndarray = np.array([find(i) for i in range(n)])[comm]
    return final


def rejoin_same_profile(comp: pl.DataFrame, feats: pl.DataFrame, params: ScoreParams) -> pl.DataFrame:
    """Put back together the parts of one split component that behave alike.

    One operator runs one script, so its accounts share a behaviour profile (the mean of
    each tail score in ``feats``, all columns but ``account``) even when they fall into loosely tied cells; two operators who
    happen to share a public template or a mail domain do not. Parts whose profiles differ
    by less than ``profile_distance`` on every feature are merged. Features measured against
    an account's context (:func:`~distillguard.signals.context_relative_features`) are left
    out: an operator gives each cell other countries, and a cell the split set apart for its
    dense ties overlaps the pool more than the rest, so its misplacement and pool overlap
    differ while its script and clock do not.
    """
    context = context_relative_features()
    cols = [c for c in feats.columns if c != "account" and c not in context]
    if not cols or comp.height == 0:
        return comp.select("account", "component")
    prof = (
        comp.join(feats, on="account", how="left")
        .group_by("whole", "component")
        .agg([pl.col(c).fill_null(0.0).clip(0.0, params.cap).mean() for c in cols])
        .sort("whole", "component")
    )
    remap: dict[int, int] = {}
    for (_,), part in prof.group_by(["whole"], maintain_order=True):
        if part.height < 2:
            continue
        ids = part["component"].to_list()
        m = part.select(cols).to_numpy()
        parent = list(range(len(ids)))
        for i in range(len(ids)):
            for j in range(i + 1, len(ids)):
                if float(abs(m[i] - m[j]).max()) < params.profile_distance:
                    parent[find_root(parent, j)] = find_root(parent, i)
        for i, c in enumerate(ids):
            remap[c] = ids[find_root(parent, i)]
    if not remap:
        return comp.select("account", "component")
    return comp.with_columns(pl.col("component").replace(remap)).select("account", "component")


def drop_unlike_bystanders(
    comp: pl.DataFrame, own: pl.DataFrame, feats: pl.DataFrame, params: ScoreParams, min_campaign: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Take out of each campaign the members tied to it only by what bystanders share (its
    networks, a device, a lived time zone: :attr:`LinkParams.bystander`) that behave unlike
    every member tied by a thing of its own (a template, a phone, a card, a script).

    A cloud /24 that a fleet sends from is also where a lab's benchmark harness may run and
    where it signed up; the network ties it to the fleet, its behaviour does not. "Unlike" is
    measured on the campaign itself: the account's profile lies farther from the median
    profile of the members with ties of their own (largest difference over the tail scores)
    than any of those members does. A campaign with fewer than ``min_campaign`` such members
    keeps everyone. Returns the components left and the accounts taken out (``account,
    component, distance, spread``, and the ``feature`` farthest from the members') for their
    evidence.
    """
    empty = pl.DataFrame(
        schema={"account": pl.UInt32, "component": pl.Int64, "distance": pl.Float64, "spread": pl.Float64, "feature": pl.String}
    )
    cols = [c for c in feats.columns if c != "account"]
    if not cols or comp.height == 0:
        return comp, empty
    c = comp.join(own, on="account", how="left").with_columns(pl.col("own").fill_null(True))
    core_n = pl.col("own").sum().over("component")
    at_risk = c.filter(~pl.col("own") & (core_n >= min_campaign))
    if at_risk.height == 0:
        return comp, empty
    prof = c.filter(core_n >= min_campaign).join(feats, on="account", how="left")
    prof = prof.with_columns([pl.col(x).fill_null(0.0).clip(0.0, params.cap) for x in cols])
    centre = prof.filter("own").group_by("component").agg([pl.col(x).median().alias(f"__m_{x}") for x in cols])
    diffs = [(pl.col(x) - pl.col(f"__m_{x}")).abs() for x in cols]
    dist = prof.join(centre, on="component").with_columns(
        distance=pl.max_horizontal(diffs),
        feature=pl.concat_list(diffs).list.arg_max().replace_strict(list(range(len(cols))), cols, return_dtype=pl.String),
    )
    spread = dist.filter("own").group_by("component").agg(spread=pl.col("distance").max())
    out = (
        dist.filter(~pl.col("own"))
        .join(spread, on="component")
        .filter(pl.col("distance") > pl.col("spread"))
        .select("account", "component", "distance", "spread", "feature")
        .sort("account")
    )
    return comp.join(out.select("account"), on="account", how="anti"), out
