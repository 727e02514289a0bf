"""When a hunt writes its checkpoints, how large they are and how long each write holds it up.

A resumed run loses the work since the last checkpoint and pays for the restore; a hunt whose
checkpoints are large waits on every write (pickled and fsynced in the hunt's thread). This
runs ``distillguard hunt LOG`` in this process with :meth:`Checkpoint.save` timed.

    python benchmarks/bench_checkpoint_writes.py --log LOG --every 60 --json F
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_update_per_row import emit
from distillguard.hunt import checkpoint as checkpoint_module


def timed_writes(log: Path, out: Path, every: float) -> dict[str, Any]:
    """Hunt ``log`` into ``out`` with a checkpoint every ``every`` seconds of reading."""
    from typer.testing import CliRunner

    from distillguard.cli import app

    writes: list[dict[str, float | int]] = []
    save = checkpoint_module.Checkpoint.save
    t0 = time.perf_counter()

    def timed(self: checkpoint_module.Checkpoint, *args: Any) -> None:
        t = time.perf_counter()
        save(self, *args)
        done = args[2]
        writes.append({"after_day": int(done[1]) + 1, "at_s": round(t - t0, 1), "write_s": round(time.perf_counter() - t, 2),
                       "mib": round(self.path.stat().st_size / 2**20, 1)})  # fmt: skip

    checkpoint_module.Checkpoint.save = timed  # type: ignore[method-assign]
    try:
        res = CliRunner().invoke(app, ["hunt", str(log), "--out", str(out), "--no-progress", "--checkpoint-every", str(every)])
    finally:
        checkpoint_module.Checkpoint.save = save  # type: ignore[method-assign]
    if res.exit_code != 0:
        raise SystemExit(f"the hunt failed: {res.output}")
    whole = time.perf_counter() - t0
    return {"log": str(log), "every_s": every, "whole_s": round(whole, 1), "writes": writes,
            "write_s_total": round(sum(float(w["write_s"]) for w in writes), 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--every", type=float, default=60.0, help="seconds of reading between checkpoints (hunt --checkpoint-every)")
    ap.add_argument("--out", type=Path, help="the hunt's output folder (default: a temporary one)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-checkpoint-") as tmp:
        got = timed_writes(a.log, a.out or Path(tmp) / "out", a.every)
    emit(got, a.json)


if __name__ == "__main__":
    main()
