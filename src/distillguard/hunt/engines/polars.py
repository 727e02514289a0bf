"""The embedded engine: Polars over Arrow on one machine, both cores busy.

Days are read one ahead in a background thread (:func:`~distillguard.hunt.state.prefetch`:
Parquet decoding releases the GIL) while :class:`~distillguard.hunt.state.HuntState`
enriches and folds the current one in its thread pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, TypeVar

import pyarrow as pa

from distillguard.hunt.checkpoint import Checkpoint
from distillguard.hunt.engines.base import Engine, LogSource
from distillguard.hunt.state import HuntState, prefetch
from distillguard.signals.prepare import COLUMNS

__all__ = ["PolarsEngine"]

T = TypeVar("T")


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
        budget = state.budget
        for li, source in enumerate(sources):
            days = source.days()
            first = 0 if done is None or li > done[0] else len(days) if li < done[0] else done[1] + 1
            if first:
                cp.resumed_days += first  # type: ignore[union-attr]
                if advance is not None:
                    advance(first)
                if first == len(days):
                    continue
            # Pieces of days: whole days, or slices of about the budget's chunk; a resumed run
            # starts after its last saved day, repeats dropped against the ids restored.
            pieces: Iterator[tuple[pa.Table, bool]] = source.exchange_pieces(
                COLUMNS, max_bytes=budget.chunk_bytes if budget is not None else None,
                first_day=days[first] if first else None,
            )  # fmt: skip
            at = {d: i for i, d in enumerate(days)}
            read = _with_seen(pieces, source) if cp is not None else ((p, None) for p in pieces)
            for (batch, day_done), seen in prefetch(read, depth=budget.prefetch if budget is not None else 2):
                state.observe(batch, ends_batch=day_done)
                if not day_done:
                    continue
                if advance is not None:
                    advance(1)
                if cp is not None and cp.due():  # a piece holds one UTC day: its first row names it
                    ts = batch.column("ts")[0].as_py()
                    cp.save(state, sources, (li, at[ts.date()]), seen)
        if cp is not None:
            cp.flush()  # the last write complete (or its failure raised) before the hunt goes on
        return state


def _with_seen(batches: Iterator[T], source: LogSource) -> Iterator[tuple[T, Any]]:
    """Each day with the request ids seen up to it (taken as it is read: the prefetch reads
    ahead, and a checkpoint must not hold the ids of days it has not folded)."""
    for b in batches:
        yield b, source.request_ids_state()  # type: ignore[attr-defined]
