"""Link: which shared artifacts are significant, identity webs, association, on hand-made graphs."""

from __future__ import annotations

import numpy as np
import polars as pl

from distillguard.hunt.cluster import components
from distillguard.hunt.config import LinkParams
from distillguard.hunt.link import test_artifacts as score_artifacts

from .graphs import arts as _arts


def test_shared_artifact_of_unusual_accounts_links_them_and_ordinary_ones_do_not() -> None:
    # 100 accounts: 0-9 unusual (b=10), the rest ordinary (b=1).
    behaviour = pl.DataFrame(
        {"account": list(range(100)), "b": [10.0] * 10 + [1.0] * 90}, schema={"account": pl.UInt32, "b": pl.Float64}
    )
    rows = [(a, "prefix", 1) for a in [*range(0, 5), 20]]  # unusual accounts 0-4 (and one ordinary) share prefix 1
    rows += [(a, "signup_prefix", 5) for a in range(0, 5)]  # and signed up from one network
    rows += [(a, "device", 2) for a in range(4, 10)]  # 4-9 share device 2: bridges into one campaign
    rows += [(a, "prefix", 6) for a in range(5, 10)]  # and a prefix
    rows += [(a, "prefix", 3) for a in range(20, 80)]  # a NAT of 60 ordinary accounts
    rows += [(a, "email_domain", 4) for a in [0, 30, 50, 70]]  # one unusual + 3 ordinary: not significant
    arts = _arts(rows)
    p = LinkParams(alpha=0.01)
    tested = score_artifacts(arts, behaviour, p)
    sig = {(r["kind"], r["value"]) for r in tested.filter(pl.col("significant")).to_dicts()}
    assert sig == {("prefix", 1), ("device", 2), ("signup_prefix", 5), ("prefix", 6)}
    comp = components(arts, tested, behaviour, p)
    # Account 20 shares one network with the campaign and nothing else: a coincidence.
    assert sorted(comp["account"].to_list()) == list(range(10))
    assert comp["component"].n_unique() == 1


def test_a_fleet_that_outnumbers_the_top_tail_links_by_its_mean_rank_and_a_crowd_does_not() -> None:
    # A log's first hours: 300 ranked accounts, the top tenth 30 slots. Two fleets (50 and 25
    # accounts) fill it, so neither can have half its members there however scripted.
    rng = np.random.default_rng(3)
    fleet_a, fleet_b, crowd = list(range(50)), list(range(50, 75)), list(range(75, 175))
    b = np.concatenate([rng.uniform(6, 10, 75), rng.uniform(3, 6, 100), rng.uniform(0, 3, 125)])
    behaviour = pl.DataFrame({"account": list(range(300)), "b": b}, schema={"account": pl.UInt32, "b": pl.Float64})
    rows = [(a, "prefix", 1) for a in fleet_a] + [(a, "prefix", 2) for a in fleet_b]
    rows += [(a, "model_adopt", 3) for a in fleet_b]  # a supporting kind never links, whatever its rank
    rows += [(a, "email_domain", 4) for a in crowd]  # busier than most, but ordinary: none in the top fifth
    p = LinkParams(alpha=0.01)
    tested = score_artifacts(_arts(rows), behaviour, p)
    r = {(t["kind"], t["value"]): t for t in tested.to_dicts()}
    a, bb = r[("prefix", 1)], r[("prefix", 2)]
    assert a["m"] < a["k"] / 2 and bb["m"] < bb["k"] / 2  # the half rule of the top tenth fails both
    assert a["significant"] and a["test"] == "rank" and a["u"] > 0.8 and a["w"] >= a["k"] / 2
    assert bb["significant"] and bb["test"] == "rank"
    assert not r[("model_adopt", 3)]["significant"] and r[("model_adopt", 3)]["test"] is None
    c = r[("email_domain", 4)]
    assert c["u"] > 0.55 and c["w"] == 0 and not c["significant"]
    # A small fleet in the top tenth passes the tail test, which speaks first.
    top = behaviour.with_columns(b=pl.when(pl.col("account") >= 295).then(100.0).otherwise(pl.col("b")))
    few = score_artifacts(_arts([(a, "device", 9) for a in range(295, 300)]), top, p)
    assert few["test"].to_list() == ["tail"]


def test_empty_inputs() -> None:
    behaviour = pl.DataFrame(schema={"account": pl.UInt32, "b": pl.Float64})
    arts = _arts([])
    tested = score_artifacts(arts, behaviour, LinkParams())
    assert tested.height == 0
    # the same columns as a non-empty test (the score reads `cut`: a one-account state failed)
    one = pl.DataFrame({"account": [0], "b": [1.0]}, schema={"account": pl.UInt32, "b": pl.Float64})
    full = score_artifacts(_arts([(0, "prefix", 1)]), one, LinkParams())
    assert full.height == 1 and tested.schema == full.schema


def test_identity_web_of_moderately_unusual_accounts_is_significant_and_a_nat_is_not() -> None:
    from distillguard.hunt.link import identity_components

    rng = np.random.default_rng(0)
    n = 2000
    b = rng.normal(5.0, 1.0, n)
    b[:60] += 1.5  # a stealth operator: each account only a little above the crowd
    behaviour = pl.DataFrame({"account": np.arange(n), "b": b}, schema={"account": pl.UInt32, "b": pl.Float64})
    rows = []
    for a in range(60):  # cells of three share a phone and a card; devices chain the cells
        rows += [(a, "phone_hash", 1000 + a // 3), (a, "payment_fp", 2000 + a // 3), (a, "device", 3000 + a % 20)]
    for a in range(100, 400):  # an organisation's members share its card and domain (declared org)
        rows += [(a, "payment_fp", 5000), (a, "email_domain", 5001)]
    for a in range(500, 540):  # forty ordinary people share one office prefix and domain
        rows += [(a, "email_domain", 6000), (a, "prefix", 6001)]
    orgs = pl.DataFrame(
        {"account": np.arange(n), "org_id": [("org-1" if 100 <= a < 400 else None) for a in range(n)]},
        schema={"account": pl.UInt32, "org_id": pl.String},
    )
    webs, stats, ties = identity_components(_arts(rows), behaviour, orgs, LinkParams())
    assert set(webs["account"].to_list()) == set(range(60))
    assert stats.filter("significant").height == 1
    assert set(ties["kind"].unique().to_list()) == {"phone_hash", "payment_fp", "device"}


def test_a_webmail_domain_does_not_join_two_operators_identity_webs() -> None:
    from distillguard.hunt.link import identity_components

    rng = np.random.default_rng(1)
    n = 20000  # the share cap (1%) lets a 150-account domain through; its carriers must speak
    b = rng.normal(5.0, 1.0, n)
    b[:60] += 2.0  # two operators, 30 accounts each
    behaviour = pl.DataFrame({"account": np.arange(n), "b": b}, schema={"account": pl.UInt32, "b": pl.Float64})
    rows = []
    for a in range(60):  # each operator's cells share a phone and a card; its devices chain them
        rows += [(a, "phone_hash", 1000 + a // 3), (a, "payment_fp", 2000 + a // 3), (a, "device", 3000 + a % 10 + a // 30 * 10)]
    # a webmail domain: 150 ordinary customers, and one account of each operator
    rows += [(a, "email_domain", 9000) for a in [*range(1000, 1150), 0, 30]]
    no_orgs = pl.DataFrame(schema={"account": pl.UInt32, "org_id": pl.String})
    webs, _, ties = identity_components(_arts(rows), behaviour, no_orgs, LinkParams())
    assert 9000 not in ties["value"].to_list()
    ops = pl.DataFrame({"account": np.arange(60), "op": np.arange(60) // 30}, schema={"account": pl.UInt32, "op": pl.Int64})
    op = webs.join(ops, on="account")
    # the webs never mix the two operators
    assert op.group_by("web").agg(pl.col("op").n_unique())["op"].to_list() == [1, 1]
    assert set(webs["account"].to_list()) == set(range(60))


def test_cells_too_small_to_test_that_began_on_one_day_are_tested_together() -> None:
    from distillguard.hunt.link import BEGAN_KIND, identity_components

    n = 1000
    behaviour = pl.DataFrame({"account": np.arange(n), "b": np.linspace(0.0, 10.0, n)},
                             schema={"account": pl.UInt32, "b": pl.Float64})  # fmt: skip  # rank = account / n
    # Five cells of three (too few to test alone), each sharing a phone and a card, nothing
    # across cells; their members rank about the 80th percentile. A family began on the same
    # day: one busy member shares a phone with one relative and a card with another, and the
    # three average below the median.
    cells = [[750 + 20 * c + i for i in range(3)] for c in range(5)]
    family = [880, 280, 281]
    rows = [(a, kind, 100 * c + v) for c, cell in enumerate(cells) for a in cell for kind, v in (("phone_hash", 1), ("payment_fp", 2))]
    rows += [(880, "phone_hash", 9001), (280, "phone_hash", 9001), (880, "payment_fp", 9002), (281, "payment_fp", 9002)]
    no_orgs = pl.DataFrame(schema={"account": pl.UInt32, "org_id": pl.String})
    cell_accounts = {a for cell in cells for a in cell}

    def began(days: list[int]) -> pl.DataFrame:
        acc = [a for cell in cells for a in cell] + family
        day = [d for d, cell in zip(days, cells, strict=True) for _ in cell] + [days[0]] * len(family)
        return pl.DataFrame({"account": acc, "day": day}, schema={"account": pl.UInt32, "day": pl.Int32})

    alone, stats, _ = identity_components(_arts(rows), behaviour, no_orgs, LinkParams())
    assert alone.height == 0 and stats.filter("significant").height == 0  # each cell fails alone

    webs, stats, ties = identity_components(_arts(rows), behaviour, no_orgs, LinkParams(), began=began([20000] * 5))
    assert set(webs["account"].to_list()) == cell_accounts  # the family is tested with them, not taken in
    union = stats.filter(pl.col("joined").is_not_null())
    assert union.height == 1 and union["significant"][0] and union["joined"][0] == 6 and union["began"][0] == 20000
    assert union["size"][0] == 18 and union["cut"][0] > stats.filter(pl.col("joined").is_null())["cut"].max()  # half alpha
    began_ties = ties.filter(pl.col("kind") == BEGAN_KIND)
    assert set(began_ties["account"].to_list()) == cell_accounts and began_ties["value"].unique().to_list() == [20000]
    assert webs["web"].n_unique() == 1

    # The same cells put to work five days apart share nothing: the one union left (the first
    # cell and the family) fails, and no campaign is made.
    webs, stats, _ = identity_components(_arts(rows), behaviour, no_orgs, LinkParams(), began=began([20000, 20003, 20006, 20009, 20012]))
    union = stats.filter(pl.col("joined").is_not_null())
    assert webs.height == 0 and union["joined"].to_list() == [2] and not union["significant"].any()

    # The same day, but the day the log opened, for accounts registered before it (``dated``
    # false: they may have been busy for months) at times spread like strangers' (an
    # organisation's members, who joined it over years): no union is made, nothing joins.
    def undated(dated: list[int], registered: pl.Expr) -> pl.DataFrame:
        return began([20000] * 5).with_columns(dated=pl.col("account").is_in(dated), registered=registered)

    apart = (pl.col("account") % 20).cast(pl.Float64) * 0.3 - 2.9  # 0.1, 0.4, 0.7 within each cell
    webs, stats, _ = identity_components(_arts(rows), behaviour, no_orgs, LinkParams(), began=undated([750, 770], apart))
    assert webs.height == 0 and stats.filter(pl.col("joined").is_not_null()).height == 0  # one of three dated in two cells
    # Two of three in every cell began in the log: their days count, and the union passes as before.
    webs, stats, _ = identity_components(_arts(rows), behaviour, no_orgs, LinkParams(), began=undated([a for a in cell_accounts if a % 20 != 12], apart))
    assert set(webs["account"].to_list()) == cell_accounts
    # None began in the log, but each cell's three registered within a thousandth of the
    # population's registrations of each other (an aged fleet's batch): the union passes.
    close = 0.3 + pl.col("account").cast(pl.Float64) * 1e-5
    webs, stats, _ = identity_components(_arts(rows), behaviour, no_orgs, LinkParams(), began=undated([], close))
    assert set(webs["account"].to_list()) == cell_accounts


def test_registered_together_is_the_chance_of_so_narrow_a_range_of_random_registrations() -> None:
    """``link.registered_together``: uniform for strangers, the range of ``n`` uniform draws."""
    from distillguard.hunt.link import registered_together

    rng = np.random.default_rng(3)
    u = rng.random((20000, 4))
    frame = pl.DataFrame({"n": [4] * len(u), "spread": u.max(axis=1) - u.min(axis=1)})
    p = frame.select(registered_together(pl.col("n"), pl.col("spread")))["n"].to_numpy()
    assert abs(float(np.mean(p <= 0.01)) - 0.01) < 0.003 and abs(float(np.mean(p <= 0.5)) - 0.5) < 0.02
    one = pl.DataFrame({"n": [1, 0], "spread": [0.0, None]}, schema={"n": pl.UInt32, "spread": pl.Float64})
    assert one.select(registered_together(pl.col("n"), pl.col("spread")))["n"].to_list() == [1.0, 1.0]


def test_association_joins_accounts_tied_to_a_campaign_by_a_small_identity_artifact() -> None:
    from distillguard.hunt.link import associates

    n = 1000
    b = np.linspace(0.0, 10.0, n)  # rank = account / n
    behaviour = pl.DataFrame({"account": np.arange(n), "b": b}, schema={"account": pl.UInt32, "b": pl.Float64})
    members = pl.DataFrame({"account": [900, 901, 902, 950], "component": [7, 7, 7, 8]},
                           schema={"account": pl.UInt32, "component": pl.Int64})  # fmt: skip
    rows = [(a, "email_domain", 1) for a in (900, 901, 902, 800)]  # front domain: 3 members + 800
    rows += [(a, "device", 2) for a in (950, 810)]  # a device shared 1:1 with a member of campaign 8
    rows += [(a, "phone_hash", 12) for a in (810, 811)]  # and 810's own phone: joins in the next round
    rows += [(a, "email_domain", 3) for a in (900, 100)]  # shared with an ordinary account (rank 0.1)
    rows += [(a, "phone_hash", 4) for a in (901, 820, 821, 120)]  # 1 member of 4, and an ordinary holder: out
    rows += [(a, "payment_fp", 13) for a in (950, 870, 871)]  # 1 member of 3; the others rank like stragglers: in
    rows += [(a, "email_domain", 5) for a in (*range(902, 912), 830)]  # 11 holders: too big to tell
    rows += [(a, "payment_fp", 6) for a in (902, 840)]  # a card of one declared org
    rows += [(a, "prefix", 7) for a in (900, 850)]  # a network is not an identity artifact
    orgs = pl.DataFrame({"account": [902, 840], "org_id": ["acme", "acme"]}, schema={"account": pl.UInt32, "org_id": pl.String})
    got = associates(_arts(rows), members, behaviour, orgs, LinkParams()).joined
    assert got.select("account", "component", "kind", "value", "k", "inside").rows() == [
        (800, 7, "email_domain", 1, 4, 3),
        (810, 8, "device", 2, 2, 1),
        (811, 8, "phone_hash", 12, 2, 1),
        (870, 8, "payment_fp", 13, 3, 1),
        (871, 8, "payment_fp", 13, 3, 1),
    ]
    one_round = associates(_arts(rows), members, behaviour, orgs, LinkParams(associate_rounds=1)).joined
    assert 811 not in one_round["account"].to_list()
    # A chain of single devices from a member (950 -> 861 -> ... -> 865) joins link after link
    # until nothing is left to join, not for a fixed three rounds; the cap still stops it.
    links = [950, 861, 862, 863, 864, 865]
    chain = [(a, "device", 100 + i) for i in range(5) for a in links[i : i + 2]]
    joined = associates(_arts([*rows, *chain]), members, behaviour, orgs, LinkParams()).joined["account"].to_list()
    assert {861, 862, 863, 864, 865} <= set(joined)
    capped = associates(_arts([*rows, *chain]), members, behaviour, orgs, LinkParams(associate_rounds=3)).joined["account"].to_list()
    assert {861, 862, 863} <= set(capped) and not {864, 865} & set(capped)
    # An account with no traffic yet (no rank) rides with the tie; one below the median does not.
    got = associates(_arts([*rows, (2000, "device", 9), (950, "device", 9)]), members, behaviour, orgs, LinkParams()).joined
    assert 2000 in got["account"].to_list() and 100 not in got["account"].to_list()
    assert associates(_arts([]), members, behaviour, orgs, LinkParams()).joined.height == 0


def test_association_measures_a_straggler_against_ordinary_accounts_not_the_campaigns() -> None:
    from distillguard.hunt.link import associates

    # 100 accounts ranked by b = account; 60-99 are one campaign. Over everyone the median is
    # about 49.5, over the 60 ordinary accounts 29.5: account 40, tied by a phone to a member,
    # behaves above the ordinary median and joins; account 20, below it, stays out.
    behaviour = pl.DataFrame({"account": np.arange(100), "b": np.arange(100.0)}, schema={"account": pl.UInt32, "b": pl.Float64})
    members = pl.DataFrame({"account": np.arange(60, 100), "component": [1] * 40}, schema={"account": pl.UInt32, "component": pl.Int64})
    rows = [(a, "phone_hash", 1) for a in (60, 40)] + [(a, "phone_hash", 2) for a in (61, 20)]
    got = associates(_arts(rows), members, behaviour, pl.DataFrame(schema={"account": pl.UInt32, "org_id": pl.String}), LinkParams()).joined
    assert got["account"].to_list() == [40]
    # Account 20 also holding member 61's card: two ties, not one coincidence; it joins whatever its rank.
    rows += [(a, "payment_fp", 3) for a in (61, 20)]
    got = associates(_arts(rows), members, behaviour, pl.DataFrame(schema={"account": pl.UInt32, "org_id": pl.String}), LinkParams()).joined
    assert got["account"].unique().sort().to_list() == [20, 40]
    assert got.filter(pl.col("account") == 20)["kind"].to_list() == ["payment_fp", "phone_hash"]


def test_association_gives_no_new_account_pass_to_a_tie_through_a_reissued_number() -> None:
    from distillguard.hunt.link import associates

    # 100 accounts ranked by b = account; 60-99 one campaign. Accounts 200-203 are too new to
    # rank. 200 holds member 60's phone, taken up within a week (a sibling): it joins. 201
    # holds member 61's phone, reissued to it weeks after (the registration's ``reissued``):
    # it stays out until it ranks; 202, reissued too, also holds member 62's card: two ties,
    # it joins. 40 ranks above the ordinary median and holds a reissued number: it joins, as
    # an established account on any one tie does.
    behaviour = pl.DataFrame({"account": np.arange(100), "b": np.arange(100.0)}, schema={"account": pl.UInt32, "b": pl.Float64})
    members = pl.DataFrame({"account": np.arange(60, 100), "component": [1] * 40}, schema={"account": pl.UInt32, "component": pl.Int64})
    rows = [(a, "phone_hash", 1) for a in (60, 200)] + [(a, "phone_hash", 2) for a in (61, 201)]
    rows += [(a, "phone_hash", 3) for a in (62, 202)] + [(a, "payment_fp", 4) for a in (62, 202)]
    rows += [(a, "phone_hash", 5) for a in (63, 40)]
    no_orgs = pl.DataFrame(schema={"account": pl.UInt32, "org_id": pl.String})
    reissued = pl.DataFrame({"account": [201, 202, 40], "kind": ["phone_hash"] * 3}, schema={"account": pl.UInt32, "kind": pl.String})
    got, held, *_ = associates(_arts(rows), members, behaviour, no_orgs, LinkParams(), reissued=reissued)
    assert got["account"].unique().sort().to_list() == [40, 200, 202]
    # 201 is what the rule alone kept out, for the reviewer: its tie to the campaign.
    assert held.select("account", "component", "kind", "value", "inside").rows() == [(201, 1, "phone_hash", 2, 1)]
    # Without the registration's word every one of them rides with its tie, as before.
    assert associates(_arts(rows), members, behaviour, no_orgs, LinkParams()).joined["account"].unique().sort().to_list() == [40, 200, 201, 202]


def test_a_number_held_within_a_week_of_a_member_ties_an_account_under_the_median() -> None:
    from distillguard.hunt.link import associates

    # 100 accounts ranked by b = account; 60-99 one campaign. 20 and 21 rank under the ordinary
    # median, each on one member's phone number. Where the registration read the numbers for
    # reissues (``tenured``), 20 took its number up within a week of member 60 (one
    # subscriber's number): it joins. 21 took member 61's number up weeks after (``reissued``):
    # the stranger on a recycled number stays out, as does 22 on member 62's card (no such test
    # for cards). Without the reissue test (no ``tenured``) the rank guard keeps 20 out, as before.
    behaviour = pl.DataFrame({"account": np.arange(100), "b": np.arange(100.0)}, schema={"account": pl.UInt32, "b": pl.Float64})
    members = pl.DataFrame({"account": np.arange(60, 100), "component": [1] * 40}, schema={"account": pl.UInt32, "component": pl.Int64})
    rows = [(a, "phone_hash", 1) for a in (60, 20)] + [(a, "phone_hash", 2) for a in (61, 21)] + [(a, "payment_fp", 3) for a in (62, 22)]
    no_orgs = pl.DataFrame(schema={"account": pl.UInt32, "org_id": pl.String})
    reissued = pl.DataFrame({"account": [21], "kind": ["phone_hash"]}, schema={"account": pl.UInt32, "kind": pl.String})
    got = associates(_arts(rows), members, behaviour, no_orgs, LinkParams(), reissued=reissued, tenured=("phone_hash",)).joined
    assert got.select("account", "kind", "value", "by_tenure").rows() == [(20, "phone_hash", 1, True)]
    assert associates(_arts(rows), members, behaviour, no_orgs, LinkParams(), reissued=reissued).joined.height == 0


def test_association_through_a_campaigns_script_lines_needs_two_lines_mostly_its_own_and_a_rank() -> None:
    from distillguard.hunt.link import associates

    # 200 accounts ranked by b = account; 150-179 are one campaign, sending script lines 1-3.
    # No account outside it shares a phone or card with a member: only the script ties.
    behaviour = pl.DataFrame({"account": np.arange(200), "b": np.arange(200.0)}, schema={"account": pl.UInt32, "b": pl.Float64})
    members = pl.DataFrame({"account": np.arange(150, 180), "component": [4] * 30}, schema={"account": pl.UInt32, "component": pl.Int64})
    rows = [(a, "script_line", v) for a in range(150, 180) for v in (1, 2, 3)]
    rows += [(a, "script_line", v) for a in (120, 140) for v in (1, 2)]  # two of the fleet's lines each
    rows += [(130, "script_line", 3)]  # one line only: a coincidence
    rows += [(a, "script_line", v) for a in (20, 190) for v in (1, 3)]  # two lines, but 20 ranks below the ordinary median
    rows += [(a, "script_line", 9) for a in (*range(150, 160), *range(0, 40), 110)]  # "thanks": mostly ordinary
    rows += [(a, "script_line", 10) for a in (*range(160, 170), *range(40, 80), 110)]  # "explain more"
    no_orgs = pl.DataFrame(schema={"account": pl.UInt32, "org_id": pl.String})
    got = associates(_arts(rows), members, behaviour, no_orgs, LinkParams()).joined
    assert got["account"].unique().sort().to_list() == [120, 140, 190]
    assert got.filter(pl.col("account") == 120).select("component", "kind", "value", "k", "inside").rows() == [
        (4, "script_line", 1, 34, 30),
        (4, "script_line", 2, 32, 30),
    ]
    # Three lines needed: 120 and 140 carry two, 190 two; nobody joins.
    assert associates(_arts(rows), members, behaviour, no_orgs, LinkParams(signature_min_ties=3)).joined.height == 0
    # A line is no signature of the campaign once ordinary accounts send it as often as members do.
    common = [(a, "script_line", 2) for a in range(80, 112)]
    got = associates(_arts([*rows, *common]), members, behaviour, no_orgs, LinkParams()).joined
    assert got["account"].unique().sort().to_list() == [190]


def test_cells_of_one_operator_join_through_a_pool_most_of_them_use_and_ordinary_cells_stay_out() -> None:
    from distillguard.hunt.link import identity_components, join_rings

    rng = np.random.default_rng(2)
    n = 5000
    b = rng.normal(5.0, 1.0, n)
    b[:60] += 0.9  # a careful operator: each account only a little above the crowd
    behaviour = pl.DataFrame({"account": np.arange(n), "b": b}, schema={"account": pl.UInt32, "b": pl.Float64})
    rows = []
    for a in range(60):  # twelve cells of five: one phone and one card per cell, nothing across cells
        rows += [(a, "phone_hash", 1000 + a // 5), (a, "payment_fp", 2000 + a // 5)]
        if a % 5 != 0:  # four of each cell's five ride the operator's proxy pool
            rows.append((a, "pool", 7000))
    for a in range(100, 160):  # twenty families of three share a card and a phone
        rows += [(a, "phone_hash", 3000 + a // 3), (a, "payment_fp", 4000 + a // 3)]
        if a % 3 != 0:  # and two of each family sit behind one carrier NAT with 300 strangers
            rows.append((a, "prefix", 8000))
    rows += [(a, "prefix", 8000) for a in range(1000, 1300)]
    no_orgs = pl.DataFrame(schema={"account": pl.UInt32, "org_id": pl.String})
    webs, stats, ties = identity_components(_arts(rows), behaviour, no_orgs, LinkParams())
    assert set(webs["account"].to_list()) == set(range(60))  # one web, every member, no family
    assert webs["web"].n_unique() == 1
    assert "pool" in ties["kind"].to_list() and 8000 not in ties["value"].to_list()
    # Cell by cell, none of them would pass: the join is what makes the fleet testable.
    ranks = behaviour.select("account", u=(pl.col("b").rank("average") - 0.5) / pl.col("b").count())
    cells = pl.DataFrame({"account": np.arange(60), "web": np.arange(60) // 5}, schema={"account": pl.UInt32, "web": pl.Int64})
    solo, _ = join_rings(cells, _arts([r for r in rows if r[1] != "pool"]), ranks, LinkParams())
    assert solo["web"].n_unique() == 12
    assert stats.filter("significant").height == 1


def test_one_shared_card_is_a_web_tie_when_its_holders_send_one_script_line_and_a_popular_line_seconds_nothing() -> None:
    from distillguard.hunt.link import identity_components

    rng = np.random.default_rng(4)
    n = 3000
    b = rng.normal(5.0, 1.0, n)
    b[:60] += 0.9  # a careful operator: each account only a little above the crowd
    behaviour = pl.DataFrame({"account": np.arange(n), "b": b}, schema={"account": pl.UInt32, "b": pl.Float64})
    rows = []
    for a in range(60):  # twenty cells of three, one card each and nothing else in common
        cell = a // 3  # each cell's members send two of the operator's four script lines
        rows += [(a, "payment_fp", 1000 + cell), (a, "script_line", 7000 + cell % 4), (a, "script_line", 7000 + (cell + 1) % 4)]
    for a in range(100, 160):  # twenty families of three share a card, and say what everyone says
        rows += [(a, "payment_fp", 2000 + a // 3), (a, "script_line", 7100)]
    rows += [(a, "script_line", 7100) for a in range(1000, 1600)]  # "thanks, explain more": 600 ordinary people
    no_orgs = pl.DataFrame(schema={"account": pl.UInt32, "org_id": pl.String})
    webs, stats, _ = identity_components(_arts(rows), behaviour, no_orgs, LinkParams())
    assert set(webs["account"].to_list()) == set(range(60))  # the fleet, one web, no family
    assert webs["web"].n_unique() == 1 and stats.filter("significant").height == 1
    assert stats["seconded"].to_list() == [60]  # every member holds one card: the evidence says so
    # Without the script, each card is one coincidence: no web at all.
    cards = [r for r in rows if r[1] == "payment_fp"]
    webs, stats, _ = identity_components(_arts(cards), behaviour, no_orgs, LinkParams())
    assert webs.height == 0 and stats.height == 0
    # A line only one holder of a card sends seconds nobody.
    alone = [r for r in rows if not (r[1] == "script_line" and r[0] < 60 and r[0] % 3)]  # one sender per cell
    webs, _, _ = identity_components(_arts(alone), behaviour, no_orgs, LinkParams())
    assert webs.height == 0


def test_a_line_hundreds_of_ordinary_people_send_does_not_join_families_into_a_web() -> None:
    from distillguard.hunt.link import identity_components

    rng = np.random.default_rng(4)
    n = 3000
    b = rng.normal(5.0, 1.0, n)
    behaviour = pl.DataFrame({"account": np.arange(n), "b": b}, schema={"account": pl.UInt32, "b": pl.Float64})
    rows = []
    for a in range(100, 160):  # twenty families of three share a card and a phone, and say what everyone says
        rows += [(a, "payment_fp", 2000 + a // 3), (a, "phone_hash", 3000 + a // 3), (a, "script_line", 7100)]
    rows += [(a, "script_line", 7100) for a in range(1000, 1600)]  # 600 ordinary people say it too
    ranks = behaviour.select("account", u=(pl.col("b").rank("average") - 0.5) / pl.col("b").count())
    carriers = ranks.filter(pl.col("account").is_in([*range(100, 160), *range(1000, 1600)]))
    assert 0.5 < carriers["u"].mean() < 0.52  # a little above the median, by chance  # type: ignore[operator]
    no_orgs = pl.DataFrame(schema={"account": pl.UInt32, "org_id": pl.String})
    webs, stats, _ = identity_components(_arts(rows), behaviour, no_orgs, LinkParams())
    # Families averaging above the median each form a web of three, too small to test;
    # joined by that line they would be a web of dozens averaging far above it.
    assert webs.height == 0 and stats.filter(pl.col("size") > 3).height == 0


def test_a_pool_found_by_its_signal_is_one_web_tested_by_its_members_and_an_ordinary_one_fails() -> None:
    from distillguard.hunt.link import identity_components

    rng = np.random.default_rng(3)
    n = 5000
    b = rng.normal(5.0, 1.0, n)
    b[:80] += 0.8  # a quiet fleet: no phone, card or domain in common, only its proxy pool
    behaviour = pl.DataFrame({"account": np.arange(n), "b": b}, schema={"account": pl.UInt32, "b": pl.Float64})
    rows = [(a, "pool", 7000) for a in range(80)] + [(a, "pool", 7001) for a in range(1000, 1080)]
    no_orgs = pl.DataFrame(schema={"account": pl.UInt32, "org_id": pl.String})
    webs, stats, ties = identity_components(_arts(rows), behaviour, no_orgs, LinkParams())
    assert set(webs["account"].to_list()) == set(range(80))  # the ordinary "pool" stays out
    assert stats.height == 2 and stats.filter("significant").height == 1
    assert set(ties["value"].to_list()) == {7000}


def test_a_joining_kind_joins_cells_but_links_nothing_alone() -> None:
    """``lived_tz_near`` (a ring's clock, within an hour) joins webs; it is not tested as a link."""
    from distillguard.hunt.link import join_rings

    p = LinkParams()
    assert "lived_tz_near" in p.joining and "lived_tz_near" in p.supporting
    rng = np.random.default_rng(3)
    n = 2000
    b = rng.normal(5.0, 1.0, n)
    b[:20] += 1.5  # unusual enough that ten of them clear the joining test on their own (z past alpha)
    ranks = pl.DataFrame({"account": np.arange(n), "b": b}, schema={"account": pl.UInt32, "b": pl.Float64}).select(
        "account", u=(pl.col("b").rank("average") - 0.5) / pl.col("b").count()
    )
    cells = pl.DataFrame({"account": np.arange(20), "web": np.arange(20) // 5}, schema={"account": pl.UInt32, "web": pl.Int64})
    rows = [(a, "lived_tz_near", 77) for a in range(20)]
    joined, ties = join_rings(cells, _arts(rows), ranks, p)
    assert joined["web"].n_unique() == 1 and set(ties["kind"].to_list()) == {"lived_tz_near"}
    # joins chain (cells 0-1 through one value, 1-2 through another) and keep the smallest label
    chain = [(a, "lived_tz_near", 77) for a in range(10)] + [(a, "lived_tz_near", 78) for a in range(5, 15)]
    chained, _ = join_rings(cells, _arts(chain), ranks, p)
    assert dict(zip(chained["account"].to_list(), chained["web"].to_list(), strict=True)) == {
        a: (0 if a < 15 else 3) for a in range(20)
    }
    # a kind that neither links nor joins (a sign-up hour) joins nothing
    apart, _ = join_rings(cells, _arts([(a, "signup_burst", 77) for a in range(20)]), ranks, p)
    assert apart["web"].n_unique() == 4
    # and as a link it is never tested: no significant artifact, whatever its carriers do
    tested = score_artifacts(_arts(rows), ranks.rename({"u": "b"}), p)
    assert tested.filter(pl.col("kind") == "lived_tz_near").filter("significant").height == 0


def test_a_web_that_stands_out_on_one_feature_of_sixteen_is_significant_and_families_are_not() -> None:
    """The profile test: a fleet's members share two features' tails while their sum of
    sixteen sits a little above the middle; families who share a card and a phone share no feature."""
    from distillguard.hunt.link import identity_components, profile_neglog_p

    rng = np.random.default_rng(5)
    n, f = 3000, 16
    x = rng.exponential(1.0, (n, f))
    x[:16, 3] = rng.uniform(3.0, 5.0, 16)  # long outputs for short prompts, every member
    x[:16, 7] = rng.uniform(2.0, 4.0, 16)  # and many networks
    x[:16, [0, 1, 2]] = 0.0  # at the bottom of three others: the sum stays ordinary
    cols = [f"s{i}.ts_{i}" for i in range(f)]
    profile = pl.DataFrame({"account": np.arange(n), **{c: x[:, i] for i, c in enumerate(cols)}}).cast({"account": pl.UInt32})
    behaviour = profile.select("account", b=pl.sum_horizontal(cols))
    rows = []
    for a in range(16):  # one operator: two cells of eight, a card and a phone each
        rows += [(a, "payment_fp", 1000 + a // 8), (a, "phone_hash", 1100 + a // 8)]
    for a in range(100, 220):  # twenty households of six: a card and a phone each
        rows += [(a, "payment_fp", 2000 + a // 6), (a, "phone_hash", 3000 + a // 6)]
    no_orgs = pl.DataFrame(schema={"account": pl.UInt32, "org_id": pl.String})
    # By the sum alone the fleet is not a campaign: its mean rank is only a little above the middle.
    webs, stats, _ = identity_components(_arts(rows), behaviour, no_orgs, LinkParams())
    assert webs.height == 0
    fleet = stats.filter(pl.col("web") <= 1)
    assert fleet.height == 2 and fleet["u"].max() < 0.75  # type: ignore[operator]
    # By its members' profile it is: both cells, named by a feature they share.
    webs, stats, _ = identity_components(_arts(rows), behaviour, no_orgs, LinkParams(), profile=profile)
    assert set(webs["account"].to_list()) == set(range(16))
    assert set(stats.filter("significant")["feature"].to_list()) <= {cols[3], cols[7]}
    # The households that average above the median form webs too; they share no feature
    # beyond what chance gives one of eight webs tried on sixteen features.
    households = stats.filter(~pl.col("significant"))
    assert households.height >= 5 and households.filter(pl.col("feature_neglog_p") > pl.col("cut")).height == 0
    # The correction for the features tried: one feature alone gives the same web more.
    one = profile_neglog_p(webs, behaviour, profile.select("account", cols[3]))
    many = profile_neglog_p(webs, behaviour, profile)
    assert (one["feature_neglog_p"] > many["feature_neglog_p"]).all()


def test_an_organisations_own_card_domain_and_network_link_nothing_and_one_outsider_makes_them_evidence() -> None:
    """Twenty developers of one declared organisation share its card, domain and office /24
    and rank above a population of casual users: the organisation says it is one, so those
    artifacts link nothing; the same artifacts held by one account outside it link again."""
    from distillguard.hunt.link import declared_organisations

    rng = np.random.default_rng(6)
    n = 3000
    b = rng.normal(5.0, 1.0, n)
    b[:20] += 1.2  # developers, busier than the casual crowd
    behaviour = pl.DataFrame({"account": np.arange(n), "b": b}, schema={"account": pl.UInt32, "b": pl.Float64})
    rows = [(a, kind, v) for a in range(20) for kind, v in (("payment_fp", 100), ("email_domain", 101), ("prefix", 102))]
    tested = score_artifacts(_arts(rows), behaviour, LinkParams())
    assert tested["significant"].all()  # by their ranks alone, the three tie the twenty
    orgs = pl.DataFrame(
        {"account": np.arange(n), "org_id": ["org-1" if a < 20 else None for a in range(n)]},
        schema={"account": pl.UInt32, "org_id": pl.String},
    )
    kept = declared_organisations(tested, _arts(rows), orgs)
    assert not kept["significant"].any() and kept["test"].to_list() == ["org"] * 3
    # Not declared: the same artifacts are evidence.
    no_orgs = orgs.with_columns(org_id=pl.lit(None, pl.String))
    assert declared_organisations(tested, _arts(rows), no_orgs)["significant"].all()
    # One holder outside the organisation: the card is no longer only the organisation's.
    outsider = [*rows, (2000, "payment_fp", 100)]
    tested = score_artifacts(_arts(outsider), behaviour, LinkParams())
    kept = declared_organisations(tested, _arts(outsider), orgs)
    assert tested.filter(pl.col("value") == 100)["significant"].item()
    assert kept.filter(pl.col("value") == 100)["significant"].item()
    assert kept.filter(pl.col("value") != 100)["test"].to_list() == ["org", "org"]


def test_rings_of_one_card_or_one_phone_are_one_web_and_a_stranger_on_a_recycled_phone_is_not_in_it() -> None:
    from distillguard.hunt.link import identity_components

    rng = np.random.default_rng(7)
    n = 3000
    b = rng.normal(5.0, 1.0, n)
    b[:44] = 5.5 + rng.uniform(0.0, 1.5, 44)  # a careful operator: each account a little above the crowd
    b[42] = 2.0  # one of its accounts still chatting like anyone (warm-up)
    b[n - 1] = b.min() - 1.0  # a stranger who got one of its recycled phone numbers, the quietest of all
    behaviour = pl.DataFrame({"account": np.arange(n), "b": b}, schema={"account": pl.UInt32, "b": pl.Float64})
    fleet = range(44)
    rows = [(a, "payment_fp", 1000 + a // 4) for a in fleet]  # eleven rings of four, one card each
    # Each ring's last account shares a phone with the next ring's first: the rings chain.
    rows += [(a + d, "phone_hash", 2000 + a // 4) for a in fleet if a % 4 == 3 and a + 1 < 44 for d in (0, 1)]
    rows += [(n - 1, "phone_hash", 2000)]  # the stranger's phone was ring 0's
    rows += [(a, "payment_fp", 3000 + a // 4) for a in range(100, 160)]  # fifteen families of four share a card, no more
    # Thirteen busy developers of one organisation and an employee who signed up alone share
    # its mail domain; one of them also shares a phone with a friend: a domain that big is no ring.
    b[200:215] = 7.0
    rows += [(a, "email_domain", 4000) for a in range(200, 214)] + [(a, "payment_fp", 4001) for a in range(200, 213)]
    rows += [(200, "phone_hash", 4002), (214, "phone_hash", 4002)]
    behaviour = behaviour.with_columns(b=pl.Series(b))
    no_orgs = pl.DataFrame({"account": range(200, 213), "org_id": ["org-1"] * 13}, schema={"account": pl.UInt32, "org_id": pl.String})
    webs, stats, ties = identity_components(_arts(rows), behaviour, no_orgs, LinkParams())
    assert stats.filter(pl.col("size") > 2)["size"].to_list() == [45]  # nor a family, nor the organisation
    sig = stats.filter("significant")
    assert sig.height == 1 and sig["size"][0] == 45  # the chained rings and the stranger, tested as one
    assert sig["loose"][0] == 45 - 20  # all but the twenty chain links hold one card (the stranger one phone)
    assert set(webs["account"].to_list()) == set(fleet) - {42}  # a loose member ranked under the median stays out
    assert set(ties["account"].to_list()) == set(fleet) - {42}
    # A stranger who behaves like the fleet rides with its verdict, as association would take it.
    b[n - 1] = 7.5
    behaviour = behaviour.with_columns(b=pl.Series(b))
    webs, _, _ = identity_components(_arts(rows), behaviour, no_orgs, LinkParams())
    assert set(webs["account"].to_list()) == (set(fleet) - {42}) | {n - 1}


def _operators(n: dict[int, float], default: float, accounts: range) -> pl.DataFrame:
    """``account, n``: operators per account, ``default`` but where ``n`` says otherwise."""
    return pl.DataFrame({"account": list(accounts), "n": [n.get(a, default) for a in accounts]}, schema={"account": pl.UInt32, "n": pl.Float64})


def test_a_rotator_on_a_members_card_passes_the_rank_guard_unless_the_number_was_reissued_to_it() -> None:
    from distillguard.hunt.link import associates

    # 2,000 ordinary accounts ranked by b = account, 2,000-2,039 one campaign. 20 and 21 rank
    # far under the ordinary median, each on a member's card; 20 uses 12 operators where
    # ordinary accounts use one or two: it joins; 21, on two, stays out. 22 rotates too but
    # holds a member's number reissued to it weeks after its holder: a stranger, out.
    accounts = range(2040)
    behaviour = pl.DataFrame({"account": list(accounts), "b": [float(a) for a in accounts]}, schema={"account": pl.UInt32, "b": pl.Float64})
    members = pl.DataFrame({"account": np.arange(2000, 2040), "component": [1] * 40}, schema={"account": pl.UInt32, "component": pl.Int64})
    rows = [(a, "payment_fp", 1) for a in (2000, 20)] + [(a, "payment_fp", 2) for a in (2001, 21)] + [(a, "phone_hash", 3) for a in (2002, 22)]
    ops = _operators({20: 12.0, 22: 12.0}, 2.0, accounts)
    no_orgs = pl.DataFrame(schema={"account": pl.UInt32, "org_id": pl.String})
    reissued = pl.DataFrame({"account": [22], "kind": ["phone_hash"]}, schema={"account": pl.UInt32, "kind": pl.String})
    got = associates(_arts(rows), members, behaviour, no_orgs, LinkParams(), reissued=reissued, operators=ops).joined
    assert got["account"].to_list() == [20]
    assert associates(_arts(rows), members, behaviour, no_orgs, LinkParams(), reissued=reissued).joined.height == 0


def test_rings_of_rotators_join_the_rotating_campaign_when_more_than_the_rate_of_rotation_explains() -> None:
    from distillguard.hunt.link import associates

    # 2,000 ordinary accounts on one or two operators, in 600 card pairs; a campaign 2,000-2,039
    # on ten. Outside it, three small rings whose every holder rotates (10-11, 12-14 on a
    # phone, 15-16), one ring with one rotator (17 beside 30), and a lone rotator (18): nine
    # rotators of 2,000 (r = 0.0045), so chance gives about 604 r^2 = 0.012 such rings and
    # three are seen: the three rings join, nothing else does.
    accounts = range(2040)
    behaviour = pl.DataFrame({"account": list(accounts), "b": [float(a % 997) for a in accounts]}, schema={"account": pl.UInt32, "b": pl.Float64})
    members = pl.DataFrame({"account": np.arange(2000, 2040), "component": [1] * 40}, schema={"account": pl.UInt32, "component": pl.Int64})
    rotating = {a: 9.0 for a in (10, 11, 12, 13, 14, 15, 16, 17, 18)} | {a: 10.0 for a in range(2000, 2040)}
    rows = [(a, "payment_fp", 1000 + a // 2) for a in range(800, 2000)]  # 600 ordinary pairs
    rows += [(a, "payment_fp", 1) for a in (10, 11)] + [(a, "phone_hash", 2) for a in (12, 13, 14)] + [(a, "payment_fp", 3) for a in (15, 16)]
    rows += [(a, "payment_fp", 4) for a in (17, 30)]
    no_orgs = pl.DataFrame(schema={"account": pl.UInt32, "org_id": pl.String})
    got = associates(_arts(rows), members, behaviour, no_orgs, LinkParams(), operators=_operators(rotating, 1.0, accounts))
    assert sorted(got.joined["account"].to_list()) == [10, 11, 12, 13, 14, 15, 16]
    assert got.joined["by_rotation"].all() and set(got.joined["component"].to_list()) == {1}
    assert got.rings is not None and got.rings.observed == 3 and got.rings.expected < 0.02 and got.rings.neglog_p > 5
    # Counted as rings at least half rotating, 17 and 30 would be a fourth, but 604 pairs give 5.4 of those by chance.
    assert got.rings.counted == "every"
    # One such ring among the pairs is chance (11 lone rotators more: r = 0.0085, chance 0.04 rings, p 0.04).
    one = [r for r in rows if r[2] != 2 and r[2] != 3]
    more = rotating | {a: 9.0 for a in range(40, 51)}
    got = associates(_arts(one), members, behaviour, no_orgs, LinkParams(), operators=_operators(more, 1.0, accounts))
    assert got.joined.height == 0 and got.rings is not None and got.rings.observed == 1
    # A campaign that does not rotate takes no ring in; given a component of their own, the rings make it.
    still = {a: n for a, n in rotating.items() if a < 2000}
    assert associates(_arts(rows), members, behaviour, no_orgs, LinkParams(), operators=_operators(still, 1.0, accounts)).joined.height == 0
    made = associates(_arts(rows), members, behaviour, no_orgs, LinkParams(), operators=_operators(still, 1.0, accounts), new_component=7).joined
    assert sorted(made["account"].to_list()) == [10, 11, 12, 13, 14, 15, 16] and set(made["component"].to_list()) == {7}


def test_rings_every_holder_of_which_uses_three_networks_join_when_chance_gives_fewer() -> None:
    from distillguard.hunt.link import associates

    # 2,000 ordinary accounts, most on one operator's network; 100 use three, 15 four, 5 six
    # (the rotators: over the 99th percentile, four). A rotating campaign 2,000-2,039. Outside
    # it, 40 ordinary card pairs and 20 office cards of eight, and a fleet's three card triples
    # (10-18) whose holders each used three networks, none of them a rotator: the rings of
    # rotators count nothing, but with 6.4 % of the accounts outside on three or more, chance
    # gives 0.17 rings every holder of which is (Bonferroni over the two bars below the
    # rotators'), and three are seen: the fleet joins, nothing else does.
    accounts = range(2040)
    behaviour = pl.DataFrame({"account": list(accounts), "b": [float(a % 997) for a in accounts]}, schema={"account": pl.UInt32, "b": pl.Float64})
    members = pl.DataFrame({"account": np.arange(2000, 2040), "component": [1] * 40}, schema={"account": pl.UInt32, "component": pl.Int64})
    used = {a: 3.0 for a in range(100, 200)} | {a: 4.0 for a in range(200, 215)} | {a: 6.0 for a in range(215, 220)}
    used |= {a: 3.0 for a in range(10, 19)} | {a: 10.0 for a in range(2000, 2040)}
    rows = [(a, "payment_fp", 1000 + a // 2) for a in range(800, 880)] + [(a, "payment_fp", 5000 + a // 8) for a in range(880, 1040)]
    fleet = [(a, "payment_fp", 1 + (a - 10) // 3) for a in range(10, 19)]
    no_orgs = pl.DataFrame(schema={"account": pl.UInt32, "org_id": pl.String})
    got = associates(_arts(rows + fleet), members, behaviour, no_orgs, LinkParams(), operators=_operators(used, 1.0, accounts))
    assert sorted(got.joined["account"].to_list()) == list(range(10, 19))
    assert got.joined["by_roaming"].all() and got.joined["by_rotation"].all() and set(got.joined["component"].to_list()) == {1}
    assert got.rings is not None and got.rings.observed == 0
    assert got.roaming_rings is not None and got.roaming_rings.counted == "every>=3" and got.roaming_rings.observed == 3
    assert 0.1 < got.roaming_rings.expected < 0.2
    # One such triple, and an ordinary pair both of whose holders use three (two developers of
    # a small company): two rings where chance gives 0.17 (p 0.013, twice that over the bars).
    pair = {a: 3.0 for a in (800, 801)}
    got = associates(_arts(rows + fleet[:3]), members, behaviour, no_orgs, LinkParams(), operators=_operators(used | pair, 1.0, accounts))
    assert got.joined.height == 0 and got.roaming_rings is not None and got.roaming_rings.observed == 2
    # Home and mobile make two: holders on two networks each are no ring of this count at all.
    two = {a: 2.0 for a in range(10, 19)}
    got = associates(_arts(rows + fleet), members, behaviour, no_orgs, LinkParams(), operators=_operators(used | two, 1.0, accounts))
    assert got.joined.height == 0 and got.roaming_rings is not None and got.roaming_rings.observed == 0


def test_rings_half_of_whose_holders_rotate_make_a_campaign_before_any_member_is_flagged() -> None:
    from distillguard.hunt.link import associates

    # A log's first days: 2,000 accounts, no campaign yet, 40 ordinary card pairs and 20
    # office cards of eight, none rotating; two lone rotators (1, 2). A fleet's six card
    # triples (100-117) each have two rotators and one account too new to rotate yet: six
    # rings at least half rotating, where 14 rotators in 2,000 (the fleet's own among them:
    # no campaign yet) give 0.56 by chance. All eighteen holders make one campaign; no
    # triple has every holder rotating.
    accounts = range(2000)
    behaviour = pl.DataFrame({"account": list(accounts), "b": [float(a % 997) for a in accounts]}, schema={"account": pl.UInt32, "b": pl.Float64})
    none = pl.DataFrame(schema={"account": pl.UInt32, "component": pl.Int64})
    rotating = {a: 9.0 for a in (1, 2)} | {a: 9.0 for a in range(100, 118) if (a - 100) % 3 != 2}
    fleet = [(a, "payment_fp", 3000 + (a - 100) // 3) for a in range(100, 118)]
    rows = [(a, "payment_fp", 1000 + a // 2) for a in range(1000, 1080)] + [(a, "payment_fp", 2000 + a // 8) for a in range(1200, 1360)]
    no_orgs = pl.DataFrame(schema={"account": pl.UInt32, "org_id": pl.String})
    ops = _operators(rotating, 1.0, accounts)
    got = associates(_arts(rows + fleet), none, behaviour, no_orgs, LinkParams(), operators=ops, new_component=0)
    assert sorted(got.joined["account"].unique().to_list()) == list(range(100, 118)) and set(got.joined["component"].to_list()) == {0}
    assert got.rings is not None and got.rings.counted == "half" and got.rings.observed == 6 and got.rings.neglog_p > 4
    # Without a component of their own and with no campaign to join, nothing joins.
    assert associates(_arts(rows + fleet), none, behaviour, no_orgs, LinkParams(), operators=ops).joined.height == 0
    # Where 800 ordinary pairs hold one rotator each at the population's rate (40 of them),
    # the fleet's six triples are chance no more: nothing joins.
    pairs = [(a, "payment_fp", 5000 + a // 2) for a in range(200, 1800)]
    busy = rotating | {a: 9.0 for a in range(200, 280, 2)}
    got = associates(_arts(pairs + fleet), none, behaviour, no_orgs, LinkParams(), operators=_operators(busy, 1.0, accounts), new_component=0)
    assert got.rings is not None and got.rings.counted == "every" and got.rings.observed == 0 and got.joined.height == 0


def test_rotators_that_send_a_campaigns_script_line_join_when_more_than_the_rate_of_sending_one_explains() -> None:
    from distillguard.hunt.link import associates

    # A campaign 2,000-2,039 sends 200 script lines, each from two members. Outside it, four
    # accounts rotate (10, 11, 12, 18) of 2,000; 10, 11 and 12 send one line each, 100 and
    # 101 (on one operator) one each: two of 1,996 others send one (rate 0.00125), so four
    # rotators give 0.005 senders and three are seen. The three join; 100 and 101 do not.
    accounts = range(2040)
    behaviour = pl.DataFrame({"account": list(accounts), "b": [float(a % 997) for a in accounts]}, schema={"account": pl.UInt32, "b": pl.Float64})
    members = pl.DataFrame({"account": np.arange(2000, 2040), "component": [1] * 40}, schema={"account": pl.UInt32, "component": pl.Int64})
    rotating = {a: 9.0 for a in (10, 11, 12, 18)}
    lines = [(2000 + (2 * v) % 40, "script_line", 5000 + v) for v in range(200)] + [(2001 + (2 * v) % 40, "script_line", 5000 + v) for v in range(200)]
    outside = [(10, "script_line", 5000), (11, "script_line", 5001), (12, "script_line", 5002), (100, "script_line", 5003), (101, "script_line", 5004)]
    no_orgs = pl.DataFrame(schema={"account": pl.UInt32, "org_id": pl.String})
    got = associates(_arts(lines + outside), members, behaviour, no_orgs, LinkParams(), operators=_operators(rotating, 1.0, accounts))
    assert sorted(got.joined["account"].to_list()) == [10, 11, 12]
    assert got.joined["by_rotation"].all() and set(got.joined["kind"].to_list()) == {"script_line"} and set(got.joined["component"].to_list()) == {1}
    assert got.senders is not None and got.senders.observed == 3 and got.senders.expected < 0.01 and got.senders.neglog_p > 5
    # Where a tenth of the other accounts send one of the lines too, one rotator sending one is chance.
    common = [(200 + v, "script_line", 5000 + v) for v in range(3, 200)]
    got = associates(_arts(lines + outside[:1] + common), members, behaviour, no_orgs, LinkParams(), operators=_operators(rotating, 1.0, accounts))
    assert got.joined.height == 0 and got.senders is not None and got.senders.observed == 1 and got.senders.neglog_p < 2
    # Without rotation there is nothing to count: one line is not a tie.
    assert associates(_arts(lines + outside), members, behaviour, no_orgs, LinkParams()).joined.height == 0


def test_high_ranked_accounts_that_signed_up_beside_a_member_join_when_more_than_the_others_rate_explains() -> None:
    from distillguard.hunt.link import associates

    # 2,000 ordinary accounts ranked by b = account (the top tenth from 1,800), a campaign
    # 2,000-2,039, each member signed up from its own network (value 7,000 + i). Outside it,
    # 1,900-1,902 rank high and each signed up beside a member; 100, ranked low, did too: one
    # of 1,800 others (rate 0.0008), so 200 high-ranked accounts give 0.17 and three are seen.
    # 1,903 signed up beside a member of its own declared organisation, and 1,904 from a
    # network eleven accounts used (an office, a campus): neither counts.
    accounts = range(2040)
    behaviour = pl.DataFrame({"account": list(accounts), "b": [float(a) for a in accounts]}, schema={"account": pl.UInt32, "b": pl.Float64})
    members = pl.DataFrame({"account": np.arange(2000, 2040), "component": [1] * 40}, schema={"account": pl.UInt32, "component": pl.Int64})
    signups = [(2000 + i, "signup_prefix", 7000 + i) for i in range(40)]
    beside = [(1900, "signup_prefix", 7000), (1901, "signup_prefix", 7001), (1902, "signup_prefix", 7002), (100, "signup_prefix", 7003)]
    beside += [(1903, "signup_prefix", 7004)] + [(a, "signup_prefix", 7010) for a in (1904, *range(200, 210))]
    orgs = pl.DataFrame({"account": [1903, 2004], "org_id": ["acme", "acme"]}, schema={"account": pl.UInt32, "org_id": pl.String})
    got = associates(_arts(signups + beside), members, behaviour, orgs, LinkParams())
    assert sorted(got.joined["account"].to_list()) == [1900, 1901, 1902]
    assert set(got.joined["kind"].to_list()) == {"signup_prefix"} and set(got.joined["component"].to_list()) == {1}
    assert not got.joined["by_rotation"].any()
    assert got.cohorts is not None and got.cohorts.observed == 3 and 0.1 < got.cohorts.expected < 0.2 and got.cohorts.neglog_p > 2
    # Where 180 of the others signed up beside a member too (a tenth), three high-ranked ones are chance.
    crowd = [(300 + i, "signup_prefix", 8000 + i) for i in range(180)] + [(2000 + i % 40, "signup_prefix", 8000 + i) for i in range(180)]
    got = associates(_arts(signups + beside + crowd), members, behaviour, orgs, LinkParams())
    assert got.joined.height == 0 and got.cohorts is not None and got.cohorts.observed == 3 and got.cohorts.neglog_p < 1
    # Where 18 of the others did (expected 2.05 among the high-ranked), ten high-ranked ones beat chance (p 5e-5), but
    # chance accounts for a fifth of them: none joins, as two of the ten would be strangers. Twenty-five would join.
    some = [(300 + i, "signup_prefix", 7000 + i) for i in range(5, 23)]
    ten = [(1890 + i, "signup_prefix", 7000 + i) for i in range(23, 33)]
    got = associates(_arts(signups + some + ten), members, behaviour, orgs, LinkParams())
    assert got.cohorts is not None and got.cohorts.observed == 10 and got.cohorts.neglog_p > 4 and got.joined.height == 0
    more = [(1850 + i, "signup_prefix", 7000 + i % 40) for i in range(25)]
    got = associates(_arts(signups + some + more), members, behaviour, orgs, LinkParams())
    assert got.cohorts is not None and got.cohorts.observed == 25 and got.joined["account"].n_unique() == 25


def test_the_top_accounts_paired_by_a_rare_wording_and_origin_make_a_campaign_and_an_office_does_not() -> None:
    from distillguard.hunt.link import outlier_pairs

    # 4,000 accounts outside every campaign; at the top by behaviour: 7 and 8, a wave's first
    # two (one template, one sign-up network, one /24, long answers harvested), and 9 and 10,
    # a lab's two benchmark runners (its answer format and its cloud /24, one-word answers).
    accounts = range(4000)
    b = {a: 1.0 + a / 10_000 for a in accounts} | {7: 25.0, 8: 24.0, 9: 23.0, 10: 22.0}
    harvest = {a: a in (7, 8) or a % 7 == 0 for a in accounts}
    outside = pl.DataFrame(
        {"account": list(accounts), "b": [b[a] for a in accounts], "harvest": [harvest[a] for a in accounts]},
        schema={"account": pl.UInt32, "b": pl.Float64, "harvest": pl.Boolean},
    )
    wave = [(7, "tpl_head", 1), (8, "tpl_head", 1), (7, "signup_prefix", 2), (8, "signup_prefix", 2), (7, "prefix", 3), (8, "prefix", 3)]
    # Offices of ten: one network and one internal template each, ordinary people.
    offices = [(a, kind, 100 + a // 10 + off) for a in range(1000, 1600) for kind, off in (("prefix", 0), ("tpl_head", 10_000))]
    lab = [(a, kind, v) for a in (9, 10) for kind, v in (("tpl_head", 50), ("prefix", 60))]
    p = LinkParams(alpha=0.01)
    ties, count = outlier_pairs(_arts(wave + offices + lab), outside, 0.001, p, new_component=4)
    assert count is not None and count.observed == 1 and count.expected < 0.01 and count.passes(p.alpha / 2, p.count_chance_share)
    assert sorted(ties["account"].unique().to_list()) == [7, 8] and set(ties["component"].to_list()) == {4}
    assert set(ties.filter(pl.col("account") == 7).select("kind", "value").iter_rows()) == {("tpl_head", 1), ("signup_prefix", 2), ("prefix", 3)}
    # A wording alone (or an origin alone) pairs nobody.
    only_words = [r for r in wave if r[1] == "tpl_head"]
    assert outlier_pairs(_arts(only_words + offices), outside, 0.001, p, new_component=4)[0].height == 0
    only_place = [r for r in wave if r[1] != "tpl_head"]
    assert outlier_pairs(_arts(only_place + offices), outside, 0.001, p, new_component=4)[0].height == 0
    # Where the top accounts are tied to ordinary accounts as often (their office's template
    # and network shared with nine colleagues each), two of them in one office are chance.
    b2 = b | {1002: 26.0, 1003: 26.0, 1015: 26.0}  # 1002 and 1003 share an office; 1015 is in the next one
    outside2 = outside.with_columns(b=pl.Series([b2[a] for a in accounts]), harvest=pl.Series([harvest[a] or a in (1002, 1003, 1015) for a in accounts]))
    ties, count = outlier_pairs(_arts(offices), outside2, 0.002, p, new_component=4)
    assert count is not None and count.observed == 1 and not count.passes(p.alpha / 2, p.count_chance_share) and ties.height == 0
