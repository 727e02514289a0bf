"""Score: numbers only — behaviour, campaigns, risk, outliers and the policy's decision."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from distillguard.errors import ConfigError
from distillguard.hunt.config import HuntConfig
from distillguard.hunt.detector import HuntDetector
from distillguard.hunt.score import Scored, first_requests, join_features, score
from distillguard.policy import Policy
from distillguard.signals.base import Finding
from tests.hunt.graphs import arts
from tests.hunt.population import population


def _scored(config: HuntConfig | None = None) -> tuple[Scored, dict[str, str]]:
    ex, acc, arche = population(seed=2)
    det = HuntDetector(config)
    det.observe_accounts(acc.to_arrow())
    det.observe(ex.to_arrow())
    findings, orgs = det.findings()
    return score(findings, orgs, det.state.index, det.config), arche


@pytest.fixture(scope="module")
def scored() -> tuple[Scored, dict[str, str]]:
    return _scored()


def test_flag_risk_and_campaign_agree(scored: tuple[Scored, dict[str, str]]) -> None:
    s, arche = scored
    f = s.feats
    assert f.filter(pl.col("flagged") != pl.col("campaign").is_not_null()).height == 0
    assert f.filter(pl.col("flagged") & (pl.col("risk") < 0.5)).height == 0
    assert f.filter(~pl.col("flagged") & (pl.col("risk") >= 0.5)).height == 0
    flagged = set(f.filter("flagged")["account_id"].to_list())
    assert flagged and all(arche[a] == "naive_scraper" for a in flagged)
    assert set(s.campaigns["campaign"].to_list()) == set(f["campaign"].drop_nulls().to_list())


def test_features_are_namespaced_and_behaviour_sums_tail_scores(scored: tuple[Scored, dict[str, str]]) -> None:
    s, _ = scored
    cols = s.feats.columns
    assert "temporal.ts_peak_daily" in cols and "template.ts_concentration" in cols
    assert not any(c.startswith("ts_") for c in cols)
    assert s.feats["b"].min() >= 0.0  # type: ignore[operator]


def test_behaviour_adds_the_capped_tail_scores_left_to_right(scored: tuple[Scored, dict[str, str]]) -> None:
    """Bit for bit, so two hunts of one log agree (an unordered sum differed in the last bit)."""
    s, _ = scored
    cap = HuntConfig().score.cap
    ts = [c for c in s.feats.columns if c.split(".", 1)[-1].startswith("ts_")]
    active = s.feats.filter(pl.col("temporal.n").fill_null(0) >= HuntConfig().score.min_exchanges)
    assert len(ts) > 5 and active.height > 100
    expected = np.clip(active[ts[0]].fill_null(0.0).to_numpy(), 0.0, cap)
    for c in ts[1:]:
        expected = expected + np.clip(active[c].fill_null(0.0).to_numpy(), 0.0, cap)
    assert np.array_equal(active["b"].to_numpy(), expected)


def test_decision_is_the_policy_applied_to_the_numbers(scored: tuple[Scored, dict[str, str]]) -> None:
    s, _ = scored
    p = Policy()
    for r in s.feats.select("flagged", "risk", "outlier", "decision").to_dicts():
        assert r["decision"] == p.decide(r["flagged"], r["risk"], r["outlier"])


def test_policy_from_config_changes_decisions_not_flags() -> None:
    s, _ = _scored(HuntConfig(policy=Policy(block_risk=0.5, outlier_action="allow")))
    f = s.feats
    assert set(f.filter("flagged")["decision"].to_list()) == {"block"}
    assert "throttle" not in f["decision"].to_list()


def test_two_findings_with_one_name_are_refused() -> None:
    index = pl.DataFrame({"account_id": ["a"], "account": [0]}, schema={"account_id": pl.String, "account": pl.UInt32})
    f = Finding(pl.DataFrame({"account": [0], "x": [1.0]}, schema={"account": pl.UInt32, "x": pl.Float64}))
    feats = join_features({"toy": f}, index)
    assert feats.columns == ["account_id", "account", "toy.x"]
    with pytest.raises(ConfigError, match=r"feature 'toy\.x' twice"):
        join_features({"toy": f}, feats)  # a second finding named "toy"


def test_a_second_campaign_is_measured_against_the_accounts_outside_the_first() -> None:
    # 200 accounts: campaign A (0-24) fills the top tenth of the population on its own, so a
    # smaller campaign B (25-44), clearly above every ordinary account (45-199), has no
    # carrier in that tenth. Without A, B's template is carried by the accounts left on top.
    n = 200
    ts = [2.5 + 0.01 * i for i in range(25)] + [2.0 + 0.01 * i for i in range(20)] + [1.5 * i / 155 for i in range(155)]
    feats = pl.DataFrame({"account": range(n), "ts_x": ts}, schema={"account": pl.UInt32, "ts_x": pl.Float64})
    rows = [(a, "tpl_head", 1) for a in range(25)] + [(a, "tpl_head", 2) for a in range(25, 45)]
    rows += [(a, "tpl_head", 3) for a in range(45, 200, 7)]  # a popular opening among ordinary accounts
    index = pl.DataFrame({"account_id": [f"a{i:03d}" for i in range(n)], "account": range(n)},
                         schema={"account_id": pl.String, "account": pl.UInt32})  # fmt: skip
    orgs = index.select("account", org_id=pl.lit(None, pl.String))
    s = score({"toy": Finding(feats, arts(rows))}, orgs, index, HuntConfig())
    by_campaign = s.feats.filter("flagged").group_by("campaign").agg(pl.col("account").sort())
    assert sorted(by_campaign["account"].to_list()) == [list(range(25)), list(range(25, 45))]
    tested = s.artifacts_tested.filter(pl.col("kind") == "tpl_head").sort("value")
    assert tested["significant"].to_list() == [True, True, False]
    assert tested["k"].to_list()[:2] == [25, 20]  # B's template as tested in the second pass


def test_a_first_request_dates_an_account_only_where_it_registered_inside_the_log() -> None:
    """An account registered before the log's first day may have been busy before it: its
    first request in the log is when the log opened, not when it began (``link.began_together``
    would otherwise unite every old account's web on the log's first days)."""
    day = 20000  # days since the epoch
    ts = lambda d, h=0: dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=d, hours=h)  # noqa: E731
    feats = pl.DataFrame(
        {
            "account": [0, 1, 2, 3, 4],
            "temporal.first_day": [day, day, day + 3, day + 3, None],
            # long before; the log's first day, late in it; before the log, first used on day 3; on day 2; never used
            "registration.created_at": [ts(day - 400), ts(day, 23), ts(day - 1), ts(day + 2), ts(day + 1)],
        },
        schema={"account": pl.UInt32, "temporal.first_day": pl.Int32, "registration.created_at": pl.Datetime("us", "UTC")},
    )
    got = first_requests(feats)
    assert got is not None
    assert got.sort("account").select("account", "day", "dated").rows() == [
        (0, day, False), (1, day, True), (2, day + 3, False), (3, day + 3, True), (4, None, None)
    ]  # fmt: skip
    # registration times as quantiles among every account's (the never-used one's too: a web's
    # spread counts every member, busy or not yet)
    assert got.sort("account")["registered"].to_list() == pytest.approx([0.2, 0.6, 0.4, 1.0, 0.8])
    assert first_requests(feats.drop("temporal.first_day")) is None
    # Without a registration time nothing is dated: no union can be made.
    assert not first_requests(feats.drop("registration.created_at"))["dated"].any()  # type: ignore[index]
