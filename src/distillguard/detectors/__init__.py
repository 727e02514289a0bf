"""Detectors other than the hunt, each implementing :class:`distillguard.detector.Detector`.

``baseline`` (:class:`VolumeBaseline`) is the per-account volume rule the bench compares
the hunt against; it is a yardstick, not the product. Detectors are looked up by name
through :data:`distillguard.detector.DETECTORS`.
"""

from distillguard.detectors.baseline import VolumeBaseline

__all__ = ["VolumeBaseline"]
