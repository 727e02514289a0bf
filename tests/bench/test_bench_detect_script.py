"""benchmarks/bench_detect.py: per-detector JSON files and the gap table, on a tiny log."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import ModuleType

import pyarrow.parquet as pq
import pytest
from bench_fixtures import accounts_table, benchmark_script, exchanges_table, labels_table
from rich.console import Console

from distillguard.bench import BenchResult


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return benchmark_script("bench_detect")


def _result(detector: str, recall: float, seconds: float, ttd: float | None) -> BenchResult:
    return BenchResult(
        detector=detector, log="l", replay_every_hours=1.0, n_accounts=10, exchanges=100,
        seconds=seconds, throughput_exchanges_per_s=100 / seconds, peak_rss_bytes=2**20,
        accounts={"recall": recall, "precision": 1.0, "fpr": 0.0, "f1": None},
        per_archetype={"hydra": {"accounts": 4, "flagged": int(4 * recall), "rate": recall, "kind": "attack"}},
        campaigns={"C1": {"accounts": 4, "recall": recall}},
        time_to_detect_hours={"C1": {"first": ttd, "p90": None}},
        leaked_exchanges={"C1": {"count": 5, "share": 0.5, "total": 10}},
        leaked_exchanges_all={"count": 5, "share": 0.5, "total": 10},
        flagged_by_decision={},
    )


def test_compare_gives_differences_and_ratios(script: ModuleType) -> None:
    rows = script.compare([_result("baseline", 0.25, 1.0, None), _result("hunt", 0.75, 4.0, 2.0)])
    assert rows["recall"]["values"] == {"baseline": 0.25, "hunt": 0.75}
    assert rows["recall"]["gap"] == {"hunt": 0.5}
    assert rows["detector seconds"]["gap"] == {"hunt": 4.0}  # a ratio
    assert rows["throughput (exchanges/s)"]["gap"] == {"hunt": 0.25}
    assert rows["time to first detection (median h)"]["gap"] == {"hunt": None}
    assert rows["campaigns detected"]["values"] == {"baseline": 0.0, "hunt": 1.0}
    assert rows["hydra (recall)"]["gap"] == {"hunt": 0.5}
    buf = io.StringIO()
    Console(file=buf, width=150).print(script.comparison_table([_result("a", 0.25, 1.0, 1.0), _result("b", 0.75, 2.0, 3.0)], "t"))
    assert "+50.0 pp" in buf.getvalue() and "×2.00" in buf.getvalue() and "+2.0 h" in buf.getvalue()


def test_main_writes_one_json_per_detector_and_a_comparison(script: ModuleType, tmp_path: Path) -> None:
    log = tmp_path / "log"
    for name, table in (("exchanges", exchanges_table()), ("accounts", accounts_table()), ("labels", labels_table())):
        (log / name).mkdir(parents=True)
        pq.write_table(table, log / name / "part-0.parquet")
    out = tmp_path / "results"
    argv = ["--scenario", "tiny", "--scale", "0.5", "--log", str(log), "--out", str(out),
            "--detector", "baseline", "--in-process", "--quiet"]
    assert script.main(argv) == 0
    doc = json.loads((out / "bench-tiny-0.5-baseline.json").read_text())
    assert {"recall", "precision", "fpr"} <= set(doc["accounts"])
    comp = json.loads((out / "compare-tiny-0.5.json").read_text())
    assert comp["detectors"] == ["baseline"] and comp["reference"] == "baseline"
    assert "recall" in comp["metrics"]
