"""benchmarks/growth_sittings.py: every growth sitting's exponents side by side, CPU time's too."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from bench_fixtures import benchmark_script


def _sitting(folder: Path, name: str, date: str, runs: list[dict[str, float]]) -> None:
    lo, hi = runs[0], runs[-1]
    t = math.log(hi["seconds"] / lo["seconds"]) / math.log(hi["exchanges"] / lo["exchanges"])
    (folder / name).write_text(json.dumps({
        "date": date, "runs": runs, "exponents": [{"from": lo["scale"], "to": hi["scale"], "time": round(t, 3)}],
    }))  # fmt: skip


def test_the_cpu_exponent_is_read_where_a_sitting_kept_cpu_seconds(tmp_path: Path) -> None:
    gs = benchmark_script("growth_sittings")
    # Ten times the exchanges: 10.5x the wall time (exponent 1.021), 10x the CPU (1.0).
    _sitting(tmp_path, "growth-b.json", "2026-12-07T10:00:00+00:00", [
        {"scale": 0.1, "exchanges": 1000, "seconds": 10.0, "cpu_s": 20.0},
        {"scale": 1.0, "exchanges": 10000, "seconds": 105.0, "cpu_s": 200.0},
    ])  # fmt: skip
    # An older file without CPU seconds: its time exponent still counts, its CPU one is unknown.
    _sitting(tmp_path, "growth-a.json", "2026-12-02T10:00:00+00:00", [
        {"scale": 0.1, "exchanges": 1000, "seconds": 10.0},
        {"scale": 1.0, "exchanges": 10000, "seconds": 90.0},
    ])  # fmt: skip
    rows = gs.sittings(0.1, 1.0, tmp_path)
    assert [r.file for r in rows] == ["growth-a.json", "growth-b.json"]  # oldest first
    assert [r.exponent for r in rows] == [pytest.approx(0.954, abs=1e-3), pytest.approx(1.021, abs=1e-3)]
    assert rows[0].cpu_exponent is None
    assert rows[1].cpu_exponent == pytest.approx(1.0, abs=1e-3)
