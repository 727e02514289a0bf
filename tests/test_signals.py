"""Every registered signal passes the conformance checks (ids ``Signal:check``)."""

from __future__ import annotations

import pytest

from distillguard.checks import Check, yield_checks
from distillguard.signals import SIGNALS
from distillguard.signals.base import Signal

CASES = [(cls(), check) for cls in SIGNALS.values() for check in yield_checks(cls())]


@pytest.mark.parametrize(
    ("signal", "check"), CASES, ids=[f"{type(s).__name__}:{c.__name__}" for s, c in CASES]
)
def test_signal_conforms(signal: Signal, check: Check) -> None:
    check(signal)
