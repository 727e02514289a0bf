"""Resuming a killed hunt: the embedded engine's state after its last finished day, on disk.

A checkpoint holds the :class:`~distillguard.hunt.state.HuntState` exactly as it stood —
folded and pending parts as they were, not folded again, so that the answer after a resume
is the one the hunt would have given without the kill — with the days already read, the
set of request ids seen (repeats across the restart are still dropped) and each reader's
issues. It is written atomically (a temporary file renamed) after a finished day once
``every_s`` seconds of reading have passed since the last one, and removed when the hunt
ends. The write (pickling and fsyncing up to 1.6 GiB at full-scale ``qwen-2026``, 3-9 s
each) runs in a thread from a snapshot of the state while the hunt reads on; one write at
a time, and a failed write is raised at the next save or :meth:`Checkpoint.flush`. It is keyed by the logs' files (names, sizes, modification times), the hunt's
settings and the package version: a checkpoint of other logs or settings is ignored, and
the hunt says so.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pickle
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distillguard.hunt.state import HuntState, settled

__all__ = ["Checkpoint"]

FILE = "hunt.checkpoint"


def fingerprint(logs: Sequence[Path], settings: dict[str, Any]) -> str:
    """What a checkpoint must match: every file of the logs (path, size, mtime), the settings
    and this package's version."""
    from distillguard import __version__

    h = hashlib.sha256(json.dumps({"settings": settings, "version": __version__}, sort_keys=True, default=str).encode())
    for log in logs:
        for p in sorted(Path(log).rglob("*")):
            if p.is_file():
                st = p.stat()
                h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@dataclass
class Checkpoint:
    """Where a hunt keeps its progress (``folder``), and how often it writes it."""

    folder: Path
    key: str
    every_s: float = 60.0
    resumed_days: int = 0  # days a restart did not read again (for the summary)
    note: str | None = None  # what happened to a checkpoint found at start
    background: bool = True  # write in a thread (False: the hunt waits for each write)
    _last: float = field(default_factory=time.monotonic)
    _writer: threading.Thread | None = field(default=None, repr=False)
    _failed: BaseException | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return self.folder / FILE

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_s

    def save(self, state: HuntState, readers: Sequence[Any], done: tuple[int, int], seen: Any) -> None:
        """Write the state after day ``done = (log, day index)`` of ``readers``, with the
        request ids ``seen`` up to that day (shared by the readers); in a thread unless
        ``background`` is off, after the previous write has finished."""
        self.flush()
        blob = {
            "key": self.key,
            "done": done,
            "state": state.snapshot(settle=False),  # folds in flight: waited for by the writer
            "readers": [copy.deepcopy(r.issue_state()) for r in readers],  # the readers go on adding
            "seen": seen,
        }
        self._last = time.monotonic()
        if not self.background:
            self._write(blob)
            return
        self._writer = threading.Thread(target=self._write, args=(blob,), name="checkpoint")
        self._writer.start()

    def flush(self) -> None:
        """Wait for the write in flight; raise what it failed with, if it did."""
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        failed, self._failed = self._failed, None
        if failed is not None:
            raise failed

    def _write(self, blob: dict[str, Any]) -> None:
        try:
            settled(blob["state"])
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "wb") as f:
                pickle.dump(blob, f, protocol=5)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(self.path)
        except BaseException as exc:  # raised in the hunt's thread by flush()
            self._failed = exc

    def restore(self, state: HuntState, readers: Sequence[Any]) -> tuple[int, int] | None:
        """Load a matching checkpoint into ``state`` and ``readers``; the last day it holds,
        or None (nothing there, or one for other logs or settings: then it is left alone)."""
        if not self.path.exists():
            return None
        try:
            with open(self.path, "rb") as f:
                blob = pickle.load(f)
        except Exception as exc:  # a torn or foreign file: start over, say why
            self.note = f"checkpoint {self.path} unreadable ({exc}); starting from the first day"
            return None
        if blob.get("key") != self.key:
            self.note = f"checkpoint {self.path} is of other logs or settings; starting from the first day"
            return None
        state.restore(blob["state"])
        for r, issues in zip(readers, blob["readers"], strict=True):
            r.restore_issue_state(issues)
        if readers and blob["seen"] is not None:
            readers[0].restore_request_ids(blob["seen"])
        done: tuple[int, int] = tuple(blob["done"])  # type: ignore[assignment]
        self.note = f"resumed from checkpoint {self.path} after day {done[1] + 1} of log {done[0] + 1}"
        return done

    def clear(self) -> None:
        self.flush()
        self.path.unlink(missing_ok=True)
        self.path.with_suffix(".tmp").unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()
