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
import resource
import sys
import time
from pathlib import Path

from distillguard.hunt.detector import HuntDetector
from distillguard.hunt.state import prefetch
from distillguard.io import LogReader

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", type=Path, help="an existing log folder (else simulate one)")
    ap.add_argument("--scenario", default="demo")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=101)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    log = args.log
    name = log.name if log else f"{args.scenario}-{args.scale:g}-s{args.seed}"
    if log is None:
        from distillguard.sim import simulate

        log = HERE / "logs" / name
        if not (log / "exchanges").exists():
            simulate(args.scenario, scale=args.scale, seed=args.seed, out=log, responses=False)

    t0 = time.perf_counter()
    det = HuntDetector()
    reader = LogReader(log)
    det.observe_accounts(reader.accounts())
    t_read = 0.0
    t = time.perf_counter()
    for batch in prefetch(reader.exchange_batches(columns=det.columns, ordered=False)):
        t_read += time.perf_counter() - t
        det.observe(batch)
        t = time.perf_counter()
    verdicts = det.verdicts()
    verdicts.write(args.out / f"hunt-{name}-out")
    seconds = time.perf_counter() - t0
    n = det.state.n_exchanges
    result: dict[str, object] = {
        "log": str(log),
        "exchanges": n,
        "accounts": verdicts.accounts.num_rows,
        "flagged": sum(verdicts.accounts["flagged"].to_pylist()),
        "campaigns": len(verdicts.campaigns),
        "seconds": round(seconds, 2),
        "throughput_exchanges_per_s": round(n / seconds),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "stages": {"read": round(t_read, 2), **{k: round(v, 2) for k, v in sorted(det.state.timings.items())}},
        "note": "read runs in a prefetch thread and 'read' is the time the flow waited for it; enrich stages run side by side in threads, so stages can add up to more than the wall time",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"hunt-{name}.json"
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
