"""Explain: sentences for flagged and acted-on accounts, and campaign summaries a reviewer can check."""

from __future__ import annotations

from typing import Any, NamedTuple

import polars as pl
import pytest

from distillguard.hunt.config import HuntConfig
from distillguard.hunt.detector import HuntDetector
from distillguard.hunt.explain import explain
from distillguard.hunt.score import Scored, score
from distillguard.signals.base import TEXT_SPEC_DTYPES, Finding
from tests.hunt.population import population


class Explained(NamedTuple):
    scored: Scored
    findings: dict[str, Finding]
    texts: pl.DataFrame
    config: HuntConfig
    arche: dict[str, str]
    evidence: pl.DataFrame
    campaigns: list[dict[str, Any]]


def _explained(**kw: Any) -> Explained:
    """A small population (``tests.hunt.population`` with ``kw``) hunted, scored and explained."""
    ex, acc, arche = population(seed=3, **kw)
    det = HuntDetector()
    det.observe_accounts(acc.to_arrow())
    det.observe(ex.to_arrow())
    findings, orgs = det.findings()
    scored = score(findings, orgs, det.state.index, det.config)
    texts = pl.concat([f.texts for f in findings.values() if f.texts is not None and f.texts.height])
    return Explained(scored, findings, texts, det.config, arche, *explain(scored, findings, texts, det.config))


@pytest.fixture(scope="module")
def explained() -> Explained:
    """The small population (a naive campaign among casual users) hunted, scored and explained."""
    return _explained()


def _let_through(feats: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The accounts let through, riskiest first, and the top 1 % of them with a behaviour score."""
    let_through = feats.filter(~pl.col("flagged")).sort(["risk", "account"], descending=[True, False])
    return let_through, let_through.head(-(-let_through.height // 100)).filter(pl.col("b") > 0)


def test_evidence_and_campaign_summaries(explained: Explained) -> None:
    scored, findings, _, config, arche, evidence, campaigns = explained

    acted = scored.feats.filter(pl.col("flagged") | (pl.col("decision") != "allow"))
    # The acted-on accounts, and the top 1 % of the ones let through (below: why).
    _, next_up = _let_through(scored.feats)
    assert set(evidence["account"].to_list()) == set(acted["account"].to_list()) | set(next_up["account"].to_list())
    by_id = dict(zip(scored.feats["account"].to_list(), scored.feats["account_id"].to_list(), strict=True))
    for acct, lines in evidence.iter_rows():
        assert lines and all(isinstance(x, str) and x for x in lines)
        assert lines[-1].startswith("behaviour score ")
        if arche[by_id[acct]] == "naive_scraper":
            assert lines[0].startswith("member of campaign C")
    (camp,) = campaigns
    assert camp["id"] == "C001" and camp["size"] == len(camp["accounts"])
    assert camp["span"][0] is not None and camp["exchanges"] > 0
    # The templated prompt is quoted as the log has it, with the kind's declared label.
    assert any("prompt template (same opening words) \u201c" in line for line in camp["evidence"])
    # Without readable texts, values are shown by a short digest instead.
    _, bare = explain(scored, findings, pl.DataFrame(schema=TEXT_SPEC_DTYPES), config)
    assert any("#" in line for line in bare[0]["evidence"])


def test_the_top_of_the_accounts_let_through_say_why(explained: Explained) -> None:
    """Where flagged accounts fill the population's top 1 % of risk, the nearest misses are below
    it: the top 1 % of the accounts let through carry their evidence too, saying why."""
    feats, lines = explained.scored.feats, dict(explained.evidence.iter_rows())
    top = feats["risk"].quantile(0.99)
    assert feats.filter(pl.col("risk") >= top)["flagged"].all()  # the population's top 1 % is all flagged here
    let_through, next_up = _let_through(feats)
    assert next_up.height >= 1
    for acct in next_up["account"].to_list():
        assert lines[acct][0].startswith("not flagged: ") and lines[acct][-1].startswith("behaviour score ")
    below = let_through.slice(let_through.height // 100 + 1).filter(pl.col("decision") == "allow")
    assert not set(below["account"].to_list()) & set(lines)  # the rest of the allowed stay without


def test_near_misses_say_why_they_were_let_through() -> None:
    ex, acc, arche = population(seed=3)
    det = HuntDetector()
    det.observe_accounts(acc.to_arrow())
    det.observe(ex.to_arrow())
    v = det.verdicts()
    t = pl.from_arrow(v.accounts)
    assert isinstance(t, pl.DataFrame)
    traps = {a for a, k in arche.items() if k in ("enterprise_app", "eval_runner")}
    let_through = t.filter(pl.col("account_id").is_in(list(traps)) & ~pl.col("flagged") & (pl.col("evidence").list.len() > 0))
    assert let_through.height >= 1  # lone outliers in the top 1 %: evidence, and why no campaign
    for lines in let_through["evidence"].to_list():
        assert lines[0].startswith("not flagged: ") and lines[-1].startswith("behaviour score ")
    assert v.near_misses and all(n["why"] for n in v.near_misses)
    assert {n["group"] for n in v.near_misses} <= {"shared artifact", "identity web", "linked accounts"}


def test_each_member_names_the_shared_values_it_holds_itself(explained: Explained) -> None:
    """The campaign's lines say what its members share; a member's own line says which of those
    values it holds (so a reviewer sees how a lone account came to be in the campaign)."""
    scored, evidence = explained.scored, explained.evidence
    held = scored.member_artifacts
    members = scored.feats.filter(pl.col("campaign").is_not_null())
    lines = dict(evidence.iter_rows())
    checked = 0
    for acct in members["account"].to_list():
        own = held.filter(pl.col("account") == acct)
        said = [x for x in lines[acct] if x.startswith("holds ")]
        if own.height == 0:
            assert not said
            continue
        (line,) = said
        assert line.startswith(f"holds {own.height:,} of the values that tie this campaign: ")
        # the strongest value it holds comes first, with its holders and how many are members
        top = own.sort(["neglog_p", "k", "value", "kind"], descending=[True, True, False, False]).row(0, named=True)
        assert f"({top['k']:,} holders, {top['inside']:,} in this campaign)" in line.split("; ")[0]
        assert top["inside"] <= top["k"]
        checked += 1
    assert checked >= 10
    # an account outside every campaign holds nothing of the kind
    outside = scored.feats.filter(pl.col("campaign").is_null() & pl.col("account").is_in(evidence["account"].implode()))
    for acct in outside["account"].to_list():
        assert not any(x.startswith("holds ") for x in lines[acct])


def test_an_account_taken_out_of_a_campaign_says_what_it_shares_and_how_it_differs(explained: Explained) -> None:
    """An account tied to a campaign by its networks alone and behaving unlike the members is let
    out (hunt/cluster.py, ``drop_unlike_bystanders``); its evidence names the values it shares
    and how far it lies from the members, whatever its risk."""
    import dataclasses

    scored, findings, texts, config = explained.scored, explained.findings, explained.texts, explained.config
    assert scored.unlike.height == 0  # nobody is taken out in this population
    quiet = scored.feats.filter(~pl.col("flagged") & (pl.col("decision") == "allow")).sort("b").row(0, named=True)
    value = scored.campaign_artifacts.sort("neglog_p", descending=True).row(0, named=True)
    unlike = pl.DataFrame(
        {"account": [quiet["account"]], "campaign": ["C001"], "distance": [2.55], "spread": [1.98], "feature": ["template.ts_concentration"]},
        schema=dict(scored.unlike.schema),
    )
    held = pl.DataFrame([{k: value[k] for k in ("kind", "value", "k", "inside", "neglog_p")} | {"account": quiet["account"]}]).select(
        scored.unlike_artifacts.columns
    ).cast(dict(scored.unlike_artifacts.schema))  # type: ignore[arg-type]
    evidence, _ = explain(dataclasses.replace(scored, unlike=unlike, unlike_artifacts=held), findings, texts, config)
    lines = dict(evidence.iter_rows())[quiet["account"]]
    assert lines[0].startswith("not flagged: shares only networks or devices with campaign C001 (")
    assert f"({value['k']:,} holders, {value['inside']:,} in the campaign)" in lines[0]
    assert "lies 2.55 from theirs (most on template.ts_concentration)" in lines[0] and lines[0].endswith("lies within 1.98")
    assert lines[-1].startswith("behaviour score ")


def test_an_account_the_reissue_rule_kept_out_says_which_number_and_why(explained: Explained) -> None:
    """A new account on a campaign's phone number, taken up a week after its last earlier holder,
    is not joined for that tie alone (hunt/link.py, ``associates``); its evidence names the
    number, the campaign and the rule, whatever its risk, so a reviewer can overrule it."""
    import dataclasses

    scored, findings, texts, config = explained.scored, explained.findings, explained.texts, explained.config
    assert scored.reissue_only.height == 0  # no reissued numbers in this population
    quiet = scored.feats.filter(~pl.col("flagged") & (pl.col("decision") == "allow")).sort("b").row(0, named=True)
    held = pl.DataFrame(
        {"account": [quiet["account"]], "campaign": ["C001"], "kind": ["phone_hash"], "value": [7], "k": [4], "inside": [3]},
        schema=dict(scored.reissue_only.schema),
    )
    number = pl.DataFrame({"value": [7], "text": ["+1-555-0107"]}, schema=dict(texts.schema))
    evidence, _ = explain(dataclasses.replace(scored, reissue_only=held), findings, pl.concat([texts, number]), config)
    lines = dict(evidence.iter_rows())[quiet["account"]]
    assert lines[0].startswith("not flagged: holds a phone number \u201c+1-555-0107\u201d held by 4 accounts, 3 of them members of campaign C001")
    assert "a week or more after its last earlier holder" in lines[0] and lines[-1].startswith("behaviour score ")


def test_a_campaign_that_outnumbers_the_top_tail_is_explained_by_its_mean_rank() -> None:
    """80 naive scrapers among 150 casual users and the traps: the population's top tenth
    holds too few accounts for half of the campaign, so its artifacts pass on the rank test,
    and the evidence says that, not "m of the k rank in the top 10 %"."""
    got = _explained(campaign=80, casual=150)
    arche = got.arche
    (camp,) = got.campaigns
    assert {arche[a] for a in camp["accounts"]} == {"naive_scraper"} and camp["size"] == 80
    shared = [a for a in camp["shared_artifacts"] if a["kind"] == "device"]
    assert shared and all(a["test"] == "rank" and a["unusual_carriers"] < a["carriers"] / 2 for a in shared)
    line = next(x for x in camp["evidence"] if x.startswith("device fingerprint"))
    assert " is shared by " in line
    assert "their behaviour ranks average the 8" in line and "of the 80 rank in its top 20%" in line


def test_a_campaign_says_how_many_accounts_joined_by_each_route(explained: Explained) -> None:
    """Association through a phone or card and through the campaign's script lines are two
    routes, counted apart in the campaign's evidence."""
    import dataclasses

    scored, findings, texts, config, *_ = explained
    comp = int(scored.campaigns["component"][0])
    outside = scored.feats.join(scored.components, on="account", how="anti")["account"].head(6).to_list()
    rows = [(outside[0], "phone_hash", 1, False), (outside[1], "script_line", 2, False), (outside[1], "script_line", 3, False),
            (outside[2], "script_line", 2, False), (outside[2], "payment_fp", 4, False), (outside[3], "payment_fp", 6, True),
            (outside[4], "script_line", 7, True), (outside[5], "signup_prefix", 8, False)]  # fmt: skip
    extra = scored.feats.join(scored.components, on="account", how="anti")["account"][6]
    assoc = pl.DataFrame(
        [(a, comp, k, v, 5, 3, False, rot, False) for a, k, v, rot in rows] + [(extra, comp, "payment_fp", 9, 3, 0, False, True, True)],
        schema={"account": pl.UInt32, "component": pl.Int64, "kind": pl.String, "value": pl.UInt64, "k": pl.UInt32, "inside": pl.UInt32,
                "by_tenure": pl.Boolean, "by_rotation": pl.Boolean, "by_roaming": pl.Boolean},
        orient="row",
    )  # fmt: skip
    rings = {"observed": 27, "expected": 0.0014, "neglog10_p": 105.1, "joined": 1}
    senders = {"observed": 34, "expected": 0.0011, "neglog10_p": 99.0, "joined": 1}
    cohorts = {"observed": 10, "expected": 0.056, "neglog10_p": 19.1, "joined": 1}
    roaming = {"observed": 3, "expected": 0.032, "neglog10_p": 5.3, "joined": 1, "counted": "every>=3"}
    meta = {**scored.meta, "rotating_rings": rings, "rotating_senders": senders, "signup_cohorts": cohorts, "roaming_rings": roaming}
    _, (camp,) = explain(dataclasses.replace(scored, associated=assoc, meta=meta), findings, texts, config)
    head = [line for line in camp["evidence"] if " more accounts joined " in line]
    roamed = [line for line in head if "3 small phone, card, device or mail-domain rings" in line]
    assert len(roamed) == 1 and roamed[0].startswith("1 more accounts joined as holders of 3 small")
    assert "whose every holder used 3 or more operators' networks" in roamed[0] and "chance gives 0.032 such rings" in roamed[0]
    head.remove(roamed[0])
    cohort_line = head.pop(0)
    assert cohort_line.startswith("1 more accounts joined as accounts outside every campaign that rank in the top 10% of ordinary behaviour")
    assert "signed up from a network a member of this campaign signed up from that week: 10 such accounts where" in cohort_line
    assert "gives 0.056 (p = " in cohort_line
    assert len(head) == 4 and head[0].startswith("1 more accounts joined as accounts outside every campaign that rotate")
    assert "34 such rotators where the other accounts' rate of sending one gives 0.0011" in head[0]
    assert head[1].startswith("1 more accounts joined as holders of 27 small phone, card, device or mail-domain rings")
    assert "chance gives 0.0014 such rings" in head[1] and "rings outside every campaign at least half of whose holders rotate" in head[1]
    _, (camp,) = explain(dataclasses.replace(scored, associated=assoc, meta=meta | {"rotating_rings": rings | {"counted": "every"}}), findings, texts, config)
    assert any("rings outside every campaign whose every holder rotates through" in line for line in camp["evidence"])
    assert head[2].startswith("2 more accounts joined through a phone, card, device or small mail domain")
    assert head[3].startswith("1 more accounts joined through 2 or more of this campaign's script lines")


def test_a_web_says_how_many_members_hold_one_shared_artifact_and_a_script_line(explained: Explained) -> None:
    """A member kept on one shared card and a script line its other holder sends too is
    counted in the web's sentence: one card alone would be a coincidence, and a member held
    by it alone is one only where it ranks at or above the median (the sentence says so)."""
    import dataclasses

    scored, findings, texts, config, *_ = explained
    comp = int(scored.campaigns["component"][0])
    members = scored.components.filter(pl.col("component") == comp)["account"].head(5).to_list()
    webs = pl.DataFrame(
        [(7, comp, 5, 5, 0.9, 2, 3.1, 3.5, 1.5)],
        schema={"web": pl.Int64, "component": pl.Int64, "size": pl.UInt32, "n": pl.UInt32, "u": pl.Float64,
                "seconded": pl.UInt32, "z": pl.Float64, "neglog_p": pl.Float64, "margin": pl.Float64},
        orient="row",
    )  # fmt: skip
    ties = _card_ties(members, web=7)
    _, (camp,) = explain(dataclasses.replace(scored, campaign_webs=webs, web_ties=ties), findings, texts, config)
    (line,) = [x for x in camp["evidence"] if x.startswith("5 accounts tied to each other")]
    assert "2 payment methods (5 accounts); 2 of them share only one phone, card, device or domain, seconded by a script line" in line
    # Where nobody was kept that way, the sentence says nothing of it.
    _, (camp,) = explain(
        dataclasses.replace(scored, campaign_webs=webs.with_columns(seconded=pl.lit(0, pl.UInt32)), web_ties=ties), findings, texts, config
    )
    assert not any("share only one phone" in x for x in camp["evidence"])
    # Members held by one card alone are counted, and the sentence says what kept them.
    _, (camp,) = explain(
        dataclasses.replace(scored, campaign_webs=webs.with_columns(loose=pl.lit(3, pl.UInt32)), web_ties=ties), findings, texts, config
    )
    (line,) = [x for x in camp["evidence"] if x.startswith("5 accounts tied to each other")]
    assert "; 3 hold one of them alone, and are members only where their own behaviour ranks at or above the median;" in line


def test_webs_that_began_together_say_so_and_name_the_day(explained: Explained) -> None:
    """A union of webs too weak alone (link.began_together) says how many webs, the day they
    began and that it was tested as a second family; its day tie is not listed as a thing shared."""
    import dataclasses

    from distillguard.hunt.link import BEGAN_KIND

    scored, findings, texts, config, *_ = explained
    comp = int(scored.campaigns["component"][0])
    members = scored.components.filter(pl.col("component") == comp)["account"].head(5).to_list()
    webs = pl.DataFrame(
        [(7, comp, 5, 5, 0.8, 3.7, 3.9, 1.3, 3, 20645)],
        schema={"web": pl.Int64, "component": pl.Int64, "size": pl.UInt32, "n": pl.UInt32, "u": pl.Float64, "z": pl.Float64,
                "neglog_p": pl.Float64, "margin": pl.Float64, "joined": pl.UInt32, "began": pl.Int32},
        orient="row",
    )  # fmt: skip
    day = pl.DataFrame({"account": members, "kind": BEGAN_KIND, "value": 20645, "web": 7},
                       schema={"account": pl.UInt32, "kind": pl.String, "value": pl.UInt64, "web": pl.Int64})  # fmt: skip
    ties = pl.concat([_card_ties(members, web=7), day.select(_card_ties(members, web=7).columns)])
    _, (camp,) = explain(dataclasses.replace(scored, campaign_webs=webs, web_ties=ties), findings, texts, config)
    (line,) = [x for x in camp["evidence"] if x.startswith("5 accounts in 3 webs too weak to test alone")]
    assert "(2 payment methods (5 accounts)) and nothing across, that all began on 2026-07-11; tested together" in line
    assert BEGAN_KIND not in line and "p = 0.00013 (z = 3.7)" in line
    # Two of the three webs united by registering together before the log opened: said so.
    webs = webs.with_columns(by_registration=pl.lit(2, pl.UInt32))
    _, (camp,) = explain(dataclasses.replace(scored, campaign_webs=webs, web_ties=ties), findings, texts, config)
    (line,) = [x for x in camp["evidence"] if x.startswith("5 accounts in 3 webs too weak to test alone")]
    assert ("that all began on 2026-07-11 (2 of them of accounts registered before the log opened, each web's members "
            "closer together in registration than chance puts random accounts, `link.registered_together`); tested together") in line  # fmt: skip


def test_a_web_kept_by_one_behaviour_score_names_it_and_its_chance(explained: Explained) -> None:
    """The web's sentence gives the mean rank test's own chance, then the score the profile
    test found, where that test is what kept the web; otherwise it says nothing of it."""
    import dataclasses

    scored, findings, texts, config, *_ = explained
    comp = int(scored.campaigns["component"][0])
    members = scored.components.filter(pl.col("component") == comp)["account"].head(5).to_list()
    schema = {"web": pl.Int64, "component": pl.Int64, "size": pl.UInt32, "n": pl.UInt32, "u": pl.Float64, "seconded": pl.UInt32,
              "z": pl.Float64, "rank_neglog_p": pl.Float64, "feature": pl.String, "feature_u": pl.Float64,
              "feature_neglog_p": pl.Float64, "neglog_p": pl.Float64, "margin": pl.Float64}  # fmt: skip
    webs = pl.DataFrame(
        [(7, comp, 9, 9, 0.65, 0, 1.6, 1.24, "output_harvesting.ts_out_in", 0.93, 3.12, 2.82, 0.3)], schema=schema, orient="row"
    )
    ties = _card_ties(members, web=7)
    _, (camp,) = explain(dataclasses.replace(scored, campaign_webs=webs, web_ties=ties), findings, texts, config)
    (line,) = [x for x in camp["evidence"] if x.startswith("9 accounts tied to each other")]
    assert "average the 65th percentile of the population, which ordinary accounts would reach by chance with p = 0.058 (z = 1.6)" in line
    assert "on one behaviour score, output_harvesting.ts_out_in, they average the 93rd percentile" in line
    assert "which ordinary accounts would reach on one of the scores tried by chance with p = 0.00076" in line
    # Kept by its mean rank: the sentence is the mean rank's alone.
    by_rank = webs.with_columns(rank_neglog_p=pl.lit(4.0), neglog_p=pl.lit(4.0))
    _, (camp,) = explain(dataclasses.replace(scored, campaign_webs=by_rank, web_ties=ties), findings, texts, config)
    assert not any("behaviour score" in x for x in camp["evidence"])


def _card_ties(members: list[int], web: int) -> pl.DataFrame:
    """Web ties of ``members``: a card to every three of them."""
    return pl.DataFrame(
        [(a, "payment_fp", 40 + i // 3, web) for i, a in enumerate(members)],
        schema={"account": pl.UInt32, "kind": pl.String, "value": pl.UInt64, "web": pl.Int64},
        orient="row",
    )


def test_a_near_miss_held_by_one_declared_organisation_says_so() -> None:
    """A shared artifact that passed its test but belongs to one declared organisation is a
    near miss whose reason is the organisation, not the chance."""
    from distillguard.hunt.explain import _failed_groups

    tested = pl.DataFrame(
        [("payment_fp", 100, 20, 6, 0.79, 14, 5.5, False, "org", 4.0), ("prefix", 102, 30, 4, 0.6, 8, 1.2, False, None, 4.0)],
        schema={"kind": pl.String, "value": pl.UInt64, "k": pl.UInt32, "m": pl.UInt32, "u": pl.Float64, "w": pl.UInt32,
                "neglog_p": pl.Float64, "significant": pl.Boolean, "test": pl.String, "cut": pl.Float64},
        orient="row",
    )  # fmt: skip
    empty_webs = pl.DataFrame(schema={"web": pl.Int64, "significant": pl.Boolean})
    comp = pl.DataFrame(schema={"account": pl.UInt32, "component": pl.Int64})
    ids = pl.DataFrame(schema={"account": pl.UInt32, "account_id": pl.String})
    near = _failed_groups(tested, empty_webs, comp, comp.select("component"), HuntConfig(), ids)
    assert near["why"].to_list() == [
        "held only by members of one declared organisation (its own card, domain or network), chance p = 10^-5.5",
        "only 4 of 30 carriers behave unusually (half are needed)",
    ]


def test_a_failed_web_and_a_small_group_name_their_members() -> None:
    """A web or a linked group has no value to look up: its near miss lists its accounts by id;
    a campaign's own group is no near miss."""
    from distillguard.hunt.explain import _failed_groups

    tested = pl.DataFrame(
        schema={"kind": pl.String, "value": pl.UInt64, "k": pl.UInt32, "m": pl.UInt32, "u": pl.Float64, "w": pl.UInt32,
                "neglog_p": pl.Float64, "significant": pl.Boolean, "test": pl.String, "cut": pl.Float64}
    )  # fmt: skip
    webs = pl.DataFrame(
        [(0, 3, [2, 0, 1], 1.3, 1.0, 2.0, False), (1, 5, [3, 4, 5, 6, 7], 9.0, 3.0, 2.0, True)],
        schema={"web": pl.Int64, "size": pl.UInt32, "accounts": pl.List(pl.UInt32), "z": pl.Float64,
                "neglog_p": pl.Float64, "cut": pl.Float64, "significant": pl.Boolean},
        orient="row",
    )  # fmt: skip
    comp = pl.DataFrame({"account": [8, 9, 3, 4, 5, 6, 7], "component": [1, 1, 2, 2, 2, 2, 2]}, schema={"account": pl.UInt32, "component": pl.Int64})
    ids = pl.DataFrame({"account": list(range(10)), "account_id": [f"acct_{i}" for i in range(10)]}, schema={"account": pl.UInt32, "account_id": pl.String})
    near = _failed_groups(tested, webs, comp, pl.DataFrame({"component": [2]}), HuntConfig(), ids)
    assert near.select("group", "accounts", "members").rows() == [
        ("identity web", 3, ["acct_0", "acct_1", "acct_2"]),
        ("linked accounts", 2, ["acct_8", "acct_9"]),
    ]
    # Webs that began on one day and failed together say so (link.began_together).
    union = webs.with_columns(joined=pl.Series([2, None], dtype=pl.UInt32), began=pl.Series([20645, None], dtype=pl.Int32))
    near = _failed_groups(tested, union, comp, pl.DataFrame({"component": [2]}), HuntConfig(), ids)
    assert near["why"][0] == "2 webs that began on 2026-07-11, tested together: mean behaviour rank z = 1.3: chance p = 10^-1.0 does not clear the cut 10^-2.0"


def test_an_account_joined_on_a_number_held_within_a_week_says_why_its_behaviour_did_not_keep_it_out() -> None:
    """An account under the median joined by the tenure rule (hunt/link.py, ``associates``) says
    so; one that joined on its rank reads as before."""
    from distillguard.hunt.explain import _association_lines

    assoc = pl.DataFrame(
        {"account": [1, 2], "component": [0, 0], "kind": ["phone_hash", "phone_hash"], "value": [7, 8], "k": [2, 3],
         "inside": [1, 2], "by_tenure": [True, False]},
        schema={"account": pl.UInt32, "component": pl.Int64, "kind": pl.String, "value": pl.UInt64, "k": pl.UInt32,
                "inside": pl.UInt32, "by_tenure": pl.Boolean},
    )  # fmt: skip
    texts = pl.DataFrame({"value": [7, 8], "text": ["+1-555-0107", "+1-555-0108"]}, schema=TEXT_SPEC_DTYPES)
    lines = _association_lines(assoc, texts, 0.99)
    assert lines[1] == [
        "joined the campaign through a phone number \u201c+1-555-0107\u201d held by 2 accounts, 1 of them members, taken up "
        "within a week of an earlier holder's sign-up (one subscriber's number, not a reissue to a stranger), so its "
        "behaviour, ordinary so far, does not keep it out"
    ]
    assert lines[2] == ["joined the campaign through a phone number \u201c+1-555-0108\u201d held by 3 accounts, 2 of them members"]


def _count_tie(account: int, kind: str, value: int, k: int, inside: int, by_rotation: bool = True, by_roaming: bool = False) -> pl.DataFrame:
    """One association tie made by a count test (of rotators: ``by_rotation``; of roaming rings:
    ``by_roaming`` too), as ``associates`` returns it."""
    return pl.DataFrame(
        {"account": [account], "component": [0], "kind": [kind], "value": [value], "k": [k], "inside": [inside],
         "by_tenure": [False], "by_rotation": [by_rotation], "by_roaming": [by_roaming]},
        schema={"account": pl.UInt32, "component": pl.Int64, "kind": pl.String, "value": pl.UInt64, "k": pl.UInt32,
                "inside": pl.UInt32, "by_tenure": pl.Boolean, "by_rotation": pl.Boolean, "by_roaming": pl.Boolean},
    )  # fmt: skip


def test_an_account_joined_with_a_ring_of_rotators_says_so() -> None:
    """A ring of rotators that joined (hunt/link.py, ``_rotating_rings``) names its card, its
    holders and the rate it beat, with no member in it."""
    from distillguard.hunt.explain import _association_lines

    assoc = _count_tie(3, "payment_fp", 9, k=2, inside=0)
    texts = pl.DataFrame({"value": [9], "text": ["card 4242"]}, schema=TEXT_SPEC_DTYPES)
    (line,) = _association_lines(assoc, texts, 0.99)[3]
    assert "held by 2 accounts, 0 of them members" in line
    assert "more operators' networks than 99% of ordinary accounts" in line


def test_an_account_joined_with_a_roaming_ring_says_at_which_bar() -> None:
    """A ring every holder of which used as many operators' networks as a bar below the
    rotators' (hunt/link.py, ``_roaming_rings``) says the bar, not that its holders rotate."""
    from distillguard.hunt.explain import _association_lines

    assoc = _count_tie(3, "payment_fp", 9, k=3, inside=0, by_roaming=True)
    texts = pl.DataFrame({"value": [9], "text": ["card 4242"]}, schema=TEXT_SPEC_DTYPES)
    (line,) = _association_lines(assoc, texts, 0.99, roamed="3")[3]
    assert "held by 3 accounts, 0 of them members, every one of them using 3 or more operators' networks" in line
    assert "rotat" not in line


def test_a_rotator_joined_by_one_script_line_says_so() -> None:
    """A rotator that joined by one of a campaign's lines (hunt/link.py, ``_rotating_senders``)
    names the line and its senders and says the rotation is the second tie."""
    from distillguard.hunt.explain import _association_lines

    assoc = _count_tie(4, "script_line", 8, k=5, inside=4)
    texts = pl.DataFrame({"value": [8], "text": ["Can you explain further?"]}, schema=TEXT_SPEC_DTYPES)
    (line,) = _association_lines(assoc, texts, 0.99, ("script_line",))[4]
    assert "\u201cCan you explain further?\u201d held by 5 accounts, 4 of them members" in line
    assert "and rotates through more operators' networks than 99% of ordinary accounts" in line
    assert "every one of them" not in line


def test_an_account_joined_by_signing_up_beside_a_member_says_so() -> None:
    """An account that joined by the sign-up count (hunt/link.py, ``_signup_cohorts``) names
    the network and week, its holders, and that its rank is the second tie."""
    from distillguard.hunt.explain import _association_lines

    assoc = _count_tie(5, "signup_prefix", 6, k=4, inside=1, by_rotation=False)
    texts = pl.DataFrame({"value": [6], "text": ["15.178.166.0/24 in the week of 2026-07-06"]}, schema=TEXT_SPEC_DTYPES)
    (line,) = _association_lines(assoc, texts, 0.99, ("script_line",), ("signup_prefix",), 0.9)[5]
    assert "\u201c15.178.166.0/24 in the week of 2026-07-06\u201d held by 4 accounts, 1 of them members" in line
    assert line.endswith("and ranks in the top 10% of ordinary behaviour (accounts that rank so high sign up beside "
                         "this campaign's members far more often than other accounts do)")
    assert "rotates" not in line


def test_a_waves_first_two_accounts_make_a_campaign_and_a_labs_two_benchmark_runners_do_not() -> None:
    """Two accounts at the top of 2,400 people that share one template and one /24 (hunt/link.py,
    ``outlier_pairs``): a lab's two benchmark runners, asking for one-word answers, are not a
    campaign; a wave's first two, harvesting long answers, are one of two that says why."""
    lab = _explained(campaign=0, casual=2400)
    feats = lab.scored.feats.with_columns(kind=pl.col("account_id").replace_strict(lab.arche))
    assert feats.filter(pl.col("kind") == "eval_runner")["outlier"].all()  # the top of the population
    assert not feats["flagged"].any() and lab.scored.outlier_pairs.height == 0

    e = _explained(campaign=0, casual=2400, wave=2)
    feats = e.scored.feats.with_columns(kind=pl.col("account_id").replace_strict(e.arche))
    flagged = feats.filter("flagged")
    assert flagged["kind"].to_list() == ["disposable"] * 2 and flagged["campaign"].n_unique() == 1
    assert e.scored.meta["outlier_pairs"]["observed"] == 1 and e.scored.meta["outlier_pairs"]["expected"] < 0.01
    ev = dict(zip(e.evidence["account"].to_list(), e.evidence["evidence"].to_list(), strict=True))
    for a in flagged["account"].to_list():
        assert any(x.startswith("shares an IP prefix \u201c31.51.178.0/24\u201d, held by 2 accounts, with 1 other account") for x in ev[a])
        assert any(x.startswith("shares a prompt template (same opening words)") for x in ev[a])
    (camp,) = e.campaigns
    assert camp["size"] == 2 and camp["evidence"][0].startswith("2 accounts, tied by nothing else that makes a campaign, rank in the top 0.1%")
    assert "1 such pair where" in camp["evidence"][0]
