"""Benign traps the tactics face: travellers and expats, mobile CGNAT; and opt-in means unchanged."""

from __future__ import annotations

import numpy as np

from distillguard.sim import infra
from distillguard.sim.pools import build_pools, fallback_corpora
from distillguard.sim.population import Plan, plan_population
from distillguard.sim.scenario import parse_scenario

POOLS = build_pools(fallback_corpora(0), True)


def _plan(population: dict[str, object]) -> Plan:
    sc = parse_scenario({"window": {"start": "2026-05-04", "end": "2026-05-11"}, "population": population})
    plan, _, _ = plan_population(sc, POOLS, np.random.default_rng(5))
    return plan


def _outside_home_zone(plan: Plan) -> float:
    """Share of accounts whose timezone is outside their billing country's span (tz_of jitters -2..+1 h)."""
    base = np.array([infra.COUNTRIES[c][0] for c in plan.rows[0]["country"]])
    d = plan.a_tz - base
    return float(((d < -2) | (d > 1)).mean())


def test_some_people_live_outside_their_billing_countrys_timezone() -> None:
    home = _plan({"casual": {"accounts": 3000, "exchanges_per_account": 5}})
    away = _plan({"casual": {"accounts": 3000, "exchanges_per_account": 5, "params": {"abroad": 0.1}}})
    assert _outside_home_zone(home) == 0.0
    assert 0.03 < _outside_home_zone(away) < 0.1


def test_mobile_cgnat_shares_a_few_carrier_prefixes_among_strangers() -> None:
    plan = _plan({"nat_shared": {"accounts": 400, "exchanges_per_account": 5, "groups": 4, "params": {"cgnat": 1.0}}})
    assert plan.nets_pool is not None
    prefix, asn = np.array(plan.nets_pool.prefix), np.array(plan.nets_pool.asn)
    mobile = {a for c in infra.COUNTRIES.values() for a in c[3]}
    holders: dict[str, set[int]] = {}
    for i in range(plan.n):
        nets = plan.nets_data[plan.nets_off[i]: plan.nets_off[i] + plan.nets_len[i]]
        for k in nets:
            if int(asn[k]) in mobile:
                holders.setdefault(str(prefix[k]), set()).add(i)
    big = {p: h for p, h in holders.items() if len(h) >= 20}
    assert 4 <= len(big) <= 16  # two to four /24s per carrier group
    domains = plan.rows[0]["email_domain"]
    members = set().union(*big.values())
    assert np.mean([domains[i] in infra.WEBMAIL for i in members]) > 0.9  # strangers, not one organisation


def _stealth_plan(accounts: int) -> Plan:
    sc = parse_scenario({
        "window": {"start": "2026-05-04", "end": "2026-05-11"},
        "population": {"casual": {"accounts": 50, "exchanges_per_account": 5}},
        "campaigns": [{"id": "s", "archetype": "stealth", "accounts": accounts, "exchanges": accounts * 10, "targets": ["coding"]}],
    })
    plan, _, _ = plan_population(sc, POOLS, np.random.default_rng(5))
    return plan


def test_a_stealth_fleet_shares_its_devices_in_pairs_at_every_fleet_size() -> None:
    """An odd fleet once got a device pool that was no multiple of three: no device shared."""
    for accounts in (40, 41, 599):
        plan = _stealth_plan(accounts)
        fleet = range(plan.n - accounts, plan.n)
        holders: dict[int, set[int]] = {}
        for i in fleet:
            for d in plan.devs_data[plan.devs_off[i]: plan.devs_off[i] + plan.devs_len[i]]:
                holders.setdefault(int(d), set()).add(i)
        shared = {i for h in holders.values() if len(h) >= 2 for i in h}
        assert len(shared) == accounts, accounts
        assert max(len(h) for h in holders.values()) <= 3


def _recycled(params: dict[str, object], developers: dict[str, object]) -> tuple[dict[str, list[object]], dict[str, list[object]]]:
    sc = parse_scenario({
        "window": {"start": "2026-05-04", "end": "2026-06-01"},
        "population": {"casual": {"accounts": 3000, "exchanges_per_account": 5, "params": params},
                       "developer": {"accounts": 1000, "exchanges_per_account": 20, "params": developers}},
        "campaigns": [{"id": "c", "archetype": "careful", "accounts": 60, "exchanges": 3000, "targets": ["coding"],
                       "params": {"signup_weeks": 1}}],
    })  # fmt: skip
    _, accounts, labels = plan_population(sc, POOLS, np.random.default_rng(5))
    return accounts.to_pydict(), labels.to_pydict()


def test_a_recycled_number_goes_to_a_stranger_who_signs_up_after_the_fleet_held_it() -> None:
    plain, _ = _recycled({}, {})
    acc, lab = _recycled({"recycled_phones": 0.02, "recycled_after_days": 7}, {"recycled_phones": 0.5, "recycled_after_days": 7})
    fleet = [i for i, c in enumerate(lab["campaign_id"]) if c is not None]
    last_signup: dict[object, object] = {}  # the last campaign sign-up with each number
    for i in fleet:
        ph = acc["phone_hash"][i]
        if ph is not None:
            last_signup[ph] = max(last_signup.get(ph, acc["created_at"][i]), acc["created_at"][i])  # type: ignore[type-var]
    strangers = [i for i, c in enumerate(lab["campaign_id"]) if c is None and acc["phone_hash"][i] in last_signup]
    assert 5 <= len(strangers) <= 400
    assert len({acc["phone_hash"][i] for i in strangers}) == len(strangers)  # one stranger per number, across populations
    assert {lab["archetype"][i] for i in strangers} == {"casual", "developer"}
    for i in strangers:  # signed up a week or more after the last campaign account verified with the number
        assert (acc["created_at"][i] - last_signup[acc["phone_hash"][i]]).days >= 7  # type: ignore[attr-defined, operator]
    assert not [i for i, c in enumerate(lab["campaign_id"]) if c is None and plain["phone_hash"][i] in last_signup]
    # opt-in: every other value of every account is the plain scenario's
    for k in acc:
        if k != "phone_hash":
            assert acc[k] == plain[k], k
    assert sum(a != b for a, b in zip(acc["phone_hash"], plain["phone_hash"], strict=True)) == len(strangers)
