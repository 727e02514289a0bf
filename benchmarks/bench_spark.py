"""The Spark engine against the embedded one, in one sitting: same answers, wall time, ratio.

    PYTHONPATH=src python benchmarks/bench_spark.py [--scenario smoke --scenario demo]
        [--log LOG --label qwen-0.1] [--master 'local[2]'] [--rounds 1]
        [--out benchmarks/results/spark/spark.json]

Each log is hunted by ``distillguard hunt`` in a fresh process per engine and round
(embedded first, then Spark, alternating), so each wall time includes start-up (the JVM's
too); the outputs are compared with ``compare_hunts.py`` (flagged set, campaign partition,
decisions, risk to 1e-9). Peak memory is the largest single process's (``ru_maxrss`` of
the children): for Spark that is the JVM or one Python worker, not their sum.
``--scenario`` simulates a built-in scenario first (``--seed``, no response text).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent / "distillguard"


_PEAK = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
         "print('peak_kib', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")


def _run(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds, and the peak RSS (GiB) of the largest process it started (measured by a
    fresh wrapper process per run, so one run's peak never shows in another's)."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PEAK, *cmd], capture_output=True, text=True,
                          env={**os.environ, "PYSPARK_PYTHON": sys.executable})  # fmt: skip
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    kib = int(proc.stderr.rsplit("peak_kib", 1)[1].split()[0])
    return wall, kib / 2**20


def bench_log(log: Path, label: str, master: str, rounds: int, work: Path, partitions: int | None) -> dict[str, object]:
    emb_t: list[float] = []
    spark_t: list[float] = []
    peaks: dict[str, float] = {}
    for r in range(rounds):
        for engine in ("polars", "spark"):
            out = work / f"{label}-{engine}-{r}"
            cmd = [str(BIN), "hunt", str(log), "--out", str(out), "--no-progress", "--json", "--engine", engine]
            if engine == "spark":
                cmd += ["--master", master] + (["--partitions", str(partitions)] if partitions else [])
            wall, peak = _run(cmd)
            (emb_t if engine == "polars" else spark_t).append(wall)
            peaks[engine] = peak
            print(f"{label} {engine} round {r}: {wall:.1f} s", flush=True)
    cmp = subprocess.run([sys.executable, str(HERE / "compare_hunts.py"), str(work / f"{label}-polars-0"), str(work / f"{label}-spark-0")],
                         capture_output=True, text=True)  # fmt: skip
    compare = json.loads(cmp.stdout[cmp.stdout.index("{") :]) if "{" in cmp.stdout else {"error": cmp.stderr[-2000:]}
    meta = json.loads((work / f"{label}-spark-0" / "campaigns.json").read_text())["meta"]
    emb, spark = statistics.median(emb_t), statistics.median(spark_t)
    return {
        "log": str(log), "exchanges": meta["input"]["kept"]["exchanges"], "accounts": meta["input"]["kept"]["accounts"],
        "embedded_s": [round(x, 1) for x in emb_t], "spark_s": [round(x, 1) for x in spark_t],
        "embedded_median_s": round(emb, 1), "spark_median_s": round(spark, 1), "spark_over_embedded": round(spark / emb, 2),
        "identical": cmp.returncode == 0, "compare": {k: compare.get(k) for k in ("same_flagged", "same_campaign_membership",
                                                                                  "decisions_differ", "max_risk_diff", "risk_diff_over_tol", "flagged_a", "flagged_b")},
        "spark_stats": meta.get("engine_stats"), "peak_rss_gib_largest_process": {k: round(v, 2) for k, v in peaks.items()},
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", action="append", default=[])
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--log", type=Path, action="append", default=[])
    ap.add_argument("--label", action="append", default=[])
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--partitions", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "spark" / "spark.json")
    args = ap.parse_args()
    result: dict[str, object] = json.loads(args.out.read_text()) if args.out.exists() else {}
    runs = result.setdefault("runs", {})
    assert isinstance(runs, dict)
    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        work = Path(tmp)
        logs = []
        for sc in args.scenario:
            log = work / f"log-{sc}"
            subprocess.run([str(BIN), "simulate", "--scenario", sc, "--seed", str(args.seed), "--no-responses", "--out", str(log)],
                           check=True, capture_output=True)  # fmt: skip
            logs.append((log, sc))
        labels = args.label + [p.name for p in args.log[len(args.label) :]]
        logs += list(zip(args.log, labels, strict=True))
        for log, label in logs:
            runs[label] = {
                **bench_log(log, label, args.master, args.rounds, work, args.partitions),
                "command": " ".join(["python", *sys.argv]),
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "master": args.master,
                "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
            }
            print(json.dumps(runs[label], indent=1), flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
