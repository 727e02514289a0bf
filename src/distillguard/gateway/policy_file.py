"""The gateway's policy file: who gets how much, and what happens to whom.

The policy is data, never code. ``examples/policy.yaml`` is the annotated reference (a
comment on every key); it is a byte-for-byte copy of the packaged ``policy.yaml`` beside
this module, which :meth:`GatewayPolicy.default` reads, so the defaults live in one file.

A policy file may set any subset of keys: what it leaves out keeps the packaged value.
Sections with fixed keys (``release``, ``state``, ...) merge key by key; named tables
(``plans``, ``overrides``) and lists are replaced whole, so a file that defines its own
plans does not inherit ``free``/``pro``/``enterprise`` by accident.

Every problem names the file, the line, the key path and the value::

    plans.free.daily_tokens has value -5; expected a positive integer in policy.yaml:7
    release.trust.verifed is not a setting of release.trust (did you mean 'verified'?);
    expected one of clean_days, paid, verified in policy.yaml:21

:func:`validate` lists every problem of a file instead of stopping at the first.

Precedence at the door (:meth:`GatewayPolicy.door`), most specific first:

1. an ``overrides`` entry with ``action`` (a person's decision about one account);
2. ``blocklists`` (block, reason code per list: :data:`BLOCKLIST_REASONS`), then peers'
   indicators imported with ``distillguard intel import`` (``intel:``; reason ``intel_ip``,
   ``intel_prefix``, ``intel_device``, ``intel_email_domain`` or ``intel_template``; keyed
   ones are matched by hashing what the request shows with the consortium key from
   ``intel.key_env``, template sketches by sketching the request's last user turn);
3. ``allowlists`` (allow, reason ``allowlisted``): they exempt from the *risk rule* only,
   so a blocklist entry still refuses an allowlisted account;
4. otherwise nothing: the risk rule decides (:meth:`GatewayPolicy.act`, the core
   :class:`~distillguard.policy.Policy`).
"""

from __future__ import annotations

import bisect
import contextlib
import difflib
import functools
import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import yaml

from distillguard.errors import ConfigError, Location
from distillguard.policy import DECISIONS, Decision, Policy

__all__ = [
    "BLOCKLIST_REASONS",
    "DEFAULT_PATH",
    "AccountFacts",
    "Actions",
    "Allowlists",
    "Blocklists",
    "GatewayPolicy",
    "Override",
    "PlanLimits",
    "PrefixSet",
    "Release",
    "RequestFacts",
    "Stage",
    "Trust",
    "Verdict",
    "validate",
]

DEFAULT_PATH = Path(__file__).with_name("policy.yaml")

# The reason code a refusal carries, per blocklist (the 403 body and the exchange log show it).
BLOCKLIST_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "ips": "blocklist_ip",
        "prefixes": "blocklist_prefix",
        "devices": "blocklist_device",
        "email_domains": "blocklist_email_domain",
        "templates": "blocklist_template",
    }
)
STORES = ("memory", "redis")
ON_STORE_ERROR = ("closed", "open")
_LIMIT_KEYS = ("daily_tokens", "requests_per_minute", "tokens_per_minute", "max_tokens")
_REASON_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# RFC 9110 token characters: what an HTTP header name may contain.
_HEADER_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_REDIS_SCHEMES = ("redis", "rediss", "unix")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# -- value objects -------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanLimits:
    """What one account may use: tokens per day and per minute, requests per minute, and
    ``max_tokens``, the cap put on a request that gives none and the most one may ask for."""

    daily_tokens: int
    requests_per_minute: int
    tokens_per_minute: int
    max_tokens: int


@dataclass(frozen=True)
class AccountFacts:
    """What the gateway knows about an account. ``created_at`` None means unknown, and an
    account of unknown age is treated as new (pass the first-seen time when there is no
    sign-up time). ``last_action_at``: the last throttle/verify/block against it."""

    account_id: str
    plan: str | None
    created_at: datetime | None
    verified: bool = False
    paid: bool = False
    org_id: str | None = None
    last_action_at: datetime | None = None


@dataclass(frozen=True)
class RequestFacts:
    """What one request shows: client address, device fingerprint, the account's e-mail
    domain, and (only when a template blocklist or imported template sketches need them)
    the prompt and its template signatures as the hunt's evidence prints them
    (:func:`distillguard.signals.template_repetition.prompt_signatures`)."""

    ip: str | None
    device_fp: str | None
    email_domain: str | None
    templates: frozenset[str] = frozenset()
    prompt: str | None = None


@dataclass(frozen=True)
class Verdict:
    """An action with the reason code that names why, and where to appeal when refused."""

    action: Decision
    reason: str
    appeal_url: str | None = None


@dataclass(frozen=True)
class Stage:
    """From ``age_days`` on (until the next stage), an account gets ``share`` of its plan."""

    age_days: float
    share: float


@dataclass(frozen=True)
class Trust:
    """Share added per fact an account has; ``clean_share`` once no action was taken
    against it for ``clean_days`` days."""

    verified: float
    paid: float
    clean_days: int
    clean_share: float


@dataclass(frozen=True)
class Release:
    """Gradual release: a step schedule by account age, plus trust, capped at 1.

    Steps, not interpolation: a user can be told "on day 3 your limits rise to 30 %",
    and the share an account has is one row of the file, not a formula.
    ``cluster``: accounts the hunt links into one cluster share one new-account budget
    (enforced by the quota store; this object only carries the switch).
    """

    stages: tuple[Stage, ...]
    trust: Trust
    cluster: bool

    def stage_share(self, age_days: float) -> float:
        """The share of the last stage that has begun at ``age_days`` (>= 0)."""
        return self.stages[max(0, bisect.bisect_right(self._ages, age_days) - 1)].share

    @functools.cached_property
    def _ages(self) -> tuple[float, ...]:
        return tuple(s.age_days for s in self.stages)


@dataclass(frozen=True)
class PrefixSet:
    """CIDR prefixes, looked up by one set probe per distinct prefix length (at most 33
    for IPv4 and 129 for IPv6), not by a scan of the list."""

    networks: tuple[IPNetwork, ...] = ()
    # (version, prefix length) -> the networks' leading bits as integers: a probe is a shift
    # and a set lookup, not an ip_network built per prefix length (microseconds each)
    _heads: Mapping[tuple[int, int], frozenset[int]] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        heads: dict[tuple[int, int], set[int]] = {}
        for net in self.networks:
            head = int(net.network_address) >> (net.max_prefixlen - net.prefixlen)
            heads.setdefault((net.version, net.prefixlen), set()).add(head)
        object.__setattr__(self, "_heads", {k: frozenset(v) for k, v in heads.items()})

    def __contains__(self, ip: object) -> bool:
        if not isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address) or not self.networks:
            return False
        bits, value = ip.max_prefixlen, int(ip)
        return any(
            version == ip.version and (value >> (bits - length)) in heads
            for (version, length), heads in self._heads.items()
        )


@dataclass(frozen=True)
class Blocklists:
    """Refused outright; each list has its reason code (:data:`BLOCKLIST_REASONS`).

    ``email_domains`` match the domain and its subdomains (throwaway-mail services hand
    out ``x.example.com``); ``templates`` match ignoring case and a leading ``#``.
    """

    ips: frozenset[IPAddress] = frozenset()
    prefixes: PrefixSet = PrefixSet()
    devices: frozenset[str] = frozenset()
    email_domains: frozenset[str] = frozenset()
    templates: frozenset[str] = frozenset()

    def match(self, request: RequestFacts) -> str | None:
        """The reason code of the first list that holds this request, or None."""
        ip = _parse_ip(request.ip) if self.ips or self.prefixes.networks else None
        if ip is not None and ip in self.ips:
            return BLOCKLIST_REASONS["ips"]
        if ip in self.prefixes:
            return BLOCKLIST_REASONS["prefixes"]
        if request.device_fp is not None and request.device_fp in self.devices:
            return BLOCKLIST_REASONS["devices"]
        if request.email_domain and _domain_in(request.email_domain, self.email_domains):
            return BLOCKLIST_REASONS["email_domains"]
        if request.templates and not self.templates.isdisjoint(request.templates):
            return BLOCKLIST_REASONS["templates"]
        return None


@dataclass(frozen=True)
class Allowlists:
    """Never throttled or refused by the risk rule (still held to their plan's quotas)."""

    accounts: frozenset[str] = frozenset()
    orgs: frozenset[str] = frozenset()
    ips: frozenset[IPAddress] = frozenset()
    prefixes: PrefixSet = PrefixSet()

    def holds_account(self, facts: AccountFacts) -> bool:
        return facts.account_id in self.accounts or (
            facts.org_id is not None and facts.org_id in self.orgs
        )

    def holds_request(self, request: RequestFacts) -> bool:
        if not self.ips and not self.prefixes.networks:
            return False
        ip = _parse_ip(request.ip)
        return ip is not None and (ip in self.ips or ip in self.prefixes)


@dataclass(frozen=True)
class Override:
    """One account's exceptions: another plan, single limits, or a forced action.

    Overridden limits replace the plan's values; gradual release and throttling still
    apply on top, as for every account (an override raises what an account can reach, it
    does not skip the schedule for a new account).
    """

    plan: str | None = None
    daily_tokens: int | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_tokens: int | None = None
    action: Decision | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Actions:
    """What each action does at the door: throttle scales limits, verify and block refuse
    with a reason code and, when set, a link to appeal."""

    throttle_share: float
    verify_appeal_url: str | None
    block_appeal_url: str | None

    def appeal_url(self, action: str) -> str | None:
        if action == "verify":
            return self.verify_appeal_url
        return self.block_appeal_url if action == "block" else None


# -- the policy ----------------------------------------------------------------------------
@dataclass(frozen=True)
class GatewayPolicy:
    """Quotas, gradual release, lists, overrides and the risk rule, loaded from YAML.

    Examples
    --------
    >>> from datetime import datetime, timedelta, UTC
    >>> p = GatewayPolicy.default()
    >>> now = datetime(2026, 5, 1, tzinfo=UTC)
    >>> new = AccountFacts("acct_1", "free", now - timedelta(days=1))
    >>> p.release_share(new, now), p.limits(new, now).daily_tokens
    (0.1, 20000)
    >>> p.act(flagged=True, risk=0.9, outlier=False, facts=new)
    Verdict(action='block', reason='campaign_block', appeal_url=None)
    """

    identity_header: str | None
    default_plan: str
    plans: Mapping[str, PlanLimits]
    release: Release
    blocklists: Blocklists
    allowlists: Allowlists
    overrides: Mapping[str, Override]
    risk: Policy
    actions: Actions
    store: Literal["memory", "redis"]
    store_url: str
    on_store_error: Literal["closed", "open"]
    store_timeout_s: float = 0.5
    asn_header: str | None = None
    source: str = field(default="policy", compare=False)
    # Peers' indicators (``intel:``; :class:`distillguard.intel.match.IntelMatcher`), or None.
    intel: Any = field(default=None, compare=False)

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> GatewayPolicy:
        """Read a policy file; the first problem raises a :class:`ConfigError` naming
        ``file:line``, the key path and the value (see :func:`validate` for all of them)."""
        data, lines = _read_yaml(Path(path), _Problems(str(path), collect=False))
        return _build(data, _Problems(str(path), collect=False, lines=lines))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "policy") -> GatewayPolicy:
        """Build from parsed YAML (errors name ``source`` instead of a file line)."""
        return _build(data, _Problems(source, collect=False))

    @classmethod
    def default(cls) -> GatewayPolicy:
        """The packaged defaults (``policy.yaml`` beside this module = ``examples/policy.yaml``)."""
        return _default_policy()

    # -- quotas ----------------------------------------------------------------------------
    def plan_limits(self, facts: AccountFacts) -> PlanLimits:
        """The account's plan (override, else its own if the policy knows it, else
        ``default_plan``) with its override's single limits applied."""
        override = self.overrides.get(facts.account_id)
        name = override.plan if override is not None and override.plan is not None else facts.plan
        limits = self.plans.get(name or self.default_plan) or self.plans[self.default_plan]
        if override is None:
            return limits
        own = {k: getattr(override, k) for k in _LIMIT_KEYS}
        return PlanLimits(**{k: getattr(limits, k) if v is None else v for k, v in own.items()})

    def release_share(self, facts: AccountFacts, now: datetime) -> float:
        """Share of its plan an account gets now: the stage its age has reached (steps,
        see :class:`Release`) plus a trust share per fact it has, capped at 1."""
        age = _days_between(facts.created_at, now)
        share = self.release.stage_share(0.0 if age is None else age)
        trust = self.release.trust
        share += trust.verified if facts.verified else 0.0
        share += trust.paid if facts.paid else 0.0
        clean = age if facts.last_action_at is None else _days_between(facts.last_action_at, now)
        if clean is not None and clean >= trust.clean_days:
            share += trust.clean_share
        return round(min(1.0, share), 9)

    def limits(self, facts: AccountFacts, now: datetime, action: str = "allow") -> PlanLimits:
        """Plan limits x release share (x ``actions.throttle.share`` when throttled).

        Each limit is rounded down and kept at 1 or more (0 would refuse everything, which
        is verify's or block's job). ``max_tokens`` is not scaled: the length of one answer
        is part of its quality (a new user's answers should not be cut short), while
        volume, which is what a harvester needs, is held by the daily and per-minute
        budgets. It is capped at the scaled per-minute and daily budgets, since a request
        larger than those could never be served. ``verify`` and ``block`` refuse at the
        door, so their limits are ``allow``'s.
        """
        if action not in DECISIONS:
            raise ValueError(f"action has value {action!r}; expected one of {', '.join(DECISIONS)}")
        share = self.release_share(facts, now)
        if action == "throttle":
            share *= self.actions.throttle_share
        return _scaled(self.plan_limits(facts), share)

    # -- decisions -------------------------------------------------------------------------
    def is_allowlisted(self, facts: AccountFacts, request: RequestFacts) -> bool:
        """Whether the account, its org or the request's address is on an allowlist."""
        return self.allowlists.holds_account(facts) or self.allowlists.holds_request(request)

    @property
    def reads_prompt(self) -> bool:
        """Whether the door needs the prompt: a template blocklist or imported template
        sketches (each costs a fingerprint or a keyed sketch per request; see the docs)."""
        return bool(self.blocklists.templates) or bool(self.intel is not None and self.intel.intel.sketches)

    def door(self, facts: AccountFacts, request: RequestFacts) -> Verdict | None:
        """The verdict of overrides and lists (see the module docstring for the order),
        or None when the risk rule should decide."""
        forced = self._forced(facts)
        if forced is not None:
            return forced
        reason = self.blocklists.match(request)
        if reason is None and self.intel is not None:
            from distillguard.intel.match import REASONS

            hit = self.intel.request(request.ip, request.device_fp, request.email_domain)
            if hit is None and request.prompt:
                src = self.intel.template(request.prompt)
                hit = ("template", src) if src is not None else None
            reason = REASONS[hit[0]] if hit is not None else None
        if reason is not None:
            return Verdict("block", reason, self.actions.block_appeal_url)
        if self.is_allowlisted(facts, request):
            return Verdict("allow", "allowlisted")
        return None

    def act(self, flagged: bool, risk: float, outlier: bool, facts: AccountFacts) -> Verdict:
        """The core :meth:`Policy.decide`, after an override's forced action and the
        account and org allowlists (address lists need the request: see :meth:`door`).

        Reason codes: ``campaign_block`` (flagged, risk at or above ``block_risk``),
        ``campaign_member`` (flagged, below it), ``outlier``, ``allowed``.
        """
        forced = self._forced(facts)
        if forced is not None:
            return forced
        if self.allowlists.holds_account(facts):
            return Verdict("allow", "allowlisted")
        action = self.risk.decide(flagged, risk, outlier)
        if flagged:
            reason = "campaign_block" if risk >= self.risk.block_risk else "campaign_member"
        else:
            reason = "outlier" if outlier else "allowed"
        return Verdict(action, reason, self.actions.appeal_url(action))

    def _forced(self, facts: AccountFacts) -> Verdict | None:
        override = self.overrides.get(facts.account_id)
        if override is None or override.action is None:
            return None
        reason = override.reason or "override"
        return Verdict(override.action, reason, self.actions.appeal_url(override.action))


def validate(path: str | Path) -> list[str]:
    """Every problem in a policy file, each as ``message in file:line``; empty when valid."""
    problems = _Problems(str(path), collect=True)
    data, lines = _read_yaml(Path(path), problems)
    if data is not None:
        problems.lines = lines
        _build(data, problems)
    return [str(issue) for issue in problems.issues]


# -- helpers for matching and arithmetic ---------------------------------------------------
@functools.lru_cache(maxsize=65536)
def _parse_ip(text: str | None) -> IPAddress | None:
    """A request's address; an IPv4-mapped IPv6 address is its IPv4 address. Anything
    unparsable matches no list (a request never fails on its own address). Cached: the
    same clients come back, and parsing is microseconds on every request's path."""
    if not text:
        return None
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _domain_in(domain: str, domains: frozenset[str]) -> bool:
    parts = domain.rsplit("@", 1)[-1].strip().lower().rstrip(".").split(".")
    return any(".".join(parts[i:]) in domains for i in range(len(parts)))


def _template_key(template: str) -> str:
    return template.strip().lower().removeprefix("#")


def _days_between(start: datetime | None, now: datetime) -> float | None:
    """Days from ``start`` to ``now``, never negative; a naive time is taken as UTC."""
    if start is None:
        return None
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (now - start).total_seconds() / 86400)


@functools.lru_cache(maxsize=4096)
def _scaled(base: PlanLimits, share: float) -> PlanLimits:
    """``base`` x ``share`` (see :meth:`GatewayPolicy.limits`); cached, since a policy has
    few plans and stages, and this runs on every request's path."""
    daily = _scale(base.daily_tokens, share)
    per_minute = _scale(base.tokens_per_minute, share)
    return PlanLimits(
        daily_tokens=daily,
        requests_per_minute=_scale(base.requests_per_minute, share),
        tokens_per_minute=per_minute,
        max_tokens=min(base.max_tokens, per_minute, daily),
    )


def _scale(value: int, share: float) -> int:
    # round() first: 0.29 * 100 is 28.999999999999996 in floating point.
    return max(1, math.floor(round(value * share, 6)))


# -- YAML with line numbers ----------------------------------------------------------------
KeyPath = tuple[str | int, ...]


def _read_yaml(path: Path, problems: _Problems) -> tuple[Any, dict[KeyPath, int]]:
    """Parse a file once into plain data plus the 1-based line of every key and item."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.fail((), f"cannot read gateway policy: {exc.strerror or exc}")
        return None, {}
    loader = yaml.SafeLoader(text)
    lines: dict[KeyPath, int] = {}
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, lines
        # Lines are read before construction, which rewrites ``<<`` merge keys in place.
        lines[()] = node.start_mark.line + 1
        _walk(node, (), lines, problems)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problems.fail(
            (),
            f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
            line=mark.line + 1 if mark else None,
        )
        return None, {}
    finally:
        loader.dispose()
    return ({} if data is None else data), lines


def _walk(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], problems: _Problems) -> None:
    # A policy nests five levels at most; the bound stops a recursive YAML alias (&a [*a]).
    if len(path) > 8:
        return
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = (
                str(key_node.value)
                if isinstance(key_node, yaml.ScalarNode)
                else repr(key_node.value)
            )
            line = key_node.start_mark.line + 1
            if key == "<<":
                continue
            if key in seen:
                problems.fail(
                    (*path, key),
                    f"{_fmt((*path, key))} appears twice (lines {seen[key]} and {line}); "
                    "the second would silently replace the first",
                    line=line,
                )
            seen[key] = line
            lines[(*path, key)] = line
            _walk(value_node, (*path, key), lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _walk(item, (*path, i), lines, problems)


def _fmt(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_\-]+", part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out or "(top level)"


class _Problems:
    """Raises the first problem, or collects them all (for :func:`validate`)."""

    def __init__(self, source: str, collect: bool, lines: dict[KeyPath, int] | None = None) -> None:
        self.source, self.collect, self.lines = source, collect, lines or {}
        self.issues: list[ConfigError] = []

    def line_of(self, path: KeyPath) -> int | None:
        """The line of the key, else of the nearest enclosing key the file has."""
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)

    def fail(self, path: KeyPath, message: str, line: int | None = None) -> None:
        error = ConfigError(message, Location(self.source, line=line or self.line_of(path)))
        if not self.collect:
            raise error
        self.issues.append(error)

    def bad(self, path: KeyPath, value: Any, expected: str) -> None:
        self.fail(path, f"{_fmt(path)} has value {value!r}; expected {expected}")


# -- building ------------------------------------------------------------------------------
_SCHEMA: dict[KeyPath, tuple[str, ...]] = {
    (): ("identity", "default_plan", "plans", "release", "blocklists", "allowlists", "overrides", "risk",
         "actions", "state", "intel"),
    ("intel",): ("files", "key_env"),
    ("identity",): ("header", "asn_header"),
    ("release",): ("stages", "trust", "cluster"),
    ("release", "trust"): ("verified", "paid", "clean_days"),
    ("release", "trust", "clean_days"): ("days", "share"),
    ("blocklists",): tuple(BLOCKLIST_REASONS),
    ("allowlists",): ("accounts", "orgs", "ips", "prefixes"),
    ("actions",): ("throttle", "verify", "block"),
    ("actions", "throttle"): ("share",),
    ("actions", "verify"): ("appeal_url",),
    ("actions", "block"): ("appeal_url",),
    ("state",): ("store", "url", "on_store_error", "timeout_ms"),
    ("risk",): tuple(f.name for f in fields(Policy)),
}  # fmt: skip
_OVERRIDE_KEYS = ("plan", *_LIMIT_KEYS, "action", "reason")
_STAGE_KEYS = ("age_days", "share")
_MISSING = object()


@functools.cache
def _default_data() -> Mapping[str, Any]:
    data, _ = _read_yaml(DEFAULT_PATH, _Problems(str(DEFAULT_PATH), collect=False))
    return cast(Mapping[str, Any], data)


@functools.cache
def _default_policy() -> GatewayPolicy:
    return GatewayPolicy.load(DEFAULT_PATH)


def _merge(base: Any, over: Any, path: KeyPath) -> Any:
    """``over`` on top of ``base``: fixed-key sections merge key by key, anything else
    (named tables, lists, scalars) is replaced."""
    if path in _SCHEMA and isinstance(base, Mapping) and isinstance(over, Mapping):
        return {k: _merge(base.get(k, _MISSING), over[k], (*path, str(k))) if k in over else base[k]
                for k in (*base, *(k for k in over if k not in base))}  # fmt: skip
    return over


class _Reader:
    """Typed getters that report a bad value and return None, so that one pass can find
    every problem; :func:`_build` only constructs the policy when there was none."""

    def __init__(self, problems: _Problems) -> None:
        self.p = problems

    def section(
        self, path: KeyPath, value: Any, known: tuple[str, ...]
    ) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.p.bad(path, value, f"a mapping with keys {', '.join(known)}")
            return None
        for key in value:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                where = f"a setting of {_fmt(path)}" if path else "a top-level setting"
                self.p.fail((*path, str(key)), f"{_fmt((*path, str(key)))} is not {where}{hint}; "
                            f"expected one of {', '.join(sorted(known))}")  # fmt: skip
        return value

    def need(self, path: KeyPath, data: Mapping[str, Any], key: str) -> Any:
        if key not in data:
            self.p.fail(path, f"{_fmt(path)} is missing {key!r}")
            return _MISSING
        return data[key]

    def integer(self, path: KeyPath, value: Any, minimum: int = 1) -> int | None:
        if value is _MISSING:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            self.p.bad(
                path, value, "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            )
            return None
        return value

    def number(
        self, path: KeyPath, value: Any, low: float, high: float, low_open: bool
    ) -> float | None:
        if value is _MISSING:
            return None
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or not (low < value <= high if low_open else low <= value <= high):
            self.p.bad(path, value, f"a number in {'(' if low_open else '['}{low:g}, {high:g}]")
            return None
        return float(value)

    def choice(self, path: KeyPath, value: Any, options: tuple[str, ...]) -> str | None:
        if value not in options or not isinstance(value, str):
            self.p.bad(path, value, f"one of {', '.join(options)}")
            return None
        return value

    def reason(self, path: KeyPath, value: Any) -> str | None:
        if not isinstance(value, str) or not _REASON_RE.match(value):
            self.p.bad(
                path,
                value,
                "a reason code of lower-case letters, digits and _ (e.g. manual_review)",
            )
            return None
        return value

    def url(self, path: KeyPath, value: Any, schemes: tuple[str, ...]) -> str | None:
        try:
            parts = urlsplit(value) if isinstance(value, str) else None
        except ValueError:
            parts = None
        if (
            parts is None
            or parts.scheme not in schemes
            or not (parts.netloc or parts.scheme == "unix")
        ):
            self.p.bad(
                path, value, f"a URL starting with {' or '.join(s + '://' for s in schemes)}"
            )
            return None
        return cast(str, value)

    def strings(self, path: KeyPath, value: Any) -> list[tuple[KeyPath, str]]:
        """A list of non-empty strings, each with its own path (for per-item lines); an
        empty key (YAML null) is an empty list."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.p.bad(path, value, "a list (use [] for none)")
            return []
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.p.bad(
                    (*path, i), item, "a non-empty string (quote ids that look like numbers)"
                )
            else:
                out.append(((*path, i), item.strip()))
        return out

    def ips(self, path: KeyPath, value: Any) -> frozenset[IPAddress]:
        out = set()
        for item_path, text in self.strings(path, value):
            ip = _parse_ip(text)
            if ip is None:
                self.p.bad(item_path, text, "an IPv4 or IPv6 address (prefixes go under prefixes)")
            else:
                out.add(ip)
        return frozenset(out)

    def prefixes(self, path: KeyPath, value: Any) -> PrefixSet:
        out = []
        for item_path, text in self.strings(path, value):
            try:
                out.append(ipaddress.ip_network(text))
            except ValueError as exc:
                hint = ""
                with contextlib.suppress(ValueError):
                    hint = f"; did you mean {str(ipaddress.ip_network(text, strict=False))!r}?"
                self.p.bad(
                    item_path,
                    text,
                    f"a CIDR prefix such as 10.0.0.0/8 or 2001:db8::/32 ({exc}){hint}",
                )
        return PrefixSet(tuple(dict.fromkeys(out)))


def _build(raw: Any, problems: _Problems) -> GatewayPolicy:
    r = _Reader(problems)
    if not isinstance(raw, Mapping):
        problems.bad((), raw, "a mapping of settings (identity, plans, release, ...)")
        raw = {}
    data = r.section((), _merge(_default_data(), raw, ()), _SCHEMA[()]) or {}

    identity = r.section(("identity",), data.get("identity"), _SCHEMA[("identity",)]) or {}
    header = identity.get("header")
    if header is not None and (not isinstance(header, str) or not _HEADER_RE.match(header)):
        problems.bad(
            ("identity", "header"), header, "null or an HTTP header name such as x-account-id"
        )
        header = None
    asn_header = identity.get("asn_header")
    if asn_header is not None and (not isinstance(asn_header, str) or not _HEADER_RE.match(asn_header)):
        problems.bad(("identity", "asn_header"), asn_header, "null or an HTTP header name such as x-client-asn")
        asn_header = None

    plans = _plans(r, data.get("plans"))
    default_plan = data.get("default_plan")
    if not isinstance(default_plan, str):
        problems.bad(("default_plan",), default_plan, "a plan name")
    elif plans is not None and default_plan not in plans:
        # Left at the packaged default while the file brings its own plans: point at plans.
        at = (
            ("plans",)
            if ("default_plan",) not in problems.lines and ("plans",) in problems.lines
            else ("default_plan",)
        )
        problems.fail(
            at,
            f"default_plan has value {default_plan!r}; expected one of the plans: {', '.join(plans)}",
        )

    release = _release(r, data.get("release"))
    blocklists = _blocklists(r, data.get("blocklists"))
    allowlists = _allowlists(r, data.get("allowlists"))
    overrides = _overrides(r, data.get("overrides"), plans)
    risk = _risk(r, data.get("risk"))
    actions = _actions(r, data.get("actions"))

    intel = _intel(r, data.get("intel"), problems.source)
    state = r.section(("state",), data.get("state"), _SCHEMA[("state",)]) or {}
    store = r.choice(("state", "store"), state.get("store"), STORES)
    store_url = r.url(("state", "url"), state.get("url"), _REDIS_SCHEMES)
    on_error = r.choice(("state", "on_store_error"), state.get("on_store_error"), ON_STORE_ERROR)
    timeout_ms = r.integer(("state", "timeout_ms"), state.get("timeout_ms", 500))

    if problems.issues:  # only when collecting: the caller reads problems.issues
        return _default_policy()
    return GatewayPolicy(
        identity_header=header.lower() if header else None,
        asn_header=asn_header.lower() if asn_header else None,
        default_plan=cast(str, default_plan),
        plans=MappingProxyType(cast(dict[str, PlanLimits], plans)),
        release=cast(Release, release),
        blocklists=blocklists,
        allowlists=allowlists,
        overrides=MappingProxyType(overrides),
        risk=cast(Policy, risk),
        actions=cast(Actions, actions),
        store=cast(Literal["memory", "redis"], store),
        store_url=cast(str, store_url),
        on_store_error=cast(Literal["closed", "open"], on_error),
        store_timeout_s=cast(int, timeout_ms) / 1000,
        source=problems.source,
        intel=intel,
    )


def _plan(r: _Reader, path: KeyPath, value: Any) -> PlanLimits | None:
    spec = r.section(path, value, _LIMIT_KEYS)
    if spec is None:
        return None
    got = [r.integer((*path, k), r.need(path, spec, k)) for k in _LIMIT_KEYS]
    return None if None in got else PlanLimits(*cast(list[int], got))


def _plans(r: _Reader, value: Any) -> dict[str, PlanLimits] | None:
    if not isinstance(value, Mapping) or not value:
        r.p.bad(("plans",), value, "a mapping of plan name -> {daily_tokens, requests_per_minute, "
                "tokens_per_minute, max_tokens}")  # fmt: skip
        return None
    out: dict[str, PlanLimits] = {}
    for name, spec in value.items():
        if not isinstance(name, str):
            r.p.bad(("plans", str(name)), name, "a plan name (a string)")
            continue
        plan = _plan(r, ("plans", name), spec)
        if plan is not None:
            out[name] = plan
    return out if len(out) == len(value) else None


def _release(r: _Reader, value: Any) -> Release | None:
    spec = r.section(("release",), value, _SCHEMA[("release",)])
    if spec is None:
        return None
    stages = _stages(r, spec.get("stages"))
    trust_spec = (
        r.section(("release", "trust"), spec.get("trust"), _SCHEMA[("release", "trust")]) or {}
    )
    trust = [
        r.number(("release", "trust", k), trust_spec.get(k), 0.0, 1.0, low_open=False)
        for k in ("verified", "paid")
    ]
    clean_path = ("release", "trust", "clean_days")
    clean = r.section(clean_path, trust_spec.get("clean_days"), _SCHEMA[clean_path]) or {}
    days = r.integer((*clean_path, "days"), clean.get("days"))
    clean_share = r.number((*clean_path, "share"), clean.get("share"), 0.0, 1.0, low_open=False)
    cluster = spec.get("cluster")
    if not isinstance(cluster, bool):
        r.p.bad(("release", "cluster"), cluster, "true or false")
    if stages is None or None in trust or days is None or clean_share is None:
        return None
    return Release(
        stages,
        Trust(cast(float, trust[0]), cast(float, trust[1]), days, clean_share),
        bool(cluster),
    )


def _stages(r: _Reader, value: Any) -> tuple[Stage, ...] | None:
    path: KeyPath = ("release", "stages")
    if not isinstance(value, list) or not value:
        r.p.bad(path, value, "a non-empty list of {age_days, share}, the first at age_days 0")
        return None
    stages: list[Stage] = []
    for i, item in enumerate(value):
        spec = r.section((*path, i), item, _STAGE_KEYS)
        if spec is None:
            continue
        age = r.number(
            (*path, i, "age_days"),
            r.need((*path, i), spec, "age_days"),
            0.0,
            math.inf,
            low_open=False,
        )
        share = r.number(
            (*path, i, "share"), r.need((*path, i), spec, "share"), 0.0, 1.0, low_open=True
        )
        if age is None or share is None:
            continue
        if i == 0 and age != 0:
            r.p.bad(
                (*path, i, "age_days"),
                item["age_days"],
                "0 for the first stage (every account has an age)",
            )
        elif stages and age <= stages[-1].age_days:
            r.p.bad(
                (*path, i, "age_days"),
                item["age_days"],
                f"more than the stage before ({stages[-1].age_days:g})",
            )
        elif stages and share < stages[-1].share:
            r.p.bad((*path, i, "share"), item["share"], f"at least the stage before ({stages[-1].share:g}): "
                    "limits grow with age")  # fmt: skip
        stages.append(Stage(age, share))
    return tuple(stages) if len(stages) == len(value) else None


def _blocklists(r: _Reader, value: Any) -> Blocklists:
    spec = r.section(("blocklists",), value, _SCHEMA[("blocklists",)]) or {}

    def strings(key: str, norm: Any = str) -> frozenset[str]:
        return frozenset(norm(s) for _, s in r.strings(("blocklists", key), spec.get(key, [])))

    return Blocklists(
        ips=r.ips(("blocklists", "ips"), spec.get("ips", [])),
        prefixes=r.prefixes(("blocklists", "prefixes"), spec.get("prefixes", [])),
        devices=strings("devices"),
        email_domains=strings("email_domains", lambda s: s.lower().lstrip("@").rstrip(".")),
        templates=strings("templates", _template_key),
    )


def _intel(r: _Reader, value: Any, source: str) -> Any:
    """The matcher over ``intel.files`` (relative to the policy file), or None when there are none."""
    spec = r.section(("intel",), value, _SCHEMA[("intel",)]) if value is not None else {}
    files = r.strings(("intel", "files"), (spec or {}).get("files", []))
    if not files:
        return None
    env = (spec or {}).get("key_env", "DISTILLGUARD_INTEL_KEY")
    if not isinstance(env, str) or not env:
        r.p.bad(("intel", "key_env"), env, "the name of an environment variable holding the consortium key")
        return None
    from distillguard.intel.ingest import IntelSet
    from distillguard.intel.keyed import load_key
    from distillguard.intel.match import IntelMatcher

    here = Path(source).parent if Path(source).is_file() else Path(".")
    try:
        merged = IntelSet()
        for _, name in files:
            one = IntelSet.load(here / name)
            for kind, values in one.clear.items():
                merged.clear.setdefault(kind, {}).update(values)
            for epoch, digests in one.keyed.items():
                merged.keyed.setdefault(epoch, {}).update(digests)
            merged.sketches.extend(one.sketches)
            merged.key_ids |= one.key_ids
        key = load_key(None, env=env) if merged.keyed or merged.sketches else None
        return IntelMatcher(merged, key)
    except ConfigError as exc:
        r.p.fail(("intel",), f"intel: {exc.message}")
        return None


def _allowlists(r: _Reader, value: Any) -> Allowlists:
    spec = r.section(("allowlists",), value, _SCHEMA[("allowlists",)]) or {}
    return Allowlists(
        accounts=frozenset(
            s for _, s in r.strings(("allowlists", "accounts"), spec.get("accounts", []))
        ),
        orgs=frozenset(s for _, s in r.strings(("allowlists", "orgs"), spec.get("orgs", []))),
        ips=r.ips(("allowlists", "ips"), spec.get("ips", [])),
        prefixes=r.prefixes(("allowlists", "prefixes"), spec.get("prefixes", [])),
    )


def _overrides(
    r: _Reader, value: Any, plans: Mapping[str, PlanLimits] | None
) -> dict[str, Override]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        r.p.bad(
            ("overrides",),
            value,
            "a mapping of account id -> {plan | single limits | action, reason}",
        )
        return {}
    out: dict[str, Override] = {}
    for account, item in value.items():
        path: KeyPath = ("overrides", str(account))
        if not isinstance(account, str):
            r.p.bad(path, account, "an account id as a string (quote ids that look like numbers)")
            continue
        spec = r.section(path, item, _OVERRIDE_KEYS)
        if spec is None:
            continue
        if not spec:
            r.p.bad(path, dict(spec), "at least one of plan, a limit, or action")
            continue
        kwargs: dict[str, Any] = {
            k: r.integer((*path, k), spec[k]) for k in _LIMIT_KEYS if k in spec
        }
        if "plan" in spec:
            plan = spec["plan"]
            if not isinstance(plan, str) or (plans is not None and plan not in plans):
                r.p.bad((*path, "plan"), plan, f"one of the plans: {', '.join(plans or ())}")
            kwargs["plan"] = plan
        if "action" in spec:
            kwargs["action"] = r.choice((*path, "action"), spec["action"], DECISIONS)
        if "reason" in spec:
            if "action" not in spec:
                r.p.fail((*path, "reason"), f"{_fmt((*path, 'reason'))} has value {spec['reason']!r} but "
                         "no action: a reason code only goes with an action")  # fmt: skip
            kwargs["reason"] = r.reason((*path, "reason"), spec["reason"])
        out[account] = Override(**kwargs)
    return out


def _risk(r: _Reader, value: Any) -> Policy | None:
    """The core :class:`Policy`: unknown keys and types checked here (with lines), ranges
    by ``Policy`` itself, one key at a time so that its message names the right key."""
    spec = r.section(("risk",), value, _SCHEMA[("risk",)])
    if spec is None:
        return None
    good = {}
    for key, setting in spec.items():
        if key not in _SCHEMA[("risk",)]:
            continue
        if key == "block_risk" and (
            not isinstance(setting, int | float) or isinstance(setting, bool)
        ):
            r.p.bad(("risk", key), setting, "a number (a risk in [0.5, 1])")
            continue
        try:
            Policy.from_dict({key: setting}, source="risk")
        except ConfigError as exc:
            r.p.bad(
                ("risk", key), setting, exc.message.split("; ", 1)[-1].removeprefix("expected ")
            )
            continue
        good[key] = setting
    if len(good) < len(spec):
        return None
    return Policy.from_dict(good, source="risk")


def _actions(r: _Reader, value: Any) -> Actions | None:
    spec = r.section(("actions",), value, _SCHEMA[("actions",)])
    if spec is None:
        return None
    throttle = r.section(("actions", "throttle"), spec.get("throttle"), ("share",)) or {}
    share = r.number(
        ("actions", "throttle", "share"), throttle.get("share"), 0.0, 1.0, low_open=True
    )
    urls: dict[str, str | None] = {}
    for action in ("verify", "block"):
        conf = r.section(("actions", action), spec.get(action), ("appeal_url",)) or {}
        url = conf.get("appeal_url")
        urls[action] = (
            None
            if url is None
            else r.url(("actions", action, "appeal_url"), url, ("https", "http"))
        )
    if share is None:
        return None
    return Actions(share, urls["verify"], urls["block"])
