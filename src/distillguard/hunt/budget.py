"""The embedded hunt's memory budget (``hunt --memory 8G``; ``auto`` by default, ``none``
unbounded): what it bounds, and how.

Left unbounded, the hunt trades memory for speed: days are read two ahead, a day's per-account
rows wait for up to a day's worth of folds, and a fold's parts pile up until they are as large
as the state they fold into. A budget bounds each of those piles to a share of it, at some cost
in time (more, smaller folds):

- ``prefetch``: days read ahead of the one being worked on;
- ``pending_bytes``: per-account rows waiting to be folded, over all signals (the largest
  signal's pile is folded first once they pass it, into a run that joins the state later:
  ``HuntState._compact``);
- ``chunk_bytes``: a day larger than this is worked in slices (rows in file order), so the
  columns of one slice and its enriched copies stay within it.

The answer does not depend on the budget beyond fold points: the folds are merges of
mergeable states, identical but for bounded-error sketches (Misra-Gries heavy hitters) whose
approximation depends on when they are folded.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from distillguard.errors import ConfigError

__all__ = ["MemoryBudget", "auto_bytes", "parse_size"]

_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_size(text: str, flag: str = "--memory", floor: int = 256 * 2**20) -> int:
    """``8G``, ``512MiB``, ``1.5g``, ``1000000`` (bytes) → bytes; anything else, or less than
    ``floor``: a clear error naming ``flag``."""
    if text.strip().lower() in ("auto", "none"):
        return auto_bytes() if text.strip().lower() == "auto" else 0
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if m is None:
        raise ConfigError(f"{flag} has value {text!r}; expected a size such as 8G, 512M or 2.5GiB, auto or none")
    n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n < floor:
        raise ConfigError(f"{flag} has value {text!r}; the hunt needs at least {floor // 2**20}M")
    return n


@dataclass(frozen=True)
class MemoryBudget:
    """Shares of ``total`` bytes given to the piles the hunt keeps (see the module).
    ``pending``: the piles' share in bytes, where not a tenth of ``total`` (a benchmark puts
    a small log under a large log's fold pressure: benchmarks/bench_fold_pressure.py)."""

    total: int
    pending: int | None = None

    @property
    def prefetch(self) -> int:
        return 1

    @property
    def pending_bytes(self) -> int:
        return self.total // 10 if self.pending is None else self.pending

    @property
    def chunk_bytes(self) -> int:
        return self.total // 40

    @classmethod
    def of(cls, text: str | int | None) -> MemoryBudget | None:
        """``auto``: :func:`auto_bytes`; ``none`` (or None): unbounded; else a size."""
        if text is None or (isinstance(text, str) and text.strip().lower() == "none"):
            return None
        if isinstance(text, str) and text.strip().lower() == "auto":
            return cls(auto_bytes())
        return cls(text if isinstance(text, int) else parse_size(text))


def auto_bytes() -> int:
    """The default budget: 8 GiB, or half the machine's memory where that is less. At full
    scale the budget costs no time (docs/scale.md), so bounded is the default."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 16 * 2**30
    return max(256 * 2**20, min(8 * 2**30, ram // 2))
