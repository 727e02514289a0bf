"""Detectors: the protocol every detector implements, its registry, and the volume baseline.

:class:`Detector` is what the bench, the hunt and the gateway drive; :data:`DETECTORS`
maps a name to ``"module:Class"`` so heavy detectors are imported only when asked for
(``hunt`` is :class:`distillguard.hunt.detector.HuntDetector`). ``baseline``
(:class:`VolumeBaseline`) is the per-account volume rule the bench compares the hunt
against; it is a yardstick, not the product.
"""

from distillguard.detectors.base import DETECTORS, Detector, get_detector
from distillguard.detectors.baseline import VolumeBaseline

__all__ = ["DETECTORS", "Detector", "VolumeBaseline", "get_detector"]
