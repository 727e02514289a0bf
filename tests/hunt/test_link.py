"""Link and cluster on a hand-made graph."""

from __future__ import annotations

import polars as pl

from distillguard.hunt.link import LinkParams, components
from distillguard.hunt.link import test_artifacts as score_artifacts


def _arts(rows: list[tuple[int, str, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"account": a, "kind": k, "value": v, "share": 1.0} for a, k, v in rows],
        schema={"account": pl.UInt32, "kind": pl.String, "value": pl.UInt64, "share": pl.Float64},
    )


def test_shared_artifact_of_unusual_accounts_links_them_and_ordinary_ones_do_not() -> None:
    # 100 accounts: 0-9 unusual (b=10), the rest ordinary (b=1).
    behaviour = pl.DataFrame(
        {"account": list(range(100)), "b": [10.0] * 10 + [1.0] * 90}, schema={"account": pl.UInt32, "b": pl.Float64}
    )
    rows = [(a, "prefix", 1) for a in range(0, 5)]  # unusual accounts 0-4 share prefix 1
    rows += [(a, "device", 2) for a in range(4, 10)]  # 4-9 share device 2: bridges into one campaign
    rows += [(a, "prefix", 3) for a in range(20, 80)]  # a NAT of 60 ordinary accounts
    rows += [(a, "email_domain", 4) for a in [0, 30, 50, 70]]  # one unusual + 3 ordinary: not significant
    arts = _arts(rows)
    p = LinkParams(alpha=0.01)
    tested = score_artifacts(arts, behaviour, p)
    sig = {(r["kind"], r["value"]) for r in tested.filter(pl.col("significant")).to_dicts()}
    assert sig == {("prefix", 1), ("device", 2)}
    comp = components(arts, tested, behaviour, p)
    assert sorted(comp["account"].to_list()) == list(range(10))
    assert comp["component"].n_unique() == 1


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


def test_empty_inputs() -> None:
    behaviour = pl.DataFrame(schema={"account": pl.UInt32, "b": pl.Float64})
    arts = _arts([])
    tested = score_artifacts(arts, behaviour, LinkParams())
    assert tested.height == 0
