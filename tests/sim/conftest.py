"""One smoke log per session, shared by the behaviour tests (simulating is the slow part)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from distillguard import corpora
from distillguard.sim import SimSummary, simulate


def have_corpora() -> bool:
    return not corpora.load().empty


needs_corpora = pytest.mark.skipif(not have_corpora(), reason="public corpora not found (distillguard data fetch)")


def read(log: Path, table: str) -> pa.Table:
    return ds.dataset(log / table, format="parquet", partitioning=None).to_table()


@dataclass
class Smoke:
    path: Path
    summary: SimSummary
    con: duckdb.DuckDBPyConnection


@pytest.fixture(scope="session")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Smoke:
    out = tmp_path_factory.mktemp("smoke")
    summary = simulate("smoke", seed=1, out=out, progress=False)
    con = duckdb.connect()
    con.register("x", read(out, "exchanges"))
    con.register("a", read(out, "accounts"))
    con.register("l", read(out, "labels"))
    con.sql("create view e as select x.*, l.archetype, l.campaign_id from x join l using (account_id)")
    return Smoke(out, summary, con)


TACTICS_TINY = """
name: tactics-tiny
seed: 3
window: {start: 2026-05-04, end: 2026-05-18}
models:
  - {name: atlas-3, released: 2025-11-04}
  - {name: atlas-3.5, released: 2026-05-11T16:00:00}
population:
  casual: {accounts: 300, exchanges_per_account: 20, params: {abroad: 0.05}}
  developer: {accounts: 80, exchanges_per_account: 80}
  agent_user: {accounts: 12, exchanges_per_account: 300}
  eval_runner: {accounts: 3, exchanges_per_account: 400, params: {answer_format: true}}
  nat_shared: {accounts: 90, exchanges_per_account: 20, groups: 4, params: {cgnat: 0.5}}
campaigns:
  - {id: c-main, archetype: careful, accounts: 48, exchanges: 9000, targets: [coding, reasoning],
     params: {operator: op, op_tz: 8, hours: work, signup_weeks: 4, warmup_days: [2, 5]}}
  - {id: c-second, archetype: careful, accounts: 12, exchanges: 1800, targets: [agentic], start: 2026-05-08,
     params: {operator: op}}
  - {id: c-waves, archetype: disposable, accounts: 30, exchanges: 6000, targets: [coding],
     params: {operator: other, op_tz: -5, waves: 4, wave_hours: [1, 3], life_days: [1, 3]}}
"""
"""A small log with every tactic and its trap (tactics-2026 in miniature; seeds of tactics-2026 stay held out)."""


@dataclass
class Tactics:
    path: Path
    x: pl.DataFrame  # exchanges joined with labels
    accounts: pl.DataFrame  # accounts joined with labels


@pytest.fixture(scope="session")
def tactics(tmp_path_factory: pytest.TempPathFactory) -> Tactics:
    root = tmp_path_factory.mktemp("tactics")
    yml = root / "tactics-tiny.yaml"
    yml.write_text(TACTICS_TINY, encoding="utf-8")
    out = root / "log"
    simulate(yml, seed=1, out=out, progress=False, responses=False)
    labels = pl.from_arrow(read(out, "labels"))
    x = pl.from_arrow(read(out, "exchanges"))
    a = pl.from_arrow(read(out, "accounts"))
    assert isinstance(labels, pl.DataFrame) and isinstance(x, pl.DataFrame) and isinstance(a, pl.DataFrame)
    return Tactics(out, x.join(labels, on="account_id"), a.join(labels, on="account_id"))
