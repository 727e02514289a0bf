"""Every growth sitting kept under ``benchmarks/results/`` side by side: one sitting's
exponent moves by a few hundredths with the host, so the question "no worse than linear"
is read off all of them, not the last one.

    python benchmarks/growth_sittings.py [--from 0.1] [--to 1] [--json F]
    (benchmarks/results/scale/growth-sittings.json: --json of the sittings kept on 2026-12-07)

Prints, per ``growth*.json`` (oldest first), the time exponent between the two scales (the
medians' and, where the file has them, each round's), the CPU-time exponent where the file
kept CPU seconds (user and system: what the hunt did, less the host's scheduling), and the
median, range and count over the sittings. The sittings ran on different commits and days: this is the spread of what
was measured, not a confidence interval of one build.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Sitting:
    file: str
    date: str
    exponent: float  # of the scales' median times
    rounds: list[float]  # each round's own, where the file kept them
    cpu_exponent: float | None = None  # of the scales' CPU seconds, where the file kept them


def _cpu_exponent(runs: list[dict[str, float]], lo: float, hi: float) -> float | None:
    """CPU seconds' growth against exchanges' between the runs at ``lo`` and ``hi``."""
    at = {r.get("scale"): r for r in runs}
    a, b = at.get(lo), at.get(hi)
    if not a or not b or not a.get("cpu_s") or not b.get("cpu_s"):
        return None
    return round(math.log(b["cpu_s"] / a["cpu_s"]) / math.log(b["exchanges"] / a["exchanges"]), 3)


def sittings(lo: float, hi: float, folder: Path = RESULTS) -> list[Sitting]:
    """Each growth file's exponent from ``lo`` to ``hi`` (files without both scales left out)."""
    out: list[Sitting] = []
    for f in folder.glob("growth*.json"):
        d = json.loads(f.read_text())
        medians = [e["time"] for e in d.get("exponents", []) if e.get("from") == lo and e.get("to") == hi]
        if not medians:
            continue
        rounds = [e["time"] for r in d.get("exponents_by_round") or [] for e in r if e.get("from") == lo and e.get("to") == hi]
        cpu = _cpu_exponent(d.get("runs") or [], lo, hi)
        out.append(Sitting(f.name, str(d.get("date")), float(medians[0]), [float(x) for x in rounds], cpu))
    return sorted(out, key=lambda s: s.date)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="lo", type=float, default=0.1)
    ap.add_argument("--to", dest="hi", type=float, default=1.0)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    rows = sittings(a.lo, a.hi)
    table = Table(title=f"time exponent, --scale {a.lo:g} to {a.hi:g}")
    for col in ("file", "date", "exponent", "rounds", "cpu exponent"):
        table.add_column(col)
    for r in rows:
        cpu = "" if r.cpu_exponent is None else f"{r.cpu_exponent:.3f}"
        table.add_row(r.file, r.date[:16], f"{r.exponent:.3f}", " ".join(f"{x:.3f}" for x in r.rounds), cpu)
    Console().print(table)
    values = [r.exponent for r in rows]
    summary = {"sittings": len(values), "median": statistics.median(values), "min": min(values), "max": max(values),
               "below_or_at_1": sum(v <= 1.0 for v in values), "rows": [asdict(r) for r in rows]}
    cpu = [r.cpu_exponent for r in rows if r.cpu_exponent is not None]
    if cpu:
        summary["cpu"] = {"sittings": len(cpu), "median": statistics.median(cpu), "min": min(cpu), "max": max(cpu),
                          "below_or_at_1": sum(v <= 1.0 for v in cpu)}  # fmt: skip
    print(f"{len(values)} sittings: median {summary['median']:.3f}, range {summary['min']:.3f} to {summary['max']:.3f}, "
          f"{summary['below_or_at_1']} at or below 1.0")
    if cpu:
        print(f"CPU time, {len(cpu)} sittings: median {statistics.median(cpu):.3f}, range {min(cpu):.3f} to {max(cpu):.3f}, "
              f"{sum(v <= 1.0 for v in cpu)} at or below 1.0")
    if a.json:
        a.json.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
