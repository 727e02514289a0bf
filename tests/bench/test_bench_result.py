"""BenchResult: the JSON keys users' scripts read, the round trip, and the printed table."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from bench_fixtures import FakeReader, ScriptedDetector
from rich.console import Console

from distillguard.bench import BenchResult, evaluate
from distillguard.bench.result import fmt_bytes, fmt_hours, fmt_pct

REQUIRED = {
    "accounts",
    "per_archetype",
    "campaigns",
    "time_to_detect_hours",
    "leaked_exchanges",
    "throughput_exchanges_per_s",
    "peak_rss_bytes",
    "detector",
    "log",
    "replay_every_hours",
    "exchanges",
    "seconds",
    "n_accounts",
    "flagged_by_decision",
}


@pytest.fixture(scope="module")
def result() -> BenchResult:
    return evaluate(ScriptedDetector(), FakeReader(), log="handmade", detector_params={"x": 1}, progress=False)


def test_json_has_the_contract_keys(result: BenchResult, tmp_path: Path) -> None:
    path = tmp_path / "deep" / "bench.json"
    result.write_json(path)
    doc = json.loads(path.read_text())
    assert set(doc) >= REQUIRED
    assert {"recall", "precision", "fpr", "tp", "fp", "fn", "tn"} <= set(doc["accounts"])
    assert set(doc["campaigns"]["C1"]) >= {"accounts", "best_cluster", "precision", "recall"}
    assert set(doc["time_to_detect_hours"]["C1"]) == {"first", "p90"}
    assert set(doc["leaked_exchanges"]["C1"]) == {"count", "share", "total"}
    assert set(doc["per_archetype"]["hydra"]) == {"accounts", "flagged", "rate", "kind"}
    assert doc["campaigns"]["C3"]["best_cluster"] is None
    assert doc["detector"] == "scripted" and doc["log"] == "handmade"
    assert doc["detector_params"] == {"x": 1}
    assert "replay_result" not in doc
    assert isinstance(doc["replay"]["start"], str)  # datetimes as ISO strings


def test_json_round_trip(result: BenchResult, tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    result.write_json(path)
    back = BenchResult.read_json(path)
    assert back.to_dict() == result.to_dict()
    assert back.replay_result is None


def test_unknown_keys_are_ignored_when_reading() -> None:
    doc = {**_minimal(), "added_in_a_later_version": 1}
    assert BenchResult.from_dict(doc).detector == "d"


def test_printed_table_is_readable(result: BenchResult) -> None:
    buf = io.StringIO()
    result.print(Console(file=buf, width=160, color_system=None))
    text = buf.getvalue()
    needles = ("precision", "recall", "FPR", "80.0%", "66.7%", "16.667%", "hydra", "casual",
               "C1", "K1", "0.8 h", "throughput", "peak memory", "block")
    for needle in needles:
        assert needle in text, needle


def test_printing_an_empty_result_does_not_crash() -> None:
    buf = io.StringIO()
    BenchResult.from_dict(_minimal()).print(Console(file=buf, width=120))
    assert "accounts" in buf.getvalue()


def test_formatters() -> None:
    assert (fmt_pct(None), fmt_pct(0.5), fmt_pct(0.001, 3)) == ("—", "50.0%", "0.100%")
    assert (fmt_hours(None), fmt_hours(1.25), fmt_hours(72)) == ("—", "1.2 h", "3.0 d")
    assert (fmt_bytes(512), fmt_bytes(1536), fmt_bytes(3 * 2**30)) == ("512 B", "1.5 KiB", "3.0 GiB")


def _minimal() -> dict[str, object]:
    return {
        "detector": "d",
        "log": "l",
        "replay_every_hours": 1.0,
        "n_accounts": 0,
        "exchanges": 0,
        "seconds": 0.0,
        "throughput_exchanges_per_s": None,
        "peak_rss_bytes": 0,
        "accounts": {"precision": None, "recall": None, "fpr": None, "tp": 0, "fp": 0, "fn": 0, "tn": 0,
                     "flagged": 0, "attack_accounts": 0, "benign_accounts": 0},
        "per_archetype": {},
        "campaigns": {},
        "time_to_detect_hours": {},
        "leaked_exchanges": {},
        "leaked_exchanges_all": {"count": 0, "share": None, "total": 0},
        "flagged_by_decision": {},
    }
