"""Signals: one module per piece of evidence, each implementing :class:`Signal`.

A new signal is one module plus one line in ``SIGNALS``.
"""

from __future__ import annotations

from distillguard.signals.base import Finding, Signal, TableSpec, tail_score
from distillguard.signals.capability import CapabilitySignal
from distillguard.signals.elicitation import ElicitationSignal
from distillguard.signals.infrastructure import InfrastructureSignal
from distillguard.signals.lockstep import LockstepSignal
from distillguard.signals.output_harvesting import OutputHarvestingSignal
from distillguard.signals.registration import RegistrationSignal
from distillguard.signals.template_repetition import TemplateSignal
from distillguard.signals.temporal import TemporalSignal

SIGNALS: dict[str, type[Signal]] = {
    "temporal": TemporalSignal,
    "template": TemplateSignal,
    "output_harvesting": OutputHarvestingSignal,
    "elicitation": ElicitationSignal,
    "capability": CapabilitySignal,
    "infrastructure": InfrastructureSignal,
    "lockstep": LockstepSignal,
}

__all__ = [
    "SIGNALS",
    "CapabilitySignal",
    "ElicitationSignal",
    "Finding",
    "InfrastructureSignal",
    "LockstepSignal",
    "OutputHarvestingSignal",
    "RegistrationSignal",
    "Signal",
    "TableSpec",
    "TemplateSignal",
    "TemporalSignal",
    "tail_score",
]
