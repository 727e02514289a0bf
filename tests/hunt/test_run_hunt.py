"""``run_hunt`` and ``distillguard hunt`` on logs, including the awkward ones."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.hunt import run_hunt
from distillguard.io import write_log
from distillguard.schema import EXCHANGES
from distillguard.verdicts import Verdicts
from tests.hunt.population import labelled_log, population


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return labelled_log(tmp_path_factory.mktemp("log"), seed=5, casual=150, campaign=20)


def test_cli_hunt_writes_the_detector_outputs(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["hunt", str(log), "--out", str(out)])
    assert res.exit_code == 0, res.output
    acc = pl.read_parquet(out / "accounts.parquet")
    assert {"account_id", "risk", "flagged", "campaign", "evidence", "decision"} <= set(acc.columns)
    doc = json.loads((out / "campaigns.json").read_text())
    camp = doc["campaigns"][0]
    assert {"id", "accounts", "span", "exchanges", "capabilities", "shared_artifacts", "risk", "evidence"} <= set(camp)
    decisions = json.loads((out / "decisions.json").read_text())
    assert set(decisions["accounts"]) >= set(camp["accounts"])
    assert Verdicts.read(out).flagged_ids() == set(camp["accounts"]) | {
        a for c in doc["campaigns"][1:] for a in c["accounts"]
    }


def test_hunt_never_reads_labels(log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from distillguard.io import LogReader

    def refuse(self: object) -> None:
        raise AssertionError("the hunt read labels/")

    monkeypatch.setattr(LogReader, "labels", refuse)
    v = run_hunt([log], out=tmp_path / "o", progress=False)
    assert v.campaigns


def test_empty_log_and_accounts_without_exchanges(tmp_path: Path) -> None:
    _, acc, _ = population(seed=6, casual=10, campaign=5)
    root = tmp_path / "empty"
    write_log(root, EXCHANGES.empty_table(), acc.to_arrow())
    v = run_hunt([root], out=tmp_path / "o", progress=False)
    assert v.accounts.num_rows == acc.height
    assert not any(v.accounts["flagged"].to_pylist())
    assert v.campaigns == []


def test_exchanges_whose_account_is_missing_and_a_gap_day(tmp_path: Path) -> None:
    ex, acc, _ = population(seed=7, casual=60, campaign=12, days=4)
    day2 = ex["ts"].dt.date().unique().sort()[1]
    ex = ex.filter(ex["ts"].dt.date() != day2)  # a day with no traffic
    known = acc.head(20)  # most accounts missing from accounts/
    root = tmp_path / "gappy"
    write_log(root, ex.to_arrow(), known.to_arrow())
    v = run_hunt([root], out=tmp_path / "o", progress=False)
    assert v.accounts.num_rows == ex["account_id"].n_unique()
    assert isinstance(v.accounts, pa.Table)
