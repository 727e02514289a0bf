"""A killed hunt resumed: how much of a whole run's time the restart takes, and the same answer.

    PYTHONPATH=src python benchmarks/bench_resume.py --log LOG [--kill-at 0.5] [--every 10]
        [--out benchmarks/results/resume.json] [--keep DIR]

Runs ``distillguard hunt LOG`` once whole (wall time T), then again with a checkpoint every
``--every`` seconds of reading, kills it (SIGKILL) once ``--kill-at`` of T has passed, and
reruns the same command, which resumes from the last checkpoint (wall time R). Reports T, R,
R / T, the day it resumed after, and whether the resumed output equals the whole run's
(``compare_hunts.py``, and the accounts tables compared whole, evidence included).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
BIN = str(Path(sys.executable).parent / "distillguard")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--kill-at", type=float, default=0.5)
    ap.add_argument("--every", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "resume.json")
    ap.add_argument("--keep", type=Path, default=None, help="write both runs' outputs here (kept) rather than in a temporary folder")
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        tmp = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-resume-")))
        whole, resumed = tmp / "whole", tmp / "resumed"
        t = time.perf_counter()
        subprocess.run([BIN, "hunt", str(args.log), "--out", str(whole), "--no-progress"], check=True, capture_output=True)
        full = time.perf_counter() - t
        cmd = [BIN, "hunt", str(args.log), "--out", str(resumed), "--no-progress", "--checkpoint-every", str(args.every)]
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=args.kill_at * full)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        killed_after = time.perf_counter() - t
        t = time.perf_counter()
        again = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rest = time.perf_counter() - t
        note = " ".join(again.stderr.split())
        cmp = subprocess.run([sys.executable, str(HERE / "compare_hunts.py"), str(whole), str(resumed)], capture_output=True, text=True)
        a = pl.read_parquet(whole / "accounts.parquet").sort("account_id")
        b = pl.read_parquet(resumed / "accounts.parquet").sort("account_id")
        meta = json.loads((resumed / "campaigns.json").read_text())["meta"]
    result = {
        "command": " ".join(["python", *sys.argv]), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "log": str(args.log), "exchanges": meta["input"]["kept"]["exchanges"], "whole_run_s": round(full, 1),
        "killed_after_s": round(killed_after, 1), "killed": proc.returncode == -signal.SIGKILL,
        "resumed_run_s": round(rest, 1), "resumed_over_whole": round(rest / full, 3), "checkpoint": meta.get("checkpoint"),
        "resumed_note": note[note.find("resumed from") :][:200] if "resumed from" in note else None,
        "same_answer": cmp.returncode == 0, "accounts_tables_equal": a.equals(b),
        "accounts_columns_differ": [c for c in a.columns if c not in b.columns or not a[c].equals(b[c])],
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
    }  # fmt: skip
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
