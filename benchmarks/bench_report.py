"""Report speed and size: ``distillguard report`` over a hunt's output, end to end in a fresh
process (imports included), a few times, with where the time goes.

    python benchmarks/bench_report.py --hunt HUNT_DIR [--log LOG]
    python benchmarks/bench_report.py --scenario qwen-2026 --scale 0.05 --seed 5   # simulates and hunts first

Writes ``benchmarks/results/report/report.json``: the command, date, machine, wall seconds
(each run, best, median), the split (imports, reading and aggregating the log, drawing and
writing), peak memory, the HTML and JSON sizes, and ``extrapolation`` to ``--extrapolate``
times the log: the aggregation grows with the exchanges read, drawing with the campaigns and
their (capped) tables, imports not at all. The budget is 30 s and 20 MB at qwen-2026 --scale 0.1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILD = """
import json, sys, time
t0 = time.perf_counter()
from distillguard.report import write_report
t1 = time.perf_counter()
from pathlib import Path
res = write_report(Path(sys.argv[1]), Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]] or None)
res["seconds"]["imports"] = round(t1 - t0, 3)
print(json.dumps(res))
"""


def _machine() -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "processor": platform.processor() or platform.machine(),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hunt", type=Path, help="an existing hunt output folder (else simulate and hunt one)")
    ap.add_argument("--log", type=Path, help="the log the hunt read (default: the one its campaigns.json names)")
    ap.add_argument("--scenario", default="qwen-2026")
    ap.add_argument("--scale", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--extrapolate", type=float, default=2.0, help="estimate for this many times the log (0.05 -> 0.1: 2)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "report")
    args = ap.parse_args(argv)
    hunt, log = args.hunt, args.log
    if hunt is None:
        from distillguard.hunt import run_hunt
        from distillguard.sim import simulate

        name = f"{args.scenario}-{args.scale:g}-s{args.seed}"
        log = HERE / "logs" / name
        hunt = HERE / "logs" / f"{name}-hunt"
        if not (log / "exchanges").exists():
            simulate(args.scenario, scale=args.scale, seed=args.seed, out=log, responses=False)
        if not (hunt / "campaigns.json").exists():
            run_hunt([log], out=hunt, progress=False)
    page_dir = Path(tempfile.mkdtemp(prefix="bench-report-"))  # the page is not a result to commit
    html = page_dir / "report.html"
    cmd = ["distillguard", "report", str(hunt), "--out", "report.html", *(["--log", str(log)] if log else [])]
    machine = _machine()
    walls, runs = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(hunt), str(html), *([str(log)] if log else [])],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        walls.append(round(time.perf_counter() - t, 2))
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    best = runs[walls.index(min(walls))]
    secs = best["seconds"]
    k = args.extrapolate
    # aggregation ~ exchanges read; drawing ~ campaigns and their tables (capped), taken as
    # growing with the log too (an upper bound); imports and process start fixed.
    fixed = min(walls) - secs["total"]
    estimate = fixed + k * secs["aggregate"] + k * secs["render"]
    doc = json.loads((html.parent / "report.json").read_text())
    result: dict[str, object] = {
        "command": " ".join(cmd),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "hunt": str(hunt),
        "exchanges": doc["overview"]["exchanges"],
        "accounts": doc["overview"]["accounts"],
        "campaigns": best["campaigns"],
        "wall_seconds": {"runs": walls, "best": min(walls), "median": statistics.median(walls)},
        "split_of_best_seconds": {**secs, "process_start_and_other": round(fixed - secs["imports"], 3)},
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
        "html_bytes": best["html_bytes"],
        "json_bytes": best["json_bytes"],
        "extrapolation": {
            "factor": k,
            "wall_seconds": round(estimate, 1),
            "html_bytes": int(best["html_bytes"] + (k - 1) * (best["html_bytes"] - _plotly_bytes())),
            "how": "process start and imports fixed; aggregate and render times and the HTML beyond plotly.js "
            "multiplied by the factor (render and page size grow less: tables are capped at 1,000 rows and "
            "charts are aggregated per day, hour or bin)",
        },
        "budget": {"seconds": 30, "bytes": 20_000_000, "at": "qwen-2026 --scale 0.1"},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"the page: {html}", file=sys.stderr)
    print(json.dumps(result, indent=2))
    return result


def _plotly_bytes() -> int:
    from plotly.offline import get_plotlyjs

    return len(get_plotlyjs().encode())


if __name__ == "__main__":
    main(sys.argv[1:])
