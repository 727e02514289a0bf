"""Does the memory budget's fold pressure cost a large log its linear growth? A small log
hunted under the pressure a large one meets, beside itself without it, in one sitting.

    PYTHONPATH=src python benchmarks/bench_fold_pressure.py --log LOGS/qwen-2026-0.1-s7
        [--pending 82M 205M] [--repeat 3] [--json benchmarks/results/scale/fold-pressure.json]

Under ``--memory auto`` (8 GiB: 819 MiB of piles waiting to be folded) a full-scale
``qwen-2026`` hunt forces its largest piles out into runs and folds the template state nine
times (62 M rows re-read), where ``--scale 0.1`` folds it twice (1.1 M): the budget bounds
memory at the price of more, smaller folds (``hunt/budget.py``). A tenth of the pile share
(``--pending 82M``) gives the 0.1 log the same folds (nine, the same re-reads per row folded)
with the slices of a day unchanged, so the cost of that pressure is measured on the small
log, run after run, apart from everything else a large log does.

Each round runs ``bench_hunt.py`` in a fresh process once per setting (``auto``, then each
``--pending``), so a shared host's drift falls on every setting alike; reports per setting
the median seconds and CPU seconds, the folds (count and rows re-read per signal), and
whether every run flagged the same accounts as many as ``auto`` did.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def run(log: Path, pending: str | None) -> dict[str, Any]:
    """``bench_hunt.py`` on ``log`` in a fresh process (``pending`` None: the budget's own share)."""
    with tempfile.TemporaryDirectory(prefix="bench-fold-pressure-") as tmp:
        cmd = [sys.executable, str(HERE / "bench_hunt.py"), "--log", str(log), "--out", tmp]
        cmd += ["--pending", pending] if pending else []
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        out: dict[str, Any] = json.loads((Path(tmp) / f"hunt-{log.name}.json").read_text())
        return out


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    cpu = [r["user_cpu_s"] + r["system_cpu_s"] for r in runs]
    return {
        "pending_bytes": runs[0]["pending_bytes"],
        "seconds": round(statistics.median(r["seconds"] for r in runs), 2),
        "cpu_s": round(statistics.median(cpu), 1),
        "seconds_of_every_run": [r["seconds"] for r in runs],
        "cpu_s_of_every_run": [round(c, 1) for c in cpu],
        "flagged_of_every_run": [r["flagged"] for r in runs],
        "folds": {k: v for k, v in runs[0]["folds"].items() if v["folds"]},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--pending", nargs="+", default=["82M"], help="pile shares to try beside the budget's own")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    settings: list[str | None] = [None, *a.pending]
    runs: dict[str, list[dict[str, Any]]] = {s or "auto": [] for s in settings}
    for _ in range(a.repeat):
        for s in settings:
            runs[s or "auto"].append(run(a.log, s))
    out = {"command": " ".join(sys.argv), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "log": str(a.log),
           "machine": runs["auto"][0]["machine"], "settings": {k: summary(v) for k, v in runs.items()}}  # fmt: skip
    base = out["settings"]["auto"]
    for v in out["settings"].values():
        v["cpu_ratio_to_auto"] = round(v["cpu_s"] / base["cpu_s"], 3)
        v["seconds_ratio_to_auto"] = round(v["seconds"] / base["seconds"], 3)
        v["same_flagged_count_as_auto"] = set(v["flagged_of_every_run"]) == set(base["flagged_of_every_run"])
    print(json.dumps(out, indent=1))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
