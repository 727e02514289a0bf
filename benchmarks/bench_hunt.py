"""Batch hunt speed and memory: the whole flow (read, enrich, aggregate, link, cluster, score,
write) over one log, with the time per stage.

    python benchmarks/bench_hunt.py --scenario qwen-2026 --scale 0.1 --seed 101
    python benchmarks/bench_hunt.py --log path/to/log

Writes ``benchmarks/results/hunt-<name>.json`` with ``exchanges``, ``seconds``,
``throughput_exchanges_per_s``, ``peak_rss_bytes`` and ``stages`` (seconds per stage).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

from bench_rescore import machine
from distillguard.hunt.budget import MemoryBudget, parse_size
from distillguard.hunt.detector import HuntDetector
from distillguard.hunt.engines.polars import PolarsEngine
from distillguard.io import LogReader

HERE = Path(__file__).resolve().parent


def faults_by_thread() -> dict[str, dict[str, float]]:
    """Minor page faults and CPU seconds of the threads still alive, by name less its number
    (``polars-3`` and ``polars-7`` are one pool): which pool touches fresh memory. Threads
    that ended (the read-ahead) are in the process's totals only."""
    tick = os.sysconf("SC_CLK_TCK")
    named = {t.native_id: t.name for t in threading.enumerate()}  # Python threads share the process's name
    out: dict[str, dict[str, float]] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        comm = named.get(int(task.name), stat[stat.index("(") + 1 : stat.rindex(")")])
        comm = comm.rstrip("0123456789_-") or "?"
        fields = stat[stat.rindex(")") + 2 :].split()  # from field 3 (state) on
        row = out.setdefault(comm, {"threads": 0, "minor_page_faults": 0, "user_cpu_s": 0.0, "system_cpu_s": 0.0})
        row["threads"] += 1
        row["minor_page_faults"] += int(fields[7])
        row["user_cpu_s"] = round(row["user_cpu_s"] + int(fields[11]) / tick, 1)
        row["system_cpu_s"] = round(row["system_cpu_s"] + int(fields[12]) / tick, 1)
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, help="an existing log folder (else simulate one)")
    ap.add_argument("--scenario", default="demo")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=101)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--memory", default="auto", help="the embedded engine's budget (hunt --memory): 8G, auto (the default), none")
    ap.add_argument("--pending", help="the budget's share for piles waiting to be folded, where not a tenth of it (e.g. 82M)")
    args = ap.parse_args(argv)
    log = args.log
    name = log.name if log else f"{args.scenario}-{args.scale:g}-s{args.seed}"
    if log is None:
        from distillguard.sim import simulate

        log = HERE / "logs" / name
        if not (log / "exchanges").exists():
            simulate(args.scenario, scale=args.scale, seed=args.seed, out=log, responses=False)

    phase = ["read+fold"]
    peaks: dict[str, int] = {}
    starts: dict[str, float] = {"read+fold": 0.0}
    faults: dict[str, int] = {"read+fold": resource.getrusage(resource.RUSAGE_SELF).ru_minflt}
    done = threading.Event()

    def sample() -> None:  # peak resident memory per phase, so the phase to shrink is known
        page = os.sysconf("SC_PAGE_SIZE")
        while not done.wait(0.2):
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * page
            peaks[phase[0]] = max(peaks.get(phase[0], 0), rss)

    threading.Thread(target=sample, daemon=True).start()
    host = machine()  # the host a VM lands on moves throughput more than most changes: say which
    t0 = time.perf_counter()
    budget = MemoryBudget.of(args.memory)
    if budget is not None and args.pending:
        budget = MemoryBudget(budget.total, pending=parse_size(args.pending, "--pending", floor=1))
    det = HuntDetector(budget=budget)
    reader = LogReader(log)
    det.observe_accounts(reader.accounts())
    PolarsEngine().aggregate([reader], det.state)  # as `distillguard hunt` reads: pieces on a budget
    phase[0] = "compact"
    starts["compact"] = round(time.perf_counter() - t0, 2)
    faults["compact"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    state_bytes = {name: sum(int(t.estimated_size()) for t in st.values()) for name, st in det.state.compacted().items()}
    phase[0] = "verdicts"
    starts["verdicts"] = round(time.perf_counter() - t0, 2)
    faults["verdicts"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    verdicts = det.verdicts()
    phase[0] = "write"
    starts["write"] = round(time.perf_counter() - t0, 2)
    faults["write"] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    verdicts.write(args.out / f"hunt-{name}-out")
    seconds = time.perf_counter() - t0
    done.set()
    n = det.state.n_exchanges
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result: dict[str, object] = {
        "log": str(log),
        "machine": host,
        "user_cpu_s": round(usage.ru_utime, 1),
        # kernel time: page faults and zeroing of fresh allocations show here, not in user time
        "system_cpu_s": round(usage.ru_stime, 1),
        "minor_page_faults": usage.ru_minflt,
        # faults from each phase's start to the next one's
        "minor_page_faults_by_phase": {
            k: b - a for (k, a), b in zip(faults.items(), [*list(faults.values())[1:], usage.ru_minflt], strict=True)
        },
        "minor_page_faults_by_thread": faults_by_thread(),
        "memory": args.memory,
        "pending_bytes": budget.pending_bytes if budget is not None else None,
        "exchanges": n,
        "accounts": verdicts.accounts.num_rows,
        "flagged": sum(verdicts.accounts["flagged"].to_pylist()),
        "campaigns": len(verdicts.campaigns),
        "seconds": round(seconds, 2),
        "throughput_exchanges_per_s": round(n / seconds),
        "peak_rss_bytes": usage.ru_maxrss * 1024,
        "peak_rss_bytes_by_phase": peaks,
        "phase_starts_s": starts,
        "state_bytes_by_signal": state_bytes,
        "stages": {k: round(v, 2) for k, v in sorted(det.state.timings.items())},
        "folds": {k: dict(zip(("folds", "state_rows", "pending_rows"), v, strict=True)) for k, v in det.state.fold_rows.items()},
        "note": "days are read in a prefetch thread; enrich stages run side by side in threads, so stages can add up to more than the wall time",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"hunt-{name}.json"
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
