"""``distillguard`` commands as a user runs them: hunt with a config and an engine, bench
writing its final verdicts, errors as one line with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from distillguard.cli import app, main
from tests.hunt.population import labelled_log


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return labelled_log(tmp_path_factory.mktemp("cli-log"), seed=6, casual=120, campaign=15)


def test_hunt_with_config_engine_and_features(log: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "hunt.yaml"
    cfg.write_text("policy: {block_risk: 0.5}\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["hunt", str(log), "--out", str(out), "--config", str(cfg), "--engine", "polars"])
    assert res.exit_code == 0, res.output
    acc = pl.read_parquet(out / "accounts.parquet")
    assert set(acc.filter("flagged")["decision"].to_list()) == {"block"}  # the config's policy
    feats = pl.read_parquet(out / "features.parquet")
    assert feats.height == acc.height and "temporal.ts_peak_daily" in feats.columns
    meta = json.loads((out / "campaigns.json").read_text())["meta"]
    assert meta["engine"] == "polars" and meta["params"]["policy"]["block_risk"] == 0.5


def test_bench_out_writes_the_final_verdicts(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "final"
    res = CliRunner().invoke(app, ["bench", str(log), "--replay-every", "12", "--json", str(tmp_path / "b.json"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    flagged = set(pl.read_parquet(out / "accounts.parquet").filter("flagged")["account_id"].to_list())
    bench = json.loads((tmp_path / "b.json").read_text())
    assert bench["accounts"]["flagged"] == len(flagged)
    # every flag set or cleared, in replay order: an account's last change is its final flag
    changes = pl.read_parquet(out / "flag_changes.parquet")
    last = changes.group_by("account_id", maintain_order=True).last()
    assert set(last.filter("flagged")["account_id"].to_list()) == flagged
    assert changes.filter(~pl.col("flagged")).height == bench["replay"]["flags_cleared"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hunt", "LOG", "--config", "CFG"], "link.high_quantile has value 2"),
        (["hunt", "LOG", "--engine", "spark-nope"], "unknown engine 'spark-nope'"),
    ],
)
def test_errors_are_one_line_and_exit_2(
    log: Path, tmp_path: Path, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("link: {high_quantile: 2}\n")
    argv = ["distillguard", *[str(log) if a == "LOG" else str(cfg) if a == "CFG" else a for a in args], "--out", str(tmp_path / "o")]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split()) and "Traceback" not in err
