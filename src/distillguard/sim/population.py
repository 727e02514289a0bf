"""Accounts: who registers, when, from where, with which artifacts, and how much each will send.

Every account, benign or not, gets its ids, keys, device fingerprints and
addresses from the same generators (:mod:`distillguard.sim.infra`); campaigns
differ only in *reuse* (shared proxies, devices, phones, cards, corporate-looking
domains) and in timing (sign-up bursts or staggered sign-ups). Per-campaign
parameters are drawn from ranges, so no two campaigns share a constant.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from distillguard.errors import ConfigError
from distillguard.sim import infra, tactics
from distillguard.sim.archetypes import ANSWER_FORMATS, ATTACK_BUILDERS, CampaignStyle, draw_script
from distillguard.sim.pools import Pools
from distillguard.sim.scenario import ATTACK, BENIGN, Campaign, Population, Scenario

__all__ = ["ARCHETYPES", "CampaignRun", "Plan", "plan_population"]

ARCHETYPES = BENIGN + ATTACK
US = 1_000_000
DAY = 86_400 * US
MAXTOK_VALUES = np.array([256, 512, 1024, 1500, 2048, 4000, 4096, 8192, 16000, 32000, 64000])
MAXTOK_BENIGN = np.array([2, 4, 14, 3, 10, 6, 14, 10, 5, 2, 1], float)


def _us(d: dt.datetime) -> int:
    return int(d.timestamp() * US)


@dataclass
class CampaignRun:
    """A campaign with the parameters drawn for this run."""

    spec: Campaign
    style: CampaignStyle
    start: int
    end: int
    mean_turns: float
    gap_s: float
    diurnal: float
    op_tz: float
    out_median: float
    out_sigma: float
    max_tokens: int
    pin_share: float
    rate_profile: int
    net_skew: float
    dev_skew: float
    error_rate: float
    pacing: str = "windows"  # windows (a shared schedule) | sessions (human sittings in the account's tz)
    profile: np.ndarray | None = None  # local-hour weights of the sittings
    per_day: tuple[int, int] = (1, 4)  # sittings a day
    minutes: tuple[float, float] = (15, 75)  # length of a sitting
    proxy_pool: np.ndarray | None = None  # exits rotated per sitting (net indices), shared by the fleet
    content: str = ""  # builder to use when not the archetype's own


@dataclass
class Plan:
    """All accounts of a run as parallel arrays (index = global account index)."""

    account_id: list[str] = field(default_factory=list)
    arch: list[np.ndarray] = field(default_factory=list)
    camp: list[np.ndarray] = field(default_factory=list)
    n_ex: list[np.ndarray] = field(default_factory=list)
    created: list[np.ndarray] = field(default_factory=list)
    act_start: list[np.ndarray] = field(default_factory=list)
    act_end: list[np.ndarray] = field(default_factory=list)
    tz: list[np.ndarray] = field(default_factory=list)
    maxtok: list[np.ndarray] = field(default_factory=list)
    endpoint: list[np.ndarray] = field(default_factory=list)
    adopt: list[np.ndarray] = field(default_factory=list)
    app: list[np.ndarray] = field(default_factory=list)
    bench: list[np.ndarray] = field(default_factory=list)
    profile: list[np.ndarray] = field(default_factory=list)
    net_skew: list[np.ndarray] = field(default_factory=list)
    warm: list[np.ndarray] = field(default_factory=list)  # µs of ordinary chat before harvesting starts
    fmt: list[np.ndarray] = field(default_factory=list)  # eval runners: answer-format system prompt (-1 none)
    nets: list[np.ndarray] = field(default_factory=list)  # per account
    devs: list[np.ndarray] = field(default_factory=list)
    keys: list[np.ndarray] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)  # accounts-table columns per block
    campaigns: list[CampaignRun] = field(default_factory=list)
    nets_pool: infra.Nets | None = None
    devs_pool: infra.Devices | None = None
    key_ids: pa.Array | None = None

    def finish(self) -> None:
        """Concatenate the per-block arrays and build CSR indices for nets/devices/keys."""
        for name in ("arch", "camp", "n_ex", "created", "act_start", "act_end", "tz", "maxtok", "endpoint",
                     "adopt", "app", "bench", "profile", "net_skew", "warm", "fmt"):
            setattr(self, f"a_{name}", np.concatenate(getattr(self, name)))
        for name in ("nets", "devs", "keys"):
            lst = getattr(self, name)
            lens = np.array([len(x) for x in lst], np.int64)
            off = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
            setattr(self, f"{name}_data", np.concatenate(lst).astype(np.int64))
            setattr(self, f"{name}_off", off)
            setattr(self, f"{name}_len", lens)

    # filled by finish(); declared for the type checker
    a_arch: np.ndarray = field(init=False, repr=False)
    a_camp: np.ndarray = field(init=False, repr=False)
    a_n_ex: np.ndarray = field(init=False, repr=False)
    a_created: np.ndarray = field(init=False, repr=False)
    a_act_start: np.ndarray = field(init=False, repr=False)
    a_act_end: np.ndarray = field(init=False, repr=False)
    a_tz: np.ndarray = field(init=False, repr=False)
    a_maxtok: np.ndarray = field(init=False, repr=False)
    a_endpoint: np.ndarray = field(init=False, repr=False)
    a_adopt: np.ndarray = field(init=False, repr=False)
    a_app: np.ndarray = field(init=False, repr=False)
    a_bench: np.ndarray = field(init=False, repr=False)
    a_profile: np.ndarray = field(init=False, repr=False)
    a_net_skew: np.ndarray = field(init=False, repr=False)
    a_warm: np.ndarray = field(init=False, repr=False)
    a_fmt: np.ndarray = field(init=False, repr=False)
    nets_data: np.ndarray = field(init=False, repr=False)
    nets_off: np.ndarray = field(init=False, repr=False)
    nets_len: np.ndarray = field(init=False, repr=False)
    devs_data: np.ndarray = field(init=False, repr=False)
    devs_off: np.ndarray = field(init=False, repr=False)
    devs_len: np.ndarray = field(init=False, repr=False)
    keys_data: np.ndarray = field(init=False, repr=False)
    keys_off: np.ndarray = field(init=False, repr=False)
    keys_len: np.ndarray = field(init=False, repr=False)

    @property
    def n(self) -> int:
        return len(self.account_id)


class _Builder:
    def __init__(self, sc: Scenario, pools: Pools, rng: np.random.Generator) -> None:
        self.sc = sc
        self.pools = pools
        self.rng = rng
        self.nets = infra.Nets(rng)
        self.devs = infra.Devices(rng)
        self.n_keys = 0
        self.plan = Plan()
        self.start = _us(sc.start)
        self.end = _us(sc.end)
        self.human_sigma = float(np.clip(0.5 * pools.volume_sigma, 0.8, 1.4))
        self._ids = 0
        self.domains_taken: set[str] = set()  # every email domain handed out so far
        self.operators: dict[str, dict[str, Any]] = {}  # what fleets of one operator share

    # ---------------------------------------------------------------- helpers
    def taken(self, domains: list[str]) -> list[str]:
        self.domains_taken.update(domains)
        return domains

    def front_domains(self, rng: np.random.Generator, n: int) -> list[str]:
        """An operator's own front domains: registered for it, so no other company or
        operator has them (the syllable generator alone repeats names across draws)."""
        out: list[str] = []
        while len(out) < n:
            fresh = [d for d in infra.company_domains(rng, n - len(out)) if d not in self.domains_taken]
            fresh = list(dict.fromkeys(fresh))
            self.domains_taken.update(fresh)
            out += fresh
        return out

    def keys(self, k: np.ndarray) -> list[np.ndarray]:
        out = []
        for x in k:
            out.append(np.arange(self.n_keys, self.n_keys + int(x)))
            self.n_keys += int(x)
        return out

    def volumes(self, n: int, total: float, sigma: float, weight: np.ndarray | None = None) -> np.ndarray:
        """Heavy-tailed per-account volumes (lognormal, spread from ServeGen clients) summing to ``total``."""
        w = self.rng.lognormal(0.0, sigma, n) * (1.0 if weight is None else weight)
        out: np.ndarray = np.maximum(1, np.round(total * w / w.sum())).astype(np.int64)
        return out

    def add_block(self, arch: str, camp: int, n_ex: np.ndarray, created: np.ndarray, act_start: np.ndarray,
                  act_end: np.ndarray, tz: np.ndarray, maxtok: np.ndarray, nets: list[np.ndarray],
                  devs: list[np.ndarray], keys: list[np.ndarray], table: dict[str, Any],
                  app: np.ndarray | None = None, bench: np.ndarray | None = None,
                  profile: np.ndarray | None = None, net_skew: float | np.ndarray = 2.0,
                  endpoint: np.ndarray | None = None, warm: np.ndarray | None = None,
                  fmt: np.ndarray | None = None) -> None:
        n = len(n_ex)
        p = self.plan
        warm = np.zeros(n, np.int64) if warm is None else np.asarray(warm, np.int64)
        p.arch.append(np.full(n, ARCHETYPES.index(arch), np.int8))
        p.camp.append(np.full(n, camp, np.int32))
        p.n_ex.append(n_ex.astype(np.int64))
        p.created.append(created.astype(np.int64))
        act_start = np.maximum(act_start, created + 600 * US).astype(np.int64)
        p.act_start.append(act_start)
        p.act_end.append(act_end.astype(np.int64))
        p.tz.append(np.asarray(tz, np.float64))
        p.maxtok.append(maxtok.astype(np.int32))
        p.endpoint.append(endpoint if endpoint is not None else (self.rng.random(n) < 0.45).astype(np.int8))
        p.adopt.append(self.rng.lognormal(np.log(10), 0.6, n))
        p.app.append(app if app is not None else np.full(n, -1, np.int32))
        p.bench.append(bench if bench is not None else np.zeros(n, np.int32))
        p.profile.append(profile if profile is not None else np.zeros(n, np.int32))
        p.net_skew.append(np.broadcast_to(np.asarray(net_skew, np.float64), (n,)).copy())
        p.warm.append(warm)
        p.fmt.append(np.full(n, -1, np.int32) if fmt is None else fmt.astype(np.int32))
        # when harvesting starts (after any warm-up), for the bench's time to detect; null for people
        table["harvest_start"] = [None] * n if camp < 0 else (act_start + warm).tolist()
        p.nets += nets
        p.devs += devs
        p.keys += keys
        table["signup_ip"] = [self.nets.ip[int(x[0])] for x in nets]
        p.rows.append(table)

    def maxtok_benign(self, n: int) -> np.ndarray:
        return MAXTOK_VALUES[self.rng.choice(len(MAXTOK_VALUES), n, p=MAXTOK_BENIGN / MAXTOK_BENIGN.sum())]

    def phones(self, n: int, share: float, reuse: float = 1.0) -> list[str | None]:
        """Phone hashes; ``reuse`` > 1 draws them from a pool ``n / reuse`` large."""
        pool = infra.rand_ids(self.rng, max(1, int(np.ceil(n / reuse))), "", 32, hexa=True).to_pylist()
        idx = self.rng.integers(0, len(pool), n) if reuse > 1 else np.arange(n) % len(pool)
        has = self.rng.random(n) < share
        return [pool[i] if h else None for i, h in zip(idx, has, strict=True)]

    def payments(self, n: int, paid: np.ndarray, reuse: float = 1.0, shared: list[str | None] | None = None) -> list[str | None]:
        pool = infra.rand_ids(self.rng, max(1, int(np.ceil(n / reuse))), "pm_", 20).to_pylist()
        idx = self.rng.integers(0, len(pool), n) if reuse > 1 else np.arange(n) % len(pool)
        out: list[str | None] = []
        for i in range(n):
            if not paid[i]:
                out.append(None)
            elif shared is not None and shared[i] is not None:
                out.append(shared[i])
            else:
                out.append(pool[idx[i]])
        return out

    def plans(self, n: int, choices: tuple[str, ...], w: tuple[float, ...]) -> list[str]:
        idx = self.rng.choice(len(choices), n, p=np.asarray(w) / sum(w))
        return [choices[i] for i in idx]

    # ---------------------------------------------------------------- benign
    def benign(self, pop: Population) -> None:
        n, rng = pop.accounts, self.rng
        if n == 0:
            return
        a = pop.archetype
        country = infra.countries(rng, n)
        tz = infra.tz_of(country, rng)
        abroad = float(pop.params.get("abroad", 0.0))
        new = rng.random(n) < 0.12
        created = np.where(new, self.start + rng.uniform(0, 0.8, n) * (self.end - self.start),
                           self.start - rng.uniform(1, 900, n) * DAY).astype(np.int64)
        act_start = np.maximum(created, self.start)
        act_end = np.full(n, self.end, np.int64)
        sigma = {"enterprise_app": 0.5, "eval_runner": 0.5}.get(a, self.human_sigma)
        active = np.clip((act_end - act_start) / (self.end - self.start), 0.05, 1)  # late sign-ups send less
        n_ex = self.volumes(n, pop.exchanges_per_account * n, sigma, active)
        maxtok = self.maxtok_benign(n)
        app = np.full(n, -1, np.int32)
        bench = np.zeros(n, np.int32)
        profile = np.zeros(n, np.int32)
        n_apps = max(1, len(self.pools.apps))
        fmt = np.full(n, -1, np.int32)
        groups = max(1, pop.groups) if a in ("nat_shared", "org_member") else 0
        grp = rng.integers(0, groups, n) if groups else np.full(n, -1)
        if groups:
            grp[: min(groups, n)] = np.arange(min(groups, n))  # every group has a member
        webmail = infra.webmail(rng, n)
        org_id: list[str | None] = [None] * n
        paid = rng.random(n) < {"casual": 0.35, "developer": 0.8, "agent_user": 0.85, "nat_shared": 0.3,
                                "org_member": 1.0, "enterprise_app": 1.0, "eval_runner": 1.0}[a]
        shared_pay: list[str | None] | None = None
        nets: list[np.ndarray] = []
        devs: list[np.ndarray] = []
        n_home = rng.integers(1, 4, n)
        home = self.nets.add_many(self.nets.residential_asns(np.repeat(country, n_home)))
        home_split = np.split(home, np.cumsum(n_home)[:-1])
        ua = infra.UA_HUMAN
        if a in ("casual", "developer", "agent_user"):
            dom_kind = rng.choice(3, n, p={"casual": (0.85, 0.1, 0.05)}.get(a, (0.6, 0.35, 0.05)))
            comp = infra.company_domains(rng, n)
            uni = infra.university_domains(rng, n)
            domains = [webmail[i] if dom_kind[i] == 0 else comp[i] if dom_kind[i] == 1 else uni[i] for i in range(n)]
            for i in range(n):
                extra: list[np.ndarray] = []
                if a == "developer" and rng.random() < 0.4:
                    extra.append(self.nets.add(int(rng.choice(infra.BUSINESS))))
                if a == "agent_user" and rng.random() < 0.35:
                    extra.append(self.nets.datacenter(1))
                nets.append(np.concatenate([home_split[i], *extra]))
            k_dev = rng.integers(1, 3 if a == "casual" else 4, n)
            if a != "casual":
                app = np.where(rng.random(n) < (0.3 if a == "developer" else 1.0), rng.integers(0, n_apps, n), -1).astype(np.int32)
            if a == "developer":
                solo = rng.random(n) < 0.1
                org_ids = infra.rand_ids(rng, n, "org_", 16).to_pylist()
                org_id = [org_ids[i] if solo[i] else None for i in range(n)]
            plan = self.plans(n, ("free", "pro", "api"), {"casual": (0.6, 0.35, 0.05), "developer": (0.1, 0.3, 0.6)}.get(a, (0.05, 0.35, 0.6)))
            verified = rng.random(n) < {"casual": 0.05, "developer": 0.15, "agent_user": 0.2}[a]
        elif a == "enterprise_app":
            domains = infra.company_domains(rng, n)
            org_id = infra.rand_ids(rng, n, "org_", 16).to_pylist()
            for _ in range(n):
                nets.append(self.nets.datacenter(int(rng.integers(2, 7)), same_prefix=rng.random() < 0.7))
            k_dev = np.ones(n, np.int64)
            ua = infra.UA_SCRIPT
            app = rng.integers(0, n_apps, n).astype(np.int32)
            profile = rng.integers(0, max(1, len(self.pools.client_rates)), n).astype(np.int32)
            plan = ["enterprise"] * n
            verified = np.ones(n, bool)
            maxtok = MAXTOK_VALUES[rng.integers(2, 8, n)]
        elif a == "eval_runner":
            uni = infra.university_domains(rng, n)
            comp = infra.company_domains(rng, n)
            domains = [uni[i] if rng.random() < 0.4 else comp[i] for i in range(n)]
            org_ids = infra.rand_ids(rng, n, "org_", 16).to_pylist()
            org_id = [o if rng.random() < 0.6 else None for o in org_ids]
            for _ in range(n):
                nets.append(self.nets.datacenter(int(rng.integers(1, 3))))
            k_dev = np.ones(n, np.int64)
            ua = infra.UA_SCRIPT
            bench = rng.integers(0, max(1, len(self.pools.benchmarks)), n).astype(np.int32)
            if pop.params.get("answer_format"):  # a lab's harness: one answer-format system prompt per run
                fmt = rng.integers(0, len(ANSWER_FORMATS), n).astype(np.int32)
            plan = self.plans(n, ("api", "team"), (0.7, 0.3))
            verified = rng.random(n) < 0.6
            maxtok = MAXTOK_VALUES[rng.integers(1, 8, n)]
        else:  # nat_shared / org_member: groups share a network (NAT) or an organisation
            is_uni = rng.random(groups) < 0.55
            g_country = infra.countries(rng, groups, tuple(infra.UNIVERSITY) if a == "nat_shared" else None)
            g_dom = [infra.university_domains(rng, 1)[0] if (a == "nat_shared" and is_uni[g]) else infra.company_domains(rng, 1)[0]
                     for g in range(groups)]
            g_nat = []
            for g in range(groups):
                c = g_country[g]
                if a == "nat_shared" and is_uni[g] and c in infra.UNIVERSITY:
                    asn = int(rng.choice(infra.UNIVERSITY[c]))
                else:
                    asn = int(rng.choice(infra.BUSINESS))
                g_nat.append(self.nets.add(asn, int(rng.integers(1, 4)), same_prefix=True))
            cgnat = np.zeros(groups, bool)
            if a == "nat_shared" and float(pop.params.get("cgnat", 0.0)) > 0:
                cgnat, g_nat = self.cgnat(rng, float(pop.params["cgnat"]), g_country, g_nat)
            country = [g_country[g] for g in grp]
            tz = infra.tz_of(country, rng)
            for i in range(n):
                own = home_split[i][:1] if rng.random() < (0.3 if a == "nat_shared" else 0.6) else home_split[i][:0]
                shared = g_nat[grp[i]]
                if cgnat[grp[i]]:  # a carrier hands each phone a few of its shared addresses
                    shared = rng.choice(shared, size=min(len(shared), int(rng.integers(2, 5))), replace=False)
                nets.append(np.concatenate([shared, own]))
            k_dev = rng.integers(1, 3, n)
            if a == "org_member":
                g_org = infra.rand_ids(rng, groups, "org_", 16).to_pylist()
                g_pay = infra.rand_ids(rng, groups, "pm_", 20).to_pylist()
                org_id = [g_org[g] for g in grp]
                shared_pay = [g_pay[g] for g in grp]
                domains = [g_dom[g] if rng.random() < 0.9 else webmail[i] for i, g in enumerate(grp)]
                plan = self.plans(n, ("team", "api"), (0.7, 0.3))
                verified = rng.random(n) < 0.5
                app = np.where(rng.random(n) < 0.3, rng.integers(0, n_apps, n), -1).astype(np.int32)
            else:
                domains = [g_dom[g] if rng.random() < 0.5 and not cgnat[g] else webmail[i] for i, g in enumerate(grp)]
                plan = self.plans(n, ("free", "pro", "api"), (0.6, 0.3, 0.1))
                verified = rng.random(n) < 0.05
        if abroad > 0 and a in ("casual", "developer", "agent_user", "nat_shared", "org_member"):
            # travellers and expats: billed in one country, living in another's timezone
            away = rng.random(n) < abroad
            tz = np.where(away, infra.tz_of(infra.countries(rng, n), rng), tz)
        k_dev = np.asarray(k_dev, np.int64)
        devs = np.split(self.devs.add(int(k_dev.sum()), ua), np.cumsum(k_dev)[:-1])
        keys = self.keys(rng.integers(1, 3, n) if a != "eval_runner" else np.ones(n, np.int64))
        paid = paid & np.array([pl != "free" for pl in plan])
        table = {
            "created_at": created,
            "email": infra.emails(rng, domains),
            "email_domain": self.taken(domains),
            "phone_hash": self.phones(n, 0.75),
            "payment_fp": self.payments(n, paid, shared=shared_pay),
            "country": list(country),
            "org_id": org_id,
            "verified": np.asarray(verified, bool),
            "plan": plan,
            "archetype": [a] * n,
            "campaign_id": [None] * n,
        }
        self.add_block(a, -1, n_ex, created, act_start, act_end, tz, maxtok, nets, devs, keys, table,
                       app=app, bench=bench, profile=profile,
                       net_skew={"enterprise_app": 1.0, "eval_runner": 1.0}.get(a, 2.5), fmt=fmt)

    def cgnat(self, rng: np.random.Generator, share: float, g_country: list[str],
              g_nat: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Turn a ``share`` of NAT groups into a mobile carrier's CGNAT: a few /24s of one mobile
        ASN whose addresses many unrelated subscribers share and hop between."""
        is_cg = rng.random(len(g_nat)) < share
        out = list(g_nat)
        for g in np.flatnonzero(is_cg):
            mobile = infra.COUNTRIES[g_country[g]][3]
            asn = int(rng.choice(mobile))
            k_pre = int(rng.integers(2, 5))
            per = int(rng.integers(4, 9))
            out[g] = self.nets.add_many(np.full(k_pre * per, asn), np.repeat(np.arange(k_pre), per))
        return is_cg, out

    # ---------------------------------------------------------------- careful operators
    def operator(self, rng: np.random.Generator, c: Campaign) -> dict[str, Any]:
        """What fleets of one operator share (``params.operator``): timezone, task list, script, proxy provider."""
        key = str(c.params.get("operator", c.id))
        op = self.operators.get(key)
        if op is None:
            prm = c.params
            op = {
                "op_tz": float(prm.get("op_tz", rng.choice([-8, -5, 0, 1, 3, 5.5, 8, 9]))),
                "script": draw_script(rng, int(prm.get("script_len", rng.integers(4, 9)))),
                "profile": tactics.HOURS[str(prm.get("hours", rng.choice(sorted(tactics.HOURS))))],
                "tasks": [],
                "proxies": None,
            }
            self.operators[key] = op
        return op

    def task_list(self, rng: np.random.Generator, k: int, w: np.ndarray) -> np.ndarray:
        """``k`` tasks of the public instruction sets as rows of (source, index)."""
        p = self.pools
        src = rng.choice(4, size=k, p=w)
        size = np.array([len(p.seed_instr), len(p.code_instr), len(p.role_instr), len(p.tool_instr)])
        out: np.ndarray = np.stack([src, rng.integers(0, size[src])], axis=1).astype(np.int64)
        return out

    def proxy_pool(self, rng: np.random.Generator, size: int, mobile: float) -> np.ndarray:
        """Residential and mobile exits of every country, each in its own /24 (a provider's pool)."""
        asns = self.nets.residential_asns(infra.countries(rng, size), mobile)
        return self.nets.add_many(asns, np.arange(size))

    def tactical(self, rng: np.random.Generator, c: Campaign, cap: float) -> None:
        """``careful`` fleets and ``disposable`` waves, built from :mod:`~distillguard.sim.tactics`.

        careful: paraphrased tasks with scripted follow-ups, a few sittings a day in the
        operator's timezone while billing countries vary, residential exits rotated per
        sitting, cells of 3-8 accounts sharing a card, a phone and a front domain (``rings:
        independent`` cuts each kind of artifact into rings of its own), sign-ups staggered
        over weeks and a warm-up of ordinary chat. disposable: waves registered within
        hours, each account used hard for one to three days and then dropped. Every knob is
        a ``params`` key (see ``scenarios/tactics-2026.yaml``).
        """
        n, a, prm = c.accounts, c.archetype, c.params
        careful = a == "careful"
        start = _us(c.start) if c.start else self.start
        end = _us(c.end) if c.end else self.end
        span = max(end - start, DAY // 4)
        # warm-up is per account here (a range), not the stealth archetype's one number
        style = CampaignStyle.draw(rng, a, c.targets, {k: v for k, v in prm.items() if k != "warmup_days"},
                                   len(self.pools.tool_headers))
        op = self.operator(rng, c)
        all_c = list(infra.COUNTRIES)
        k_c = int(prm.get("countries", rng.integers(10, 19) if careful else rng.integers(2, 6)))
        claim = tuple(str(x) for x in rng.choice(all_c, min(k_c, len(all_c)), replace=False))
        country = infra.countries(rng, n, claim)
        # --- sign-ups and activity
        warm = np.zeros(n, np.int64)
        if careful:
            created = tactics.staggered(rng, n, start, span, float(prm.get("signup_weeks", rng.uniform(2, 6))),
                                        float(prm.get("signup_inside", 0.6)))
            act_start = np.maximum(created + (rng.uniform(0.05, 1.5, n) * DAY).astype(np.int64), start)
            act_end = np.full(n, end, np.int64)
            lo, hi = prm.get("warmup_days", (2, 6)) if not isinstance(prm.get("warmup_days"), int | float) else (
                prm["warmup_days"], prm["warmup_days"])
            warm = (rng.uniform(float(lo), float(hi), n) * DAY).astype(np.int64)
        else:
            lo_l, hi_l = prm.get("life_days", (1, 3))
            lo_h, hi_h = prm.get("wave_hours", (1, 4))
            n_waves = int(prm.get("waves", rng.integers(3, 7)))
            _, created, act_start, act_end = tactics.waves(rng, n, start, end, n_waves, (float(lo_h), float(hi_h)),
                                                           (float(lo_l), float(hi_l)))
        act_start = np.minimum(act_start, act_end - 3600 * US).astype(np.int64)
        # --- volume: tens of requests a day for a careful fleet, hard use for a wave
        n_ex = self.volumes(n, c.exchanges, float(prm.get("volume_sigma", 0.4 if careful else 0.3)))
        if careful:
            days = np.maximum((act_end - act_start) / DAY, 0.5)
            n_ex = np.minimum(n_ex, np.maximum(1, np.floor(0.8 * cap * days))).astype(np.int64)
        # --- infrastructure
        pool: np.ndarray | None = None
        if careful or prm.get("proxies") == "rotating":
            if op["proxies"] is None or not careful:
                size = max(8, int(n * float(prm.get("proxy_pool_per_account", 30))))
                op["proxies"] = self.proxy_pool(rng, size, float(prm.get("mobile_share", 0.35)))
            pool = op["proxies"]
            nets = [pool[rng.integers(0, len(pool), int(rng.integers(1, 3)))] for _ in range(n)]
        else:  # each wave: a handful of cheap proxies (a few /24s, hosting or residential)
            wave_of = np.searchsorted(np.unique(created // (6 * 3600 * US)), created // (6 * 3600 * US))
            nets = []
            for w in np.unique(wave_of):
                m = np.flatnonzero(wave_of == w)
                k = max(2, len(m) // int(rng.integers(3, 10)))
                res = rng.random(k) < float(prm.get("residential_share", 0.5))
                asns = np.where(res, self.nets.residential_asns(infra.countries(rng, k, claim), 0.3),
                                rng.choice(infra.DATACENTER, k))
                exits = self.nets.add_many(asns.astype(np.int64), rng.integers(0, max(1, k // 3), k) + 10**6 * res)
                nets += [np.unique(exits[rng.integers(0, k, int(rng.integers(1, 4)))]) for _ in m]
        k_dev = rng.integers(1, 3, n)
        devs = np.split(self.devs.add(int(k_dev.sum()), infra.UA_HUMAN if careful else infra.UA_SCRIPT),
                        np.cumsum(k_dev)[:-1])
        keys = self.keys(rng.integers(1, 3, n))
        # --- identity: small rings per artifact, never one artifact across the fleet
        lo_r, hi_r = (int(x) for x in prm.get("ring_size", (3, 8)))
        phones = infra.rand_ids(rng, n, "", 32, hexa=True).to_pylist()
        cards = infra.rand_ids(rng, n, "pm_", 20).to_pylist()
        if str(prm.get("rings", "cells")) == "cells":  # compartmented: a cell shares its card, phone and domain
            p_ring = c_ring = d_ring = tactics.ring_of(rng, n, lo_r, hi_r)
        else:  # independent: each kind of artifact cut into rings of its own (they overlap into a web)
            p_ring, c_ring, d_ring = (tactics.ring_of(rng, n, lo_r, hi_r) for _ in range(3))
        fronts = self.front_domains(rng, int(d_ring.max()) + 1)
        webmail_share = float(prm.get("webmail_share", rng.uniform(0.3, 0.6) if careful else rng.uniform(0.6, 0.95)))
        wm = infra.webmail(rng, n)
        use_wm = rng.random(n) < webmail_share
        domains = [wm[i] if use_wm[i] else fronts[d_ring[i]] for i in range(n)]
        plan = self.plans(n, ("free", "pro", "api", "team"), (0.2, 0.5, 0.3, 0.0) if careful else (0.7, 0.1, 0.2, 0.0))
        paid = np.array([pl != "free" for pl in plan])
        has_phone = rng.random(n) < float(prm.get("phone_share", 0.9 if careful else 0.7))
        # --- behaviour
        content = str(prm.get("content", ""))
        if content and content not in ATTACK_BUILDERS:
            raise ConfigError(f"campaign {c.id} params key 'content' has value {content!r}; "
                              f"expected one of {sorted(ATTACK_BUILDERS)}")
        if careful or content == "careful":
            style.warmup_days = 0.0  # per account, in ``warm``
            style.vary_p = float(prm.get("vary", 0.15))
            style.foreign_p = float(prm.get("foreign", 0.1))
            style.script = list(op["script"])
            # the operator's task list: each task is sent a few times, reworded, by different accounts
            k_tasks = max(32, int(c.exchanges / float(prm.get("task_reuse", rng.uniform(2.5, 4.0)))))
            have = sum(len(t) for t in op["tasks"])
            if have < k_tasks:
                op["tasks"].append(self.task_list(rng, k_tasks - have, style.task_weights))
            style.tasks = np.concatenate(op["tasks"])[:k_tasks]
        tz = np.full(n, op["op_tz"])
        maxtok = self.maxtok_benign(n) if careful else np.full(n, int(prm.get("max_tokens", rng.choice([4096, 8192, 16000]))))
        run = CampaignRun(
            spec=c, style=style, start=start, end=end,
            mean_turns=float(prm.get("mean_turns", rng.uniform(1.8, 2.6) if careful else rng.uniform(1.0, 1.4))),
            gap_s=float(rng.uniform(30, 90) if careful else rng.uniform(2, 10)),
            diurnal=float(prm.get("diurnal", 0.95 if careful else rng.uniform(0.0, 0.3))),
            op_tz=float(op["op_tz"]),
            out_median=float(prm.get("output_median", rng.uniform(250, 600) if careful else rng.uniform(700, 2500))),
            out_sigma=float(rng.uniform(0.4, 0.9)),
            max_tokens=int(maxtok[0]),
            pin_share=0.0 if careful else float(rng.uniform(0.6, 1.0)),
            rate_profile=int(rng.integers(0, max(1, len(self.pools.client_rates)))),
            net_skew=float(rng.uniform(1.0, 2.5)),
            dev_skew=2.0,
            error_rate=float(rng.uniform(0.002, 0.01) if careful else rng.uniform(0.005, 0.03)),
            pacing="sessions" if careful else "windows",
            profile=op["profile"],
            per_day=tuple(int(x) for x in prm.get("sessions_per_day", (1, 4))),  # type: ignore[arg-type]
            minutes=tuple(float(x) for x in prm.get("session_minutes", (15, 75))),  # type: ignore[arg-type]
            proxy_pool=pool,
            content=content,
        )
        self.plan.campaigns.append(run)
        table = {
            "created_at": created,
            "email": infra.emails(rng, domains),
            "email_domain": self.taken(domains),
            "phone_hash": [phones[p_ring[i]] if has_phone[i] else None for i in range(n)],
            "payment_fp": [cards[c_ring[i]] if paid[i] else None for i in range(n)],
            "country": list(country),
            "org_id": [None] * n,
            "verified": rng.random(n) < (0.2 if careful else 0.02),
            "plan": plan,
            "archetype": [a] * n,
            "campaign_id": [c.id] * n,
        }
        self.add_block(a, len(self.plan.campaigns) - 1, n_ex, created, act_start, act_end, tz, maxtok, nets, devs, keys,
                       table, profile=np.full(n, run.rate_profile, np.int32), net_skew=run.net_skew, warm=warm)

    # ---------------------------------------------------------------- campaigns
    def campaign(self, ci: int, c: Campaign, stealth_cap: float) -> None:
        rng = np.random.default_rng([int(self.rng.integers(0, 2**31)), ci])
        if c.archetype in ("careful", "disposable"):
            self.tactical(rng, c, stealth_cap)
            return
        n, a, prm = c.accounts, c.archetype, c.params
        start = _us(c.start) if c.start else self.start
        end = _us(c.end) if c.end else self.end
        span = max(end - start, DAY // 4)
        style = CampaignStyle.draw(rng, a, c.targets, prm, len(self.pools.tool_headers))
        all_c = list(infra.COUNTRIES)
        k_c = int(rng.integers(1, 6))
        claim = tuple(str(x) for x in rng.choice(all_c, k_c, replace=False))
        country = infra.countries(rng, n, claim)
        # --- sign-ups
        if a == "stealth":
            created = start + rng.uniform(-float(prm.get("signup_weeks", rng.uniform(2, 6))) * 7, 0.3 * span / DAY, n) * DAY
        else:
            n_b = int(prm.get("signup_bursts", {"naive_scraper": rng.integers(1, 4), "hydra": rng.integers(4, 20)}.get(a, rng.integers(3, 15))))
            b_at = start - rng.uniform(0.5, 12, n_b) * DAY + rng.uniform(0, 0.5, n_b) * span
            b_of = rng.integers(0, n_b, n)
            created = b_at[b_of] + rng.exponential(rng.uniform(0.3, 3) * 3600, n) * US
        created = created.astype(np.int64)
        act_start = np.maximum(created + rng.uniform(0.05, 1.5, n) * DAY, start).astype(np.int64)
        act_end = np.full(n, end, np.int64)
        if a == "naive_scraper":  # accounts burn out and are replaced in waves
            life = rng.uniform(0.3, 1.0, n) * span
            act_end = np.minimum(act_start + life, end).astype(np.int64)
        act_start = np.minimum(act_start, act_end - 3600 * US)
        # --- volume
        sigma = {"naive_scraper": 0.3, "hydra": 0.8, "stealth": 0.4, "reasoning_harvester": 0.6, "agentic_harvester": 0.7}[a]
        n_ex = self.volumes(n, c.exchanges, float(prm.get("volume_sigma", sigma)))
        if a == "stealth":
            days = np.maximum((act_end - act_start) / DAY, 0.5)
            n_ex = np.minimum(n_ex, np.maximum(1, np.floor(0.8 * stealth_cap * days))).astype(np.int64)
        # --- infrastructure
        res_share = float(prm.get("residential_share", {"naive_scraper": rng.uniform(0, 0.15), "hydra": rng.uniform(0.3, 0.8),
                                                          "stealth": 1.0}.get(a, rng.uniform(0.2, 0.7))))
        dc_asns = tuple(int(x) for x in rng.choice(infra.DATACENTER, int(rng.integers(1, 4)), replace=False))
        pool_size = max(4, int(n * float(prm.get("proxy_pool_per_account", {"naive_scraper": rng.uniform(0.1, 0.5), "stealth": 2.0}.get(a, rng.uniform(0.5, 3.0))))))
        is_res = rng.permutation(np.arange(pool_size) < int(pool_size * res_share))
        # datacenter proxies come in a few /24s (each in one ASN); residential exits are scattered
        n_pre = max(1, pool_size // int(rng.integers(8, 40)))
        pre_of = np.where(is_res, np.arange(pool_size) + n_pre, rng.integers(0, n_pre, pool_size))
        asns = np.where(is_res, self.nets.residential_asns(infra.countries(rng, pool_size, claim), 0.3),
                        np.asarray(dc_asns)[pre_of % len(dc_asns)])
        pool = self.nets.add_many(asns.astype(np.int64), pre_of)
        per_acct = {"naive_scraper": (1, 3), "hydra": (15, 60), "stealth": (1, 3)}.get(a, (2, 7))
        nets = [np.unique(pool[rng.integers(0, len(pool), int(rng.integers(*per_acct)))]) for _ in range(n)]
        if a == "stealth":
            nets = [pool[(2 * i) % len(pool): (2 * i) % len(pool) + int(rng.integers(1, 3))] for i in range(n)]
        dev_pool_n = max(1, int(n * {"naive_scraper": rng.uniform(0.001, 0.05), "hydra": rng.uniform(0.3, 1.0), "stealth": 1.5}.get(a, rng.uniform(0.2, 0.6))))
        if a == "stealth":
            # Three devices per pair of accounts, walked three at a time below: the fleet's
            # second half reuses the first half's devices at every fleet size. A pool of
            # int(1.5 n) is no multiple of three for odd n, and then almost no device was
            # shared (full-scale qwen-2026, 5,975 accounts: 174 shared no identity value with
            # anyone, benchmarks/identity_reach.py).
            dev_pool_n = 3 * max(1, n // 2)
        dev_pool = self.devs.add(dev_pool_n, infra.UA_HUMAN if a == "stealth" else infra.UA_SCRIPT)
        per_dev = {"naive_scraper": (1, 2), "hydra": (5, 25), "stealth": (1, 3)}.get(a, (1, 5))
        devs = [np.unique(dev_pool[rng.integers(0, len(dev_pool), int(rng.integers(*per_dev)))]) for _ in range(n)]
        if a == "stealth":
            devs = [dev_pool[(i * 3) % len(dev_pool): (i * 3) % len(dev_pool) + int(rng.integers(1, 3))] for i in range(n)]
        keys = self.keys(rng.integers(1, 3, n))
        # --- registration artifacts
        n_dom = max(1, int(n / rng.uniform(*{"stealth": (1.5, 5)}.get(a, (8, 60)))))
        dom_pool = self.front_domains(rng, n_dom)
        webmail_share = float(prm.get("webmail_share", rng.uniform(0.05, 0.5)))
        wm = infra.webmail(rng, n)
        domains = [wm[i] if rng.random() < webmail_share else dom_pool[int(rng.integers(0, n_dom))] for i in range(n)]
        reuse_phone = float(prm.get("phone_reuse", {"stealth": rng.uniform(1.0, 1.5)}.get(a, rng.uniform(2, 15))))
        reuse_pay = float(prm.get("payment_reuse", {"stealth": rng.uniform(1.0, 2.0)}.get(a, rng.uniform(2, 25))))
        plan = self.plans(n, ("free", "pro", "api", "team"), {"naive_scraper": (0.4, 0.1, 0.5, 0.0), "stealth": (0.3, 0.4, 0.3, 0.0)}.get(a, (0.1, 0.2, 0.6, 0.1)))
        paid = np.array([pl != "free" for pl in plan])
        orgs = infra.rand_ids(rng, max(1, n // 20), "org_", 16).to_pylist()
        org_id = [orgs[int(rng.integers(0, len(orgs)))] if pl == "team" else None for pl in plan]
        # --- behaviour parameters
        maxtok_pin = int(prm.get("max_tokens", rng.choice([8192, 16000, 16384, 32000, 64000])))
        if a == "stealth":
            maxtok = self.maxtok_benign(n)
        elif a in ("reasoning_harvester", "agentic_harvester"):
            maxtok = MAXTOK_VALUES[rng.integers(7, 11, n)]
        else:
            maxtok = np.full(n, maxtok_pin)
        op_tz = float(rng.choice([-8, -5, 0, 1, 3, 5.5, 8, 9]))
        tz = infra.tz_of(country, rng) if a == "stealth" else np.full(n, op_tz)
        run = CampaignRun(
            spec=c, style=style, start=start, end=end,
            mean_turns=float(prm.get("mean_turns", {"naive_scraper": 1.0, "hydra": rng.uniform(1.0, 1.6), "stealth": rng.uniform(1.2, 2.2),
                                                     "reasoning_harvester": rng.uniform(1.3, 2.0)}.get(a, rng.uniform(8, 30)))),
            gap_s=float({"naive_scraper": rng.uniform(1, 10), "hydra": rng.uniform(2, 20), "stealth": rng.uniform(25, 90),
                         "reasoning_harvester": rng.uniform(2, 15)}.get(a, rng.uniform(3, 12))),
            diurnal=float(prm.get("diurnal", {"naive_scraper": 0.0, "hydra": rng.uniform(0, 0.3), "stealth": rng.uniform(0.85, 1.0)}.get(a, rng.uniform(0.0, 0.5)))),
            op_tz=op_tz,
            out_median=float(prm.get("output_median", {"stealth": rng.uniform(250, 600)}.get(a, rng.uniform(700, 2500)))),
            out_sigma=float(rng.uniform(0.4, 0.9)),
            max_tokens=maxtok_pin,
            pin_share=float({"naive_scraper": 1.0, "hydra": rng.uniform(0.8, 1.0)}.get(a, 0.0)),
            rate_profile=int(rng.integers(0, max(1, len(self.pools.client_rates)))),
            net_skew=float({"hydra": 1.0, "naive_scraper": 1.0}.get(a, rng.uniform(1.0, 2.5))),
            dev_skew=float({"hydra": 1.0}.get(a, 2.0)),
            error_rate=float({"naive_scraper": rng.uniform(0.01, 0.06), "hydra": rng.uniform(0.005, 0.03)}.get(a, rng.uniform(0.002, 0.01))),
        )
        self.plan.campaigns.append(run)
        table = {
            "created_at": created,
            "email": infra.emails(rng, domains),
            "email_domain": self.taken(domains),
            "phone_hash": self.phones(n, float(rng.uniform(0.6, 0.95)), reuse_phone),
            "payment_fp": self.payments(n, paid, reuse_pay),
            "country": list(country),
            "org_id": org_id,
            "verified": rng.random(n) < {"stealth": 0.2}.get(a, 0.03),
            "plan": plan,
            "archetype": [a] * n,
            "campaign_id": [c.id] * n,
        }
        self.add_block(a, len(self.plan.campaigns) - 1, n_ex, created, act_start, act_end, tz, maxtok, nets, devs, keys,
                       table, profile=np.full(n, run.rate_profile, np.int32), net_skew=run.net_skew,
                       endpoint=np.full(n, int(rng.random() < 0.5), np.int8) if a != "stealth" else None,
                       warm=np.full(n, int(style.warmup_days * DAY), np.int64))


def recycle_phones(cols: dict[str, list[Any]], pop: Population, rng: np.random.Generator, given: set[str]) -> None:
    """A trap: numbers an operator verified campaign accounts with, reissued to strangers.

    SMS-farm and prepaid numbers go back to the carrier and are handed out again; a person
    who signs up with one holds a phone that a fleet's accounts hold too. ``recycled_phones``
    (a share of the population's accounts registered inside the window) takes such a number,
    one the operator last verified an account with ``recycled_after_days`` (default 7) days
    or more before (once reissued, the number no longer reaches the operator) and that no
    other person was given: one stranger per number, while numbers last (``given``: the
    numbers already reissued, to this population or an earlier one; the first version kept
    that per population and gave one number to a casual user and a developer). Nothing else
    about the person changes, so a hunt that flags it has trusted a shared phone alone.
    """
    share = float(pop.params["recycled_phones"])
    after = float(pop.params.get("recycled_after_days", 7)) * DAY
    created = np.asarray(cols["created_at"], np.int64)
    camp = np.array([c is not None for c in cols["campaign_id"]])
    phones = cols["phone_hash"]
    last: dict[str, int] = {}  # when the operator last verified an account with the number
    for i in np.flatnonzero(camp):
        ph = phones[i]
        if ph is not None:
            last[ph] = max(last.get(ph, int(created[i])), int(created[i]))
    if not last:
        return
    held = np.array(list(last.values()), np.int64)
    numbers = list(last)
    order = np.argsort(held, kind="stable")
    held, numbers = held[order], [numbers[i] for i in order]
    start = min(int(created[i]) for i in np.flatnonzero(camp))
    mine = np.array([a == pop.archetype for a in cols["archetype"]]) & ~camp & (created >= start)
    free = np.array([ph not in given for ph in numbers], bool)  # a carrier reissues a number to one person at a time
    chosen = np.flatnonzero(mine & (rng.random(len(created)) < share))
    for i in chosen[np.argsort(created[chosen], kind="stable")]:
        k = int(np.searchsorted(held, created[i] - after, side="right"))  # numbers held long enough before
        left = np.flatnonzero(free[:k])
        if len(left):
            j = int(left[rng.integers(0, len(left))])
            phones[i], free[j] = numbers[j], False
            given.add(numbers[j])


def plan_population(sc: Scenario, pools: Pools, rng: np.random.Generator) -> tuple[Plan, pa.Table, pa.Table]:
    """Draw every account; returns the plan and the accounts and labels tables (sorted by id)."""
    b = _Builder(sc, pools, rng)
    for pop in sc.population:
        b.benign(pop)
    busy = [p.exchanges_per_account / sc.days for p in sc.population
            if p.archetype in ("developer", "agent_user", "org_member") and p.accounts]
    cap = max(busy) if busy else 30.0
    for i, c in enumerate(sc.campaigns):
        b.campaign(i, c, cap)
    plan = b.plan
    plan.finish()
    n = len(plan.a_arch)
    ids = infra.rand_ids(rng, n, "acct_", 20)
    plan.account_id = ids.to_pylist()
    plan.nets_pool = b.nets
    plan.devs_pool = b.devs
    plan.key_ids = infra.rand_ids(rng, max(1, b.n_keys), "key_", 24)
    cols: dict[str, list[Any]] = {}
    for block in plan.rows:
        for k, v in block.items():
            cols.setdefault(k, []).extend(list(v))
    given: set[str] = set()
    for pop in sc.population:
        if float(pop.params.get("recycled_phones", 0.0)) > 0:
            recycle_phones(cols, pop, rng.spawn(1)[0], given)  # spawned: the draws after it stay as they were
    from distillguard import schema

    created = pa.array(np.asarray(cols["created_at"], np.int64), pa.int64()).cast(schema.TS)
    accounts = pa.table({
        "account_id": ids, "created_at": created,
        **{k: pa.array(cols[k], pa.string()) for k in ("email", "email_domain", "phone_hash", "payment_fp", "signup_ip", "country", "org_id")},
        "verified": pa.array(cols["verified"], pa.bool_()), "plan": pa.array(cols["plan"], pa.string()),
    })
    labels = pa.table({"account_id": ids, "campaign_id": pa.array(cols["campaign_id"], pa.string()),
                       "archetype": pa.array(cols["archetype"], pa.string()),
                       "harvest_start": pa.array(cols["harvest_start"], pa.int64()).cast(schema.TS)})
    order = pa.compute.sort_indices(ids)
    return plan, accounts.take(order), labels.take(order)
