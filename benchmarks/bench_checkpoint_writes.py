"""When a hunt writes its checkpoints, how large they are and how long each holds the hunt up.

A resumed run loses the work since the last checkpoint and pays for the restore. A checkpoint
is pickled and fsynced in a thread from a snapshot of the state (``Checkpoint.background``),
its large frames in segment files, each written once (``written_mib``: this write's bytes;
``on_disk_mib``: the checkpoint as it stands, every segment it refers to);
the hunt waits only for the snapshot and for a write still in flight. This runs ``distillguard
hunt LOG`` in this process with :meth:`Checkpoint.save` (the hunt's wait) and the write timed;
``--foreground`` writes in the hunt's thread, as before the writer thread, to compare.

    python benchmarks/bench_checkpoint_writes.py --log LOG --every 60 [--foreground] --json F
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_update_per_row import emit
from distillguard.hunt import checkpoint as checkpoint_module


def timed_writes(log: Path, out: Path, every: float, background: bool = True) -> dict[str, Any]:
    """Hunt ``log`` into ``out`` with a checkpoint every ``every`` seconds of reading."""
    from typer.testing import CliRunner

    from distillguard.cli import app

    saves: list[dict[str, float | int]] = []
    writes: list[dict[str, float]] = []
    cls = checkpoint_module.Checkpoint
    save, write = cls.save, cls._write
    t0 = time.perf_counter()

    def timed_save(self: checkpoint_module.Checkpoint, *args: Any) -> None:
        self.background = background
        t = time.perf_counter()
        save(self, *args)
        saves.append({"after_day": int(args[2][1]) + 1, "at_s": round(t - t0, 1), "held_s": round(time.perf_counter() - t, 2)})

    def timed_write(self: checkpoint_module.Checkpoint, blob: dict[str, Any]) -> None:
        t = time.perf_counter()
        write(self, blob)
        on_disk = sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())
        writes.append({"write_s": round(time.perf_counter() - t, 2), "written_mib": round(self.segments.written / 2**20, 1),
                       "on_disk_mib": round(on_disk / 2**20, 1)})  # fmt: skip

    cls.save, cls._write = timed_save, timed_write  # type: ignore[method-assign]
    try:
        res = CliRunner().invoke(app, ["hunt", str(log), "--out", str(out), "--no-progress", "--checkpoint-every", str(every)])
    finally:
        cls.save, cls._write = save, write  # type: ignore[method-assign]
    if res.exit_code != 0:
        raise SystemExit(f"the hunt failed: {res.output}")
    whole = time.perf_counter() - t0
    rows = [{**a, **b} for a, b in zip(saves, writes, strict=True)]
    return {"log": str(log), "every_s": every, "background": background, "whole_s": round(whole, 1), "writes": rows,
            "held_s_total": round(sum(float(w["held_s"]) for w in rows), 2),
            "write_s_total": round(sum(float(w["write_s"]) for w in rows), 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--every", type=float, default=60.0, help="seconds of reading between checkpoints (hunt --checkpoint-every)")
    ap.add_argument("--foreground", action="store_true", help="write in the hunt's thread (as before the writer thread)")
    ap.add_argument("--out", type=Path, help="the hunt's output folder (default: a temporary one)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-checkpoint-") as tmp:
        got = timed_writes(a.log, a.out or Path(tmp) / "out", a.every, background=not a.foreground)
    emit(got, a.json)


if __name__ == "__main__":
    main()
