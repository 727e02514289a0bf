"""AppendingLogWriter: buffered, rolled by size and time, whole parts only, read back unchanged."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pyarrow as pa
import pytest

from distillguard.errors import LogError
from distillguard.io import AppendingLogWriter, LogReader, write_log
from distillguard.io.formats import TABLE_DIRS
from distillguard.schema import ACCOUNTS, EXCHANGES

T0 = dt.datetime(2026, 4, 22, 23, 59, 58, tzinfo=dt.UTC)


def _rows(n: int, start: int = 0) -> list[dict[str, object]]:
    return [
        {"request_id": f"r{start + i}", "ts": T0 + dt.timedelta(seconds=i), "account_id": f"a{i % 3}",
         "input_tokens": 10, "output_tokens": 20, "prompt": f"p{i}"}
        for i in range(n)
    ]  # fmt: skip


def test_rolls_by_rows_and_reads_back_as_a_log(tmp_path: Path) -> None:
    accounts = [{"account_id": f"a{i}", "created_at": T0 - dt.timedelta(days=3)} for i in range(3)]
    # An existing log is appended to, not replaced.
    write_log(tmp_path, EXCHANGES.empty_table(), pa.Table.from_pylist(accounts, schema=ACCOUNTS))
    w = AppendingLogWriter(tmp_path, roll_rows=4)
    w.append(_rows(3))
    assert w.parts_written == 0  # buffered
    w.append(_rows(3, start=3))
    assert w.rows_written == 6 and w.parts_written == 2  # one part per UTC day of the batch
    w.append(_rows(1, start=6))
    w.close()
    assert w.rows_written == 7
    r = LogReader(tmp_path)
    got = r.read_exchanges()
    assert sorted(got.column("request_id").to_pylist()) == [f"r{i}" for i in range(7)]
    assert len(r.issues) == 0
    assert {p.parent.name for p in (tmp_path / "exchanges").rglob("part-*.parquet")} == {
        "date=2026-04-22", "date=2026-04-23"
    }  # fmt: skip


def test_background_thread_flushes_within_the_roll_time(tmp_path: Path) -> None:
    w = AppendingLogWriter(tmp_path, roll_seconds=0.2).start()
    w.append(_rows(2))
    deadline = time.monotonic() + 5.0
    while w.rows_written < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert w.rows_written == 2
    assert not list(tmp_path.rglob(".*.tmp"))
    w.close()
    with pytest.raises(LogError, match="is closed"):
        w.append(_rows(1))


def test_bad_rows_fail_at_the_producer(tmp_path: Path) -> None:
    w = AppendingLogWriter(tmp_path)
    with pytest.raises(LogError, match="required column 'account_id'"):
        w.append([{"request_id": "r", "ts": T0, "input_tokens": 1, "output_tokens": 1}])
    with pytest.raises(LogError, match="unknown table"):
        AppendingLogWriter(tmp_path, table="nope")
    assert set(TABLE_DIRS) >= {"exchanges"}


APPENDER = """
import datetime as dt, sys, time
from distillguard.io import AppendingLogWriter
root, t0 = sys.argv[1], dt.datetime(2026, 4, 22, tzinfo=dt.UTC)
w = AppendingLogWriter(root, roll_seconds=0.2).start()
i = 0
while True:  # bounded by the test, which kills it
    w.append([{"request_id": f"r{i}", "ts": t0, "account_id": "a", "input_tokens": 1, "output_tokens": 1}])
    print(i, time.monotonic(), flush=True)
    i += 1
    time.sleep(0.002)
"""


def test_kill_9_loses_at_most_the_last_roll_and_leaves_whole_parts(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", APPENDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    appended: list[tuple[int, float]] = []
    deadline = time.monotonic() + 20
    while len(appended) < 400 and time.monotonic() < deadline:
        i, t = proc.stdout.readline().split()
        appended.append((int(i), float(t)))
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    killed_at = time.monotonic()
    got = LogReader(tmp_path).read_exchanges()
    ids = {int(r[1:]) for r in got.column("request_id").to_pylist()}
    assert ids == set(range(len(ids)))  # whole parts, in order: a prefix of what was appended
    lost = [t for i, t in appended if i not in ids]
    assert len(ids) > 0 and (not lost or killed_at - min(lost) <= 1.0)  # at most the last second
