"""Resuming a killed hunt: the embedded engine's state after its last finished day, on disk.

A checkpoint holds the :class:`~distillguard.hunt.state.HuntState` exactly as it stood —
folded and pending parts as they were, not folded again, so that the answer after a resume
is the one the hunt would have given without the kill — with the days already read, the
set of request ids seen (repeats across the restart are still dropped) and each reader's
issues. It is written atomically (new frames made durable first, then the pickle renamed into
place) after a finished day once ``every_s`` seconds of reading have passed since the last
one, and removed when the hunt ends. The write runs in a thread from a snapshot of the state
while the hunt reads on (one write at a time; a failed write is raised at the next save or
:meth:`Checkpoint.flush`), and writes only the large frames the last checkpoint did not hold
(:class:`Segments`): at full-scale ``qwen-2026`` the whole state is 1.2-2.0 GB late in the
log, and pickled whole it took 3-12 s per write. It is keyed by the logs' files (names, sizes, modification times), the hunt's
settings and the package version: a checkpoint of other logs or settings is ignored, and
the hunt says so.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import pickle
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import polars as pl

from distillguard.hunt.state import HuntState, settled

__all__ = ["CHECKPOINT_EVERY_S", "Checkpoint", "Segments"]

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


_INLINE = 256 * 2**10  # frames and arrays smaller than this are pickled with the checkpoint


class Segments:
    """A checkpoint's large frames and arrays, each written once, into segment files.

    A checkpoint shares most of what it holds with the one before it: the state between two
    folds, the piles already waiting, the request-id runs already merged (all immutable:
    folds and merges make new objects). Those are referenced by (segment, offset, length) and
    not written again, so a write costs what changed since the last one, not the whole state
    (1.2-2.0 GB at full-scale ``qwen-2026``). Identity is the live object itself (a weak
    reference), so an object the hunt dropped is never confused with a new one at its
    address. Segments no checkpoint refers to any more are removed after each write.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._at: dict[int, tuple[weakref.ref[Any], tuple[Any, ...]]] = {}
        numbers = [int(p.name[4:]) for p in folder.glob("seg-*") if p.name[4:].isdigit()] if folder.is_dir() else []
        self._next = max(numbers, default=-1) + 1
        self.written = 0  # bytes written by the last dump (its segment and the pickle)

    def dump(self, blob: Any, path: Path) -> None:
        """Pickle ``blob`` into ``path`` (atomically: its temporary file renamed), large objects
        not written before into a new segment (made durable first)."""
        name = f"seg-{self._next:06d}"
        self._next += 1
        seg_tmp, tmp = self.folder / f"{name}.tmp", path.with_suffix(".tmp")
        used: dict[str, set[tuple[int, int]]] = {}  # segment -> (offset, length) of what this checkpoint uses
        with open(seg_tmp, "wb") as seg, open(tmp, "wb") as f:
            store = self

            class _Pickler(pickle.Pickler):
                def persistent_id(self, obj: Any) -> Any:
                    return store._reference(obj, seg, name, used)

            _Pickler(f, protocol=5).dump(blob)
            for out in (seg, f):
                out.flush()
                os.fsync(out.fileno())
            self.written = seg.tell() + f.tell()
        if name in used:
            seg_tmp.replace(self.folder / name)
        else:
            seg_tmp.unlink()
        tmp.replace(path)
        self._prune(used)

    def _reference(self, obj: Any, seg: BinaryIO, name: str, used: dict[str, set[tuple[int, int]]]) -> tuple[Any, ...] | None:
        if isinstance(obj, pl.DataFrame):
            if obj.estimated_size() < _INLINE:
                return None
        elif not (isinstance(obj, np.ndarray) and obj.nbytes >= _INLINE and obj.dtype.kind in "biuf"):
            return None
        hit = self._at.get(id(obj))
        if hit is not None and hit[0]() is obj:
            ref = hit[1]
        else:
            at = seg.tell()
            if isinstance(obj, pl.DataFrame):
                obj.write_ipc(seg)
                ref = ("df", name, at, seg.tell() - at)
            else:
                seg.write(np.ascontiguousarray(obj).tobytes())
                ref = ("np", name, at, seg.tell() - at, obj.dtype.str, obj.shape)
            self._at[id(obj)] = (weakref.ref(obj), ref)
        used.setdefault(ref[1], set()).add((ref[2], ref[3]))
        return ref

    def load(self, path: Path) -> Any:
        """Unpickle a checkpoint :meth:`dump` wrote; its large objects are remembered as
        written, so the next checkpoint after a resume refers to them again."""
        store, opened = self, dict[str, bytes]()

        class _Unpickler(pickle.Unpickler):
            def persistent_load(self, ref: Any) -> Any:
                kind, name, at, n = ref[:4]
                if name not in opened:
                    opened[name] = (store.folder / name).read_bytes()
                raw = memoryview(opened[name])[at : at + n]
                obj: Any = pl.read_ipc(io.BytesIO(raw)) if kind == "df" else np.frombuffer(raw, ref[4]).reshape(ref[5]).copy()
                store._at[id(obj)] = (weakref.ref(obj), tuple(ref))
                return obj

        with open(path, "rb") as f:
            return _Unpickler(f).load()

    def _prune(self, used: dict[str, set[tuple[int, int]]]) -> None:
        """Remove the segments this checkpoint does not use; forget the objects of those it
        uses for less than half their bytes, so the next checkpoint writes them again and
        their segment goes (on disk, at most about twice what a checkpoint holds)."""
        sparse = set()
        for p in self.folder.glob("seg-*"):
            if p.name not in used:
                p.unlink(missing_ok=True)
            elif 2 * sum(n for _, n in used[p.name]) < p.stat().st_size:
                sparse.add(p.name)
        self._at = {k: v for k, v in self._at.items() if v[0]() is not None and v[1][1] in used and v[1][1] not in sparse}

    def clear(self) -> None:
        for p in self.folder.glob("seg-*"):
            p.unlink(missing_ok=True)
        self._at = {}


# Seconds of reading between two checkpoints: the one default of ``hunt --checkpoint-every``,
# ``run_hunt`` and ``Checkpoint``. Each write costs the hunt about a second (a snapshot;
# the write itself is in a thread), so 30 s keeps that near 3 % (docs/scale.md).
CHECKPOINT_EVERY_S = 30.0


@dataclass
class Checkpoint:
    """Where a hunt keeps its progress (``folder``), and how often it writes it."""

    folder: Path
    key: str
    every_s: float = CHECKPOINT_EVERY_S
    resumed_days: int = 0  # days a restart did not read again (for the summary)
    note: str | None = None  # what happened to a checkpoint found at start
    background: bool = True  # write in a thread (False: the hunt waits for each write)
    _last: float = field(default_factory=time.monotonic)
    _writer: threading.Thread | None = field(default=None, repr=False)
    _failed: BaseException | None = field(default=None, repr=False)
    _segments: Segments | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return self.folder / FILE

    @property
    def segments(self) -> Segments:
        """Where this checkpoint's large frames go (see :class:`Segments`)."""
        if self._segments is None:
            self._segments = Segments(self.folder)
        return self._segments

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
            self.segments.dump(blob, self.path)
        except BaseException as exc:  # raised in the hunt's thread by flush()
            self._failed = exc

    def restore(self, state: HuntState, readers: Sequence[Any]) -> tuple[int, int] | None:
        """Load a matching checkpoint into ``state`` and ``readers``; the last day it holds,
        or None (nothing there, or one for other logs or settings: then it is left alone)."""
        if not self.path.exists():
            return None
        try:
            blob = self.segments.load(self.path)
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
        self.segments.clear()
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()
