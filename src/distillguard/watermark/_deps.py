"""Lazy imports of the ``watermark`` extra, so the core package imports without torch."""

from __future__ import annotations

import importlib
from types import ModuleType

from distillguard.errors import ConfigError

INSTALL_HINT = "pip install 'distillguard[watermark]'"


def require(module: str) -> ModuleType:
    """Import ``module`` or raise an error that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"the watermark feature needs {module!r}, which is not installed; run: {INSTALL_HINT}"
        ) from exc
