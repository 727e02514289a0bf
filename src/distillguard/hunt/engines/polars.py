"""The embedded engine: Polars over Arrow on one machine, both cores busy.

Days are read one ahead in a background thread (:func:`~distillguard.hunt.state.prefetch`:
Parquet decoding releases the GIL) while :class:`~distillguard.hunt.state.HuntState`
enriches and folds the current one in its thread pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

import pyarrow as pa

from distillguard.hunt.checkpoint import Checkpoint
from distillguard.hunt.engines.base import Engine, LogSource
from distillguard.hunt.state import HuntState, prefetch
from distillguard.signals.prepare import COLUMNS

__all__ = ["PolarsEngine"]


class PolarsEngine(Engine):
    """Reads each log day by day (rows within a day in file order) into one in-process state.

    ``checkpoint``: where to keep progress so that a killed run resumes after its last
    finished day (:mod:`distillguard.hunt.checkpoint`); the answer is the same either way.
    """

    name: ClassVar[str] = "polars"

    def __init__(self, checkpoint: Checkpoint | None = None) -> None:
        self.checkpoint = checkpoint

    def aggregate(
        self, sources: Sequence[LogSource], state: HuntState, advance: Callable[[int], None] | None = None
    ) -> HuntState:
        cp = self.checkpoint
        done = cp.restore(state, sources) if cp is not None else None
        for li, source in enumerate(sources):
            days = source.days()
            if done is not None and li < done[0]:
                cp.resumed_days += len(days)  # type: ignore[union-attr]
                if advance is not None:
                    advance(len(days))
                continue
            first = done[1] + 1 if done is not None and li == done[0] else 0
            if first:
                cp.resumed_days += first  # type: ignore[union-attr]
                if advance is not None:
                    advance(first)
                # the days left one at a time, repeats dropped against the ids restored
                batches: Iterator[pa.Table] = (
                    t for d in days[first:]
                    if (t := source.day_exchanges(d, COLUMNS, seen=source.request_ids)) is not None  # type: ignore[attr-defined]
                )  # fmt: skip
            else:
                batches = source.exchange_batches(columns=COLUMNS, ordered=False)
            at = {d: i for i, d in enumerate(days)}
            for batch, seen in prefetch(_with_seen(batches, source) if cp is not None else ((b, None) for b in batches)):
                state.observe(batch)
                if advance is not None:
                    advance(1)
                if cp is not None and cp.due():  # a batch is one UTC day: its first row names it
                    ts = batch.column("ts")[0].as_py()
                    cp.save(state, sources, (li, at[ts.date()]), seen)
        return state


def _with_seen(batches: Iterator[pa.Table], source: LogSource) -> Iterator[tuple[pa.Table, Any]]:
    """Each day with the request ids seen up to it (taken as it is read: the prefetch reads
    ahead, and a checkpoint must not hold the ids of days it has not folded)."""
    for b in batches:
        yield b, source.request_ids_state()  # type: ignore[attr-defined]
