"""A killed hunt resumes after its last finished day and gives the answer it would have given."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from distillguard.hunt import run_hunt
from distillguard.hunt.checkpoint import FILE, Checkpoint, Segments, fingerprint
from distillguard.hunt.state import HuntState
from distillguard.io import LogReader
from distillguard.signals.prepare import COLUMNS

CLI = str(Path(sys.executable).parent / "distillguard")


@pytest.fixture
def log(demo12_log: Path) -> Path:
    return demo12_log


class _Peek(pickle.Unpickler):
    """Reads a checkpoint's small fields; its frames, in segment files, are left out."""

    def persistent_load(self, pid: object) -> None:
        return None


def _accounts(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "accounts.parquet").sort("account_id")


def test_killed_half_way_resumes_with_the_same_answer(log: Path, tmp_path: Path) -> None:
    days = len(LogReader(log).days())
    out = tmp_path / "out"
    cmd = [CLI, "hunt", str(log), "--out", str(out), "--no-progress", "--checkpoint-every", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cp = out / ".checkpoint" / FILE
    done = -1
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if cp.exists():
            with contextlib.suppress(Exception):  # caught mid-rename: look again
                done = _Peek(io.BytesIO(cp.read_bytes())).load()["done"][1]
            if done >= days // 2:
                os.kill(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the hunt ended before it could be killed half-way"
    assert cp.exists() and not (out / "accounts.parquet").exists()
    again = subprocess.run(cmd[:-2], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    said = "".join(again.stderr.split())  # rich folds long lines, even inside a path
    assert "".join(f"resumed from checkpoint {cp} after day {done + 1} of log 1".split()) in said
    assert not cp.exists()  # removed once the hunt ended
    whole = tmp_path / "whole"
    run_hunt([log], out=whole, progress=False)
    assert _accounts(out).equals(_accounts(whole))


def test_a_checkpoint_of_other_settings_is_ignored(log: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cp"
    a = Checkpoint(folder, fingerprint([log], {"x": 1}))
    reader = LogReader(log)
    a.save(HuntState(), [reader], (0, 3), None)
    a.flush()
    b = Checkpoint(folder, fingerprint([log], {"x": 2}))
    assert b.restore(HuntState(), [LogReader(log)]) is None and b.note and "other logs or settings" in b.note
    assert Checkpoint(folder, a.key).restore(HuntState(), [LogReader(log)]) == (0, 3)
    (folder / FILE).write_bytes(b"torn")
    c = Checkpoint(folder, a.key)
    assert c.restore(HuntState(), [LogReader(log)]) is None and c.note and "unreadable" in c.note


def test_a_checkpoint_written_in_the_background_holds_the_state_as_it_was_saved(
    log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write runs in a thread while the hunt goes on: later days and folds must not leak
    into it, so it restores to what a write in the hunt's own thread would have."""
    reader = LogReader(log)
    days = reader.days()
    state = HuntState(compact_every=1)
    pieces = list(reader.exchange_pieces(COLUMNS))
    half = len(pieces) // 2
    for batch, _ in pieces[:half]:
        state.observe(batch)
    fg = Checkpoint(tmp_path / "fg", "k", background=False)
    fg.save(state, [reader], (0, half - 1), None)
    went_on = threading.Event()
    bg = Checkpoint(tmp_path / "bg", "k")
    write = bg._write
    monkeypatch.setattr(bg, "_write", lambda blob: (went_on.wait(60), write(blob)))
    bg.save(state, [reader], (0, half - 1), None)
    for batch, _ in pieces[half:]:  # the hunt goes on before the writer pickles
        state.observe(batch)
    state.compacted()
    went_on.set()
    bg.flush()
    assert half < len(days)
    a, b = HuntState(), HuntState()
    assert fg.restore(a, [LogReader(log)]) == bg.restore(b, [LogReader(log)]) == (0, half - 1)
    assert a.n_exchanges == b.n_exchanges < state.n_exchanges
    theirs = b.compacted()
    for name, st in a.compacted().items():
        for k, t in st.items():  # rows of tables not keyed by account come in any order
            assert t.sort(t.columns).equals(theirs[name][k].sort(t.columns)), (name, k)


def test_a_failed_background_write_is_raised_in_the_hunt(log: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the checkpoint folder should be")
    cp = Checkpoint(blocked / "cp", "k")
    cp.save(HuntState(), [LogReader(log)], (0, 0), None)  # returns: the write is in its thread
    with pytest.raises(OSError):
        cp.flush()
    cp.flush()  # raised once


def _frame(n: int, seed: int) -> pl.DataFrame:
    return pl.DataFrame({"account": pl.arange(0, n, eager=True).cast(pl.UInt32), "n": pl.Series([seed] * n, dtype=pl.Int64)})


def test_a_checkpoint_writes_only_the_large_frames_the_last_one_did_not(tmp_path: Path) -> None:
    """What two checkpoints share (the state between folds, piles already waiting, request-id
    runs) is referenced, not written again; what the hunt dropped is removed from disk."""
    store = Segments(tmp_path)
    state, pile, small = _frame(200_000, 1), _frame(100_000, 2), _frame(10, 3)
    ids = np.arange(300_000, dtype=np.uint64)
    first = {"state": state, "pending": [pile], "small": small, "seen": [ids]}
    store.dump(first, tmp_path / "cp")
    whole = store.written
    assert whole > state.estimated_size() + pile.estimated_size() + ids.nbytes
    newer = _frame(100_000, 4)
    store.dump({"state": state, "pending": [pile, newer], "small": small, "seen": [ids]}, tmp_path / "cp")
    assert store.written < newer.estimated_size() * 1.2 < whole / 3  # only the new pile
    back = Segments(tmp_path).load(tmp_path / "cp")
    assert back["state"].equals(state) and back["pending"][1].equals(newer) and back["small"].equals(small)
    assert np.array_equal(back["seen"][0], ids)
    folded = _frame(200_000, 5)  # a fold: the piles and the old state dropped
    del first
    store.dump({"state": folded, "pending": [], "small": small, "seen": [ids]}, tmp_path / "cp")
    segs = sorted(p.name for p in tmp_path.glob("seg-*"))
    assert len(segs) == 2  # the first (it holds the request ids) and the fold's; the second pile's is gone
    assert Segments(tmp_path).load(tmp_path / "cp")["state"].equals(folded)
    # The first segment is now mostly dead (the old state and pile): its live part (the
    # request ids) is written again with the next checkpoint, and the segment goes.
    store.dump({"state": folded, "pending": [], "small": small, "seen": [ids]}, tmp_path / "cp")
    assert ids.nbytes <= store.written < ids.nbytes * 1.2
    assert segs[0] not in {p.name for p in tmp_path.glob("seg-*")}
    assert np.array_equal(Segments(tmp_path).load(tmp_path / "cp")["seen"][0], ids)


def test_after_a_resume_the_next_checkpoint_refers_to_what_it_loaded(tmp_path: Path) -> None:
    Segments(tmp_path).dump({"state": _frame(200_000, 1), "seen": [np.arange(300_000, dtype=np.uint64)]}, tmp_path / "cp")
    again = Segments(tmp_path)
    blob = again.load(tmp_path / "cp")
    again.dump({**blob, "pending": [_frame(50_000, 2)]}, tmp_path / "cp")
    assert again.written < _frame(50_000, 2).estimated_size() * 1.3
    assert Segments(tmp_path).load(tmp_path / "cp")["state"].equals(_frame(200_000, 1))
