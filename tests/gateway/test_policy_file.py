"""The gateway policy file: loading, errors that say where, gradual release, the door and act()."""

from __future__ import annotations

import itertools
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from distillguard.errors import ConfigError
from distillguard.gateway import policy_file
from distillguard.gateway.policy_file import (
    BLOCKLIST_REASONS,
    AccountFacts,
    GatewayPolicy,
    PlanLimits,
    RequestFacts,
    Verdict,
    validate,
)
from distillguard.policy import Policy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "policy.yaml"
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
NO_REQUEST = RequestFacts(ip=None, device_fp=None, email_domain=None)


def account(days: float | None = 20, **kw: object) -> AccountFacts:
    created = None if days is None else NOW - timedelta(days=days)
    return AccountFacts(**{"account_id": "acct_x", "plan": "free", "created_at": created, **kw})  # type: ignore[arg-type]


def request(**kw: str) -> RequestFacts:
    """``template=`` is one signature the prompt carries (as prompt_signatures writes it)."""
    templates = frozenset([kw.pop("template")]) if "template" in kw else frozenset()
    return RequestFacts(**{"ip": None, "device_fp": None, "email_domain": None, **kw}, templates=templates)  # type: ignore[arg-type]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> GatewayPolicy:
    return GatewayPolicy.load(write(tmp_path, text))


# -- the example is the default --------------------------------------------------------------
def test_example_is_byte_for_byte_the_packaged_default() -> None:
    assert EXAMPLE.read_bytes() == policy_file.DEFAULT_PATH.read_bytes()


def test_example_loads_and_equals_the_default() -> None:
    loaded = GatewayPolicy.load(EXAMPLE)
    assert loaded == GatewayPolicy.default()
    assert loaded.risk == Policy()
    assert validate(EXAMPLE) == []
    assert (loaded.identity_header, loaded.default_plan, loaded.store, loaded.on_store_error) == (
        None, "free", "memory", "closed",
    )  # fmt: skip
    assert loaded.plans["free"] == PlanLimits(200_000, 20, 40_000, 4096)


def test_example_shows_every_setting() -> None:
    _, lines = policy_file._read_yaml(EXAMPLE, policy_file._Problems(str(EXAMPLE), collect=False))
    for section, keys in policy_file._SCHEMA.items():
        for key in keys:
            assert (*section, key) in lines, f"examples/policy.yaml does not show {(*section, key)}"


def test_a_file_sets_only_what_it_changes(tmp_path: Path) -> None:
    p = load(tmp_path, "state: {store: redis}\nrelease: {trust: {verified: 0.3}}\n")
    d = GatewayPolicy.default()
    assert (
        p.store == "redis" and p.store_url == d.store_url and p.on_store_error == d.on_store_error
    )
    assert p.release.trust.verified == 0.3 and p.release.trust.paid == d.release.trust.paid
    assert p.release.stages == d.release.stages and p.plans == d.plans
    assert GatewayPolicy.from_dict({}) == d
    assert load(tmp_path, "") == d


def test_own_plans_replace_the_packaged_ones(tmp_path: Path) -> None:
    p = load(
        tmp_path,
        """
        default_plan: basic
        plans:
          basic: {daily_tokens: 10, requests_per_minute: 1, tokens_per_minute: 5, max_tokens: 5}
    """,
    )
    assert list(p.plans) == ["basic"]


def test_own_plans_without_default_plan_point_at_plans(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        plans:
          basic: {daily_tokens: 10, requests_per_minute: 1, tokens_per_minute: 5, max_tokens: 5}
    """,
    )
    with pytest.raises(
        ConfigError,
        match=rf"default_plan has value 'free'; expected one of the plans: basic in {path}:1$",
    ):
        GatewayPolicy.load(path)


# -- errors name file:line, key path and value -------------------------------------------------
PLAN = "{daily_tokens: 1, requests_per_minute: 1, tokens_per_minute: 1, max_tokens: 1}"
BAD_VALUES = [
    # (yaml, line, key path, value as repr'd)
    ("plans:\n  free: {daily_tokens: lots, requests_per_minute: 1, tokens_per_minute: 1, max_tokens: 1}",
     2, "plans.free.daily_tokens", "'lots'"),
    ("plans:\n  free:\n    daily_tokens: 5\n    requests_per_minute: -1\n    tokens_per_minute: 1\n    max_tokens: 1",
     4, "plans.free.requests_per_minute", "-1"),
    ("plans:\n  free: {daily_tokens: 1, requests_per_minute: 1, tokens_per_minute: true, max_tokens: 1}",
     2, "plans.free.tokens_per_minute", "True"),
    ("plans:\n  free: {daily_tokens: 1, requests_per_minute: 1, tokens_per_minute: 1, max_tokens: 40.5}",
     2, "plans.free.max_tokens", "40.5"),
    ("plans: []", 1, "plans", "[]"),
    ("default_plan: gold", 1, "default_plan", "'gold'"),
    ("release:\n  stages:\n    - {age_days: 0, share: 0}", 3, "release.stages[0].share", "0"),
    ("release:\n  stages:\n    - {age_days: 0, share: 1.5}", 3, "release.stages[0].share", "1.5"),
    ("release:\n  stages:\n    - {age_days: 2, share: 0.5}", 3, "release.stages[0].age_days", "2"),
    ("release:\n  stages:\n    - {age_days: 0, share: 0.5}\n    - {age_days: -3, share: 1}",
     4, "release.stages[1].age_days", "-3"),
    ("release:\n  stages:\n    - {age_days: 0, share: 0.5}\n    - {age_days: 5, share: 0.2}",
     4, "release.stages[1].share", "0.2"),
    ("release:\n  stages: []", 2, "release.stages", "[]"),
    ("release:\n  trust:\n    verified: -0.1", 3, "release.trust.verified", "-0.1"),
    ("release:\n  trust:\n    paid: '0.2'", 3, "release.trust.paid", "'0.2'"),
    ("release:\n  trust:\n    clean_days: {days: 30, share: 2}", 3, "release.trust.clean_days.share", "2"),
    ("release:\n  trust:\n    clean_days: {days: -30, share: 0.1}", 3, "release.trust.clean_days.days", "-30"),
    ("release:\n  cluster: 'yes'", 2, "release.cluster", "'yes'"),
    ("blocklists:\n  prefixes:\n    - 10.0.0.0/8\n    - 10.0.0.1/8", 4, "blocklists.prefixes[1]", "'10.0.0.1/8'"),
    ("blocklists:\n  prefixes: [10.0.0.0/33]", 2, "blocklists.prefixes[0]", "'10.0.0.0/33'"),
    ("allowlists:\n  prefixes: ['2001:db8::/200']", 2, "allowlists.prefixes[0]", "'2001:db8::/200'"),
    ("blocklists:\n  ips: [1.2.3]", 2, "blocklists.ips[0]", "'1.2.3'"),
    ("blocklists:\n  devices: abc", 2, "blocklists.devices", "'abc'"),
    ("allowlists:\n  accounts:\n    - acct_1\n    - 123", 4, "allowlists.accounts[1]", "123"),
    ("overrides:\n  acct_1: {plan: gold}", 2, "overrides.acct_1.plan", "'gold'"),
    ("overrides:\n  acct_1: {action: deny}", 2, "overrides.acct_1.action", "'deny'"),
    ("overrides:\n  acct_1: {action: block, reason: Manual Review}", 2, "overrides.acct_1.reason", "'Manual Review'"),
    ("overrides:\n  acct_1: {reason: manual_review}", 2, "overrides.acct_1.reason", "'manual_review'"),
    ("overrides:\n  acct_1: {daily_tokens: 0}", 2, "overrides.acct_1.daily_tokens", "0"),
    ("overrides:\n  acct_1: {}", 2, "overrides.acct_1", "{}"),
    ("overrides:\n  123: {plan: pro}", 2, "overrides.123", "123"),
    ("risk:\n  block_risk: 0.3", 2, "risk.block_risk", "0.3"),
    ("risk:\n  block_risk: high", 2, "risk.block_risk", "'high'"),
    ("risk:\n  member_action: deny", 2, "risk.member_action", "'deny'"),
    ("actions:\n  throttle: {share: 0}", 2, "actions.throttle.share", "0"),
    ("actions:\n  throttle: {share: 1.5}", 2, "actions.throttle.share", "1.5"),
    ("actions:\n  verify: {appeal_url: 'ftp://example.com/a'}", 2, "actions.verify.appeal_url", "'ftp://example.com/a'"),
    ("actions:\n  block: deny", 2, "actions.block", "'deny'"),
    ("state:\n  store: postgres", 2, "state.store", "'postgres'"),
    ("state:\n  on_store_error: maybe", 2, "state.on_store_error", "'maybe'"),
    ("state:\n  url: http://127.0.0.1:6379", 2, "state.url", "'http://127.0.0.1:6379'"),
    ("identity:\n  header: x account", 2, "identity.header", "'x account'"),
    ("identity:\n  header: 5", 2, "identity.header", "5"),
    ("- just\n- a list", 1, "(top level)", "['just', 'a list']"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "line", "key_path", "value"), BAD_VALUES, ids=[c[2] + "=" + c[3] for c in BAD_VALUES]
)
def test_bad_value_names_file_line_key_and_value(
    tmp_path: Path, text: str, line: int, key_path: str, value: str
) -> None:
    path = write(tmp_path, text + "\n")
    with pytest.raises(ConfigError) as info:
        GatewayPolicy.load(path)
    message = str(info.value)
    assert message.startswith(key_path), message
    assert value in message, message
    assert message.endswith(f" in {path}:{line}"), message
    assert validate(path) == [message]


UNKNOWN_KEYS = [
    ("identty:\n  header: null", 1, "identty", "identity"),
    ("identity:\n  hedaer: x-account", 2, "identity.hedaer", "header"),
    ("plans:\n  free: {daily_token: 1, daily_tokens: 1, requests_per_minute: 1, tokens_per_minute: 1, max_tokens: 1}",
     2, "plans.free.daily_token", "daily_tokens"),
    ("release:\n  stage: []", 2, "release.stage", "stages"),
    ("release:\n  trust:\n    verifed: 0.2", 3, "release.trust.verifed", "verified"),
    ("release:\n  trust:\n    clean_days: {dayz: 3, days: 3, share: 0.1}", 3, "release.trust.clean_days.dayz", "days"),
    ("release:\n  stages:\n    - {age: 0, age_days: 0, share: 0.5}", 3, "release.stages[0].age", "age_days", False),
    ("blocklists:\n  ip: []", 2, "blocklists.ip", "ips"),
    ("allowlists:\n  account: []", 2, "allowlists.account", "accounts"),
    ("overrides:\n  acct_1: {plan_name: pro}", 2, "overrides.acct_1.plan_name", "plan"),
    ("risk:\n  block_rsk: 0.9", 2, "risk.block_rsk", "block_risk"),
    ("actions:\n  deny: {}", 2, "actions.deny", "block", False),
    ("actions:\n  throttle: {shares: 0.5}", 2, "actions.throttle.shares", "share"),
    ("actions:\n  verify: {url: 'https://x.test'}", 2, "actions.verify.url", "appeal_url", False),
    ("state:\n  stroe: redis", 2, "state.stroe", "store"),
]  # fmt: skip


@pytest.mark.parametrize("case", UNKNOWN_KEYS, ids=[c[2] for c in UNKNOWN_KEYS])
def test_unknown_key_is_named_with_the_known_ones(tmp_path: Path, case: tuple[Any, ...]) -> None:
    """Each case: yaml, line, key path, a known key listed, and whether it is close enough to suggest."""
    text, line, key_path, known, close = (*case, True)[:5]
    path = write(tmp_path, text + "\n")
    with pytest.raises(ConfigError) as info:
        GatewayPolicy.load(path)
    message = str(info.value)
    assert message.startswith(f"{key_path} is not "), message
    assert "expected one of" in message and known in message.split("expected one of")[1], message
    assert (f"did you mean {known!r}" in message) == close, message
    assert message.endswith(f" in {path}:{line}"), message


def test_unknown_top_level_key_lists_every_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "quotas: {}\n")
    message = str(info.value)
    assert "quotas is not a top-level setting" in message
    for key in (
        "actions",
        "allowlists",
        "blocklists",
        "default_plan",
        "identity",
        "overrides",
        "plans",
        "release",
        "risk",
        "state",
    ):
        assert key in message


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "state:\n  store: memory\n  store: redis\n")
    with pytest.raises(
        ConfigError, match=rf"state.store appears twice \(lines 2 and 3\).* in {path}:3$"
    ):
        GatewayPolicy.load(path)


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    p = load(
        tmp_path,
        """
        plans:
          free: &free {daily_tokens: 10, requests_per_minute: 1, tokens_per_minute: 5, max_tokens: 5}
          pro:
            <<: *free
            daily_tokens: 20
    """,
    )
    assert p.plans["pro"] == PlanLimits(20, 1, 5, 5)


def test_recursive_alias_is_an_error_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^plans\.p\.p is not a setting of plans\.p; expected one of daily_tokens",
    ):
        load(tmp_path, "plans: &p {p: *p}\n")


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path, "state:\n  store: [memory\n")
    with pytest.raises(ConfigError, match=rf"not valid YAML.* in {path}:\d+$"):
        GatewayPolicy.load(path)
    with pytest.raises(ConfigError, match=r"cannot read gateway policy.* in .*nope\.yaml$"):
        GatewayPolicy.load(tmp_path / "nope.yaml")


def test_from_dict_names_its_source() -> None:
    with pytest.raises(
        ConfigError, match=r"^state\.store has value 'x'; expected one of memory, redis in cfg$"
    ):
        GatewayPolicy.from_dict({"state": {"store": "x"}}, source="cfg")


def test_validate_reports_every_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        default_plan: gold
        plans:
          free: {daily_tokens: -1, requests_per_minute: 1, tokens_per_minute: 1, max_tokens: 1}
        release: {cluster: maybe}
        state: {store: postgres, url: redis://localhost:6379/0, on_store_error: open, replicas: 3}
    """,
    )
    problems = validate(path)
    assert [p.split(" ", 1)[0] for p in problems] == [
        "plans.free.daily_tokens", "release.cluster", "state.replicas", "state.store",
    ], problems  # fmt: skip
    assert [p.rsplit(":", 1)[1] for p in problems] == ["3", "4", "5", "5"]
    # default_plan is checked against the plans only once the plans themselves are valid.
    assert validate(write(tmp_path, "default_plan: gold\n")) == [
        f"default_plan has value 'gold'; expected one of the plans: free, pro, enterprise in {tmp_path / 'policy.yaml'}:1"
    ]


# -- gradual release ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("days", "share"),
    [
        (0, 0.1),
        (1, 0.1),
        (2.99, 0.1),
        (3, 0.3),
        (13.9, 0.3),
        (14, 1.0),
        (400, 1.0),
        (None, 0.1),
        (-2, 0.1),
    ],
)
def test_release_share_steps_by_age(days: float | None, share: float) -> None:
    assert GatewayPolicy.default().release_share(account(days), NOW) == share


def test_release_share_adds_trust_and_caps_at_one() -> None:
    p = GatewayPolicy.default()
    assert p.release_share(account(1, verified=True), NOW) == pytest.approx(0.3)
    assert p.release_share(account(1, verified=True, paid=True), NOW) == pytest.approx(0.5)
    assert p.release_share(account(20, verified=True), NOW) == 1.0
    assert p.release_share(account(5, verified=True, paid=True), NOW) == pytest.approx(0.7)
    capped = GatewayPolicy.from_dict({"release": {"stages": [{"age_days": 0, "share": 0.9}]}})
    assert capped.release_share(account(0, verified=True, paid=True), NOW) == 1.0


def test_clean_days_count_from_the_last_action() -> None:
    p = GatewayPolicy.from_dict({"release": {"stages": [{"age_days": 0, "share": 0.5}]}})
    assert p.release_share(account(40), NOW) == pytest.approx(0.7)
    assert p.release_share(account(20), NOW) == 0.5
    assert p.release_share(account(40, last_action_at=NOW - timedelta(days=10)), NOW) == 0.5
    assert p.release_share(
        account(None, last_action_at=NOW - timedelta(days=31)), NOW
    ) == pytest.approx(0.7)
    assert p.release_share(account(None), NOW) == 0.5


def test_naive_times_are_utc() -> None:
    p = GatewayPolicy.default()
    naive = AccountFacts("a", "free", datetime(2026, 4, 27, 12, 0))
    assert p.release_share(naive, NOW) == 0.3
    assert p.release_share(account(4), NOW.replace(tzinfo=None)) == 0.3


def test_limits_scale_by_release_and_throttle() -> None:
    p = GatewayPolicy.default()
    # 10 % of free; max_tokens is not scaled but held to the scaled per-minute budget.
    assert p.limits(account(1), NOW) == PlanLimits(20_000, 2, 4_000, 4_000)
    assert p.limits(account(20), NOW) == PlanLimits(200_000, 20, 40_000, 4096)
    assert p.limits(account(20), NOW, action="throttle") == PlanLimits(50_000, 5, 10_000, 4096)
    # Throttled and new: 2.5 % of free; requests per minute rounds down but never to 0.
    assert p.limits(account(1), NOW, action="throttle") == PlanLimits(5_000, 1, 1_000, 1_000)
    assert p.limits(account(20), NOW, action="verify") == p.limits(account(20), NOW)
    with pytest.raises(ValueError, match="action has value 'deny'"):
        p.limits(account(20), NOW, action="deny")


def test_throttle_share_comes_from_the_file(tmp_path: Path) -> None:
    p = load(tmp_path, "actions:\n  throttle: {share: 0.5}\n")
    assert p.limits(account(20), NOW, action="throttle").daily_tokens == 100_000


def test_limits_round_down_without_float_noise() -> None:
    p = GatewayPolicy.from_dict({
        "plans": {"free": {"daily_tokens": 100, "requests_per_minute": 100, "tokens_per_minute": 100, "max_tokens": 100}},
        "release": {"stages": [{"age_days": 0, "share": 0.29}]},
    })  # fmt: skip
    assert p.limits(account(1), NOW) == PlanLimits(29, 29, 29, 29)


# -- plans and overrides ----------------------------------------------------------------------
OVERRIDES = """
overrides:
  acct_123: {plan: enterprise}
  acct_456: {daily_tokens: 1000000}
  acct_789: {action: block, reason: manual_review}
  acct_777: {action: verify}
  acct_abc: {plan: pro, action: throttle, reason: rate_review}
actions:
  verify: {appeal_url: "https://example.com/appeal"}
  block: {appeal_url: "https://example.com/appeal/block"}
"""


def test_plan_comes_from_override_then_account_then_default(tmp_path: Path) -> None:
    p = load(tmp_path, OVERRIDES)
    assert p.plan_limits(AccountFacts("acct_123", "free", None)) == p.plans["enterprise"]
    assert p.plan_limits(AccountFacts("acct_x", "pro", None)) == p.plans["pro"]
    assert p.plan_limits(AccountFacts("acct_x", None, None)) == p.plans["free"]
    assert p.plan_limits(AccountFacts("acct_x", "platinum", None)) == p.plans["free"]


def test_single_limit_override_replaces_one_limit_and_release_still_applies(tmp_path: Path) -> None:
    p = load(tmp_path, OVERRIDES)
    old = AccountFacts("acct_456", "free", NOW - timedelta(days=100))
    assert p.plan_limits(old) == PlanLimits(1_000_000, 20, 40_000, 4096)
    assert p.limits(old, NOW).daily_tokens == 1_000_000
    new = AccountFacts("acct_456", "free", NOW - timedelta(days=1))
    assert p.limits(new, NOW).daily_tokens == 100_000


def test_forced_action_overrides_decide_at_the_door_and_in_act(tmp_path: Path) -> None:
    p = load(tmp_path, OVERRIDES)
    blocked = AccountFacts("acct_789", "free", None)
    expected = Verdict("block", "manual_review", "https://example.com/appeal/block")
    assert p.door(blocked, NO_REQUEST) == expected
    assert p.act(False, 0.0, False, blocked) == expected
    assert p.door(AccountFacts("acct_777", "free", None), NO_REQUEST) == Verdict(
        "verify", "override", "https://example.com/appeal"
    )
    throttled = AccountFacts("acct_abc", "free", NOW - timedelta(days=100))
    assert p.door(throttled, NO_REQUEST) == Verdict("throttle", "rate_review")
    assert p.limits(throttled, NOW, "throttle").daily_tokens == 1_250_000
    assert p.door(AccountFacts("acct_123", "free", None), NO_REQUEST) is None


# -- the door: blocklists and allowlists --------------------------------------------------------
LISTS = """
blocklists:
  ips: [198.51.100.7, "2001:db8::dead"]
  prefixes: [203.0.113.0/24, "2001:db8:bad::/48"]
  devices: [fp-evil]
  email_domains: [mailinator.com]
  templates: ["#3F2A9C0D11E4B7A5"]
allowlists:
  accounts: [acct_ok]
  orgs: [org_ok]
  ips: [192.0.2.10]
  prefixes: ["2001:db8:600d::/48"]
overrides:
  acct_forced: {action: allow, reason: vip}
"""


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"ip": "198.51.100.7"}, "blocklist_ip"),
        ({"ip": "2001:db8:0:0:0:0:0:dead"}, "blocklist_ip"),
        ({"ip": "203.0.113.200"}, "blocklist_prefix"),
        ({"ip": "::ffff:203.0.113.9"}, "blocklist_prefix"),
        ({"ip": "2001:db8:bad:1::5"}, "blocklist_prefix"),
        ({"device_fp": "fp-evil"}, "blocklist_device"),
        ({"email_domain": "mailinator.com"}, "blocklist_email_domain"),
        ({"email_domain": "x.MAILINATOR.com"}, "blocklist_email_domain"),
        ({"template": "3f2a9c0d11e4b7a5"}, "blocklist_template"),
    ],
)
def test_each_blocklist_refuses_with_its_reason(
    tmp_path: Path, kw: dict[str, str], reason: str
) -> None:
    p = load(tmp_path, LISTS + 'actions:\n  block: {appeal_url: "https://example.com/appeal"}\n')
    assert reason in BLOCKLIST_REASONS.values()
    assert p.door(account(), request(**kw)) == Verdict(
        "block", reason, "https://example.com/appeal"
    )


@pytest.mark.parametrize(
    "kw",
    [
        {"ip": "203.0.114.1"}, {"ip": "2001:db8:bae::1"}, {"ip": "not an ip"}, {"ip": "198.51.100.8"},
        {"device_fp": "fp-evil2"}, {"email_domain": "notmailinator.com"}, {"template": "3f2a9c0d11e4b7a6"},
    ],
)  # fmt: skip
def test_near_misses_pass_the_door(tmp_path: Path, kw: dict[str, str]) -> None:
    assert load(tmp_path, LISTS).door(account(), request(**kw)) is None


@pytest.mark.parametrize(
    ("facts", "req"),
    [
        (AccountFacts("acct_ok", "free", None), NO_REQUEST),
        (AccountFacts("acct_y", "free", None, org_id="org_ok"), NO_REQUEST),
        (account(), request(ip="192.0.2.10")),
        (account(), request(ip="2001:db8:600d:1::1")),
    ],
)
def test_allowlists_allow_at_the_door(
    tmp_path: Path, facts: AccountFacts, req: RequestFacts
) -> None:
    p = load(tmp_path, LISTS)
    assert p.is_allowlisted(facts, req)
    assert p.door(facts, req) == Verdict("allow", "allowlisted")


def test_allowlist_takes_precedence_over_risk(tmp_path: Path) -> None:
    p = load(tmp_path, LISTS)
    ok = AccountFacts("acct_ok", "free", NOW - timedelta(days=1), org_id=None)
    assert p.act(flagged=True, risk=1.0, outlier=True, facts=ok) == Verdict("allow", "allowlisted")
    assert (
        p.act(True, 1.0, True, AccountFacts("acct_z", "free", None, org_id="org_ok")).action
        == "allow"
    )
    assert p.act(True, 1.0, True, account()).action == "block"
    # Allowlisted accounts are still held to their plan and its gradual release.
    assert p.limits(ok, NOW).daily_tokens == 20_000


def test_blocklist_wins_over_allowlist_and_forced_action_over_both(tmp_path: Path) -> None:
    p = load(tmp_path, LISTS)
    bad_ip = request(ip="198.51.100.7")
    assert p.door(AccountFacts("acct_ok", "free", None), bad_ip) == Verdict("block", "blocklist_ip")
    assert p.door(AccountFacts("acct_forced", "free", None), bad_ip) == Verdict("allow", "vip")
    assert not p.is_allowlisted(account(), bad_ip)


# -- act() is the core Policy -------------------------------------------------------------------
@pytest.mark.parametrize(
    "risk_conf",
    [
        {},
        {"block_risk": 0.7, "member_action": "throttle", "outlier_action": "allow"},
        {"block_risk": 1.0},
    ],
)
def test_act_agrees_with_the_core_policy(risk_conf: dict[str, object]) -> None:
    p = GatewayPolicy.from_dict(
        {"risk": risk_conf, "actions": {"block": {"appeal_url": "https://a.test/b"}}}
    )
    core = Policy.from_dict(risk_conf)
    assert p.risk == core
    for flagged, risk, outlier in itertools.product(
        (False, True), (0.0, 0.3, 0.5, 0.69, 0.7, 0.84, 0.85, 0.99, 1.0), (False, True)
    ):
        verdict = p.act(flagged, risk, outlier, account())
        assert verdict.action == core.decide(flagged, risk, outlier), (flagged, risk, outlier)
        if flagged:
            assert verdict.reason == (
                "campaign_block" if risk >= core.block_risk else "campaign_member"
            )
        else:
            assert verdict.reason == ("outlier" if outlier else "allowed")
        assert verdict.appeal_url == ("https://a.test/b" if verdict.action == "block" else None)


# -- the rest of the surface ----------------------------------------------------------------
def test_identity_header_is_stored_lower_case(tmp_path: Path) -> None:
    assert load(tmp_path, "identity: {header: X-Account-Id}\n").identity_header == "x-account-id"


def test_null_lists_are_empty(tmp_path: Path) -> None:
    p = load(tmp_path, "blocklists:\n  ips:\nallowlists:\n  accounts:\noverrides:\n")
    assert p == GatewayPolicy.default()


def test_policy_is_frozen() -> None:
    p = GatewayPolicy.default()
    with pytest.raises(AttributeError):
        p.default_plan = "pro"  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.plans["free"] = PlanLimits(1, 1, 1, 1)  # type: ignore[index]


# -- PrefixSet: integer probes agree with ipaddress's own containment ----------------------
def test_prefix_set_agrees_with_ipaddress_on_random_networks() -> None:
    """The shifted-integer lookup answers exactly what ``ip in network`` answers, for both
    families and prefix lengths drawn from /1 to full length (/0, which holds every probe,
    at the end)."""
    import ipaddress
    import random

    rng = random.Random(7)
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for _ in range(200):
        v4 = rng.random() < 0.5
        bits = 32 if v4 else 128
        length = rng.choice([rng.randint(1, bits), 8, 16, 23, 24, 31, bits])
        addr = rng.getrandbits(bits)
        nets.append(ipaddress.ip_network((addr, length), strict=False))
    prefixes = policy_file.PrefixSet(tuple(nets))
    probes: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for net in nets:  # inside each network, at its edges, and one past its end
        probes += [net.network_address, net.broadcast_address]
        past = int(net.broadcast_address) + 1
        if past < 2**net.max_prefixlen:
            probes.append(ipaddress.ip_address(past) if net.version == 4 else ipaddress.IPv6Address(past))
    probes += [ipaddress.IPv4Address(rng.getrandbits(32)) for _ in range(300)]
    probes += [ipaddress.IPv6Address(rng.getrandbits(128)) for _ in range(300)]
    for ip in probes:
        expected = any(ip.version == n.version and ip in n for n in nets)
        assert (ip in prefixes) is expected, ip
    hits = sum(ip in prefixes for ip in probes)
    assert 0 < hits < len(probes)  # both answers were tried
    assert "10.0.0.1" not in prefixes  # a string is not an address
    everything = policy_file.PrefixSet((ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/1")))
    assert ipaddress.ip_address("203.0.113.9") in everything
    assert ipaddress.ip_address("::1") in everything and ipaddress.ip_address("ffff::1") not in everything
    assert ipaddress.ip_address("10.0.0.1") not in policy_file.PrefixSet()
