"""The gateway's time: wall time in production, or a replay clock that runs a recorded log's
time faster than the wall's (benchmarks only).

Everything in the gateway that asks "what time is it" (the exchange's ``ts``, the quota
windows, an account's age for gradual release, the live hunt's "as of") asks one
:class:`Clock`, so a log replayed in compressed time is seen by all of them at the same
simulated instant: a day of traffic sent in a minute fills one daily budget, not 1/1440 of one,
and a new account ages as fast as its traffic arrives.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ReplayClock", "WallClock", "as_datetime"]


@runtime_checkable
class Clock(Protocol):
    """A source of the current time, in epoch seconds (UTC)."""

    def now(self) -> float: ...


class WallClock:
    """The real time (``time.time()``): what a gateway in production uses."""

    def now(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "WallClock()"


@dataclass
class ReplayClock:
    """Simulated time = ``start`` + wall time elapsed since the clock began x ``speed``.

    For replaying a log in compressed time (benchmarks), never in production: quotas and
    account ages follow this clock, so at ``speed=1000`` a daily budget refills every 86 s.
    The elapsed wall time is measured on the monotonic clock (a wall-clock step does not
    move simulated time); :meth:`restart` re-anchors it (the gateway does so when it starts
    serving, so simulated time is ``start`` at its first request, not when it was built).
    """

    start: dt.datetime
    speed: float = 1.0
    _anchor: float = field(init=False, repr=False)
    _start_s: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError(f"start has value {self.start.isoformat()}; expected a time with a UTC offset")
        if not (self.speed > 0 and self.speed < float("inf")):
            raise ValueError(f"speed has value {self.speed}; expected a positive finite number")
        self._start_s = self.start.timestamp()
        self._anchor = time.monotonic()

    def restart(self) -> None:
        """Make simulated time ``start`` again, now."""
        self._anchor = time.monotonic()

    def now(self) -> float:
        return self._start_s + (time.monotonic() - self._anchor) * self.speed


def as_datetime(epoch_s: float) -> dt.datetime:
    """Epoch seconds as an aware UTC datetime (what rows and policy take)."""
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC)
