"""``run_bench``: replay a labelled log through a detector, then score it against the labels.

Why the order matters: the detector runs to the end of the log first, through
:func:`~distillguard.bench.replay.replay`, which never holds labels; only then does the
harness call ``labels()`` and compute the metrics. A detector therefore cannot see the
answers, even by accident (a test pins this order).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from distillguard import __version__
from distillguard.bench import metrics as m
from distillguard.bench.replay import ExchangeSource, replay
from distillguard.bench.result import BenchResult
from distillguard.detectors.base import Detector, get_detector
from distillguard.errors import ConfigError, LogError

__all__ = ["LabelledLog", "evaluate", "run_bench"]


class LabelledLog(ExchangeSource, Protocol):
    """A log reader that can also give the labels (``LogReader`` is one)."""

    def labels(self) -> pa.Table | None: ...


def _no_labels(log: str) -> LogError:
    return LogError(
        f"the log {log} has no labels/ table; the bench needs ground truth "
        "(labels/ with account_id, campaign_id, archetype; see docs/exchange-log.md). "
        "Simulated logs have it; for an unlabelled log use `distillguard hunt`"
    )


def evaluate(
    detector: Detector,
    reader: LabelledLog,
    *,
    every: timedelta = timedelta(hours=1),
    log: str = "",
    detector_name: str | None = None,
    detector_params: dict[str, Any] | None = None,
    progress: bool = True,
) -> BenchResult:
    """Replay ``reader`` through ``detector``, then read the labels and compute every metric.

    This is :func:`run_bench` without the file system: any reader with ``accounts()``,
    ``exchange_batches(columns)`` and ``labels()`` will do.
    """
    rep = replay(detector, reader, every=every, progress=progress)
    # Detection is over: only now are labels read.
    labels = reader.labels()
    if labels is None:
        raise _no_labels(log or "given")
    verdicts = rep.final.accounts
    truth = m.truth_frame(labels, rep.account_ids, verdicts, rep.first_flags)
    scan = m.scan_attack_exchanges(reader.exchange_batches(columns=["account_id", "ts"]), truth, rep.flag_changes)
    leaked = m.leaked_exchanges(truth, scan)
    unflagged = m.leaked_exchanges(truth, scan, "unflagged")
    before_campaign = m.leaked_exchanges(truth, scan, "before_campaign")
    cleared = rep.flag_changes.filter(pc.invert(rep.flag_changes["flagged"]))
    lost = getattr(reader, "lost", None)
    kept = {"exchanges": rep.exchanges, "accounts": len(rep.account_ids)}
    input_summary = lost.summary(kept) if lost is not None else {}
    issues = getattr(reader, "issues", None)
    try:
        n_issues = len(issues) if issues is not None else 0
    except TypeError:
        n_issues = 0
    return BenchResult(
        detector=detector_name or rep.detector,
        log=log,
        replay_every_hours=every / timedelta(hours=1),
        n_accounts=truth.height,
        exchanges=rep.exchanges,
        seconds=rep.seconds,
        throughput_exchanges_per_s=m.ratio(rep.exchanges, rep.seconds),
        peak_rss_bytes=rep.peak_rss_bytes,
        accounts=m.account_metrics(truth),
        per_archetype=m.per_archetype(truth),
        campaigns=m.campaign_metrics(truth, verdicts),
        time_to_detect_hours=m.time_to_detect(truth, scan),
        leaked_exchanges=leaked,
        leaked_exchanges_all=m.leaked_total(leaked),
        leaked_while_unflagged=unflagged,
        leaked_while_unflagged_all=m.leaked_total(unflagged),
        leaked_before_campaign_flagged=before_campaign,
        leaked_before_campaign_flagged_all=m.leaked_total(before_campaign),
        harvest=m.harvest_metrics(truth, scan),
        flagged_by_decision=m.flagged_by_decision(truth),
        replay={
            "chunks": rep.chunks,
            "start": rep.start,
            "end": rep.end,
            "seconds_observe": rep.seconds_observe,
            "seconds_verdicts": rep.seconds_verdicts,
            "wall_seconds": rep.wall_seconds,
            "detector_clusters": len(rep.final.campaigns),
            "flags_cleared": cleared.num_rows,
            "accounts_ever_cleared": len(pc.unique(cleared["account_id"])),
        },
        detector_params=dict(detector_params or {}),
        log_issues=n_issues,
        input=input_summary,
        unused_signals=dict(rep.final.unused_signals),
        version=__version__,
        replay_result=rep,
    )


def _has_labels(log: Path) -> bool:
    """Whether ``labels/`` (or a ``labels.*`` file) holds anything, without reading it."""
    for p in log.iterdir():
        if p.name == "labels" and p.is_dir() and any(q.is_file() for q in p.rglob("*")):
            return True
        if p.name.startswith("labels.") and p.is_file():
            return True
    return False


def run_bench(
    log: Path,
    *,
    detector: str = "hunt",
    replay_every_hours: float = 1.0,
    mapping: Path | None = None,
    detector_params: dict[str, Any] | None = None,
    progress: bool = True,
) -> BenchResult:
    """Replay a labelled log folder through a registered detector and score it.

    Parameters
    ----------
    log
        A log folder (``exchanges/``, ``accounts/``, ``labels/``; docs/exchange-log.md).
    detector
        A name in :data:`distillguard.detectors.DETECTORS` (``"baseline"``, ``"hunt"``).
    replay_every_hours
        Simulated hours between two re-scores; time-to-detect is only as fine as this.
    mapping
        Column-mapping YAML for logs whose column names differ from the spec.
    detector_params
        Keyword arguments for the detector's constructor.
    progress
        Show a progress line on stderr during the replay.

    Raises
    ------
    LogError
        The folder does not exist or has no ``labels/`` (checked before the replay starts).
    ConfigError
        Unknown detector, bad parameters, or a non-positive interval.
    """
    log = Path(log)
    if not log.is_dir():
        raise LogError(f"log folder {log} does not exist")
    if not _has_labels(log):
        raise _no_labels(str(log))
    if not replay_every_hours > 0:
        raise ConfigError(f"replay_every_hours must be positive, got {replay_every_hours}")
    from distillguard.io import LogReader

    params = dict(detector_params or {})
    try:
        det = get_detector(detector, **params)
    except TypeError as exc:
        raise ConfigError(f"bad parameters {params} for detector {detector!r}: {exc}") from None
    reader = LogReader(log, mapping=mapping)
    return evaluate(
        det,
        reader,
        every=timedelta(hours=replay_every_hours),
        log=str(log),
        detector_name=detector,
        detector_params=params,
        progress=progress,
    )
