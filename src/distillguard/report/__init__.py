"""``distillguard report``: what a hunt found, for people (one self-contained HTML page) and
for machines (``report.json`` beside it, the same figures' numbers).

hunt output + the log it read → :mod:`~distillguard.report.aggregate` (one streaming pass)
→ :mod:`~distillguard.report.figures` (per-campaign numbers) → :mod:`~distillguard.report.charts`
(plotly specs) → :mod:`~distillguard.report.page` (HTML). Labels are never read.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from distillguard.report.aggregate import aggregate_log, count_batches, find_log, read_hunt
from distillguard.report.figures import FIGURES, campaign_figures, overview
from distillguard.report.page import render_page

__all__ = ["FIGURES", "build_report", "write_report"]


def build_report(
    hunt_dir: Path, log: Sequence[Path] | None = None, *, mapping: Path | None = None, progress: bool = False
) -> dict[str, Any]:
    """The report as a JSON-able dict: ``overview`` and one entry per campaign with :data:`FIGURES`."""
    hunt = read_hunt(hunt_dir)
    logs = find_log(hunt, log)
    n_batches = count_batches(logs, mapping) if progress else 0
    err = Console(stderr=True, force_terminal=True if progress else None)  # asked for: drawn even into a pipe
    with Progress(console=err, disable=not progress, transient=True) as bar:
        task = bar.add_task("report: reading the log", total=n_batches)
        agg = aggregate_log(hunt, logs, mapping=mapping, advance=lambda n: bar.advance(task, n))
    return {
        "version": 1,
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "figures": list(FIGURES),
        "overview": overview(hunt, agg, [str(p) for p in logs]),
        "campaigns": campaign_figures(hunt, agg),
    }


def write_report(
    hunt_dir: Path,
    out: Path,
    log: Sequence[Path] | None = None,
    *,
    mapping: Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write ``out`` (HTML) and ``report.json`` beside it; returns what was written and how long it took."""
    t0 = time.perf_counter()
    report = build_report(hunt_dir, log, mapping=mapping, progress=progress)
    t1 = time.perf_counter()
    page = render_page(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    js = out.with_name("report.json")
    js.write_text(json.dumps(report, separators=(",", ":"), default=str), encoding="utf-8")
    t2 = time.perf_counter()
    return {
        "html": str(out),
        "json": str(js),
        "html_bytes": out.stat().st_size,
        "json_bytes": js.stat().st_size,
        "campaigns": len(report["campaigns"]),
        "seconds": {"aggregate": round(t1 - t0, 3), "render": round(t2 - t1, 3), "total": round(t2 - t0, 3)},
    }
