"""Run the batch hunt with this repository's two exact-merge changes switched back to the old
behaviour, to show that every other difference from an older commit's output is none.

The core change that made the batch hunt and the replay agree changed detection on purpose:
(1) temporal gap statistics bridge two time segments (``signals.temporal.fold_gaps``), and
(2) heavy-hitter summaries are cut only past ``slack * top_k`` values (``TableSpec.slack``).
With both reverted here (gaps summed per segment, ``slack=1``), ``compare_hunts.py`` against
an older commit's ``distillguard hunt`` output should report no difference at all.

    python benchmarks/hunt_without_exact_merges.py LOG OUT
    python benchmarks/compare_hunts.py OLD_OUT OUT
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import polars as pl

from distillguard.hunt import run_hunt
from distillguard.signals import temporal
from distillguard.signals.base import TableSpec
from distillguard.signals.template_repetition import TemplateSignal


def _sum_gaps(rows: pl.DataFrame) -> pl.DataFrame:
    """The old merge: per-segment gap sums added, no gap across two segments."""
    return rows.group_by("account").agg(
        pl.col("n_gaps").sum(), pl.col("s1").sum(), pl.col("s2").sum(), pl.col("first_s").min(), pl.col("last_s").max()
    )


def main(argv: list[str]) -> int:
    log, out = Path(argv[0]), Path(argv[1])
    gap = temporal.TemporalSignal.tables["gap"]
    temporal.TemporalSignal.tables["gap"] = dataclasses.replace(gap, fold=_sum_gaps)
    TemplateSignal.tables = {
        k: (dataclasses.replace(s, slack=1) if isinstance(s, TableSpec) and s.top_k else s)
        for k, s in TemplateSignal.tables.items()
    }
    v = run_hunt([log], out=out, progress=False)
    print(f"{len(v.flagged_ids())} flagged, written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
