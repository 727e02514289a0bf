"""The Spark engine: the same signals inside Apache Spark, for logs one machine cannot read.

Three stages, every one calling the project's own code (no signal written twice):

1. **read** (``mapInArrow`` over one row per log day): each task opens the log with
   :class:`~distillguard.io.LogReader` and reads its day (:meth:`~LogReader.day_exchanges`),
   with the log, day and row numbers kept as an order key, and records the issues it met;
2. **dedupe**: a ``request_id`` seen twice keeps its first row in log, day and row order,
   as the embedded reader does (a group-by of ids and order keys only, broadcast back);
3. **fold** (``repartition`` by ``account_id``, rows sorted by the order key, then
   ``mapInArrow``): each partition folds its accounts' rows day by day into a
   :class:`~distillguard.hunt.state.HuntState` built from the same config and returns it as
   bytes (:meth:`~HuntState.to_bytes`) with each account's first day.

The driver merges the partition states by account id (accounts are disjoint across
partitions) after numbering the accounts in the order the embedded engine would (first day,
then id), so link, cluster, score and explain see the same state and give the same answer.
The issues the tasks recorded are replayed into the driver's readers, so lost rows are
counted and ``--strict`` raises as in the embedded engine.

``master`` passes through (``local[*]``, ``spark://...``, ``yarn``, ``k8s://...``); the
workers need this package and its dependencies on the interpreter named by
``spark.pyspark.python`` (``PYSPARK_PYTHON``; by default the driver's own).
"""

from __future__ import annotations

import datetime
import itertools
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import polars as pl
import pyarrow as pa

from distillguard.errors import ConfigError
from distillguard.hunt.engines.base import Engine, LogSource
from distillguard.hunt.state import HuntState
from distillguard.signals.prepare import COLUMNS

__all__ = ["SparkEngine", "spark_missing"]

_ORDER = ("_log", "_day", "_row")
_WHERE = ("__file", "__row")  # the source file (index in its reader) and row, for reports


def spark_missing() -> str | None:
    """What is missing to run Spark here (PySpark, pandas, Java 17+), or None."""
    import importlib.util
    import shutil

    for mod, what in (("pyspark", "PySpark"), ("pandas", "pandas")):
        if importlib.util.find_spec(mod) is None:
            return f"{what} is not installed: pip install 'distillguard[spark]'"
    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") if os.environ.get("JAVA_HOME") else shutil.which("java")
    if not java or not os.path.exists(java):
        return "Java 17 or newer is not installed: bash scripts/spark.sh install (Debian's openjdk-17-jre-headless)"
    return None


class SparkEngine(Engine):
    """Reads, dedupes and folds in Spark; merges the partition states on the driver.

    ``master``: Spark's master URL (default ``local[*]``, or the session already running);
    ``partitions``: fold partitions (default: Spark's default parallelism, at least 2);
    ``conf``: more Spark settings (``spark.executor.memory`` ...).
    """

    name: ClassVar[str] = "spark"

    def __init__(self, master: str | None = None, partitions: int | None = None, conf: dict[str, str] | None = None) -> None:
        why = spark_missing()
        if why is not None:
            raise ConfigError(f"engine 'spark' cannot run here: {why}")
        self.master = master
        self.partitions = partitions
        self.conf = dict(conf or {})
        self.stats: dict[str, Any] = {}

    def session(self) -> Any:
        """The Spark session this engine runs in (an active one is reused as it is)."""
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            running = active.sparkContext.master
            if self.master is not None and self.master != running:
                raise ConfigError(f"a Spark session on {running} already runs in this process; it cannot also run on {self.master}")
            return active
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers: this interpreter, unless told
        b = SparkSession.builder.appName("distillguard hunt")
        if self.master is not None or "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit
            b = b.master(self.master or "local[*]")
        # The partition states come back to the driver (collect): its heap and result size
        # must hold them all at once (Spark's defaults, 1g each, do not at qwen-2026 0.1).
        for k, v in {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false", "spark.sql.session.timeZone": "UTC",
                     "spark.sql.execution.arrow.maxRecordsPerBatch": "100000", "spark.driver.memory": "4g",
                     "spark.driver.maxResultSize": "0", **self.conf}.items():  # fmt: skip
            b = b.config(k, v)
        return b.getOrCreate()

    def aggregate(
        self, sources: Sequence[LogSource], state: HuntState, advance: Callable[[int], None] | None = None
    ) -> HuntState:
        from pyspark.sql import functions as F
        from pyspark.sql.pandas.types import from_arrow_schema

        from distillguard.io import LogReader

        readers = [s for s in sources if isinstance(s, LogReader)]
        if len(readers) != len(sources):
            raise ConfigError("the spark engine reads log folders (LogReader), not other sources")
        spark = self.session()
        tasks = [(li, str(r.root), di, d.isoformat()) for li, r in enumerate(readers) for di, d in enumerate(r.days())]
        mappings = {li: r.mapping for li, r in enumerate(readers)}
        if not tasks:
            return state
        # All nullable: the row that carries a read task's issues has no exchange in it.
        arrow = pa.schema([*(f.with_nullable(True) for f in _exchange_schema() if f.name in COLUMNS), *(pa.field(c, pa.int64()) for c in (*_ORDER, *_WHERE)),
                           pa.field("_reports", pa.binary())])  # fmt: skip
        read_schema = from_arrow_schema(arrow)
        plan = spark.createDataFrame(tasks, "log int, path string, day int, iso string")
        plan = plan.repartition(len(tasks))  # one read task per log day
        rows = plan.mapInArrow(_read_days(arrow, mappings), read_schema).persist()
        reports = rows.filter(F.col("account_id").isNull()).select("_log", "_day", "_reports").collect()
        data = rows.filter(F.col("account_id").isNotNull()).drop("_reports")
        first = (
            data.groupBy("request_id")
            .agg(F.count(F.lit(1)).alias("n"), F.min(F.struct(*_ORDER)).alias("k"))
            .filter(F.col("n") > 1)
            .select("request_id", *(F.col(f"k.{c}").alias(c) for c in _ORDER))
        )
        repeats: list[Any] = []
        if first.count():  # keep only the first row of a repeated id; report the others
            marked = data.join(F.broadcast(first.withColumn("_first", F.lit(True))), ["request_id", *_ORDER], "left").join(
                F.broadcast(first.select("request_id", F.lit(True).alias("_rep"))), "request_id", "left")  # fmt: skip
            repeats = marked.filter(F.col("_rep") & F.col("_first").isNull()).select("request_id", *_ORDER, *_WHERE).collect()
            data = marked.filter(F.col("_rep").isNull() | F.col("_first")).drop("_first", "_rep")
        # several partitions per core: each returns a smaller state, and a slow one holds less up
        n_parts = self.partitions or 4 * max(2, spark.sparkContext.defaultParallelism)
        config_blob = _state_blob(state)
        folded = (
            data.repartition(n_parts, "account_id")
            .sortWithinPartitions(*_ORDER)
            .mapInArrow(_fold(config_blob, arrow.remove(arrow.get_field_index("_reports"))), "state binary, firsts binary")
            .collect()
        )
        rows.unpersist()
        _replay(readers, reports, repeats)
        _merge(state, folded)
        self.stats = {"read_tasks": len(tasks), "fold_partitions": n_parts, "repeated_rows_dropped": len(repeats),
                      "state_bytes": sum(len(r["state"]) for r in folded)}  # fmt: skip
        if advance is not None:
            advance(len(tasks))
        return state


def _exchange_schema() -> pa.Schema:
    from distillguard import schema

    return schema.EXCHANGES


def _state_blob(state: HuntState) -> bytes:
    """The driver's signals (names and settings) and fold settings, for each partition to
    build the same state."""
    import pickle

    return pickle.dumps((state.signals, state.compact_every, state.compact_rows))


def _read_days(arrow: pa.Schema, mappings: dict[int, Any]) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The read task: each input row names a log day; output its rows and, in one row with a
    null ``account_id``, the issues its reader recorded (pickled)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pickle

        from distillguard.io import LogReader
        from distillguard.io.normalise import FILE, ROW

        for b in batches:
            for li, path, di, iso in zip(*(b.column(i).to_pylist() for i in range(4)), strict=True):
                reader = LogReader(path, mapping=mappings[li])
                reader.reports = []
                t = reader.day_exchanges(datetime.date.fromisoformat(iso), COLUMNS, locate=True)
                if t is not None:
                    n = t.num_rows
                    t = t.append_column("_log", pa.array([li] * n, pa.int64())).append_column(
                        "_day", pa.array([di] * n, pa.int64())).append_column("_row", pa.array(range(n), pa.int64()))  # fmt: skip
                    t = t.append_column("_reports", pa.nulls(n, pa.binary()))
                    t = t.rename_columns([{ROW: "__row", FILE: "__file"}.get(c, c) for c in t.column_names])
                    yield from t.select(arrow.names).cast(arrow).to_batches()
                if reader.reports:
                    blob = pickle.dumps(reader.reports)
                    yield pa.RecordBatch.from_pylist([{"_log": li, "_day": di, "_reports": blob}], schema=arrow)

    return run


def _fold(signals_blob: bytes, arrow: pa.Schema) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The fold task: rows sorted by (log, day, row); each day's rows are one batch, as the
    embedded engine folds them."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pickle

        signals, every, rows = pickle.loads(signals_blob)
        state = HuntState(signals, compact_every=every)
        state.compact_rows = rows
        firsts: list[pl.DataFrame] = []
        day: tuple[int, int] | None = None
        pending: list[pa.RecordBatch] = []

        def flush() -> None:
            if pending:
                t = pa.Table.from_batches(pending).select(arrow.names).cast(arrow)
                df = pl.from_arrow(t.drop_columns([*_ORDER, *_WHERE]))
                assert isinstance(df, pl.DataFrame)
                assert day is not None
                firsts.append(df.select(pl.col("account_id").unique()).with_columns(_log=pl.lit(day[0]), _day=pl.lit(day[1])))
                state.observe(df)
                pending.clear()

        for b in batches:
            if b.num_rows == 0:
                continue
            logs, days = b.column("_log").to_numpy(), b.column("_day").to_numpy()
            key = logs * (1 << 32) + days
            cuts = [0, *(int(i) + 1 for i in (key[1:] != key[:-1]).nonzero()[0]), b.num_rows]
            for lo, hi in itertools.pairwise(cuts):
                k = (int(logs[lo]), int(days[lo]))
                if k != day:
                    flush()
                    day = k
                pending.append(b.slice(lo, hi - lo))
        flush()
        seen = (pl.concat(firsts).unique("account_id", keep="first", maintain_order=True) if firsts
                else pl.DataFrame(schema={"account_id": pl.String, "_log": pl.Int64, "_day": pl.Int64}))  # fmt: skip
        buf = pa.BufferOutputStream()
        with pa.ipc.new_stream(buf, seen.to_arrow().schema) as w:
            w.write_table(seen.to_arrow())
        yield pa.RecordBatch.from_pylist([{"state": state.to_bytes(), "firsts": buf.getvalue().to_pybytes()}])

    return run


def _replay(readers: Sequence[Any], reports: Sequence[Any], repeats: Sequence[Any]) -> None:
    """The issues each read task recorded, and the repeated ids dropped, into each log's
    reader on the driver (in log and day order, so that ``--strict`` raises on the first)."""
    import pickle

    from distillguard.io.normalise import FILE, ROW

    for row in sorted(reports, key=lambda r: (r["_log"], r["_day"])):
        readers[row["_log"]].replay(pickle.loads(row["_reports"]))
    for li, r in enumerate(readers):
        mine = sorted((x for x in repeats if x["_log"] == li), key=lambda x: (x["_day"], x["_row"]))
        if mine:
            r.report_repeats(pa.table({"request_id": [x["request_id"] for x in mine], FILE: [x["__file"] for x in mine],
                                       ROW: [x["__row"] for x in mine]}))  # fmt: skip


def _merge(state: HuntState, folded: Sequence[Any]) -> None:
    """Number the accounts as the embedded engine does (first log day, then id), then merge."""
    firsts = [pl.from_arrow(pa.ipc.open_stream(r["firsts"]).read_all()) for r in folded]
    order = pl.concat([f for f in firsts if isinstance(f, pl.DataFrame)]).sort("_log", "_day", "account_id")
    for ids in order.partition_by(["_log", "_day"], maintain_order=True):
        state.ensure_accounts(ids["account_id"])
    for r in folded:
        state.merge_bytes(r["state"])
