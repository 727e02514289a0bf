"""The batch hunt: read a log window, run the flow, write verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from distillguard.hunt.config import HuntConfig
from distillguard.hunt.detector import HuntDetector
from distillguard.hunt.engines.base import Engine
from distillguard.verdicts import Verdicts

__all__ = ["HuntConfig", "HuntDetector", "run_hunt"]


def run_hunt(
    logs: Sequence[Path],
    *,
    out: Path | None = None,
    mapping: Path | None = None,
    strict: bool = False,
    target_fpr: float | None = None,
    config: HuntConfig | Path | None = None,
    engine: str | Engine = "polars",
    progress: bool | None = None,
    checkpoint: Path | None = None,
    checkpoint_every_s: float | None = None,
    resume: bool = True,
    memory: str | int | None = "auto",
) -> Verdicts:
    """Hunt over one or more log folders (one window) and write the detector outputs to ``out``.

    ``config``: a :class:`HuntConfig` or its YAML file (default: every default);
    ``target_fpr`` overrides the config's. ``engine``: where enrich and aggregate run
    (:data:`distillguard.hunt.engines.ENGINES`); link, cluster and score run here.
    ``progress``: a bar on stderr as the days are read; ``None`` shows it only when stderr
    is a terminal (never in a pipe or a log file). ``checkpoint``: a folder where the
    embedded engine keeps its progress every ``checkpoint_every_s`` seconds (None: 30), so that a
    killed run resumes after its last finished day (``resume=False`` starts over);
    removed when the hunt ends. ``memory``: the embedded engine's budget (``8G``; ``auto``: 8 GiB or
    half the machine's memory; None or ``none``: unbounded; see :mod:`distillguard.hunt.budget`).
    """
    from distillguard.config import ColumnMapping
    from distillguard.hunt.engines import get_engine
    from distillguard.io import LogReader, Loss, RequestIds

    if isinstance(config, Path):
        config = HuntConfig.load(config)
    cp = None
    if checkpoint is not None and engine == "polars":
        from distillguard.hunt.checkpoint import CHECKPOINT_EVERY_S, Checkpoint, fingerprint

        settings = {"config": repr(config), "target_fpr": target_fpr, "strict": strict, "memory": memory,
                    "mapping": Path(mapping).read_text() if mapping else None}  # fmt: skip
        cp = Checkpoint(checkpoint, fingerprint(logs, settings), CHECKPOINT_EVERY_S if checkpoint_every_s is None else checkpoint_every_s)
        if not resume:
            cp.clear()
    runner = (get_engine(engine, checkpoint=cp) if cp is not None else get_engine(engine)) if isinstance(engine, str) else engine
    from distillguard.hunt.budget import MemoryBudget

    det = HuntDetector(config, target_fpr=target_fpr, budget=MemoryBudget.of(memory))
    cmap = ColumnMapping.load(mapping) if mapping else None
    ids = RequestIds()  # one set for every log: the same log given twice is seen as duplicates
    readers = [LogReader(p, mapping=cmap, strict=strict, request_ids=ids) for p in logs]
    for r in readers:
        det.observe_accounts(r.accounts())
    # Asked for explicitly, the bar draws even into a pipe or a CI log (force_terminal).
    err = Console(stderr=True, force_terminal=True if progress else None)
    show = err.is_terminal if progress is None else progress
    with Progress(console=err, disable=not show, transient=True) as bar:
        task = bar.add_task("hunt: reading days", total=sum(len(r.days()) for r in readers))
        runner.aggregate(readers, det.state, lambda n: bar.advance(task, n))
        bar.add_task("hunt: link, cluster, score", total=None)
        verdicts = det.verdicts()
    verdicts.meta["issues"] = sum(len(r.issues) for r in readers)
    kept = {"exchanges": det.state.n_exchanges, "accounts": det.accounts.height}
    verdicts.meta["input"] = Loss.of(readers).summary(kept)
    verdicts.meta["logs"] = [str(p) for p in logs]
    if cp is not None:
        if cp.note:
            verdicts.meta["checkpoint"] = {"note": cp.note, "days_not_read_again": cp.resumed_days}
            err.print(f"hunt: {cp.note}")
        cp.clear()
    verdicts.meta["engine"] = runner.name
    stats = getattr(runner, "stats", None)
    if stats:
        verdicts.meta["engine_stats"] = stats
    if out is not None:
        verdicts.write(out)
    return verdicts
