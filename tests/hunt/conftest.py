"""Fixtures shared by the hunt's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from distillguard.sim import simulate


@pytest.fixture(scope="session")
def demo12_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo scenario, seed 12, without response text: small, 10 days, every campaign kind."""
    out = tmp_path_factory.mktemp("demo12")
    simulate("demo", seed=12, out=out, progress=False, responses=False)
    return out
