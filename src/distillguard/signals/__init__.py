"""Signals: one module per piece of evidence, each implementing :class:`Signal`.

A new signal is one module plus one line in ``SIGNALS`` (or :func:`register` from outside
the package): its features, artifact kinds and evidence then reach the hunt with no edit
under ``hunt/``, and ``tests/test_signals.py`` runs the conformance checks on it.
"""

from __future__ import annotations

from distillguard.errors import ConfigError
from distillguard.signals.base import ArtifactKind, Finding, Signal, TableSpec, tail_score
from distillguard.signals.capability import CapabilitySignal
from distillguard.signals.conversation_script import ConversationScriptSignal
from distillguard.signals.elicitation import ElicitationSignal
from distillguard.signals.infrastructure import InfrastructureSignal
from distillguard.signals.lived_time import LivedTimeSignal
from distillguard.signals.lockstep import LockstepSignal
from distillguard.signals.output_harvesting import OutputHarvestingSignal
from distillguard.signals.paraphrase import ParaphraseSignal
from distillguard.signals.proxy_pool import ProxyPoolSignal
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
    "proxy_pool": ProxyPoolSignal,
    "lockstep": LockstepSignal,
    "registration": RegistrationSignal,
    "lived_time": LivedTimeSignal,
    "script": ConversationScriptSignal,
}


# Not in SIGNALS yet: it costs the batch hunt 2.5x its time (qwen-2026 at scale 0.02: 57-88 s
# without it, 167-177 s with it) and changed no verdict on the demo log. Opt in with
# ``register(ParaphraseSignal)``, or name it in a hunt config (``signals: {paraphrase: {}}``).
OPTIONAL: dict[str, type[Signal]] = {"paraphrase": ParaphraseSignal}


def register(cls: type[Signal]) -> type[Signal]:
    """Add a signal class to :data:`SIGNALS` under its ``name`` (usable as a decorator).

    Refuses a name already taken by another class, and artifact kinds another signal
    already declares: two signals emitting the same kind would silently share links.
    """
    other = SIGNALS.get(cls.name)
    if other is not None and other is not cls:
        raise ConfigError(f"signal name {cls.name!r} is taken by {other.__name__}")
    taken = {k: s.name for s in SIGNALS.values() if s is not cls for k in s.artifact_kinds}
    clash = sorted(k for k in cls.artifact_kinds if k in taken)
    if clash:
        raise ConfigError(f"signal {cls.name!r} declares artifact kind {clash[0]!r}, already declared by {taken[clash[0]]!r}")
    SIGNALS[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a signal added with :func:`register` (tests, plug-ins being unloaded)."""
    SIGNALS.pop(name, None)


def artifact_kinds() -> dict[str, ArtifactKind]:
    """Every artifact kind the registered signals declare, by kind."""
    return {k: a for cls in (*SIGNALS.values(), *OPTIONAL.values()) for k, a in cls.artifact_kinds.items()}


def context_relative_features() -> frozenset[str]:
    """Every feature, named ``<signal>.<feature>`` as the hunt joins them, that measures an
    account against its context, its claims or its co-users (:attr:`Signal.context_relative`)."""
    return frozenset(f"{cls.name}.{f}" for cls in (*SIGNALS.values(), *OPTIONAL.values()) for f in cls.context_relative)


__all__ = [
    "OPTIONAL",
    "SIGNALS",
    "ArtifactKind",
    "CapabilitySignal",
    "ElicitationSignal",
    "Finding",
    "InfrastructureSignal",
    "LivedTimeSignal",
    "LockstepSignal",
    "OutputHarvestingSignal",
    "ParaphraseSignal",
    "ProxyPoolSignal",
    "RegistrationSignal",
    "Signal",
    "TableSpec",
    "TemplateSignal",
    "TemporalSignal",
    "artifact_kinds",
    "context_relative_features",
    "register",
    "tail_score",
    "unregister",
]
