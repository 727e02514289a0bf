"""Keyed output watermarks, their detectors and the suspect-model test.

The modules named here need only numpy and scipy; the logits processors, SynthID, the
tiny-model proof and the suspect endpoint import torch, transformers, tokenizers or
httpx lazily and name ``pip install 'distillguard[watermark]'`` when they are missing.
"""

from distillguard.watermark.detect import (
    Detection,
    Scorer,
    TextDetector,
    best_of,
    detect_ids,
    detect_many,
)
from distillguard.watermark.greenlist import GreenList, GreenListLogitsProcessor
from distillguard.watermark.keys import KeyStore, WatermarkKey, derive
from distillguard.watermark.lexical import LexicalPolicy, LexicalWatermark
from distillguard.watermark.perturb import cap_length, strip_reasoning
from distillguard.watermark.suspect import OpenAIEndpoint, SuspectReport, suspect_test

__all__ = [
    "Detection",
    "GreenList",
    "GreenListLogitsProcessor",
    "KeyStore",
    "LexicalPolicy",
    "LexicalWatermark",
    "OpenAIEndpoint",
    "Scorer",
    "SuspectReport",
    "TextDetector",
    "WatermarkKey",
    "best_of",
    "cap_length",
    "derive",
    "detect_ids",
    "detect_many",
    "strip_reasoning",
    "suspect_test",
]
