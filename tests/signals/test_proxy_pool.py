from __future__ import annotations

import datetime as dt
import random
from typing import Any

import polars as pl

from distillguard.signals.proxy_pool import SKETCH, ProxyPoolSignal
from tests.signals.helpers import by_id, finding

T0 = dt.datetime(2026, 4, 22, tzinfo=dt.UTC)
ISPS = (7922, 7018, 3320, 2856, 9498, 4713, 1136, 12322)  # broadband: homes and residential exits
MOBILE, CLOUD, OFFICE = 21928, 16509, 174


def _net(asn: int, c: int) -> str:
    """A /24 of ``asn``: each ASN owns one /16, so a /24 belongs to one ASN."""
    return f"{20 + ISPS.index(asn) if asn in ISPS else asn % 200}.{asn % 256}.{c}.0/24"


class Log:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.t = T0

    def add(self, acct: str, prefix: str, asn: int, n: int) -> None:
        for _ in range(n):
            self.t += dt.timedelta(seconds=7)
            self.rows.append({"request_id": f"r{len(self.rows)}", "ts": self.t, "account_id": acct,
                              "ip_prefix": prefix, "asn": asn, "input_tokens": 1, "output_tokens": 1})  # fmt: skip


def _population(seed: int = 0) -> tuple[Log, list[str]]:
    """Homes, a carrier NAT, a cloud /24 with an office, a one-home user, and a fleet
    rotating through a residential pool whose exits sit in the homes' ISPs."""
    rng = random.Random(seed)
    log = Log()
    for i in range(300):  # ordinary homes: 1-2 /24s each, some shared by chance
        for _ in range(rng.choice((1, 1, 2))):
            asn = rng.choice(ISPS)
            log.add(f"home{i:03d}", _net(asn, rng.randrange(64)), asn, rng.randint(3, 12))
    for i in range(25):  # strangers behind a carrier NAT: its three /24s, and maybe a home
        for c in rng.sample(range(3), rng.randint(1, 3)):
            log.add(f"mobile{i:02d}", _net(MOBILE, c), MOBILE, rng.randint(3, 10))
        if rng.random() < 0.5:
            asn = rng.choice(ISPS)
            log.add(f"mobile{i:02d}", _net(asn, rng.randrange(64)), asn, 4)
    for i in range(40):  # developers on one cloud /24, a home each, a quarter at one office
        log.add(f"dev{i:02d}", _net(CLOUD, 7), CLOUD, rng.randint(5, 30))
        asn = rng.choice(ISPS)
        log.add(f"dev{i:02d}", _net(asn, rng.randrange(64)), asn, 6)
        if i % 4 == 0:
            log.add(f"dev{i:02d}", _net(OFFICE, 1), OFFICE, 8)
    log.add("solo", _net(7922, 200), 7922, 30)
    pool = [(asn, 100 + c) for asn in ISPS for c in range(5)]  # 40 exits over 8 ISPs
    fleet = _fleet(log, rng, pool, 12)
    asn, c = pool[0]
    log.add("neighbour", _net(asn, c), asn, 20)  # a home /24 that is also one of the exits
    return log, fleet


def _fleet(log: Log, rng: random.Random, pool: list[tuple[int, int]], n: int) -> list[str]:
    fleet = [f"fleet{i:02d}" for i in range(n)]
    for a in fleet:
        for asn, c in rng.sample(pool, 15):  # sticky per session: a few requests per exit
            log.add(a, _net(asn, c), asn, 3)
    return fleet


def test_fleet_on_a_pool_is_linked_and_nat_cloud_and_homes_are_not() -> None:
    log, fleet = _population()
    f, idx = finding(ProxyPoolSignal(), log.rows)
    assert f.artifacts is not None
    arts = f.artifacts.join(idx, on="account")
    assert set(arts["kind"]) == {"pool"}
    held = dict(zip(arts["account_id"], arts["value"], strict=True))
    assert set(held) == set(fleet)  # no stranger, developer, home, neighbour or solo user
    assert len(set(held.values())) == 1  # one pool ties the whole fleet
    r = by_id(f, idx)
    assert all(r[a]["pool_size"] == len(fleet) and r[a]["pool_overlap"] >= 3 for a in fleet)
    assert min(r[a]["ts_pool"] for a in fleet) > max(r[a]["ts_pool"] for a in r if a not in fleet) + 1
    assert r["fleet00"]["pool_observed"] > 10 * r["fleet00"]["pool_expected"]
    (line,) = f.explain(r["fleet00"]) if f.explain else [""]
    asns = {r["asn"] for r in log.rows if r["account_id"] == "fleet00"}
    assert line.startswith(f"used 15 /24 networks in {len(asns)} ASNs; 15 of them") and "one pool of 12 accounts" in line
    assert f.texts is not None and f.texts["text"][0].startswith("12 accounts co-using")


def test_home_user_whose_networks_are_all_exits_of_a_big_pool_stays_out() -> None:
    """Residential exits are people's homes: where a pool covers an eighth of each ISP's
    /24s, a user with three homes on three exits is chance, a member on fifteen is not."""
    log, _ = _population(2)
    rng = random.Random(7)
    pool = [(asn, c) for asn in ISPS for c in range(8)]  # inside the homes' 64 /24s per ISP
    fleet = _fleet(log, rng, pool, 20)
    for asn in ISPS[:3]:
        log.add("unlucky", _net(asn, 0), asn, 10)
    f, idx = finding(ProxyPoolSignal(), log.rows)
    assert f.artifacts is not None
    held = set(f.artifacts.join(idx, on="account")["account_id"])
    assert held == set(fleet)
    r = by_id(f, idx)
    assert r["unlucky"]["asns"] == 3 and r["unlucky"]["pool_size"] == 0


def test_strangers_rotating_three_networks_by_chance_form_no_pool() -> None:
    """Accounts that each touch three operators' networks, all ordinary and popular (a
    carrier NAT, a cloud /24, an office), co-use them as often as everyone else does."""
    log, _ = _population(1)
    rng = random.Random(5)
    for i in range(30):
        log.add(f"roamer{i:02d}", _net(MOBILE, rng.randrange(3)), MOBILE, 4)
        log.add(f"roamer{i:02d}", _net(CLOUD, 7), CLOUD, 4)
        asn = rng.choice(ISPS)
        log.add(f"roamer{i:02d}", _net(asn, rng.randrange(64)), asn, 4)
    f, idx = finding(ProxyPoolSignal(), log.rows)
    assert f.artifacts is not None
    held = set(f.artifacts.join(idx, on="account")["account_id"])
    assert not any(a.startswith(("roamer", "mobile", "dev", "home")) for a in held)


def test_one_home_user_gets_no_artifact_and_no_rotation() -> None:
    log = Log()
    log.add("solo", _net(7922, 3), 7922, 40)
    f, idx = finding(ProxyPoolSignal(), log.rows)
    assert f.artifacts is not None and f.artifacts.height == 0
    r = by_id(f, idx)["solo"]
    assert (r["prefixes"], r["asns"], r["pool_size"]) == (1, 1, 0)
    assert f.explain is not None and f.explain(r) == []


def test_sketch_is_bounded_and_estimates_many_prefixes() -> None:
    log = Log()
    for c in range(400):
        asn = ISPS[c % len(ISPS)]
        log.add("rotator", f"{c // 256 + 30}.{c % 256}.9.0/24", asn, 1)
    f, idx = finding(ProxyPoolSignal(), log.rows)
    sig = ProxyPoolSignal()
    rows = pl.DataFrame(log.rows).sort("ts")
    from distillguard.signals.prepare import prepare

    df = prepare(rows)
    state = sig.update(sig.empty(), pl.concat([df, sig.enrich(df)], how="horizontal"))
    assert state["net"].height == SKETCH
    r = by_id(f, idx)["rotator"]
    assert 0.7 * 400 < r["prefixes"] < 1.3 * 400  # KMV with k = 64: about 13 % error
    assert r["asns"] == len(ISPS)


def test_a_quiet_rotator_on_members_exits_joins_the_pool_and_a_roamer_or_home_does_not() -> None:
    """The core asks for shared exits of three operators; a quiet member that used a dozen
    networks, two of them members' exits in two operators, is out of the core but rare
    twice over among strangers: that many operators, and that many members' exits."""
    log, fleet = _population(3)
    pool = [(asn, 100 + c) for asn in ISPS for c in range(5)]
    used = {(r["asn"], int(r["ip_prefix"].split(".")[2])) for r in log.rows if r["account_id"] in fleet}
    exits = [next(e for e in pool if e in used and e[0] == asn) for asn in ISPS[:2]]
    assert len(exits) == 2 and exits[0][0] != exits[1][0]
    for asn, c in exits:
        log.add("quiet", _net(asn, c), asn, 3)
    for k, asn in enumerate(ISPS):  # its other networks: residential, nobody else's
        log.add("quiet", _net(asn, 150 + k), asn, 3)
        log.add("roamer", _net(asn, 170 + k), asn, 3)  # as many operators, no exit
    for asn, c in exits:
        log.add("two-exit-home", _net(asn, c), asn, 10)  # two exits, two operators
    f, idx = finding(ProxyPoolSignal(), log.rows)
    assert f.artifacts is not None
    held = set(f.artifacts.join(idx, on="account")["account_id"])
    assert held == {*fleet, "quiet"}
    r = by_id(f, idx)
    assert r["quiet"]["pool_size"] == len(fleet) + 1 and r["roamer"]["pool_size"] == 0
    assert r["two-exit-home"]["pool_size"] == 0
