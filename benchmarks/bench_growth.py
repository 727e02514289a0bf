"""How the embedded hunt's time and memory grow with the population, in one sitting.

    PYTHONPATH=src python benchmarks/bench_growth.py [--scenario qwen-2026] [--scales 0.01 0.1 1]
        [--seed 7] [--logs /tmp] [--memory 8G] [--repeat 3] [--out benchmarks/results/growth.json]

For each scale, simulates the scenario (without response text, as a provider's log of token
counts) into ``LOGS/<scenario>-<scale>-s<seed>`` unless it is there, then runs
``bench_hunt.py`` on it in a fresh process (so each peak resident memory is that run's own).
Reports exchanges, seconds, exchanges/s and peak memory per scale, and the growth exponents
between neighbouring scales and end to end: ``log(time ratio) / log(exchanges ratio)``
(1.0 is linear in exchanges; less grows slower), and the same for CPU time (user plus
system, medians). ``--repeat N`` runs N rounds, each over every measured scale in turn (so a
shared host's drift in the sitting falls on every scale alike), and reports each scale's
median time (a run varies by 5-10 % on a shared host, enough to move an exponent by 0.03);
every run's seconds and CPU seconds are kept too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def exponent(a: dict[str, Any], b: dict[str, Any], key: str) -> float | None:
    """None where either run lacks the measure (a ``--known`` result from before CPU times)."""
    if not a.get(key) or not b.get(key):
        return None
    return round(math.log(b[key] / a[key]) / math.log(b["exchanges"] / a["exchanges"]), 3)


def measure(args: argparse.Namespace, scale: float, env: dict[str, str]) -> dict[str, float]:
    """Simulate the scale's log if it is not there, then bench_hunt.py on it in a fresh process."""
    log = args.logs / f"{args.scenario}-{scale:g}-s{args.seed}"
    if not (log / "exchanges").exists():
        subprocess.run(
            [str(Path(sys.executable).parent / "distillguard"), "simulate", "--scenario", args.scenario, "--scale", str(scale),
             "--seed", str(args.seed), "--no-responses", "--out", str(log)],
            check=True, env=env,
        )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-growth-") as tmp:
        cmd = [sys.executable, str(HERE / "bench_hunt.py"), "--log", str(log), "--out", tmp]
        if args.memory:
            cmd += ["--memory", args.memory]
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        out: dict[str, float] = json.loads((Path(tmp) / f"hunt-{log.name}.json").read_text())
        return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="qwen-2026")
    ap.add_argument("--scales", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--logs", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--memory", default=None, help="passed to bench_hunt.py --memory")
    ap.add_argument("--repeat", type=int, default=1, help="rounds over the measured scales; each scale's median time is reported")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "growth.json")
    ap.add_argument(
        "--known", action="append", default=[], metavar="SCALE=JSON",
        help="a bench_hunt.py result already measured in this sitting for SCALE (the full scale takes 14 min)",
    )  # fmt: skip
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
    runs: list[dict[str, Any]] = []
    known = {float(k): Path(v) for k, v in (item.split("=", 1) for item in args.known)}
    scales = sorted({*args.scales, *known})
    # Rounds, each over every scale: the host's drift in a sitting then falls on every scale
    # alike, not on whichever scale ran last.
    measured: dict[float, list[dict[str, Any]]] = {s: [json.loads(known[s].read_text())] if s in known else [] for s in scales}
    for _ in range(args.repeat):
        for scale in scales:
            if scale not in known:
                measured[scale].append(measure(args, scale, env))
    for scale in scales:
        tries = measured[scale]
        seconds = statistics.median(t["seconds"] for t in tries)
        r = min(tries, key=lambda t: abs(t["seconds"] - seconds))
        runs.append({
            "scale": scale, "exchanges": r["exchanges"], "accounts": r["accounts"], "flagged": r["flagged"],
            "campaigns": r["campaigns"], "seconds": round(seconds, 2), "exchanges_per_s": round(r["exchanges"] / seconds),
            "peak_rss_gib": round(r["peak_rss_bytes"] / 2**30, 2), "seconds_of_every_run": [t["seconds"] for t in tries],
        })  # fmt: skip
        cpu = [round(t["user_cpu_s"] + t["system_cpu_s"], 1) for t in tries if "system_cpu_s" in t]
        if len(cpu) == len(tries):  # the work done, whatever the cores' share of the wall
            runs[-1] |= {"cpu_s": statistics.median(cpu), "cpu_s_of_every_run": cpu}
            # kernel time is where fresh memory shows (page faults), user time is the work itself
            for key in ("user_cpu_s", "system_cpu_s", "minor_page_faults"):
                runs[-1][f"{key}_of_every_run"] = [t[key] for t in tries]
        if "minor_page_faults_by_thread" in r:
            runs[-1]["minor_page_faults_by_thread"] = r["minor_page_faults_by_thread"]
        print(json.dumps(runs[-1]), flush=True)
    pairs = list(itertools.pairwise(runs))
    if len(runs) > 2:
        pairs.append((runs[0], runs[-1]))
    result = {
        "command": "python benchmarks/bench_growth.py " + " ".join(sys.argv[1:]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scenario": args.scenario, "seed": args.seed, "memory": args.memory or "auto", "runs": runs,
        "known": {str(k): str(v) for k, v in known.items()},
        "exponents": [
            {"from": a["scale"], "to": b["scale"], "time": exponent(a, b, "seconds"), "memory": exponent(a, b, "peak_rss_gib"),
             "cpu": exponent(a, b, "cpu_s")}
            for a, b in pairs
        ],
        # each round's own exponents (runs of one round are minutes apart): the spread is the
        # host's drift within the sitting, the error bar of the medians' exponents above
        "exponents_by_round": [
            [
                {"from": a["scale"], "to": b["scale"], "time": round(math.log(ta / tb) / math.log(a["exchanges"] / b["exchanges"]), 3)}
                for (a, ta), (b, tb) in itertools.pairwise((run, run["seconds_of_every_run"][i]) for run in runs)
            ]
            for i in range(min(len(run["seconds_of_every_run"]) for run in runs))
        ],
        "note": "exponent = log(ratio) / log(exchanges ratio): 1.0 grows linearly with exchanges",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["exponents"], indent=1))


if __name__ == "__main__":
    main()
