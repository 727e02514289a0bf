"""The exchange sink: every exchange the gateway serves, written per the spec, off the request path.

A request hands its row to :meth:`ExchangeSink.put`, which only appends to a bounded deque (no
I/O, no casting). A background thread moves the rows to the core's
:class:`~distillguard.io.writer.AppendingLogWriter` every ``collect_s`` seconds; that writer
rolls a Parquet part every ``roll_s`` seconds (atomic rename), so a crash or ``kill -9`` loses
at most ``collect_s + roll_s`` seconds of rows (0.25 + 0.5 by default: under the one second
the gateway promises). When the deque is full (the disk cannot keep up), the oldest row is
dropped and counted rather than letting memory grow without bound. The hunt reads the folder
unchanged: ``distillguard hunt SINK_DIR``.
"""

from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import Any

from distillguard.io.writer import AppendingLogWriter

__all__ = ["ExchangeSink"]


class ExchangeSink:
    """Bounded, batched writer of exchange rows (dicts with the spec's column names)."""

    def __init__(self, root: Path | str, *, collect_s: float = 0.25, roll_s: float = 0.5, max_rows: int = 200_000) -> None:
        self.root = Path(root)
        self.collect_s = collect_s
        self.dropped = 0
        self.errors = 0
        self._rows: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_rows)
        self._writer = AppendingLogWriter(self.root, roll_seconds=roll_s).start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="exchange-sink", daemon=True)
        self._thread.start()

    @property
    def rows_written(self) -> int:
        return self._writer.rows_written

    def put(self, row: dict[str, Any]) -> None:
        """Queue one row; never blocks, never raises (the oldest row goes when full)."""
        if len(self._rows) == self._rows.maxlen:
            self.dropped += 1
        self._rows.append(row)

    def drain(self) -> int:
        """Hand every queued row to the writer now; returns how many."""
        rows = []
        while self._rows:
            rows.append(self._rows.popleft())
        if rows:
            try:
                self._writer.append(rows)
            except Exception:  # a row the spec refuses must not stop the sink (and is counted)
                self.errors += len(rows)
        return len(rows)

    def close(self) -> None:
        """Write everything queued and stop."""
        self._stop.set()
        self._thread.join()
        self.drain()
        self._writer.close()

    def _run(self) -> None:
        while not self._stop.wait(self.collect_s):
            self.drain()
