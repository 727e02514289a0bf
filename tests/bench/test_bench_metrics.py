"""The bench's arithmetic, checked against numbers worked out by hand (see bench_fixtures.py).

Hourly replay of the scripted detector; final flags: c1a, c1b, c2a, c2b (attack) and n2
(benign). First-flag times: c1a 01:00, c2a and c2b 02:00, c1b 03:00, n1 01:00 (cleared
later), n2 06:00.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pyarrow as pa
import pytest
from bench_fixtures import FakeReader, ScriptedDetector, at, labels_table

from distillguard import schema
from distillguard.bench import BenchResult, evaluate
from distillguard.bench import metrics as m
from distillguard.bench.replay import FLAG_CHANGES
from distillguard.errors import LogError


@pytest.fixture(scope="module")
def result() -> BenchResult:
    return evaluate(ScriptedDetector(), FakeReader(), every=timedelta(hours=1), log="handmade", progress=False)


def test_account_level_precision_recall_fpr(result: BenchResult) -> None:
    a = result.accounts
    # attack: c1a c1b c1c c2a c2b c3a (6); benign: n1..n5 + unlabelled u1 (6).
    assert (a["tp"], a["fp"], a["fn"], a["tn"]) == (4, 1, 2, 5)
    assert (a["attack_accounts"], a["benign_accounts"], a["flagged"]) == (6, 6, 5)
    assert a["precision"] == pytest.approx(4 / 5)
    assert a["recall"] == pytest.approx(4 / 6)
    assert a["fpr"] == pytest.approx(1 / 6)  # n5 (no exchanges) and u1 (unlabelled) count
    assert a["f1"] == pytest.approx(2 * 0.8 * (2 / 3) / (0.8 + 2 / 3))
    assert a["ever_flagged"] == 6  # n1 was flagged for a while
    assert result.n_accounts == 12


def test_per_archetype(result: BenchResult) -> None:
    assert result.per_archetype == {
        "hydra": {"accounts": 3, "flagged": 2, "rate": pytest.approx(2 / 3), "kind": "attack"},
        "naive_scraper": {"accounts": 2, "flagged": 2, "rate": 1.0, "kind": "attack"},
        "stealth": {"accounts": 1, "flagged": 0, "rate": 0.0, "kind": "attack"},
        "(unlabelled)": {"accounts": 1, "flagged": 0, "rate": 0.0, "kind": "benign"},
        "casual": {"accounts": 4, "flagged": 1, "rate": 0.25, "kind": "benign"},
        "enterprise_app": {"accounts": 1, "flagged": 0, "rate": 0.0, "kind": "benign"},
    }
    assert list(result.per_archetype)[:3] == ["hydra", "naive_scraper", "stealth"]  # attack first


def test_campaign_best_cluster(result: BenchResult) -> None:
    c = result.campaigns
    # C1: K1 holds c1a, c1b (and benign n4): 2 of 3 campaign accounts, cluster size 3.
    assert c["C1"]["best_cluster"] == "K1"
    assert c["C1"]["cluster_size"] == 3
    assert c["C1"]["precision"] == pytest.approx(2 / 3)
    assert c["C1"]["recall"] == pytest.approx(2 / 3)
    assert (c["C1"]["accounts"], c["C1"]["flagged"]) == (3, 2)
    # C2: K3 {c2a} and K4 {c2b, n3} tie on 1 account; K3 wins on precision 1 vs 1/2.
    assert (c["C2"]["best_cluster"], c["C2"]["precision"], c["C2"]["recall"]) == ("K3", 1.0, 0.5)
    # C3: a single account, never clustered.
    assert c["C3"] == {
        "accounts": 1,
        "flagged": 0,
        "flagged_then_cleared": 0,
        "flag_rate": 0.0,
        "best_cluster": None,
        "cluster_size": None,
        "precision": None,
        "recall": None,
    }


def test_time_to_detect(result: BenchResult) -> None:
    ttd = result.time_to_detect_hours
    # C1 starts 00:10; c1a flagged 01:00 -> 50 min; 90 % of 3 needs 3 flagged, only 2 ever are.
    assert ttd["C1"]["first"] == pytest.approx(50 / 60)
    assert ttd["C1"]["p90"] is None
    # C2 starts 01:00 (c2a); both flagged at 02:00.
    assert ttd["C2"] == {"first": pytest.approx(1.0), "p90": pytest.approx(1.0)}
    assert ttd["C3"] == {"first": None, "p90": None}


def test_leaked_exchanges(result: BenchResult) -> None:
    leak = result.leaked_exchanges
    # C1: c1a 2 of 4 before 01:00, c1b 2 of 3 before 03:00, c1c never flagged 2 of 2.
    assert leak["C1"] == {"count": 6, "share": pytest.approx(6 / 9), "total": 9}
    # C2: c2a 2 of 2 before 02:00; c2b flagged at 02:00, its only exchange is at 04:00.
    assert leak["C2"] == {"count": 2, "share": pytest.approx(2 / 3), "total": 3}
    assert leak["C3"] == {"count": 2, "share": 1.0, "total": 2}
    assert result.leaked_exchanges_all == {"count": 10, "share": pytest.approx(10 / 14), "total": 14}


def test_leaked_before_the_campaign_was_first_flagged(result: BenchResult) -> None:
    """The part of the leak only an earlier campaign saves: before its first flag (C1 01:00, c1a)."""
    before = result.leaked_before_campaign_flagged
    # C1: c1a at 00:10 and 00:20, c1b at 00:40 (c1b's 01:50 and c1c's two came after C1 was known).
    assert before["C1"] == {"count": 3, "share": pytest.approx(3 / 9), "total": 9}
    assert before["C2"] == {"count": 2, "share": pytest.approx(2 / 3), "total": 3}  # c2a before 02:00
    assert before["C3"] == {"count": 2, "share": 1.0, "total": 2}  # never flagged: all of it
    assert result.leaked_before_campaign_flagged_all == {"count": 7, "share": pytest.approx(7 / 14), "total": 14}
    def captions(r: BenchResult) -> str:
        return " ".join(str(t.caption) for t in r.tables() if t.caption)

    assert "7 were served before any account of their campaign was flagged" in captions(result)
    # A result written before the count existed says nothing of it (not "0 were served ...").
    old = BenchResult.from_dict({k: v for k, v in result.to_dict().items() if not k.startswith("leaked_before_campaign")})
    assert "before any account of their campaign" not in captions(old)


def test_no_attack_account_was_cleared_so_unflagged_equals_leaked(result: BenchResult) -> None:
    assert result.leaked_while_unflagged == result.leaked_exchanges
    assert result.leaked_while_unflagged_all == result.leaked_exchanges_all
    assert (result.replay["flags_cleared"], result.replay["accounts_ever_cleared"]) == (1, 1)  # n1, benign


def test_unflagged_counts_the_time_a_flag_was_cleared_and_leaked_does_not() -> None:
    """An account flagged at 2 h, cleared at 5 h and flagged again at 8 h is served unflagged
    at 6 h: ``leaked`` (before the first flag) misses it, ``unflagged`` counts it."""
    truth = pl.DataFrame(
        {"account_id": ["a", "b"], "campaign_id": ["C", "C"], "attack": [True, True],
         "first_flagged_at": [at(2), None], "harvest_start": [at(0), at(0)]},
        schema_overrides={"first_flagged_at": pl.Datetime("us", "UTC"), "harvest_start": pl.Datetime("us", "UTC")},
    )  # fmt: skip
    changes = pa.table(
        {"account_id": ["a", "a", "a", "x"], "at": [at(2), at(5), at(8), at(1)], "flagged": [True, False, True, True]},
        schema=FLAG_CHANGES,
    )
    batch = pa.table({"account_id": ["a", "a", "a", "a", "a", "b"], "ts": [at(h) for h in (1, 2, 3, 6, 9, 4)]})
    scan = m.scan_attack_exchanges([batch], truth, changes)
    assert m.leaked_exchanges(truth, scan)["C"] == {"count": 2, "share": pytest.approx(2 / 6), "total": 6}  # a at 1, b
    # a at 1 and at 6 (cleared from 5 to 8; the flag set at 2 covers the exchange at 2), and b
    assert m.leaked_exchanges(truth, scan, "unflagged")["C"] == {"count": 3, "share": pytest.approx(3 / 6), "total": 6}
    h = m.harvest_metrics(truth, scan)["C"]
    assert (h["leaked"], h["unflagged"], h["total"]) == (2, 3, 6)
    # without the changes the first flags are the only ones: the two counts agree
    plain = m.scan_attack_exchanges([batch], truth)
    assert plain["unflagged"].to_list() == plain["leaked"].to_list() == [2]


def test_flagged_by_decision_and_run_numbers(result: BenchResult) -> None:
    assert result.flagged_by_decision == {
        "block": {"accounts": 4, "attack": 4, "benign": 0},
        "verify": {"accounts": 1, "attack": 0, "benign": 1},
    }
    assert result.exchanges == 20
    assert result.replay_every_hours == 1.0
    assert result.replay["chunks"] == 9
    assert result.throughput_exchanges_per_s == pytest.approx(20 / result.seconds)
    assert result.peak_rss_bytes > 0


def test_labels_are_read_only_after_detection_ends() -> None:
    events: list[str] = []
    det = ScriptedDetector(events=events)
    evaluate(det, FakeReader(events=events), progress=False)
    last_detector_call = max(i for i, e in enumerate(events) if e.startswith("detector."))
    assert events.index("reader.labels") > last_detector_call
    assert events.count("reader.labels") == 1
    assert det.accounts_seen is not None
    seen = {*det.accounts_seen.column_names, *(c for b in det.batches for c in b.column_names)}
    assert not seen & {"campaign_id", "archetype"}


def test_no_labels_is_a_clear_error() -> None:
    with pytest.raises(LogError, match="labels/"):
        evaluate(ScriptedDetector(), FakeReader(no_labels=True), log="somewhere", progress=False)


def test_nothing_flagged_gives_nulls_not_errors() -> None:
    res = evaluate(ScriptedDetector(windows={}, clusters={}), FakeReader(), progress=False)
    assert res.accounts["precision"] is None
    assert res.accounts["recall"] == 0.0
    assert res.accounts["fpr"] == 0.0
    assert all(v == {"first": None, "p90": None} for v in res.time_to_detect_hours.values())
    assert all(c["best_cluster"] is None for c in res.campaigns.values())
    assert res.leaked_exchanges_all == {"count": 14, "share": 1.0, "total": 14}
    assert res.flagged_by_decision == {}


def test_no_attack_accounts_gives_null_recall() -> None:
    benign = labels_table().filter(pa.compute.is_null(labels_table()["campaign_id"]))
    res = evaluate(ScriptedDetector(), FakeReader(labels=benign), progress=False)
    assert res.accounts["recall"] is None
    assert res.accounts["attack_accounts"] == 0
    assert res.campaigns == {} and res.leaked_exchanges == {} and res.time_to_detect_hours == {}
    assert res.leaked_exchanges_all == {"count": 0, "share": None, "total": 0}


def test_labelled_accounts_missing_from_verdicts_are_not_flagged() -> None:
    extra = pa.table(
        {"account_id": ["ghost"], "campaign_id": ["C9"], "archetype": ["hydra"]}, schema=schema.LABELS
    )
    res = evaluate(ScriptedDetector(), FakeReader(labels=pa.concat_tables([labels_table(), extra])), progress=False)
    assert res.accounts["fn"] == 3
    assert res.campaigns["C9"]["flagged"] == 0
    assert res.leaked_exchanges["C9"] == {"count": 0, "share": None, "total": 0}
    assert res.time_to_detect_hours["C9"] == {"first": None, "p90": None}


def test_p90_rounds_the_account_count_up() -> None:
    truth = pl.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(10)],
            "campaign_id": ["C"] * 10,
            "attack": [True] * 10,
            "first_flagged_at": [None] + [at(i) for i in range(1, 10)],
        },
        schema_overrides={"first_flagged_at": pl.Datetime("us", "UTC")},
    )
    scan = pl.DataFrame(
        {"campaign_id": ["C"], "total": [10], "leaked": [5], "first_ts": [at(0)]},
        schema_overrides={"first_ts": pl.Datetime("us", "UTC")},
    )
    # 9 of 10 accounts flagged, the 9th at hour 9: exactly 90 %.
    assert m.time_to_detect(truth, scan)["C"] == {"first": 1.0, "p90": 9.0}


def test_ratio_is_none_on_zero_denominator() -> None:
    assert m.ratio(3, 0) is None
    assert m.ratio(0, 4) == 0.0


def test_harvest_metrics_without_harvest_start_equal_the_whole_campaign(result: BenchResult) -> None:
    for cid, h in result.harvest.items():
        assert {k: h[k] for k in ("first", "p90")} == result.time_to_detect_hours[cid]
        assert (h["leaked"], h["total"]) == (result.leaked_exchanges[cid]["count"], result.leaked_exchanges[cid]["total"])


def test_harvest_metrics_count_from_harvest_start() -> None:
    truth = pl.DataFrame(
        {
            "account_id": ["a", "b"],
            "campaign_id": ["C", "C"],
            "attack": [True, True],
            "first_flagged_at": [at(30), None],
            "harvest_start": [at(24), at(48)],
        },
        schema_overrides={"first_flagged_at": pl.Datetime("us", "UTC"), "harvest_start": pl.Datetime("us", "UTC")},
    )
    batch = pa.table({"account_id": ["a", "a", "a", "b", "b"], "ts": [at(h) for h in (1, 25, 31, 2, 50)]})
    scan = m.scan_attack_exchanges([batch], truth)
    h = m.harvest_metrics(truth, scan)["C"]
    # warm-up chat at hours 1 and 2 is neither harvest nor counted: harvesting starts at 25
    assert h["start"] == at(25) and h["first"] == pytest.approx(5.0) and h["p90"] is None
    assert (h["leaked"], h["total"]) == (2, 3)  # a at 25 (before its flag at 30) and b at 50
    assert m.time_to_detect(truth, scan)["C"]["first"] == pytest.approx(29.0)  # from the first exchange
