"""The hunt's one configuration object: every threshold and default in one place, loadable from YAML.

::

    # hunt.yaml, for ``distillguard hunt LOG --config hunt.yaml``; every key is optional
    target_fpr: 0.001          # share of benign accounts the campaign tests may flag by chance
    min_campaign: 5            # fewest accounts that make a campaign
    score: {cap: 3.0, min_exchanges: 5, profile_distance: 0.5}
    link: {high_quantile: 0.9, link_quantile: 0.5, min_carriers: 3, identity_testable: 10}
    policy: {block_risk: 0.85, member_action: verify, outlier_action: throttle}
    signals:                   # keyword arguments of each signal's constructor
      elicitation: {sample: 8}

Errors name the file, the key and the value (``hunt.yaml: link.high_quantile has value
2.0; expected a number in (0, 1)``).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from distillguard.errors import ConfigError, Location
from distillguard.policy import Policy

__all__ = ["HuntConfig", "LinkParams", "ScoreParams"]

# The hunt's settings for signals whose library defaults favour exactness over speed.
# Text rules read one distinct prompt in 8 (by a hash of its text): they were 40% of the
# hunt's CPU at 1 in 4, and on qwen-2026 at scale 0.1 1 in 8 flags the same accounts.
# A campaign is many accounts: per-account sampling noise averages out there.
DEFAULT_SIGNAL_PARAMS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {"elicitation": {"sample": 8}, "capability": {"sample": 8}}
)


@dataclass(frozen=True)
class LinkParams:
    """How shared artifacts are tested and accounts linked (:mod:`distillguard.hunt.link`).

    Which artifact kinds link, which carry bystanders and which are identity artifacts is
    not set here: each signal declares its kinds (:attr:`distillguard.signals.Signal.artifact_kinds`).
    """

    high_quantile: float = 0.9
    link_quantile: float = 0.5
    min_carriers: int = 3
    min_high_share: float = 0.5
    # The rank test's half rule (:func:`distillguard.hunt.link.test_artifacts`): most
    # carriers rank above this quantile, one tail wider than ``high_quantile``'s.
    rank_quantile: float = 0.8
    # Family-wise error of the campaign tests; set from ``HuntConfig.target_fpr``.
    alpha: float = 0.01
    identity_max_share: float = 0.01
    identity_min_ties: int = 2
    bystander_min_ties: int = 2
    # An identity artifact with this many ranked carriers is a sample big enough to test on
    # its own: a webmail domain's customers rank like everyone else and link nothing.
    identity_testable: int = 10
    # Two identity webs join into one (then tested as a whole) when at least this share of
    # each web's members carry one linking artifact: cells of one operator behind one pool.
    join_share: float = 0.5
    # Association: an account outside every campaign that holds a small identity artifact
    # (at most ``identity_testable`` carriers) of which at least ``associate_min`` carriers,
    # and at least half of all, are one campaign's members, joins that campaign.
    associate_min: int = 1
    # An associated account pulls in its own siblings, round after round until nothing joins;
    # this caps the rounds (a chain of single ties that long is rarer than a fleet).
    associate_rounds: int = 10
    # Association through an operator's signatures (script lines): an account joins a
    # campaign when this many of the signatures it carries are each carried mostly by the
    # campaign's members, and it ranks at or above ``link_quantile`` of ordinary accounts.
    signature_min_ties: int = 2
    # Association by rotation: an account that uses more operators' networks than all but
    # ``1 - rotator_quantile`` of the ordinary accounts (those outside every campaign) passes
    # the rank guard as a ranked one does (:func:`distillguard.hunt.link.associates`).
    rotator_quantile: float = 0.99
    # Association's count tests (rings of rotators, rotating senders, sign-ups beside a
    # member) join everything they counted, so a count also needs chance to account for at
    # most this share of it: a count of 44 where 21 are expected clears any p-value and
    # would let about 21 strangers in (:meth:`distillguard.hunt.link.CountTest.passes`).
    count_chance_share: float = 0.1
    # Webs of accounts registered before the log opened are united by the day their requests
    # began (``link.began_together``) only where their registrations lie closer together
    # than this share of random draws from the population's would.
    registered_together: float = 0.01
    merge_ratio: float = 0.1
    merge_bridge: float = 1.0
    min_part_share: float = 0.05
    # A piece under ``min_part`` that sends less than this share of its tie weight outside
    # is a closed group (another operator's web touching this one through a network or
    # two), not a fragment of a sparse web: it stands alone. Fragments send 10-25 %.
    closed_share: float = 0.01
    # Set from ``HuntConfig.min_campaign``.
    min_campaign: int = 5
    # Artifact kinds by role, from the signals' declarations (see ``roles_from_signals``).
    supporting: tuple[str, ...] = field(default_factory=lambda: _roles()[0])
    bystander: tuple[str, ...] = field(default_factory=lambda: _roles()[1])
    identity: tuple[str, ...] = field(default_factory=lambda: _roles()[2])
    group: tuple[str, ...] = field(default_factory=lambda: _roles()[3])
    joining: tuple[str, ...] = field(default_factory=lambda: _roles()[4])
    signature: tuple[str, ...] = field(default_factory=lambda: _roles()[5])
    cohort: tuple[str, ...] = field(default_factory=lambda: _roles()[6])
    wording: tuple[str, ...] = field(default_factory=lambda: _roles()[7])
    origin: tuple[str, ...] = field(default_factory=lambda: _roles()[8])


def _roles() -> tuple[tuple[str, ...], ...]:
    from distillguard.signals import artifact_kinds

    kinds = artifact_kinds()
    return (
        tuple(k for k, a in kinds.items() if not a.links),
        tuple(k for k, a in kinds.items() if a.bystander),
        tuple(k for k, a in kinds.items() if a.identity),
        tuple(k for k, a in kinds.items() if a.group),
        tuple(k for k, a in kinds.items() if a.joins),
        tuple(k for k, a in kinds.items() if a.signature),
        tuple(k for k, a in kinds.items() if a.cohort),
        tuple(k for k, a in kinds.items() if a.wording),
        tuple(k for k, a in kinds.items() if a.origin),
    )


@dataclass(frozen=True)
class ScoreParams:
    """Behaviour and campaign scoring (:mod:`distillguard.hunt.score`)."""

    # A tail score counts up to this many -log10 units (one signal cannot carry an account).
    cap: float = 3.0
    # Accounts with fewer exchanges are not ranked alone (they can join a campaign).
    min_exchanges: int = 5
    # Parts of a split component whose behaviour profiles differ by less are one campaign.
    profile_distance: float = 0.5


_DERIVED = {
    "alpha": "target_fpr", "min_campaign": "min_campaign", "supporting": None, "bystander": None, "identity": None, "group": None, "joining": None, "signature": None, "cohort": None, "wording": None, "origin": None,
}  # fmt: skip


@dataclass(frozen=True)
class HuntConfig:
    """Everything the hunt can be told. ``link.alpha`` and ``link.min_campaign`` are derived:
    the campaign tests' family-wise error is tied to the target (at 0.1 % of benign
    accounts, at most a 1 % chance that any artifact or web is called by chance).

    Examples
    --------
    >>> c = HuntConfig.from_dict({"target_fpr": 0.0001, "link": {"high_quantile": 0.95}})
    >>> c.link.alpha, c.link.high_quantile, c.policy.block_risk
    (0.001, 0.95, 0.85)
    """

    target_fpr: float = 0.001
    min_campaign: int = 5
    score: ScoreParams = field(default_factory=ScoreParams)
    link: LinkParams = field(default_factory=LinkParams)
    policy: Policy = field(default_factory=Policy)
    signals: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: DEFAULT_SIGNAL_PARAMS)
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        where = self.source or "config"
        if not 0.0 < self.target_fpr < 1.0:
            raise ConfigError(f"{where}: target_fpr has value {self.target_fpr!r}; expected a rate in (0, 1)")
        if self.min_campaign < 2:
            raise ConfigError(f"{where}: min_campaign has value {self.min_campaign!r}; expected at least 2")
        link = dataclasses.replace(self.link, alpha=min(0.05, 10 * self.target_fpr), min_campaign=self.min_campaign)
        object.__setattr__(self, "link", link)
        _check_signals(self.signals, where)

    def build_signals(self) -> list[Any]:
        """One instance of every registered signal, and of each optional signal this config
        names (``signals: {paraphrase: {}}``), with this config's parameters."""
        from distillguard.signals import OPTIONAL, SIGNALS

        chosen = {**SIGNALS, **{n: cls for n, cls in OPTIONAL.items() if n in self.signals and n not in SIGNALS}}
        return [cls(**self.signals.get(name, {})) for name, cls in chosen.items()]

    @classmethod
    def load(cls, path: Path | str) -> HuntConfig:
        """Read a config YAML (see the module docstring)."""
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read hunt config: {exc.strerror}", Location(str(p))) from exc
        except yaml.MarkedYAMLError as exc:
            line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
            raise ConfigError(f"invalid YAML: {exc.problem}", Location(str(p), line=line)) from exc
        return cls.from_dict(data if data is not None else {}, source=str(p))

    @classmethod
    def from_dict(cls, data: Any, source: str | None = None) -> HuntConfig:
        """Build from parsed YAML; unknown keys and wrong values name the key and the value."""
        where = source or "config"
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: a hunt config is a mapping of settings, got {data!r}")
        top = {"target_fpr": float, "min_campaign": int, "score": None, "link": None, "policy": None, "signals": None}
        for key in data:
            if key not in top:
                raise ConfigError(f"{where}: unknown key {key!r}; expected one of {', '.join(top)}")
        kwargs: dict[str, Any] = {}
        for key in ("target_fpr", "min_campaign"):
            if key in data:
                kwargs[key] = _typed(data[key], top[key], key, where)  # type: ignore[arg-type]
        for key, kind in (("score", ScoreParams), ("link", LinkParams)):
            if key in data:
                kwargs[key] = _section(kind, data[key], key, where)
        if "policy" in data:
            if not isinstance(data["policy"], Mapping):
                raise ConfigError(f"{where}: policy has value {data['policy']!r}; expected a mapping")
            kwargs["policy"] = Policy.from_dict(data["policy"], source=f"{where}: policy")
        if "signals" in data:
            sig = data["signals"]
            if not isinstance(sig, Mapping) or not all(isinstance(v, Mapping) for v in sig.values()):
                raise ConfigError(f"{where}: signals has value {sig!r}; expected signal name -> parameters")
            kwargs["signals"] = {**DEFAULT_SIGNAL_PARAMS, **{k: dict(v) for k, v in sig.items()}}
        return cls(**kwargs, source=source)


def _typed(value: Any, kind: type, key: str, where: str) -> Any:
    ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
    if not ok or isinstance(value, bool):
        raise ConfigError(f"{where}: {key} has value {value!r}; expected {'a number' if kind is float else 'an integer'}")
    return value


def _section(kind: type, data: Any, name: str, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: {name} has value {data!r}; expected a mapping")
    defaults = kind()
    allowed = {f.name: type(getattr(defaults, f.name)) for f in dataclasses.fields(kind) if f.name not in _DERIVED}
    out = {}
    for key, value in data.items():
        if key not in allowed:
            hint = f" (set by {_DERIVED[key]} at the top level)" if _DERIVED.get(key) else ""
            raise ConfigError(
                f"{where}: {name}.{key} is not a {name} setting{hint}; expected one of {', '.join(sorted(allowed))}"
            )
        out[key] = _typed(value, allowed[key], f"{name}.{key}", where)
        if key.endswith(("quantile", "share")) and not 0.0 < out[key] < 1.0:
            raise ConfigError(f"{where}: {name}.{key} has value {value!r}; expected a number in (0, 1)")
        if isinstance(out[key], int) and out[key] < 0:
            raise ConfigError(f"{where}: {name}.{key} has value {value!r}; expected a non-negative integer")
    return kind(**out)


def _check_signals(signals: Mapping[str, Mapping[str, Any]], where: str) -> None:
    from distillguard.signals import OPTIONAL, SIGNALS

    known = {**OPTIONAL, **SIGNALS}
    for name, params in signals.items():
        if name not in known:
            raise ConfigError(f"{where}: signals.{name} is not a signal; expected one of {', '.join(known)}")
        accepted = set(inspect.signature(known[name].__init__).parameters) - {"self"}
        for key in params:
            if key not in accepted:
                raise ConfigError(
                    f"{where}: signals.{name}.{key} is not a parameter of {known[name].__name__}; "
                    f"expected one of {', '.join(sorted(accepted)) or '(none)'}"
                )
