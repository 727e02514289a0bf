"""``run_bench`` on a log folder on disk: the path the CLI takes."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from bench_fixtures import accounts_table, exchanges_table, labels_table

from distillguard.bench import BenchResult, run_bench
from distillguard.errors import ConfigError, LogError


def _write_raw(root: Path, labels: bool) -> Path:
    """Write the spec layout with pyarrow directly (no dependency on logio's writer)."""
    tables = {"exchanges": exchanges_table(), "accounts": accounts_table()}
    if labels:
        tables["labels"] = labels_table()
    for name, table in tables.items():
        (root / name).mkdir(parents=True)
        pq.write_table(table, root / name / "part-0.parquet")
    return root


def test_missing_folder_is_a_log_error(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="does not exist"):
        run_bench(tmp_path / "nope", detector="baseline", progress=False)


def test_missing_labels_fail_before_the_replay(tmp_path: Path) -> None:
    log = _write_raw(tmp_path / "log", labels=False)
    (log / "labels").mkdir()  # an empty labels/ folder is no better
    with pytest.raises(LogError, match="labels/"):
        run_bench(log, detector="baseline", progress=False)


def test_bad_interval_and_unknown_detector_are_config_errors(tmp_path: Path) -> None:
    log = _write_raw(tmp_path / "log", labels=True)
    with pytest.raises(ConfigError):
        run_bench(log, detector="baseline", replay_every_hours=0, progress=False)
    with pytest.raises(ConfigError, match="unknown detector"):
        run_bench(log, detector="nope", progress=False)


def test_run_bench_baseline_end_to_end(tmp_path: Path) -> None:
    logio = pytest.importorskip("distillguard.io")
    if not hasattr(logio, "LogReader"):
        pytest.skip("distillguard.io.LogReader is not written yet")
    log = logio.write_log(tmp_path / "log", exchanges_table(), accounts_table(), labels_table())
    res = run_bench(log, detector="baseline", detector_params={"threshold": 3}, progress=False)
    assert isinstance(res, BenchResult)
    assert res.exchanges == 20 and res.n_accounts == 12
    # Peak daily volume: c1a 4, c1b 3 -> only c1a is above a fixed threshold of 3.
    assert res.accounts["tp"] == 1 and res.accounts["fp"] == 0
    assert res.detector == "baseline" and res.detector_params == {"threshold": 3}
    out = tmp_path / "r.json"
    res.write_json(out)
    doc = json.loads(out.read_text())
    assert {"recall", "precision", "fpr"} <= set(doc["accounts"])
