"""Proxy pools: accounts whose networks overlap far more than the networks' popularity explains.

A fleet behind residential proxies rotates through many /24s in many ASNs, drawn from one
pool the fleet shares; no single /24 carries a fifth of any account's traffic, so the
infrastructure signal's per-account prefixes tie nothing. What gives the pool away is the
*set*: each member uses networks of many operators, and each of those networks is used
mostly by other members. Carrier NAT, campus NAT and cloud /24s are shared too, but by
strangers who each stay on one or two operators' networks.

State, per account (mergeable and bounded): a bottom-k sketch of the /24 prefixes it used,
each with its ASN and request count (the ``SKETCH`` smallest hashes; exact up to
``SKETCH`` values, beyond that a coordinated sample: every account keeps the same
prefixes of a pool, so overlaps stay visible, and the k-th hash estimates the distinct
count, Beyer et al., "On synopses for distinct-value estimation", SIGMOD 2007). A prefix's
popularity (distinct accounts) is read off the sketches at finalize, so it merges exactly
for free.

Finalize finds pools directly rather than through LSH band keys: in a pool of ``P`` exits
where each of ``n`` members uses ``d``, two members share about ``d^2 / P`` prefixes, and
``P`` grows with the fleet (demo, seed 11: the hydra fleet's 120 accounts use a median of
20 /24s in 10 ASNs, yet a typical pair of them shares 2 to 3; at full scale, where the pool
is 100 times larger, a pair shares well under one). MinHash similarity of pairs is then
near zero and LSH bands would only repeat single prefixes. The group is plain to see
instead: a bipartite core where every account uses prefixes of at least ``min_asns``
operators that other core accounts also use, and every prefix kept is used mostly
(``core_share``) by core accounts. A carrier NAT, a campus NAT or a cloud /24 gives its
strangers one operator, and its users are mostly ordinary, so it is peeled away; a home
/24 that is also a pool exit gives its owner one shared operator, so the owner stays out.
Each connected pool is then tested against chance: members co-use /24s ``O`` times (pairs
of members on one prefix), while members picking /24s inside each ASN as non-members do
would co-use them ``E = sum_A c_A * C(n_A, 2)`` times (``c_A``: how often two non-member
uses of ASN ``A`` fall on one /24, which is high for a carrier NAT and low for a broadband
ISP). That tail ``P(O | E)`` is reported, not required (where outsiders collide on an
ASN's few /24s too, it is blind, see ``_pools``). Each pool keeps the members whose own
networks fall on its exits more often than an outsider's do (:func:`_members`: residential exits are people's homes, so a home user can
sit on a few of them by chance), and then, up to ``ROTATOR_ROUNDS`` times, the accounts
outside the core that rotate like its members and land on their exits (:func:`_rotators`:
a quiet fleet's member uses a dozen exits of a pool of thousands, two or three of them also
a member's, too few shared operators for the core); each pool is emitted as one ``pool``
artifact per member, for the link step to test by its members' behaviour.

On the simulated logs (``distillguard simulate``, no labels read): demo seed 11, one pool
of the 120 hydra accounts (all of them) and no benign account; feb-2026 at scale 0.03 seed
5, one pool of 494 of the 510 hydra accounts; qwen-2026 at scale 0.02 seed 101, one pool of
all 180. Carrier NAT groups (``nat_shared``), clouds and the 3,000 to 4,000 ordinary
accounts of each log join none. Reasoning harvesters (3 to 4 datacenter exits each) form
a core of 22 in demo and feb, but their exits are /24s that outsiders use too, so no
member clears the per-member test.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import polars as pl

from distillguard.signals.base import (
    ARTIFACTS_SCHEMA,
    TEXT_SPEC_DTYPES,
    ArtifactKind,
    DType,
    Finding,
    Signal,
    State,
    TableSpec,
    tail_score,
)

# Values kept per account in each sketch: exact for every ordinary account (1-5 prefixes)
# and for rotators up to this many; a hundred-prefix rotator keeps a coordinated sample.
SKETCH = 64
ROTATOR_ROUNDS = 3  # rounds of _rotators: each round's new members bring their exits
_SKETCH_DTYPES: dict[str, DType] = {"account": pl.UInt32, "value": pl.UInt64, "n": pl.Int64, "asn": pl.Int64}
_EMPTY_FEATURES = ("n", "prefixes", "asns", "rotation", "pool_overlap", "pool_prefixes", "pool_size",
                   "pool_co_users", "pool_observed", "pool_expected", "pool_neglog_p")  # fmt: skip


def bottom_k(rows: pl.DataFrame) -> pl.DataFrame:
    """Merge of bottom-k sketches: counts summed per ``(account, value)``, then the ``SKETCH``
    smallest values of each account kept. Associative and exact for what it keeps: a value
    among the k smallest of the union is among the k smallest of every part holding it."""
    g = rows.group_by("account", "value").agg(pl.col("n").sum(), pl.col("asn").max())
    if g.height > SKETCH and g.select(pl.len().over("account").max()).item() > SKETCH:
        g = g.filter(pl.col("value").rank("ordinal").over("account") <= SKETCH)
    return g.cast(_SKETCH_DTYPES)  # type: ignore[arg-type]


def _sketch_spec() -> TableSpec:
    return TableSpec(("account", "value"), {"n": "sum", "asn": "max"}, _SKETCH_DTYPES, fold=bottom_k)


class ProxyPoolSignal(Signal):
    """Pools of networks that a group of accounts rotates through together.

    Parameters
    ----------
    min_asns
        Distinct operators (ASNs; the /24 itself where the log has no ASN) whose shared
        prefixes an account must use to be in a pool: a NAT or a cloud gives one.
    core_share
        Share of a prefix's accounts that must be pool accounts for the prefix to be
        part of the pool (a home /24 that is also an exit, a cloud /24, stays out).
    min_pool
        Fewest accounts in a pool worth testing (the link step tests from three carriers).
    alpha
        Family-wise error of the per-member tests (Bonferroni over the candidates).
    min_volume
        Requests before an account's count of operators is read as rotation.
    """

    name: ClassVar[str] = "proxy_pool"
    requires: ClassVar[tuple[str, ...]] = ("ip_prefix|ip",)
    tables: ClassVar[dict[str, TableSpec]] = {
        "net": _sketch_spec(),
        "acct": TableSpec(("account",), {"n": "sum"}, {"account": pl.UInt32}),
    }
    artifact_kinds: ClassVar[dict[str, ArtifactKind]] = {
        # Emitted only for accounts that use the pool's networks across several operators,
        # more than an outsider would (a bystander on one exit, or a home user on a few, is
        # left out here), so not ``bystander``: one pool per account could never meet the
        # link step's two bystander ties. Not ``identity``: two operators may buy from one
        # provider, and the cluster step may split them. ``group``: the pool is a candidate
        # found here, so its members form one web that the link step tests by their mean
        # behaviour rank (a quiet fleet with no shared phone or card is still one web).
        "pool": ArtifactKind("proxy pool", group=True),
    }
    # ``tail_rotation`` is a tail score kept out of behaviour (no ``ts_`` prefix): as one,
    # it lifted every roaming home user above stealth accounts that sit on one network, and
    # the stealth web of demo seed 11 lost 3 of its 71 flagged accounts. The pool is the
    # evidence; rotation alone is a reviewer's hint.
    features: ClassVar[tuple[str, ...]] = (*_EMPTY_FEATURES, "tail_rotation", "ts_pool")
    # The overlap is measured against the pool's other users: where a cell sits in the pool,
    # not what its script does (see ``Signal.context_relative``).
    context_relative: ClassVar[tuple[str, ...]] = ("ts_pool",)

    def __init__(
        self, min_asns: int = 3, core_share: float = 0.5, min_pool: int = 3, alpha: float = 0.01, min_volume: int = 10
    ) -> None:
        self.min_asns = min_asns
        self.core_share = core_share
        self.min_pool = min_pool
        self.alpha = alpha
        self.min_volume = min_volume

    def enrich(self, batch: pl.DataFrame) -> pl.DataFrame:
        prefix = pl.col("ip_prefix")
        if batch["ip_prefix"].null_count() and batch["ip"].null_count() < batch.height:
            v4 = pl.col("ip").str.extract(r"^(\d+\.\d+\.\d+)\.\d+$", 1) + ".0/24"
            prefix = pl.coalesce(prefix, v4)
        # Seed 11 as the infrastructure signal: one prefix, one value in both.
        return batch.select(pp_prefix=pl.when(prefix.is_not_null()).then(prefix.hash(11)))

    def update(self, state: State, rows: pl.DataFrame) -> State:
        t = self.tables
        one = pl.lit(1, pl.Int64).alias("n")
        net = rows.select("account", value="pp_prefix", n=one, asn="asn").drop_nulls("value")
        acct = rows.group_by("account").agg(n=pl.len().cast(pl.Int64)) if rows.height else t["acct"].empty()
        return {
            # One fold over the state and the batch's raw rows (not the batch's sketch first).
            "net": bottom_k(pl.concat([state["net"], net], how="vertical_relaxed")) if net.height else state["net"],
            "acct": t["acct"].compact([state["acct"], acct.cast({"account": pl.UInt32})]),
        }

    def finalize(self, state: State, n_accounts: int) -> Finding:
        net = state["net"].with_columns(
            op=pl.coalesce(pl.col("asn"), pl.col("value").reinterpret(signed=True))  # no ASN: the /24 is its own
        )
        # Operators are read off the prefix sketch: exact up to ``SKETCH`` prefixes, a lower
        # bound beyond (a second sketch of ASNs cost as much as the first, for rotators only).
        # One pass: distinct prefixes (:func:`_distinct_expr`) and operators per account.
        ops = net.group_by("account").agg(_distinct_expr("prefixes"), asns=pl.col("op").n_unique().cast(pl.Float64))
        feats = state["acct"].join(ops, on="account", how="left")
        feats = feats.with_columns(pl.col("prefixes", "asns").fill_null(0.0)).with_columns(
            rotation=pl.when(pl.col("n") >= self.min_volume).then(pl.col("asns")).otherwise(0.0)
        )
        pools, members, texts = self._pools(net)
        feats = feats.join(members, on="account", how="left").with_columns(
            pl.col(c).fill_null(0) for c in members.columns if c != "account"
        )
        feats = feats.with_columns(
            tail_rotation=tail_score(pl.col("rotation")), ts_pool=tail_score(pl.col("pool_overlap").cast(pl.Float64))
        ).sort("account")
        arts = pools.select("account", kind=pl.lit("pool"), value="pool", share="share").cast(ARTIFACTS_SCHEMA)  # type: ignore[arg-type]
        return Finding(feats.select("account", *self.features), arts, self._explain, texts=texts)

    def _pools(self, net: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        """Significant pools: ``(account, pool, share)`` artifacts, per-member features and
        the pools' readable texts."""
        pop = net.group_by("value").agg(k=pl.len()).filter(pl.col("k") >= 2).with_row_index("v")
        shared = net.join(pop, on="value")
        core = _peel(shared, self.min_asns, self.core_share)
        member_schema = {"account": pl.UInt32, "pool_overlap": pl.Int64, "pool_prefixes": pl.Int64,
                         "pool_size": pl.Int64, "pool_co_users": pl.Int64, "pool_observed": pl.Int64,
                         "pool_expected": pl.Float64, "pool_neglog_p": pl.Float64}  # fmt: skip
        empty = (
            pl.DataFrame(schema={"account": pl.UInt32, "pool": pl.UInt64, "share": pl.Float64}),
            pl.DataFrame(schema=member_schema),
            pl.DataFrame(schema=TEXT_SPEC_DTYPES),
        )
        if core.height == 0:
            return empty
        comp = _components(core).filter(pl.len().over("pool") >= self.min_pool)
        if comp.height == 0:
            return empty
        # Every use of a network by a member, with its pool; co-use counted over all of them.
        uses = net.join(comp, on="account")
        per_prefix = uses.group_by("pool", "value").agg(c=pl.len(), op=pl.col("op").max())
        observed = per_prefix.group_by("pool").agg(observed=(pl.col("c") * (pl.col("c") - 1) // 2).sum())
        outside = net.join(comp, on="account", how="anti")
        rate, pooled = _collision_rates(outside)
        n_a = uses.group_by("pool", "op").agg(n=pl.len()).join(rate, on="op", how="left").with_columns(
            pl.col("rate").fill_null(pooled)  # an operator only pool members use: the pooled rate
        )
        # Float sums in a fixed order: the same state gives the same features, bit for bit.
        n_a = n_a.sort("pool", "op")
        expected = n_a.group_by("pool", maintain_order=True).agg(
            expected=(pl.col("rate") * pl.col("n") * (pl.col("n") - 1) / 2).sum()
        )
        test = (
            comp.group_by("pool")
            .agg(size=pl.len())
            .join(observed, on="pool")
            .join(expected, on="pool")
            .sort("pool")
        )
        from scipy.stats import poisson

        o = test["observed"].to_numpy().astype(np.float64)
        e = np.maximum(test["expected"].to_numpy(), 1e-12)
        neglog = np.minimum(-poisson.logsf(o - 1, e) / math.log(10.0), 300.0)
        # The co-use tail is evidence, not a gate: where the pool's exits sit in ASNs whose
        # few /24s outsiders also collide on (tactics-2026 at scale 0.1: 7,468 co-uses where
        # 7,527 are expected), it says nothing, yet the core is the fleet (375 of its 380
        # accounts, 3 others). The core is a candidate group (``ArtifactKind.group``): the
        # link step judges it whole by how its members behave.
        test = test.with_columns(neglog_p=pl.Series(neglog))
        exits = per_prefix.join(test.select("pool"), on="pool").filter(pl.col("c") >= 2).select("pool", "value", "c")
        uses = _members(uses.join(test.select("pool"), on="pool"), exits, outside, self.alpha)
        for _ in range(ROTATOR_ROUNDS):
            more = _rotators(net, uses, self.min_asns, self.alpha)
            if more.height == 0:
                break
            uses = pl.concat([uses, more])
        test = test.drop("size").join(uses.group_by("pool").agg(size=pl.col("account").n_unique()), on="pool")
        test = test.filter(pl.col("size") >= self.min_pool)
        uses = uses.join(test.select("pool"), on="pool")
        co = uses.join(exits, on=["pool", "value"])
        # Other members met on the account's networks, counted with repeats and capped at the
        # pool's size: the distinct count needs every pair of members on a prefix, and a
        # datacenter exit shared by thousands makes that millions of rows.
        per_acct = co.group_by("account").agg(
            pool_overlap=pl.col("op").n_unique(),
            pool_prefixes=pl.len(),
            on_pool=pl.col("n").sum(),
            met=(pl.col("c") - 1).sum(),
        )
        totals = uses.group_by("account", "pool").agg(tot=pl.col("n").sum())
        members = (
            totals.join(per_acct, on="account", how="left")
            .join(test, on="pool")
            .with_columns(pl.col("pool_overlap", "pool_prefixes", "met", "on_pool").fill_null(0))
            .with_columns(pool_co_users=pl.min_horizontal("met", pl.col("size") - 1))
        )
        arts = members.select("account", "pool", share=pl.col("on_pool") / pl.col("tot"))
        feats = members.select(
            "account", "pool_overlap", "pool_prefixes", "pool_co_users",
            pool_size="size", pool_observed="observed", pool_expected="expected", pool_neglog_p="neglog_p",
        ).cast(member_schema)  # type: ignore[arg-type]  # fmt: skip
        spread = co.group_by("pool").agg(p=pl.col("value").n_unique(), a=pl.col("op").n_unique())
        texts = test.join(spread, on="pool").select(
            value="pool",
            text=pl.format("{} accounts co-using {} /24s in {} ASNs", "size", "p", "a"),
        )
        return arts, feats, texts.cast(TEXT_SPEC_DTYPES)  # type: ignore[arg-type]

    def _explain(self, r: dict[str, Any]) -> list[str]:
        prefixes, asns = float(r.get("prefixes") or 0), float(r.get("asns") or 0)
        about, least = ("about ", "at least ") if prefixes > SKETCH else ("", "")
        used = f"used {about}{prefixes:,.0f} /24 networks in {least}{asns:,.0f} ASNs"
        if (r.get("pool_size") or 0) > 0:
            return [
                f"{used}; {int(r['pool_prefixes'] or 0):,} of them (in {int(r['pool_overlap'] or 0):,} ASNs) also used "
                f"by up to {int(r['pool_co_users'] or 0):,} other accounts of one pool of {int(r['pool_size']):,} accounts, "
                f"which co-use networks {int(r['pool_observed'] or 0):,} times where chance predicts "
                f"{float(r['pool_expected'] or 0):,.1f} (p < 1e-{max(int(r['pool_neglog_p'] or 0), 1)})"
            ]
        if (r.get("tail_rotation") or 0) >= 2.0 and asns >= self.min_asns:
            return [f"{used} over {int(r.get('n') or 0):,} requests: few accounts move between so many networks"]
        return []


def _members(uses: pl.DataFrame, exits: pl.DataFrame, outside: pl.DataFrame, alpha: float) -> pl.DataFrame:
    """The rows of ``uses`` (a candidate's networks, with its pool) of candidates that use
    the pool's ``exits`` more than an outsider would.

    Residential exits are people's home networks, and a big pool covers much of an ISP's
    /24s: a home user whose few networks all happen to be exits looks like a small member.
    Per operator, ``q`` is the share of outsiders' networks that are the pool's exits (half
    a use added to each side, so an operator no outsider uses counts as a coin flip); a
    candidate with ``x`` networks on exits where chance gives ``sum q`` stays in when the
    Poisson tail clears ``alpha``, Bonferroni over the candidates.
    """
    from scipy.stats import poisson

    on = outside.select("value", "op").join(exits.select("pool", "value"), on="value")
    per_op = outside.group_by("op").agg(tot=pl.len())
    cover = on.group_by("pool", "op").agg(hit=pl.len()).join(per_op, on="op", how="left")
    rows = (
        uses.join(exits.select("pool", "value", exit=pl.lit(True)), on=["pool", "value"], how="left")
        .join(cover, on=["pool", "op"], how="left")
        .join(per_op.rename({"tot": "all_"}), on="op", how="left")
        .with_columns(
            q=(pl.col("hit").fill_null(0) + 0.5) / (pl.coalesce("tot", "all_").fill_null(0) + 1.0),
            exit=pl.col("exit").fill_null(False),
        )
    )
    rows = rows.sort("account", "value")
    per = rows.group_by("account", maintain_order=True).agg(x=pl.col("exit").sum(), lam=pl.col("q").sum())
    neglog = -poisson.logsf(per["x"].to_numpy() - 1.0, per["lam"].to_numpy()) / math.log(10.0)
    cut = -math.log10(alpha / max(per.height, 1))
    keep = per.with_columns(neglog=pl.Series(neglog)).filter(pl.col("neglog") >= cut).select("account")
    return uses.join(keep, on="account")


def _rotators(net: pl.DataFrame, members: pl.DataFrame, min_asns: int, alpha: float) -> pl.DataFrame:
    """Accounts outside a pool's core that rotate like its members and land on its exits:
    the rows of ``net`` of each, with the pool (``members``' columns).

    The core asks every member for shared prefixes of ``min_asns`` operators, so a quiet
    member that used a dozen exits of a pool of thousands, two or three of them also a
    member's, stays out of it. A candidate holds two or more members' exits (counted from
    members' use only, so a candidate's own use never makes one) and ``min_asns`` operators.
    Against the *strangers* (accounts neither members nor candidates), two things are rare
    together: that many operators (``p_ops``, the share of strangers with as many) and that
    many networks on exits (the Poisson tail, ``q`` per operator from the strangers'
    networks, as in :func:`_members`). A candidate joins where

    * it uses more operators than all but ``alpha`` of the strangers and the two tails,
      combined as the product of two independent p-values is (``t (1 - ln t)``), clear
      ``alpha`` Bonferroni over the candidates; or
    * it uses more operators than all but ``alpha / 10`` of them and the tail of its networks
      on *rare* exits (used by at most one stranger: a carrier NAT /24 that is also an exit
      is everyone's) clears ``alpha``: at most ``alpha / 10`` of the strangers are tested
      this way, so chance admits about ``alpha^2 / 10`` of them (0.4 of 40,000).

    A home user on three exits of a big pool uses three operators, as many strangers do
    (``test_home_user_whose_networks_are_all_exits_of_a_big_pool_stays_out``).
    """
    exits = members.select("pool", "value").unique()
    out = net.join(members.select("account").unique(), on="account", how="anti")
    ops = net.group_by("account").agg(ops=pl.col("op").n_unique())
    cand = (
        out.join(exits, on="value")
        .group_by("pool", "account")
        .agg(x=pl.col("value").n_unique())
        .filter(pl.col("x") >= 2)
        .join(ops.filter(pl.col("ops") >= min_asns), on="account")
        .sort("pool", "account")
    )
    if cand.height == 0:
        return members.clear()
    strangers = out.join(cand.select("account").unique(), on="account", how="anti")
    seen = np.sort(strangers.group_by("account").agg(ops=pl.col("op").n_unique())["ops"].to_numpy())
    p_ops = (len(seen) - np.searchsorted(seen, cand["ops"].to_numpy(), side="left") + 1.0) / (len(seen) + 1.0)
    popular = strangers.group_by("value").agg(k=pl.len()).filter(pl.col("k") >= 2)
    rare = exits.join(popular, on="value", how="anti")
    t = np.maximum(p_ops * _exit_tail(cand, out, strangers, exits), 1e-300)
    passed = (p_ops <= alpha) & (t * (1.0 - np.log(t)) <= alpha / cand.height)
    passed |= (p_ops <= alpha / 10) & (_exit_tail(cand, out, strangers, rare) <= alpha)
    keep = cand.filter(pl.Series(passed)).select("pool", "account")
    return net.join(keep, on="account").select(members.columns)


def _exit_tail(cand: pl.DataFrame, out: pl.DataFrame, strangers: pl.DataFrame, exits: pl.DataFrame) -> np.ndarray:
    """Per row of ``cand`` (sorted ``pool, account``), the Poisson tail of how many of its
    networks are the pool's ``exits``, where each network is one with the share of the
    strangers' networks of its operator that are exits (half a use added to each side)."""
    from scipy.stats import poisson

    per_op = strangers.group_by("op").agg(tot=pl.len())
    hits = strangers.join(exits, on="value").group_by("pool", "op").agg(hit=pl.len())
    rows = cand.select("pool", "account").join(out.select("account", "value", "op"), on="account")
    per = (
        rows.join(exits.with_columns(on=pl.lit(1)), on=["pool", "value"], how="left")
        .join(hits, on=["pool", "op"], how="left")
        .join(per_op, on="op", how="left")
        .group_by("pool", "account")
        .agg(
            x=pl.col("on").fill_null(0).sum(),
            lam=((pl.col("hit").fill_null(0) + 0.5) / (pl.col("tot").fill_null(0) + 1.0)).sum(),
        )
    )
    per = cand.select("pool", "account").join(per, on=["pool", "account"], how="left")
    tail: np.ndarray = np.exp(poisson.logsf(per["x"].to_numpy() - 1.0, per["lam"].to_numpy()))
    return tail


def _distinct_expr(name: str) -> pl.Expr:
    """Distinct values per account (in an aggregation by account) from its bottom-k sketch:
    exact below ``SKETCH`` values, else the KMV estimate ``(k - 1) / h_k`` with ``h_k`` the
    k-th smallest hash in [0, 1)."""
    kth = pl.col("value").max().cast(pl.Float64) / float(2**64)
    return pl.when(pl.len() < SKETCH).then(pl.len().cast(pl.Float64)).otherwise((SKETCH - 1) / kth).alias(name)


def _peel(shared: pl.DataFrame, min_asns: int, core_share: float) -> pl.DataFrame:
    """The bipartite core of ``shared`` (``account, value, op, k`` and ``v``, a dense code
    of ``value``): accounts using prefixes
    of at least ``min_asns`` operators that other core accounts use, prefixes used by two
    or more core accounts that make up at least ``core_share`` of their users.

    Rounds of counting on dense integer codes (``np.bincount``), each on the survivors of
    the last: at 196,017 accounts (16 rounds over 693,000 rows), 0.57 s where polars window
    expressions took 1.1 s, measured side by side."""
    if shared.height == 0:
        return shared.select("account", "value")
    a = shared["account"].cast(pl.Int64).to_numpy()  # already dense: the state's u32 index
    v = shared["v"].cast(pl.Int64).to_numpy()
    o = (shared["op"].rank("dense").cast(pl.Int64) - 1).to_numpy()
    n_ops = int(o.max()) + 1
    pair = (pl.Series(a * n_ops + o).rank("dense").cast(pl.Int64) - 1).to_numpy()  # (account, operator)
    n_p = int(pair.max()) + 1
    pair_account = np.empty(n_p, np.int64)
    pair_account[pair] = a
    need = np.maximum(core_share * shared["k"].to_numpy().astype(np.float64), 2.0)
    rows = np.arange(len(a))
    n_a, n_v = int(a.max()) + 1, int(v.max()) + 1
    for _ in range(50):  # only removes: converges, in a handful of rounds in practice
        ops = np.bincount(pair_account[np.bincount(pair, minlength=n_p) > 0], minlength=n_a)
        keep = ops[a] >= min_asns
        c = np.bincount(v[keep], minlength=n_v)[v]
        keep &= c >= need
        if keep.all():
            break
        rows, a, v, pair, need = rows[keep], a[keep], v[keep], pair[keep], need[keep]  # the survivors only
    kept = np.zeros(shared.height, dtype=bool)
    kept[rows] = True
    return shared.filter(pl.Series(kept)).select("account", "value")


def _components(core: pl.DataFrame) -> pl.DataFrame:
    """``(account, pool)``: connected pieces of the core's account-prefix graph; a pool is
    named by a hash of its smallest prefix (so two runs name it alike)."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    accts = core["account"].unique().sort()
    vals = core.select("value").unique().sort("value").with_row_index("j")
    n_a = accts.len()
    e = core.join(pl.DataFrame({"account": accts, "i": np.arange(n_a)}), on="account").join(vals, on="value")
    size = n_a + vals.height
    adj = sparse.coo_matrix(
        (np.ones(e.height, dtype=np.int8), (e["i"].to_numpy(), e["j"].to_numpy().astype(np.int64) + n_a)),
        shape=(size, size),
    )
    _, labels = connected_components(adj, directed=False)
    lab = pl.Series(labels[n_a:]).cast(pl.Int64)
    name = vals.with_columns(lab=lab).group_by("lab").agg(pool=pl.col("value").min().hash(17))
    return (
        pl.DataFrame({"account": accts, "lab": pl.Series(labels[:n_a]).cast(pl.Int64)})
        .join(name, on="lab")
        .select("account", "pool")
    )


def _collision_rates(outside: pl.DataFrame) -> tuple[pl.DataFrame, float]:
    """``(op, rate)`` and the rate pooled over all operators: the chance that two uses of an
    operator's networks by accounts outside every pool fall on one /24, shrunk toward the rate pooled over all operators by one
    pseudo-pair (so an operator seen twice is not called certain or impossible). High for a
    carrier or campus NAT (few /24s, many users), low for a broadband ISP."""
    per = outside.group_by("value").agg(k=pl.len(), op=pl.col("op").max())
    by_op = per.group_by("op").agg(
        same=(pl.col("k") * (pl.col("k") - 1)).sum().cast(pl.Float64),
        uses=pl.col("k").sum().cast(pl.Float64),
    ).with_columns(pairs=pl.col("uses") * (pl.col("uses") - 1))
    pooled = (float(by_op["same"].sum()) + 1.0) / (float(by_op["pairs"].sum()) + 1.0)
    return by_op.select("op", rate=(pl.col("same") + pooled) / (pl.col("pairs") + 1.0)), pooled
