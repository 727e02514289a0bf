"""The exchange sink: spec rows land for the hunt; a kill -9 loses at most the last second."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl

from distillguard.gateway.sink import ExchangeSink
from distillguard.io import LogReader

T0 = dt.datetime(2026, 4, 22, tzinfo=dt.UTC)


def _row(i: int) -> dict[str, object]:
    return {"request_id": f"r{i}", "ts": T0 + dt.timedelta(seconds=i), "account_id": f"a{i % 3}", "input_tokens": 10, "output_tokens": i}


def test_rows_land_per_spec_and_the_hunt_reads_them(tmp_path: Path) -> None:
    sink = ExchangeSink(tmp_path)
    for i in range(500):
        sink.put(_row(i))
    sink.close()
    ex = pl.concat([pl.from_arrow(b) for b in LogReader(tmp_path).exchange_batches()])  # type: ignore[misc]
    assert isinstance(ex, pl.DataFrame)
    assert ex.height == 500 and sink.rows_written == 500 and sink.dropped == 0
    assert sorted(ex["request_id"].to_list()) == sorted(f"r{i}" for i in range(500))


def test_a_full_sink_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    sink = ExchangeSink(tmp_path, collect_s=60, max_rows=10)  # the thread never drains in time
    for i in range(25):
        sink.put(_row(i))
    assert sink.dropped == 15
    sink.close()
    ex = pl.concat([pl.from_arrow(b) for b in LogReader(tmp_path).exchange_batches()])  # type: ignore[misc]
    assert isinstance(ex, pl.DataFrame)
    assert sorted(ex["request_id"].to_list()) == sorted(f"r{i}" for i in range(15, 25))


def test_a_bad_row_is_counted_and_the_sink_goes_on(tmp_path: Path) -> None:
    sink = ExchangeSink(tmp_path)
    sink.put({"request_id": "bad", "ts": "not a time", "account_id": "a", "input_tokens": "x", "output_tokens": 1})
    sink.drain()
    sink.put(_row(1))
    sink.close()
    assert sink.errors == 1 and sink.rows_written == 1


CHILD = textwrap.dedent(
    """
    import datetime as dt, sys, time
    from distillguard.gateway.sink import ExchangeSink
    sink = ExchangeSink(sys.argv[1])
    t0 = dt.datetime(2026, 4, 22, tzinfo=dt.UTC)
    i = 0
    while True:  # bounded by the parent's kill; 400 rows a second
        sink.put({"request_id": f"r{i}", "ts": t0, "account_id": "a", "input_tokens": 1, "output_tokens": 1})
        print(i, time.time(), flush=True)
        i += 1
        time.sleep(0.0025)
    """
)


def test_kill_9_loses_at_most_the_last_second(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    put: list[tuple[int, float]] = []
    deadline = time.time() + 60
    while time.time() < deadline:
        line = child.stdout.readline()
        i, t = line.split()
        put.append((int(i), float(t)))
        if len(put) > 1 and put[-1][1] - put[0][1] > 3.0:
            break
    os.kill(child.pid, signal.SIGKILL)
    killed_at = time.time()
    child.wait(timeout=10)
    on_disk = set()
    for b in LogReader(tmp_path).exchange_batches():
        on_disk |= set(b.column("request_id").to_pylist())
    older = [i for i, t in put if t < killed_at - 1.0]
    assert older, "the child put rows for over a second before the kill"
    missing = [i for i in older if f"r{i}" not in on_disk]
    assert missing == [], f"{len(missing)} rows older than a second lost, first r{missing[0]}"
    assert not list(tmp_path.rglob("*.tmp")) or all(p.name.startswith(".") for p in tmp_path.rglob("*.tmp"))
