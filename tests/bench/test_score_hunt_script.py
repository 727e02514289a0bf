"""benchmarks/score_hunt.py: recall, FPR per archetype, and the strangers who share a campaign's identity."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
from bench_fixtures import benchmark_script


def test_strangers_holding_a_campaign_phone_or_card_are_counted_with_how_many_are_flagged(tmp_path: Path) -> None:
    log, out = tmp_path / "log", tmp_path / "out"
    for d in (log / "accounts", log / "labels", out):
        d.mkdir(parents=True)
    t = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    pl.DataFrame({
        "account_id": ["c1", "c2", "n1", "n2", "n3"],
        "created_at": [t] * 5,
        "phone_hash": ["p1", "p1", "p1", None, "p9"],  # n1 signed up on the fleet's (recycled) number
        "payment_fp": ["k1", None, None, "k1", None],  # n2 holds the fleet's card
        "email_domain": ["gmail.com"] * 5,  # everyone's webmail: shared with the fleet too
    }).write_parquet(log / "accounts" / "part-0.parquet")  # fmt: skip
    pl.DataFrame({
        "account_id": ["c1", "c2", "n1", "n2", "n3"],
        "campaign_id": ["c", "c", None, None, None],
        "archetype": ["careful", "careful", "casual", "casual", "developer"],
    }).write_parquet(log / "labels" / "part-0.parquet")  # fmt: skip
    pl.DataFrame({
        "account_id": ["c1", "c2", "n1", "n2", "n3"],
        "flagged": [True, False, False, True, False],
        "campaign": [1, None, None, 1, None],
    }).write_parquet(out / "accounts.parquet")  # fmt: skip
    got = benchmark_script("score_hunt").main([str(log), str(out)])
    assert got["recall"] == 0.5 and abs(float(got["fpr"]) - 1 / 3) < 1e-9  # type: ignore[arg-type]
    assert got["benign_sharing_identity_with_a_campaign"] == {
        "phone_hash": {"accounts": 1, "flagged": 0},
        "payment_fp": {"accounts": 1, "flagged": 1},
        "email_domain": {"accounts": 3, "flagged": 1},
    }
