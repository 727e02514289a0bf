"""Policy: the one rule from risk and campaign to an action; the hunt's and the gateway's paths agree."""

from __future__ import annotations

import itertools

import polars as pl
import pytest

from distillguard.errors import ConfigError
from distillguard.policy import DECISIONS, Policy


@pytest.mark.parametrize("policy", [Policy(), Policy(block_risk=0.6, member_action="block", outlier_action="allow")])
def test_expr_agrees_with_decide(policy: Policy) -> None:
    cases = list(itertools.product([True, False], [0.3, 0.5, 0.6, 0.84, 0.85, 0.99], [True, False]))
    df = pl.DataFrame(cases, schema=["flagged", "risk", "outlier"], orient="row")
    got = df.select(policy.expr(pl.col("flagged"), pl.col("risk"), pl.col("outlier"))).to_series().to_list()
    assert got == [policy.decide(f, r, o) for f, r, o in cases]
    assert set(got) <= set(DECISIONS)


def test_thresholds_are_data() -> None:
    assert Policy().decide(True, 0.86, False) == "block"
    assert Policy(block_risk=0.9).decide(True, 0.86, False) == "verify"
    assert Policy.from_dict({"block_risk": 0.95}).block_risk == 0.95


def test_bad_policy_names_key_and_value() -> None:
    with pytest.raises(ConfigError, match=r"policy.block_risk has value 1.5"):
        Policy(block_risk=1.5)
    with pytest.raises(ConfigError, match=r"policy.outlier_action has value 'ban'"):
        Policy(outlier_action="ban")  # type: ignore[arg-type]
