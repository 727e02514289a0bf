"""One smoke log per session, shared by the behaviour tests (simulating is the slow part)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
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
