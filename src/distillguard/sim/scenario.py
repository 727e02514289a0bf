"""Scenarios are YAML data: who is on the platform, which campaigns run, when, on which models.

A scenario names a window, model releases, a benign population by archetype and a
list of campaigns; :func:`load_scenario` accepts a built-in name (``smoke``,
``demo``, ``qwen-2026``, ``feb-2026``, ``tactics-2026``) or a path, and :meth:`Scenario.scaled`
shrinks it so that account counts and total volumes stay proportional.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from distillguard.errors import ConfigError, Location

__all__ = [
    "ATTACK",
    "BENIGN",
    "Campaign",
    "ModelRelease",
    "Population",
    "Scenario",
    "builtin_names",
    "load_scenario",
]

BENIGN = ("casual", "developer", "agent_user", "enterprise_app", "eval_runner", "nat_shared", "org_member")
"""Benign archetypes, including the traps a naive detector falls into."""
ATTACK = ("naive_scraper", "hydra", "stealth", "reasoning_harvester", "agentic_harvester", "careful", "disposable")
"""Attack archetypes (``careful`` and ``disposable`` combine the tactics of :mod:`distillguard.sim.tactics`)."""
TARGETS = ("coding", "agentic", "reasoning", "long_horizon", "tool_use", "roleplay", "general")


@dataclass(frozen=True)
class ModelRelease:
    """A model the API serves from ``released`` on."""

    name: str
    released: dt.datetime


@dataclass(frozen=True)
class Population:
    """One benign archetype: how many accounts, mean exchanges per account, groups (NAT/org).

    ``params`` are opt-in traps (``abroad``: share living outside their billing country's
    timezone; ``cgnat``: share of NAT groups that are a mobile carrier's CGNAT;
    ``answer_format``: eval runners send a fixed answer-format system prompt;
    ``recycled_phones``: share of accounts registered in the window whose phone number a
    campaign verified accounts with earlier, :func:`~distillguard.sim.population.recycle_phones`), so
    scenarios that do not name them simulate exactly as before.
    """

    archetype: str
    accounts: int
    exchanges_per_account: float
    groups: int = 0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Campaign:
    """One distillation campaign: an archetype run by one operator over many accounts."""

    id: str
    archetype: str
    accounts: int
    exchanges: int
    targets: tuple[str, ...] = ("general",)
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """A whole simulated platform for one window."""

    name: str
    start: dt.datetime
    end: dt.datetime
    models: tuple[ModelRelease, ...]
    population: tuple[Population, ...]
    campaigns: tuple[Campaign, ...]
    seed: int = 0
    description: str = ""

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    def scaled(self, scale: float) -> tuple[Scenario, dict[str, float]]:
        """Accounts × ``scale`` (at least one each); per-account volume is kept unless the
        count had to be rounded up, so total volume is proportional either way.

        Returns the scaled scenario and, per population archetype / campaign id, the
        factor its per-account volume was multiplied by.
        """
        if scale <= 0:
            raise ConfigError(f"scale must be > 0, got {scale}")
        vol: dict[str, float] = {}
        pops = []
        for p in self.population:
            n = max(1, round(p.accounts * scale)) if p.accounts else 0
            f = (p.accounts * scale / n) if n else 1.0
            vol[p.archetype] = f
            groups = max(1, round(p.groups * scale)) if p.groups else 0
            pops.append(replace(p, accounts=n, exchanges_per_account=p.exchanges_per_account * f,
                                groups=min(groups, n)))
        camps = []
        for c in self.campaigns:
            n = max(1, round(c.accounts * scale))
            ex = max(n, round(c.exchanges * scale))
            vol[c.id] = 1.0
            camps.append(replace(c, accounts=n, exchanges=ex))
        return replace(self, population=tuple(pops), campaigns=tuple(camps)), vol


def builtin_names() -> list[str]:
    """Names of the scenarios shipped in ``distillguard/scenarios``."""
    root = importlib.resources.files("distillguard") / "scenarios"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def _when(value: Any, key: str, src: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        d = value
    elif isinstance(value, dt.date):
        d = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            d = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"scenario key {key!r} has value {value!r}: not an ISO date", Location(src)) from None
    else:
        raise ConfigError(f"scenario key {key!r} has value {value!r}: not a date", Location(src))
    return d.replace(tzinfo=dt.UTC) if d.tzinfo is None else d.astimezone(dt.UTC)


def _num(d: dict[str, Any], key: str, where: str, src: str, default: float | None = None) -> float:
    v = d.get(key, default)
    if v is None:
        raise ConfigError(f"scenario {where} is missing {key!r}", Location(src))
    if not isinstance(v, int | float) or v < 0:
        raise ConfigError(f"scenario {where} key {key!r} has value {v!r}: expected a number >= 0", Location(src))
    return float(v)


def parse_scenario(data: Any, src: str = "<scenario>") -> Scenario:
    """Build a :class:`Scenario` from parsed YAML, naming the key and value of any error."""
    if not isinstance(data, dict):
        raise ConfigError("scenario must be a mapping", Location(src))
    window = data.get("window")
    if not isinstance(window, dict) or "start" not in window or "end" not in window:
        raise ConfigError("scenario needs window: {start: DATE, end: DATE}", Location(src))
    start, end = _when(window["start"], "window.start", src), _when(window["end"], "window.end", src)
    if end <= start:
        raise ConfigError(f"scenario window ends ({end}) before it starts ({start})", Location(src))
    models = tuple(
        ModelRelease(str(m["name"]), _when(m.get("released", start), "models.released", src))
        for m in data.get("models") or [{"name": "model-1", "released": start - dt.timedelta(days=90)}]
    )
    models = tuple(sorted(models, key=lambda m: m.released))
    pops = []
    for name, spec in (data.get("population") or {}).items():
        if name not in BENIGN:
            raise ConfigError(f"scenario population has unknown archetype {name!r}; expected one of {BENIGN}",
                              Location(src))
        spec = spec or {}
        params = spec.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"scenario population.{name} key 'params' has value {params!r}: expected a mapping",
                              Location(src))
        pops.append(Population(name, int(_num(spec, "accounts", f"population.{name}", src)),
                               _num(spec, "exchanges_per_account", f"population.{name}", src),
                               int(_num(spec, "groups", f"population.{name}", src, 0)), dict(params)))
    camps = []
    for i, spec in enumerate(data.get("campaigns") or []):
        where = f"campaigns[{i}]"
        if not isinstance(spec, dict):
            raise ConfigError(f"scenario {where} must be a mapping", Location(src))
        arch = spec.get("archetype")
        if arch not in ATTACK:
            raise ConfigError(f"scenario {where} key 'archetype' has value {arch!r}; expected one of {ATTACK}",
                              Location(src))
        targets = tuple(spec.get("targets") or ("general",))
        bad = [t for t in targets if t not in TARGETS]
        if bad:
            raise ConfigError(f"scenario {where} key 'targets' has unknown {bad}; expected some of {TARGETS}",
                              Location(src))
        camps.append(Campaign(
            id=str(spec.get("id") or f"{arch}-{i + 1}"),
            archetype=arch,
            accounts=max(1, int(_num(spec, "accounts", where, src))),
            exchanges=int(_num(spec, "exchanges", where, src)),
            targets=targets,
            start=_when(spec["start"], f"{where}.start", src) if spec.get("start") else None,
            end=_when(spec["end"], f"{where}.end", src) if spec.get("end") else None,
            params=dict(spec.get("params") or {}),
        ))
    ids = [c.id for c in camps]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"scenario campaign ids repeat: {ids}", Location(src))
    return Scenario(str(data.get("name") or Path(src).stem), start, end, models, tuple(pops), tuple(camps),
                    int(data.get("seed") or 0), str(data.get("description") or ""))


def load_scenario(scenario: str | Path) -> Scenario:
    """A built-in scenario by name, or a YAML file by path.

    A built-in name wins over a same-named folder or file without a YAML suffix in the
    working directory: ``demo`` is always the built-in demo, ``./demo.yaml`` a file.
    """
    p = Path(scenario)
    builtin = str(scenario) in builtin_names() and p.suffix not in (".yaml", ".yml")
    if not builtin and (p.suffix in (".yaml", ".yml") or p.is_file()):
        if not p.is_file():
            raise ConfigError(f"scenario file {p} does not exist")
        text, src = p.read_text(encoding="utf-8"), str(p)
    else:
        res = importlib.resources.files("distillguard") / "scenarios" / f"{scenario}.yaml"
        if not res.is_file():
            raise ConfigError(f"unknown scenario {scenario!r}; built-ins are {', '.join(builtin_names())} "
                              "(or pass a YAML file)")
        text, src = res.read_text(encoding="utf-8"), f"scenarios/{scenario}.yaml"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"scenario is not valid YAML: {exc}",
                          Location(src, line=mark.line + 1 if mark else None)) from None
    return parse_scenario(data, src)
