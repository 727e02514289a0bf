"""Keyed output watermarks, their detectors and the suspect-model test.

The modules named here need only numpy and scipy; the logits processors, SynthID, the
tiny-model proof and the suspect endpoint import torch, transformers, tokenizers or
httpx lazily and name ``pip install 'distillguard[watermark]'`` when they are missing.
Names are imported on first use, so ``distillguard --help`` (which registers the
``watermark`` sub-command) stays quick.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Detection": "detect",
    "Scorer": "detect",
    "TextDetector": "detect",
    "best_of": "detect",
    "detect_ids": "detect",
    "detect_many": "detect",
    "GreenList": "greenlist",
    "GreenListLogitsProcessor": "greenlist",
    "KeyStore": "keys",
    "WatermarkKey": "keys",
    "derive": "keys",
    "LexicalPolicy": "lexical",
    "LexicalWatermark": "lexical",
    "cap_length": "perturb",
    "strip_reasoning": "perturb",
    "OpenAIEndpoint": "suspect",
    "SuspectReport": "suspect",
    "suspect_test": "suspect",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'distillguard.watermark' has no attribute {name!r}") from None
    return getattr(importlib.import_module(f"distillguard.watermark.{module}"), name)
