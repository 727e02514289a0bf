"""Cluster: components, Leiden splits and profile re-joins on hand-made graphs."""

from __future__ import annotations

import polars as pl
import pytest

from distillguard.hunt.cluster import components, drop_unlike_bystanders, rejoin_same_profile
from distillguard.hunt.config import LinkParams, ScoreParams
from distillguard.hunt.link import test_artifacts as score_artifacts
from distillguard.signals import context_relative_features

from .graphs import arts as _arts


def test_two_campaigns_stay_apart() -> None:
    behaviour = pl.DataFrame(
        {"account": list(range(200)), "b": [9.0] * 20 + [1.0] * 180}, schema={"account": pl.UInt32, "b": pl.Float64}
    )
    arts = _arts([(a, "tpl_head", 7) for a in range(10)] + [(a, "tpl_head", 8) for a in range(10, 20)])
    p = LinkParams()
    tested = score_artifacts(arts, behaviour, p)
    comp = components(arts, tested, behaviour, p)
    assert comp["component"].n_unique() == 2
    assert comp.group_by("component").len()["len"].to_list() == [10, 10]


def test_two_operators_sharing_one_public_template_stay_apart() -> None:
    n = 1000
    b = [9.0] * 100 + [1.0] * (n - 100)
    behaviour = pl.DataFrame({"account": list(range(n)), "b": b}, schema={"account": pl.UInt32, "b": pl.Float64})
    rows = [(a, "tpl_head", 1) for a in range(100)]  # both operators use the same public template
    for a in range(50):  # operator A: its own prefixes and devices
        rows += [(a, "prefix", 10 + a % 5), (a, "device", 20 + a % 4), (a, "tpl_tail", 30)]
    for a in range(50, 100):  # operator B
        rows += [(a, "prefix", 40 + a % 5), (a, "device", 50 + a % 4), (a, "tpl_tail", 60)]
    arts = _arts(rows)
    p = LinkParams()
    tested = score_artifacts(arts, behaviour, p)
    comp = components(arts, tested, behaviour, p)
    groups = comp.group_by("component").agg(pl.col("account").min().alias("lo"), pl.len()).sort("lo")
    assert groups["len"].to_list() == [50, 50]


def test_two_operators_behind_one_proxy_provider_stay_apart() -> None:
    from distillguard.hunt.link import identity_components

    # Both operators rent exits from the same residential proxy pool: besides their own, ten
    # /24 prefixes carry accounts of both. Shared exits are a thin cut, not a bridge (phones
    # and cards are): before, ten such prefixes were worth more than ``merge_bridge``.
    n = 2000
    b = [9.0] * 200 + [1.0] * (n - 200)
    behaviour = pl.DataFrame({"account": list(range(n)), "b": b}, schema={"account": pl.UInt32, "b": pl.Float64})
    rows = []
    for a in range(200):
        op = a // 100
        rows += [(a, "tpl_head", 10 + op)]  # each operator its own wrapper
        rows += [(a, "prefix", 200 + op * 20 + a % 20)]  # the operator's own exits
        if a % 100 < 30:
            rows += [(a, "prefix", 100 + a % 10)]  # ten shared exits, three accounts of each operator
    for a in range(200):  # each operator's cells share a phone and a card; devices chain its cells
        rows += [(a, "phone_hash", 1000 + a // 4), (a, "payment_fp", 2000 + a // 4), (a, "device", 3000 + a % 25 + a // 100 * 25)]
    arts = _arts(rows)
    p = LinkParams()
    tested = score_artifacts(arts, behaviour, p)
    no_orgs = pl.DataFrame(schema={"account": pl.UInt32, "org_id": pl.String})
    _, _, ties = identity_components(arts, behaviour, no_orgs, p)
    comp = components(arts, tested, behaviour, p, ties=ties)
    groups = comp.with_columns(op=pl.col("account") // 100).group_by("component").agg(pl.col("op").n_unique(), pl.len())
    assert groups["op"].to_list() == [1, 1]
    assert sorted(groups["len"].to_list()) == [100, 100]


def test_parts_that_behave_alike_are_rejoined_and_different_ones_are_not() -> None:
    comp = pl.DataFrame(
        {"account": [0, 1, 2, 3, 4, 5], "component": [10, 10, 11, 11, 12, 12], "whole": [1] * 6},
        schema={"account": pl.UInt32, "component": pl.Int64, "whole": pl.Int64},
    )
    feats = pl.DataFrame(
        {"account": [0, 1, 2, 3, 4, 5], "ts_a": [2.0, 2.1, 2.2, 2.0, 0.1, 0.0], "ts_b": [1.0, 1.0, 1.1, 0.9, 3.0, 3.0]},
        schema={"account": pl.UInt32, "ts_a": pl.Float64, "ts_b": pl.Float64},
    )
    out = rejoin_same_profile(comp, feats, ScoreParams())
    got = dict(zip(out["account"].to_list(), out["component"].to_list(), strict=True))
    assert got[0] == got[1] == got[2] == got[3] == 10  # 10 and 11 alike: one campaign
    assert got[4] == got[5] == 12  # 12 behaves otherwise
    assert rejoin_same_profile(comp, feats, ScoreParams(profile_distance=0.01))["component"].n_unique() == 3


@pytest.mark.parametrize("context", ["lived_time.ts_misplaced", "proxy_pool.ts_pool"])
def test_parts_that_differ_only_in_their_context_are_rejoined(context: str) -> None:
    # Three cells of one operator: one script, one clock, each cell claiming other countries
    # (so how far their lived zone lies from the claimed one differs) or sitting more or less
    # densely in the proxy pool (so how far their addresses overlap the pool's differs). A
    # fourth part runs another script.
    comp = pl.DataFrame(
        {"account": range(8), "component": [10, 10, 11, 11, 12, 12, 13, 13], "whole": [1] * 8},
        schema={"account": pl.UInt32, "component": pl.Int64, "whole": pl.Int64},
    )
    feats = pl.DataFrame(
        {
            "account": range(8),
            "temporal.ts_peak_daily": [1.0, 1.1, 1.0, 0.9, 1.1, 1.0, 2.5, 2.6],
            context: [0.5, 0.6, 1.1, 1.1, 1.8, 1.9, 1.8, 1.9],
        },
        schema={"account": pl.UInt32, "temporal.ts_peak_daily": pl.Float64, context: pl.Float64},
    )
    assert context in context_relative_features()
    got = rejoin_same_profile(comp, feats, ScoreParams()).sort("account")["component"].to_list()
    assert got == [10] * 6 + [13, 13]
    # the same difference in a feature of what the accounts do keeps the cells apart
    does = feats.rename({context: "temporal.ts_mean_daily"})
    assert rejoin_same_profile(comp, does, ScoreParams()).sort("account")["component"].to_list() == [10, 10, 11, 11, 12, 12, 13, 13]


def test_a_component_that_did_not_change_is_not_split_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The live re-score clusters every few seconds: an unchanged component reuses its split,
    a changed one is split again, and the result is the same as splitting afresh."""
    import igraph as ig

    from distillguard.hunt import cluster

    n = 1000
    behaviour = pl.DataFrame(
        {"account": list(range(n)), "b": [9.0] * 100 + [1.0] * (n - 100)}, schema={"account": pl.UInt32, "b": pl.Float64}
    )
    rows = [(a, "tpl_head", 1) for a in range(100)]
    for a in range(100):
        rows += [(a, "prefix", 10 + a % 5 + a // 50 * 30), (a, "device", 20 + a % 4 + a // 50 * 30), (a, "tpl_tail", 30 + a // 50 * 30)]
    arts = _arts(rows)
    p = LinkParams()
    tested = score_artifacts(arts, behaviour, p)
    calls = 0
    leiden = ig.Graph.community_leiden

    def counted(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return leiden(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ig.Graph, "community_leiden", counted)
    monkeypatch.setattr(cluster, "_SPLITS", {})
    first = components(arts, tested, behaviour, p)
    assert calls == 1
    assert components(arts, tested, behaviour, p).equals(first) and calls == 1
    more = _arts([*rows, (100, "tpl_head", 1), (100, "prefix", 10)])  # one more account in the component
    components(more, score_artifacts(more, behaviour, p), behaviour, p)
    assert calls == 2
    monkeypatch.setattr(cluster, "_SPLITS", {})
    assert components(arts, tested, behaviour, p).equals(first) and calls == 3


def test_a_small_closed_campaign_touching_a_large_one_through_a_network_stays_apart() -> None:
    # A full-scale log puts several campaigns into one component, so ``min_part`` (a share of
    # the whole) can exceed a whole campaign: B (100 accounts, 4 % of the component) met A
    # (2,400) only through one sign-up network that one of B's accounts and three of A's used.
    # B's ties all but stay inside it: it is a closed group, not a fragment of A's web.
    n = 50_000
    b = [9.0] * 2500 + [1.0] * (n - 2500)
    behaviour = pl.DataFrame({"account": list(range(n)), "b": b}, schema={"account": pl.UInt32, "b": pl.Float64})
    rows = []
    for a in range(2400):  # A: its template, exits of 20 accounts
        rows += [(a, "tpl_head", 10), (a, "prefix", 1000 + a % 120)]
    for a in range(2400, 2500):  # B: its own template and exits
        rows += [(a, "tpl_head", 11), (a, "prefix", 2000 + a % 10)]
    rows += [(a, "signup_prefix", 99) for a in (0, 1, 2, 2400)]
    arts = _arts(rows)
    p = LinkParams()
    tested = score_artifacts(arts, behaviour, p)
    comp = components(arts, tested, behaviour, p)
    # (B's one account on the shared network may fall on either side: Leiden's call.)
    rest = comp.filter(pl.col("account") != 2400).with_columns(op=pl.col("account") >= 2400)
    groups = rest.group_by("component").agg(pl.col("op").n_unique(), pl.len())
    assert sorted(groups["len"].to_list()) == [99, 2400]
    assert groups["op"].to_list() == [1, 1]
    # A fragment of a sparse web (most of its ties outside) still joins: with B's template gone
    # and its exits shared with A, B is no longer closed.
    open_rows = [r for r in rows if r[1] != "tpl_head" or r[2] != 11]
    open_rows += [(a, "prefix", 1000 + a % 120) for a in range(2400, 2500)]
    arts2 = _arts(open_rows)
    comp2 = components(arts2, score_artifacts(arts2, behaviour, p), behaviour, p)
    assert comp2["component"].n_unique() == 1


def _fleet_and_lab(lab_profile: tuple[float, float], core: int = 40) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """A fleet: ``core`` accounts holding its template and sending from one cloud /24 (they
    signed up from it too), two more tied by the /24 alone; and a lab (account 99) that signed
    up from and sends from the same /24. 900 ordinary accounts rank low."""
    n = 1000
    fleet = list(range(core + 2))
    b = [9.0 if a in fleet or a == 99 else 1.0 for a in range(n)]
    behaviour = pl.DataFrame({"account": list(range(n)), "b": b}, schema={"account": pl.UInt32, "b": pl.Float64})
    rows = [(a, "tpl_head", 7) for a in range(core)]
    rows += [(a, k, 100) for a in [*fleet, 99] for k in ("prefix", "signup_prefix")]
    p = LinkParams()
    comp = components(_arts(rows), score_artifacts(_arts(rows), behaviour, p), behaviour, p)
    spread = [0.1 * (a % 5) for a in fleet]  # the fleet's profiles differ by up to 0.4
    feats = pl.DataFrame(
        {"account": [*fleet, 99], "x.ts_a": [2.5 - d for d in spread] + [lab_profile[0]], "x.ts_b": [2.0 + d for d in spread] + [lab_profile[1]]},
        schema={"account": pl.UInt32, "x.ts_a": pl.Float64, "x.ts_b": pl.Float64},
    )
    return comp, comp.select("account", "own"), feats


def test_an_account_tied_by_networks_alone_that_behaves_unlike_the_campaign_is_taken_out() -> None:
    comp, own, feats = _fleet_and_lab(lab_profile=(0.1, 2.1))
    assert comp.filter(pl.col("account") == 99)["own"].to_list() == [False]  # tied in by its /24, counted twice
    assert comp["component"].n_unique() == 1 and comp.height == 43
    kept, out = drop_unlike_bystanders(comp.select("account", "component"), own, feats, ScoreParams(), min_campaign=5)
    assert out["account"].to_list() == [99]  # the lab; the fleet's two network-only members stay
    assert kept.height == 42 and 99 not in kept["account"].to_list()
    (r,) = out.to_dicts()
    assert r["feature"] == "x.ts_a" and r["distance"] == pytest.approx(2.5 - 0.2 - 0.1) and r["spread"] == pytest.approx(0.2)


def test_a_network_tie_stands_where_the_account_behaves_like_the_campaign() -> None:
    comp, own, feats = _fleet_and_lab(lab_profile=(2.4, 2.1))  # one of the fleet, on its /24 only
    kept, out = drop_unlike_bystanders(comp.select("account", "component"), own, feats, ScoreParams(), min_campaign=5)
    assert out.height == 0 and kept.height == 43


def test_a_campaign_with_too_few_members_of_its_own_keeps_everyone() -> None:
    comp, own, feats = _fleet_and_lab(lab_profile=(0.1, 2.1), core=4)  # 4 hold the template: fewer than 5
    kept, out = drop_unlike_bystanders(comp.select("account", "component"), own, feats, ScoreParams(), min_campaign=5)
    assert out.height == 0 and kept.height == comp.height
