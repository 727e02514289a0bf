"""The engine interface and its registry (ibis's backends are the model)."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar, Protocol

import pyarrow as pa

from distillguard.errors import ConfigError
from distillguard.hunt.state import HuntState

__all__ = ["ENGINES", "Engine", "LogSource", "get_engine"]


class LogSource(Protocol):
    """What an engine reads (``distillguard.io.LogReader`` is one)."""

    def days(self) -> list[Any]: ...

    def exchange_batches(self, columns: Sequence[str] | None = None, ordered: bool = True) -> Iterator[pa.Table]: ...

    def exchange_pieces(
        self, columns: Sequence[str] | None = None, max_bytes: int | None = None, first_day: Any = None
    ) -> Iterator[tuple[pa.Table, bool]]: ...


class Engine(ABC):
    """Runs prepare → enrich → aggregate over logs into a :class:`HuntState`.

    An engine owns how the work is split and where it runs; it never owns a signal: every
    engine calls the same signal code (:mod:`distillguard.signals`), and its result merges
    like any other state (by account id, refusing other settings).
    """

    name: ClassVar[str]

    @abstractmethod
    def aggregate(
        self, sources: Sequence[LogSource], state: HuntState, advance: Callable[[int], None] | None = None
    ) -> HuntState:
        """Fold every exchange of ``sources`` into ``state`` and return it.

        ``advance(n)`` is called as the engine gets through the log (``n`` days at a time),
        for a progress bar.
        """


# name -> ("module:Class", extra that installs its dependencies or None)
ENGINES: dict[str, tuple[str, str | None]] = {
    "polars": ("distillguard.hunt.engines.polars:PolarsEngine", None),
    "spark": ("distillguard.hunt.engines.spark:SparkEngine", "spark"),
}


def get_engine(name: str, **params: Any) -> Engine:
    """Build a registered engine; a missing optional dependency names the extra to install."""
    try:
        target, extra = ENGINES[name]
    except KeyError:
        raise ConfigError(f"unknown engine {name!r}; known: {', '.join(sorted(ENGINES))}") from None
    module, cls = target.split(":")
    try:
        factory: Callable[..., Engine] = getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        hint = f"pip install 'distillguard[{extra}]'" if extra else "reinstall distillguard"
        raise ConfigError(f"engine {name!r} needs {exc.name or 'a missing package'}: {hint}") from exc
    return factory(**params)
