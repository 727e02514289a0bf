"""Benchmark the simulator: wall time, peak RSS, exchanges/s and size on disk of one scenario.

Usage::

    .venv/bin/python benchmarks/bench_simulate.py --scenario qwen-2026 --scale 0.1 [--seed 0] [--out DIR] [--keep]

Writes ``benchmarks/results/simulate-<scenario>-<scale>.json``. Peak RSS is this
process's own (``resource.getrusage``), which is what the 8 GiB budget is about.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from distillguard.sim import simulate


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--scenario", default="qwen-2026")
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="log folder (default: a temp folder, removed after)")
    ap.add_argument("--keep", action="store_true", help="keep the generated log")
    ap.add_argument("--no-responses", action="store_true")
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-sim-"))
    t0 = time.perf_counter()
    summary = simulate(args.scenario, scale=args.scale, seed=args.seed, out=out,
                       responses=not args.no_responses, progress=sys.stderr.isatty())
    wall = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    disk = _du(out)
    result: dict[str, object] = {
        "scenario": args.scenario,
        "scale": args.scale,
        "seed": args.seed,
        "responses": not args.no_responses,
        "accounts": summary.n_accounts,
        "exchanges": summary.n_exchanges,
        "wall_s": round(wall, 2),
        "exchanges_per_s": round(summary.n_exchanges / wall, 1),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "disk_mib": round(disk / 2**20, 1),
        "bytes_per_exchange": round(disk / max(1, summary.n_exchanges), 1),
        "benign_repetition": {k: round(v, 4) for k, v in summary.near_duplicates.items()},
        "per_archetype": {k: {"accounts": v.accounts, "exchanges": v.exchanges, "prompt_repeats": round(v.repeat_rate, 4)}
                          for k, v in summary.archetypes.items()},
        "corpora": summary.corpora,
        "fallback": summary.fallback,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    dest = args.results / f"simulate-{args.scenario}-{args.scale:g}.json"
    dest.write_text(json.dumps(result, indent=2) + "\n")
    if args.out is None and not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    print(json.dumps({k: result[k] for k in ("exchanges", "wall_s", "exchanges_per_s", "peak_rss_mib", "disk_mib")}))
    print(f"wrote {dest}")
    return result


if __name__ == "__main__":
    main()
