"""distillguard: find, stop and prove distillation attacks on a model served over an API.

The public surface is short; each name is imported on first use, so ``import distillguard``
(and ``distillguard --help``) stays instant. The parts are subpackages named by concept:
``signals``, ``hunt``, ``detectors``, ``sim``, ``bench``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "ColumnMapping": "distillguard.config",
    "Detector": "distillguard.detectors",
    "DistillguardError": "distillguard.errors",
    "HuntConfig": "distillguard.hunt.config",
    "HuntDetector": "distillguard.hunt.detector",
    "HuntState": "distillguard.hunt.state",
    "Policy": "distillguard.policy",
    "Signal": "distillguard.signals",
    "Verdicts": "distillguard.verdicts",
    "prepare": "distillguard.signals.prepare",
    "run_bench": "distillguard.bench",
    "run_hunt": "distillguard.hunt",
    "simulate": "distillguard.sim",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'distillguard' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)
