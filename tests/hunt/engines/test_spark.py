"""The Spark engine beside the embedded one: identical answers on ``demo``, the same issues and
repeats on a damaged log, several executor processes (``local-cluster``), and what it says
when Spark cannot run. The engine suite (``test_engines.py``) runs it on ``smoke`` too."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from distillguard.errors import ConfigError
from distillguard.hunt import run_hunt
from distillguard.hunt.engines.spark import spark_missing
from distillguard.sim import simulate
from distillguard.verdicts import Verdicts

pytestmark = pytest.mark.skipif(spark_missing() is not None, reason=f"{spark_missing()}")
ROOT = Path(__file__).resolve().parents[3]
BENCH = ROOT / "benchmarks"


def _same(a: Verdicts, b: Verdicts) -> None:
    """Same verdicts and evidence, but for the script-line sentence, which is written only when
    an example wording was sampled: the conversation-script signal samples it from each day's
    batch of rows, and a Spark partition's batch holds fewer accounts than the whole day. For
    the same reason a line may quote a scripted follow-up, a device fingerprint, an IP prefix
    or a user agent (the infrastructure signal samples its texts the same way) by its wording
    on one engine and by its digest on the other: that quote is compared as a placeholder."""
    ta, tb = (pl.from_arrow(v.accounts) for v in (a, b))
    assert isinstance(ta, pl.DataFrame) and isinstance(tb, pl.DataFrame)
    ta, tb = ta.sort("account_id"), tb.sort("account_id")
    cols = ["account_id", "flagged", "campaign", "decision"]
    assert ta.select(cols).equals(tb.select(cols))
    script_line = pl.element().str.contains("short follow-up turns")  # quoted only when an example was sampled
    sampled = r"(scripted follow-up \(reworded\)|device fingerprint|IP prefix|user agent) (\u201c[^\u201d]*\u201d|#\d{8})"
    ea, eb = (
        t["evidence"].list.eval(pl.element().filter(~script_line).str.replace_all(sampled, "$1 <sampled>")) for t in (ta, tb)
    )
    assert ea.equals(eb)
    assert (ta["risk"] - tb["risk"]).abs().max() <= 1e-9  # type: ignore[operator]
    assert [c["accounts"] for c in a.campaigns] == [c["accounts"] for c in b.campaigns]


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("spark-demo")
    simulate("demo", seed=11, out=out, progress=False, responses=False)
    return out


def test_demo_is_identical_to_the_embedded_engine(demo_log: Path) -> None:
    emb = run_hunt([demo_log], engine="polars", progress=False)
    spark = run_hunt([demo_log], engine="spark", progress=False)
    assert emb.flagged_ids() and spark.meta["engine"] == "spark"
    _same(emb, spark)


def _damage(log: Path) -> None:
    """Day 2 repeats a slice of day 1 (same request ids, a day later), a file spans two days
    unpartitioned, one file is not Parquet at all."""
    days = sorted((log / "exchanges").iterdir())
    first = pq.read_table(next(days[0].glob("*.parquet")))
    again = first.slice(0, 40)
    ts = again.column("ts")
    again = again.set_column(again.schema.get_field_index("ts"), "ts", pc.add(ts, pa.scalar(dt.timedelta(days=1))))
    pq.write_table(again, days[1] / "part-repeat.parquet")
    both = pa.concat_tables([pq.read_table(next(d.glob("part-0*.parquet"))).slice(0, 30) for d in days[:2]])
    both = both.set_column(both.schema.get_field_index("request_id"), "request_id",
                           pa.array([f"span-{i}" for i in range(both.num_rows)]))  # fmt: skip
    pq.write_table(both, log / "exchanges" / "spanning.parquet", row_group_size=25)
    (days[0] / "part-broken.parquet").write_bytes(b"not parquet" * 20)


def test_issues_repeats_and_spanning_files_as_the_embedded_engine(tmp_path: Path) -> None:
    log = tmp_path / "log"
    simulate("smoke", seed=4, out=log, progress=False, responses=False)
    _damage(log)
    emb = run_hunt([log], engine="polars", progress=False)
    spark = run_hunt([log], engine="spark", progress=False)
    _same(emb, spark)
    assert emb.meta["issues"] == spark.meta["issues"] > 0
    assert emb.meta["input"] == spark.meta["input"]
    assert emb.meta["input"]["lost"]["exchanges"] >= 40  # the repeated slice


def test_several_executor_processes(tmp_path: Path) -> None:
    """Spark's local-cluster mode: two executor JVMs, so rows and states cross processes."""
    log = tmp_path / "log"
    simulate("smoke", seed=5, out=log, progress=False, responses=False)
    cli = [str(Path(sys.executable).parent / "distillguard"), "hunt", str(log), "--no-progress"]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    subprocess.run([*cli, "--out", str(tmp_path / "emb")], check=True, capture_output=True, env=env, timeout=600)
    subprocess.run([*cli, "--out", str(tmp_path / "spark"), "--engine", "spark", "--master", "local-cluster[2,1,1024]",
                    "--partitions", "4"], check=True, capture_output=True, env=env, timeout=600)  # fmt: skip
    got = subprocess.run([sys.executable, str(BENCH / "compare_hunts.py"), str(tmp_path / "emb"), str(tmp_path / "spark")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert got.returncode == 0, got.stdout + got.stderr
    meta = json.loads((tmp_path / "spark" / "campaigns.json").read_text())["meta"]
    assert meta["engine"] == "spark" and meta["engine_stats"]["fold_partitions"] == 4


def test_missing_java_or_pyspark_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    assert "scripts/spark.sh install" in (spark_missing() or "")
    from distillguard.hunt.engines import get_engine

    with pytest.raises(ConfigError, match="engine 'spark' cannot run here: Java 17"):
        get_engine("spark")
    monkeypatch.delenv("JAVA_HOME")
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    assert "Java 17" in (spark_missing() or "")


def test_master_and_partitions_belong_to_spark(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from distillguard.cli import app

    r = CliRunner().invoke(app, ["hunt", str(tmp_path), "--out", str(tmp_path / "o"), "--master", "local[2]"])
    assert r.exit_code != 0 and "--master and --partitions are settings of --engine spark" in str(r.exception)
