"""Reading a hunt output and folding its log: the log is found, hours are read on both
clocks, the fast Parquet path and the validating reader agree, labels are never read."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from distillguard.errors import ConfigError
from distillguard.io import LogReader
from distillguard.report import aggregate
from distillguard.report.aggregate import (
    BENIGN,
    aggregate_log,
    claimed_offsets,
    find_log,
    read_hunt,
)
from tests.report.tiny import CAMPAIGN, PEOPLE, tiny_hunt, tiny_log


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_log(tmp_path_factory.mktemp("tiny") / "log")


def test_find_log_from_campaigns_json_or_option(log: Path, tmp_path: Path) -> None:
    hunt = read_hunt(tiny_hunt(tmp_path / "hunt", log))
    assert find_log(hunt, None) == [log]
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert find_log(hunt, [other]) == [other]
    # A relative path recorded by a hunt run elsewhere is tried from the hunt folder's parent.
    (tmp_path / "log").symlink_to(log)
    doc = json.loads((tmp_path / "hunt" / "campaigns.json").read_text())
    doc["meta"]["logs"] = ["log"]
    (tmp_path / "hunt" / "campaigns.json").write_text(json.dumps(doc))
    assert find_log(read_hunt(tmp_path / "hunt"), None) == [tmp_path / "log"]
    doc["meta"]["logs"] = ["nowhere"]
    (tmp_path / "hunt" / "campaigns.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="--log"):
        find_log(read_hunt(tmp_path / "hunt"), None)


def test_not_a_hunt_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"campaigns\.json is missing|accounts\.parquet is missing"):
        read_hunt(tmp_path)


def test_claimed_offsets_in_minutes() -> None:
    got = pl.select(o=claimed_offsets(pl.Series(["JP", " in", "DE", "XX", None]))).to_series().to_list()
    assert got == [540, 330, 120, None, None]


def test_hours_on_both_clocks_and_per_day_counts(log: Path, tmp_path: Path) -> None:
    hunt = read_hunt(tiny_hunt(tmp_path / "hunt", log))
    agg = aggregate_log(hunt, [log])
    assert agg.exchanges == 3 * (6 * 10 + 20 * 2) and agg.groups == ["", "C001"]
    hours = {(g, c, h): n for g, c, h, n in agg.hours.select("g", "clock", "hour", "n").iter_rows()}
    assert hours[(1, "utc", 0)] == 180 and hours[(1, "local", 9)] == 180  # JP: UTC+9
    assert hours[(BENIGN, "utc", 8)] == 60 and hours[(BENIGN, "local", 10)] == 60  # DE: +2 (its middle offset)
    per_day = agg.account_days.join(agg.accounts.select("a", "account_id"), on="a")
    assert set(per_day.filter(pl.col("account_id").is_in(CAMPAIGN))["n"].to_list()) == {10}
    assert per_day.height == 3 * (len(CAMPAIGN) + len(PEOPLE))
    shared = agg.pairs.filter(pl.col("value") == "bot-sdk")
    assert shared.height == 6 and set(agg.pairs["kind"].unique()) >= {"ip_prefix", "device_fp", "signup_prefix"}
    # the hunt's sign-up artifact, network and week (signals/registration.py: signup_network)
    signups = agg.pairs.filter(pl.col("kind") == "signup_prefix")["value"].unique().to_list()
    assert signups.count("45.77.1.0/24 in the week of 2026-04-20") == 1


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_fast_parquet_path_agrees_with_the_reader(fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tiny_log(tmp_path / "log", fmt=fmt)
    hunt = read_hunt(tiny_hunt(tmp_path / "hunt", log))
    used: list[str] = []
    real = aggregate._fast_batches

    def spy(files: list[Path], wanted: list[str]):  # type: ignore[no-untyped-def]
        used.append("fast")
        return real(files, wanted)

    monkeypatch.setattr(aggregate, "_fast_batches", spy)
    fast = aggregate_log(hunt, [log])
    assert bool(used) == (fmt == "parquet")
    monkeypatch.setattr(aggregate, "_parquet_files", lambda _log: None)
    slow = aggregate_log(hunt, [log])

    def same(a: pl.DataFrame, b: pl.DataFrame) -> bool:
        cols = sorted(a.columns)
        return a.select(cols).sort(cols).equals(b.select(cols).sort(cols))

    assert fast.exchanges == slow.exchanges
    for name in ("account_days", "hours", "lengths", "pairs"):
        assert same(getattr(fast, name), getattr(slow, name)), name


def test_labels_are_never_read(log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: object) -> None:
        raise AssertionError("the report read labels")

    monkeypatch.setattr(LogReader, "labels", refuse)
    from distillguard.report import build_report

    assert build_report(tiny_hunt(tmp_path / "hunt", log))["campaigns"][0]["id"] == "C001"
