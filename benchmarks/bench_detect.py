"""Benchmark detectors on a simulated scenario and compare them number by number.

Why a script next to ``distillguard bench``: the CLI scores one detector on one log; this
simulates the log when it is missing, runs every detector asked for (each in a fresh
process, so peak memory is that detector's own), writes one JSON per detector and a
comparison with the gap on every number, so a change to the hunt is judged against the
baseline on the same traffic.

Usage::

    python benchmarks/bench_detect.py --scenario demo --scale 0.1 --seed 0 \\
        --detector baseline --detector hunt

Writes ``benchmarks/results/bench-<scenario>-<scale>-<detector>.json`` and
``benchmarks/results/compare-<scenario>-<scale>.json``; the simulated log is kept in
``benchmarks/logs/<scenario>-<scale>-s<seed>/`` for the next run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from distillguard.bench import BenchResult, run_bench
from distillguard.bench.result import fmt_bytes, fmt_hours, fmt_pct

HERE = Path(__file__).resolve().parent
DEFAULT_DETECTORS = ("baseline", "hunt")

Getter = Callable[[BenchResult], float | None]


def _scale_tag(scale: float) -> str:
    return f"{scale:g}"


def _has_log(log: Path) -> bool:
    ex = log / "exchanges"
    return ex.is_dir() and any(p.is_file() for p in ex.rglob("*"))


def ensure_log(log: Path, scenario: str, scale: float, seed: int, responses: bool, console: Console) -> None:
    """Simulate the scenario into ``log`` unless a log is already there."""
    if _has_log(log):
        console.print(f"using existing log {log}")
        return
    from distillguard.sim import simulate

    console.print(f"simulating {scenario} (scale {scale:g}, seed {seed}) into {log}")
    summary = simulate(scenario, scale=scale, seed=seed, out=log, responses=responses)
    render = getattr(summary, "render", None)
    if callable(render):
        console.print(render())


def _bench_one(log: str, detector: str, every: float, progress: bool) -> dict[str, Any]:
    """Child-process entry point: one detector, one process, so ``ru_maxrss`` is its own."""
    return run_bench(Path(log), detector=detector, replay_every_hours=every, progress=progress).to_dict()


# -- comparison ------------------------------------------------------------------------


def _median(values: Sequence[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


def _share_detected(r: BenchResult) -> float | None:
    ttd = r.time_to_detect_hours
    return sum(v.get("first") is not None for v in ttd.values()) / len(ttd) if ttd else None


def _mean_campaign_recall(r: BenchResult) -> float | None:
    vals = [c.get("recall") or 0.0 for c in r.campaigns.values()]
    return statistics.fmean(vals) if vals else None


# name -> (getter, kind); kind picks the formatting and how the gap is shown.
METRICS: dict[str, tuple[Getter, str]] = {
    "recall": (lambda r: r.accounts.get("recall"), "rate"),
    "precision": (lambda r: r.accounts.get("precision"), "rate"),
    "FPR": (lambda r: r.accounts.get("fpr"), "small-rate"),
    "F1": (lambda r: r.accounts.get("f1"), "rate"),
    "campaigns detected": (_share_detected, "rate"),
    "campaign recall (best cluster, mean)": (_mean_campaign_recall, "rate"),
    "time to first detection (median h)": (
        lambda r: _median([v.get("first") for v in r.time_to_detect_hours.values()]),
        "hours",
    ),
    "time to 90% detected (median h)": (
        lambda r: _median([v.get("p90") for v in r.time_to_detect_hours.values()]),
        "hours",
    ),
    "leaked exchanges (share)": (lambda r: r.leaked_exchanges_all.get("share"), "rate"),
    "throughput (exchanges/s)": (lambda r: r.throughput_exchanges_per_s, "ratio"),
    "detector seconds": (lambda r: r.seconds, "ratio"),
    "peak RSS": (lambda r: float(r.peak_rss_bytes), "bytes"),
}


def _archetype_metrics(results: Sequence[BenchResult]) -> dict[str, tuple[Getter, str]]:
    names: dict[str, str] = {}
    for r in results:
        for name, row in r.per_archetype.items():
            names.setdefault(name, row["kind"])
    out: dict[str, tuple[Getter, str]] = {}
    for name, kind in names.items():
        label = f"{name} ({'recall' if kind == 'attack' else 'FPR'})"

        def get(r: BenchResult, name: str = name) -> float | None:
            row = r.per_archetype.get(name)
            return None if row is None else row.get("rate")

        out[label] = (get, "rate" if kind == "attack" else "small-rate")
    return out


def compare(results: Sequence[BenchResult]) -> dict[str, dict[str, Any]]:
    """``metric -> {values: {detector: v}, gap: {detector: v - reference}}``; reference = first.

    For throughput, time and memory the gap is a ratio (``v / reference``), for the rest a
    difference.
    """
    ref = results[0]
    out: dict[str, dict[str, Any]] = {}
    for name, (get, kind) in {**METRICS, **_archetype_metrics(results)}.items():
        values = {r.detector: get(r) for r in results}
        base = get(ref)
        gaps: dict[str, float | None] = {}
        for r in results[1:]:
            v = values[r.detector]
            if v is None or base is None:
                gaps[r.detector] = None
            elif kind in ("ratio", "bytes"):
                gaps[r.detector] = v / base if base else None
            else:
                gaps[r.detector] = v - base
        out[name] = {"kind": kind, "values": values, "gap": gaps}
    return out


def _fmt(v: float | None, kind: str) -> str:
    if kind == "rate":
        return fmt_pct(v)
    if kind == "small-rate":
        return fmt_pct(v, 3)
    if kind == "hours":
        return fmt_hours(v)
    if kind == "bytes":
        return fmt_bytes(v)
    return "—" if v is None else f"{v:,.1f}"


def _fmt_gap(v: float | None, kind: str) -> str:
    if v is None:
        return "—"
    if kind in ("ratio", "bytes"):
        return f"×{v:.2f}"
    if kind in ("rate", "small-rate"):
        return f"{100 * v:+.{3 if kind == 'small-rate' else 1}f} pp"
    return f"{v:+.1f} h"


def comparison_table(results: Sequence[BenchResult], title: str) -> Table:
    """Rows: metrics; columns: each detector, then its gap to the first one."""
    table = Table(title=title, title_justify="left")
    table.add_column("metric", style="bold")
    for r in results:
        table.add_column(r.detector, justify="right")
    for r in results[1:]:
        table.add_column(f"gap {r.detector} vs {results[0].detector}", justify="right")
    for name, row in compare(results).items():
        kind = row["kind"]
        cells = [_fmt(row["values"][r.detector], kind) for r in results]
        cells += [_fmt_gap(row["gap"][r.detector], kind) for r in results[1:]]
        table.add_row(name, *cells)
    return table


# -- entry point -----------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--scenario", default="demo", help="built-in scenario name or YAML file (default: demo)")
    p.add_argument("--scale", type=float, default=1.0, help="population scale passed to the simulator (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="simulator seed (default: 0)")
    p.add_argument(
        "--detector", action="append", dest="detectors", metavar="NAME",
        help="detector to run; repeat for several; the first is the reference for gaps "
        f"(default: {' '.join(DEFAULT_DETECTORS)})",
    )
    p.add_argument("--out", type=Path, default=HERE / "results", help="results folder (default: benchmarks/results)")
    p.add_argument("--log", type=Path, default=None, help="log folder (default: benchmarks/logs/<scenario>-<scale>-s<seed>)")
    p.add_argument("--every", type=float, default=1.0, help="replay re-score interval in simulated hours (default: 1)")
    p.add_argument("--no-responses", action="store_true", help="simulate without response text")
    p.add_argument("--in-process", action="store_true", help="run detectors in this process (peak RSS then accumulates)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    detectors: list[str] = list(dict.fromkeys(args.detectors or DEFAULT_DETECTORS))
    scale = _scale_tag(args.scale)
    scenario_tag = Path(args.scenario).stem
    log: Path = args.log or HERE / "logs" / f"{scenario_tag}-{scale}-s{args.seed}"
    ensure_log(log, args.scenario, args.scale, args.seed, not args.no_responses, console)

    results: list[BenchResult] = []
    for name in detectors:
        console.rule(f"{name} on {log}")
        if args.in_process:
            doc = _bench_one(str(log), name, args.every, not args.quiet)
        else:
            with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
                doc = pool.submit(_bench_one, str(log), name, args.every, not args.quiet).result()
        result = BenchResult.from_dict(doc)
        path = args.out / f"bench-{scenario_tag}-{scale}-{name}.json"
        result.write_json(path)
        result.print(console)
        console.print(f"wrote {path}")
        results.append(result)

    if len(results) > 1:
        console.print(comparison_table(results, f"{scenario_tag} at scale {scale}, seed {args.seed}"))
    doc = {
        "scenario": args.scenario,
        "scale": args.scale,
        "seed": args.seed,
        "log": str(log),
        "replay_every_hours": args.every,
        "reference": results[0].detector,
        "detectors": [r.detector for r in results],
        "metrics": compare(results),
    }
    path = args.out / f"compare-{scenario_tag}-{scale}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
