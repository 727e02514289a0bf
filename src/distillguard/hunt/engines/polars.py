"""The embedded engine: Polars over Arrow on one machine, both cores busy.

Days are read one ahead in a background thread (:func:`~distillguard.hunt.state.prefetch`:
Parquet decoding releases the GIL) while :class:`~distillguard.hunt.state.HuntState`
enriches and folds the current one in its thread pool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from distillguard.hunt.engines.base import Engine, LogSource
from distillguard.hunt.state import HuntState, prefetch
from distillguard.signals.prepare import COLUMNS

__all__ = ["PolarsEngine"]


class PolarsEngine(Engine):
    """Reads each log day by day (rows within a day in file order) into one in-process state."""

    name: ClassVar[str] = "polars"

    def aggregate(
        self, sources: Sequence[LogSource], state: HuntState, advance: Callable[[int], None] | None = None
    ) -> HuntState:
        for source in sources:
            for batch in prefetch(source.exchange_batches(columns=COLUMNS, ordered=False)):
                state.observe(batch)
                if advance is not None:
                    advance(1)
        return state
