"""Live re-score speed: ``flags(now)`` over a whole hunt state, and after a small batch of new traffic.

    python benchmarks/bench_rescore.py --log /tmp/q01 --state /tmp/rescore/q01.state
    python benchmarks/bench_rescore.py --log /tmp/qfull --state /tmp/rescore/qfull.state --repeat 2

The gateway's :class:`~distillguard.gateway.live.LiveScorer` re-runs link, cluster and score
every few seconds over its live state, and that state grows to the whole population. The first
run builds the state from ``--log`` (the batch hunt's enrich and aggregate) and saves it to
``--state`` (:meth:`HuntState.to_bytes`); later runs load it, so a full-scale state is built once.

Timed, on the loaded state: ``flags(now)`` from scratch (median of ``--repeat``, with the time
per stage: each signal's finalize, join, link, cluster, score), then the gateway's cycle:
``--batches`` times, ``--batch-s`` seconds of traffic at ``--rate`` requests/s spread over
``--batch-accounts`` accounts (rows resampled from the log, moved to just after its end) are
observed and re-scored (:meth:`HuntDetector.flags`, incremental where it can be). After the
last batch, a full refresh is checked equal to a from-scratch score on the same state.

Writes ``--json`` (default ``benchmarks/results/gateway/rescore.json``; an existing file's
other entries are kept, this run's under its log's name).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from distillguard.hunt.detector import HuntDetector
from distillguard.hunt.state import HuntState, prefetch
from distillguard.io import LogReader

HERE = Path(__file__).resolve().parent


def build_state(log: Path, state_path: Path) -> tuple[HuntDetector, float]:
    """A detector over ``log``: the saved state when there is one, else built and saved."""
    det = HuntDetector()
    reader = LogReader(log)
    det.observe_accounts(reader.accounts())
    t0 = time.perf_counter()
    if state_path.exists():
        det.state.merge_bytes(state_path.read_bytes())
        det.state.compacted()
        return det, time.perf_counter() - t0
    for batch in prefetch(reader.exchange_batches(columns=det.columns, ordered=False)):
        det.observe(batch)
    built = time.perf_counter() - t0
    state_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = state_path.with_suffix(".tmp")
    tmp.write_bytes(det.state.to_bytes())
    tmp.rename(state_path)
    return det, built


def traffic(log: Path, state: HuntState, n_rows: int, n_accounts: int, seed: int, start_s: int) -> pl.DataFrame:
    """``n_rows`` exchanges of ``n_accounts`` accounts resampled from the log's last file,
    moved to start at ``start_s`` (epoch seconds) in order: what the gateway would queue."""
    files = sorted((log / "exchanges").rglob("*.parquet"))
    df = pl.read_parquet(files[-1], columns=[c for c in HuntDetector.columns or () if c in pl.read_parquet_schema(files[-1])])
    rng = np.random.default_rng(seed)
    ids = df["account_id"].unique().sort()
    chosen = ids.gather(rng.choice(ids.len(), size=min(n_accounts, ids.len()), replace=False))
    pool = df.filter(pl.col("account_id").is_in(chosen.implode()))
    rows = pool.gather(rng.integers(0, pool.height, size=n_rows))
    step = pl.duration(microseconds=pl.int_range(0, n_rows, eager=False) * int(1e6 * 0.002))  # 500/s
    t0 = dt.datetime.fromtimestamp(start_s, dt.UTC).replace(tzinfo=None)
    ts_type = rows.schema["ts"]
    rows = rows.with_columns(ts=(pl.lit(t0) + step).cast(ts_type))
    if "request_id" in rows.columns:
        rows = rows.with_columns(request_id=pl.format("bench-{}-{}", pl.lit(start_s), pl.int_range(0, n_rows)))
    return rows


RISK_TOLERANCE = 1e-6


def risk_gap(a: pl.DataFrame, b: pl.DataFrame) -> float:
    """The largest risk difference between two scores of the same accounts."""
    j = a.select("account_id", "risk").join(b.select("account_id", "risk"), on="account_id", suffix="_b")
    gap = j.select((pl.col("risk") - pl.col("risk_b")).abs().max()).item()
    return float(gap or 0.0)


def same(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    """Same accounts, flags, campaigns and decisions exactly; risks equal to float tolerance
    (a campaign's sums can add in another order: 1e-9 apart at full scale, never a decision)."""
    cols = ["account_id", "flagged", "campaign", "decision"]
    exact = a.select(cols).sort("account_id").equals(b.select(cols).sort("account_id"))
    return exact and risk_gap(a, b) <= RISK_TOLERANCE


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError, StopIteration):
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    return {"cpus": os.cpu_count(), "cpu_model": model, "platform": platform.platform(), "load_average": list(os.getloadavg()),
            "mem_total_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def timed_flags(det: HuntDetector, now: dt.datetime | None) -> tuple[float, pl.DataFrame, dict[str, float]]:
    det.state.timings.clear()
    t = time.perf_counter()
    out = pl.from_arrow(det.flags(now, incremental=True))
    assert isinstance(out, pl.DataFrame)
    secs = time.perf_counter() - t
    stages = {k: round(v, 3) for k, v in det.state.timings.items() if k.startswith("rescore.")}
    return secs, out, stages


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, required=True)
    ap.add_argument("--state", type=Path, required=True, help="saved state: read if it exists, else built and written")
    ap.add_argument("--repeat", type=int, default=3, help="full flags() runs (median)")
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--batch-s", type=float, default=4.0)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--batch-accounts", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path, default=HERE / "results" / "gateway" / "rescore.json")
    ap.add_argument("--label", default=None, help="name of this run's entry (default: the log's folder name)")
    args = ap.parse_args(argv)

    det, load_s = build_state(args.log, args.state)
    gc.collect()
    st = det.state
    now = dt.datetime.fromtimestamp(st.last_ts or 0, dt.UTC)
    result: dict[str, Any] = {
        "command": "PYTHONPATH=src python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip(),
        "machine": machine(),
        "log": str(args.log),
        "accounts": st.index.height,
        "exchanges": st.n_exchanges,
        "state_seconds": round(load_s, 2),
        "state_file_bytes": args.state.stat().st_size,
    }
    print(json.dumps(result, indent=1), flush=True)

    full: list[float] = []
    stages: list[dict[str, float]] = []
    base = pl.DataFrame()
    for _ in range(args.repeat):
        det.rescorer.reset()  # from scratch each time
        secs, base, stg = timed_flags(det, now)
        full.append(secs)
        stages.append(stg)
        print(f"full flags(): {secs:.2f} s", stg, flush=True)
    result["full_flags_seconds"] = {"median": round(statistics.median(full), 3), "runs": [round(x, 3) for x in full]}
    result["full_flags_stages"] = {k: round(statistics.median(s.get(k, 0.0) for s in stages), 3) for k in stages[0]}
    result["flagged"] = int(base["flagged"].sum())

    n_rows = int(args.batch_s * args.rate)
    cycles = []
    start = (st.last_ts or 0) + 1
    for i in range(args.batches):
        rows = traffic(args.log, st, n_rows, args.batch_accounts, args.seed + i, start)
        start += int(args.batch_s) + 1
        t = time.perf_counter()
        det.observe(rows)
        observe_s = time.perf_counter() - t
        now = dt.datetime.fromtimestamp(start, dt.UTC)
        secs, out, stg = timed_flags(det, now)
        cycles.append({"rows": n_rows, "accounts": args.batch_accounts, "observe_seconds": round(observe_s, 3),
                       "rescore_seconds": round(secs, 3), "mode": det.rescorer.last_mode, "stages": stg,
                       "flagged": int(out["flagged"].sum())})
        print(f"batch {i}: observe {observe_s:.2f} s, re-score {secs:.2f} s ({det.rescorer.last_mode})", stg, flush=True)
    result["incremental"] = {
        "batch": f"{args.batch_s:g} s at {args.rate}/s over {args.batch_accounts} accounts ({n_rows} exchanges)",
        "rescore_seconds_median": round(statistics.median(c["rescore_seconds"] for c in cycles), 3),
        "rescore_seconds_max": round(max(c["rescore_seconds"] for c in cycles), 3),
        "cycles": cycles,
    }
    # The check: a refresh equals a from-scratch score of the same state.
    det.rescorer.refresh_next()
    _, refreshed, _ = timed_flags(det, now)
    scratch = HuntDetector(det.config)  # its own signals: lived time keeps a calibration on its signal
    scratch.state, scratch.accounts = copy.copy(det.state), det.accounts
    scratch.state.signals = det.config.build_signals()
    _, fresh, _ = timed_flags(scratch, now)
    result["refresh_equals_scratch"] = same(refreshed, fresh)
    result["last_incremental_equals_scratch"] = same(out, fresh)
    result["risk_gap"] = {"refresh": risk_gap(refreshed, fresh), "last_incremental": risk_gap(out, fresh), "tolerance": RISK_TOLERANCE}
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1), flush=True)

    args.json.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(args.json.read_text()) if args.json.exists() else {}
    runs[args.label or args.log.name] = result
    args.json.write_text(json.dumps(runs, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
