"""The public surface is pinned: every exported name exists, lists are sorted, nothing private leaks."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import distillguard

PACKAGES = ["distillguard", "distillguard.signals", "distillguard.detectors", "distillguard.hunt", "distillguard.policy",
            "distillguard.verdicts", "distillguard.hunt.config", "distillguard.hunt.score", "distillguard.hunt.explain",
            "distillguard.hunt.cluster", "distillguard.signals.prepare"]  # fmt: skip


def test_top_level_names() -> None:
    assert distillguard.__all__ == sorted(distillguard.__all__)
    assert set(distillguard.__all__) == {
        "ColumnMapping", "Detector", "DistillguardError", "HuntConfig", "HuntDetector", "HuntState", "Policy",
        "Signal", "Verdicts", "__version__", "prepare", "run_bench", "run_hunt", "simulate",
    }  # fmt: skip
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        distillguard.nope  # noqa: B018


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert not any(n.startswith("_") and n != "__version__" for n in exported)
    for n in exported:
        assert getattr(module, n) is not None, f"{name}.{n}"


def test_import_is_light() -> None:
    code = "import sys, distillguard; print(sorted(m for m in ('polars', 'scipy', 'igraph') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
