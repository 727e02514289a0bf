"""The one protocol every detector implements, and the registry that builds them by name.

A detector is fed registration data once, then exchange batches in time order, and can
be asked at any moment for its :class:`~distillguard.verdicts.Verdicts`. It never sees
labels: the bench, the hunt and the gateway drive every detector through these calls and
nothing else.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

import pyarrow as pa

from distillguard.errors import ConfigError
from distillguard.verdicts import Verdicts

__all__ = ["DETECTORS", "Detector", "get_detector"]


class Detector(ABC):
    """Consume accounts and exchange batches (never labels); produce :class:`Verdicts`.

    ``columns`` names the exchange columns the detector wants (``None``: all), so a
    reader can skip the rest; a column absent from the log arrives as nulls.
    """

    name: ClassVar[str]
    columns: ClassVar[tuple[str, ...] | None] = None

    @abstractmethod
    def observe_accounts(self, accounts: pa.Table) -> None:
        """Registration data, given once before any exchange."""

    @abstractmethod
    def observe(self, batch: pa.Table) -> None:
        """A batch of exchanges; batches arrive in time order in a replay."""

    @abstractmethod
    def verdicts(self, now: datetime | None = None) -> Verdicts:
        """Verdicts on everything observed so far (``now``: the replay clock)."""

    def flags(self, now: datetime | None = None) -> pa.Table:
        """At least ``account_id, flagged, risk`` of :meth:`verdicts`: what a replay records
        between two full verdicts. Override it where flags cost less than evidence."""
        return self.verdicts(now).accounts


# name -> "module:Class"; imported on first use so heavy detectors cost nothing until asked for.
DETECTORS: dict[str, str] = {
    "baseline": "distillguard.detectors.baseline:VolumeBaseline",
    "hunt": "distillguard.hunt.detector:HuntDetector",
}


def get_detector(name: str, **params: Any) -> Detector:
    """Build a registered detector by name."""
    try:
        target = DETECTORS[name]
    except KeyError:
        raise ConfigError(f"unknown detector {name!r}; known: {', '.join(sorted(DETECTORS))}") from None
    module, cls = target.split(":")
    factory: Callable[..., Detector] = getattr(importlib.import_module(module), cls)
    return factory(**params)
