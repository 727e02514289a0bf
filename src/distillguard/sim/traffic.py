"""Exchanges: when each account talks, in which conversations, with what lengths and results.

Generation is per chunk of accounts and vectorised over rows. Timing comes in
four shapes: human sessions (diurnal in the account's own timezone, on a subset of
days, think-time between turns), ServeGen per-client rate profiles (enterprise
apps; a campaign's shared profile gives hydra-style lockstep), eval bursts, and
the fixed intervals of naive scripts. Token lengths are drawn from the Azure and
Mooncake traces; the model switches to new releases within a day for campaigns
and over weeks for people.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distillguard import schema
from distillguard.sim import archetypes as ab
from distillguard.sim import tactics
from distillguard.sim.archetypes import Content, Ctx, Rows
from distillguard.sim.infra import rand_ids
from distillguard.sim.pools import Pools
from distillguard.sim.population import (
    ARCHETYPES,
    DAY,
    MAXTOK_BENIGN,
    MAXTOK_VALUES,
    US,
    CampaignRun,
    Plan,
)
from distillguard.sim.scenario import BENIGN, Scenario
from distillguard.sim.tactics import CASUAL, WORK

__all__ = ["Traffic"]

WINDOW = 600 * US  # ServeGen's 10-minute windows


@dataclass(frozen=True)
class Behaviour:
    """How one benign archetype behaves in time and length."""

    turns: float
    gap_s: float
    timing: str  # human | rate | burst
    profile: tuple[float, ...]
    diurnal: float
    weekday: float
    out: str  # conv | dev | moon | ent | eval
    ctx: str  # none | code | moon
    error: float


BENIGN_BEHAVIOUR: dict[str, Behaviour] = {
    "casual": Behaviour(2.2, 50, "human", tuple(CASUAL), 0.9, 0.0, "conv", "none", 0.003),
    "developer": Behaviour(3.0, 70, "human", tuple(WORK), 0.9, 0.8, "dev", "code", 0.004),
    "agent_user": Behaviour(14.0, 8, "human", tuple(WORK), 0.7, 0.5, "moon", "moon", 0.006),
    "enterprise_app": Behaviour(1.0, 1, "rate", tuple(CASUAL), 0.0, 0.0, "ent", "none", 0.004),
    "eval_runner": Behaviour(1.0, 1, "burst", tuple(WORK), 0.0, 0.0, "eval", "none", 0.01),
    "nat_shared": Behaviour(2.5, 55, "human", tuple((CASUAL + WORK) / 2), 0.85, 0.4, "conv", "none", 0.003),
    "org_member": Behaviour(3.0, 60, "human", tuple(WORK), 0.9, 0.8, "dev", "code", 0.004),
}


def _sample_profile(rng: np.random.Generator, profile: np.ndarray, n: int) -> np.ndarray:
    cdf = np.cumsum(profile) / profile.sum()
    return np.minimum(np.searchsorted(cdf, rng.random(n)), len(profile) - 1)


class Traffic:
    """Generates the exchanges of any subset of a :class:`Plan`'s accounts."""

    def __init__(self, sc: Scenario, plan: Plan, pools: Pools, ctx: Ctx, responses: bool = True) -> None:
        self.sc = sc
        self.plan = plan
        self.pools = pools
        self.ctx = ctx
        self.responses = responses
        assert plan.nets_pool is not None and plan.devs_pool is not None and plan.key_ids is not None
        self.ip, self.prefix, self.asn = plan.nets_pool.arrays()
        self.fp, self.ua, self.family = plan.devs_pool.arrays()
        self.keys = plan.key_ids
        self.models = pa.array([m.name for m in sc.models], pa.string())
        self.release = np.array([int(m.released.timestamp() * US) for m in sc.models], np.int64)
        self.endpoints = pa.array(["/v1/messages", "/v1/chat/completions"], pa.string())
        self.start = int(sc.start.timestamp() * US)
        self.end = int(sc.end.timestamp() * US)
        self.n_windows = int(np.ceil((self.end - self.start) / WINDOW))
        self._camp_cdf: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------ structure
    def _conversations(self, rng: np.random.Generator, accts: np.ndarray, turns: np.ndarray) -> Rows:
        n_ex = self.plan.a_n_ex[accts]
        acct = np.repeat(accts, n_ex)
        local = np.repeat(np.arange(len(accts)), n_ex)
        n = len(acct)
        p_new = 1.0 / np.maximum(turns, 1.0)
        new = rng.random(n) < p_new[local]
        first_of_acct = np.concatenate([[0], np.cumsum(n_ex)[:-1]]).astype(np.int64)
        new[first_of_acct[n_ex > 0]] = True
        conv = np.cumsum(new) - 1
        conv_first = np.flatnonzero(new)
        turn = np.arange(n) - conv_first[conv]
        conv_len = np.bincount(conv)[conv]
        return Rows(acct=acct, conv=conv, turn=turn, conv_len=conv_len)

    # ------------------------------------------------------------------ timing
    def _human(self, rng: np.random.Generator, a: np.ndarray, profile: np.ndarray, diurnal: float,
               weekday: float) -> np.ndarray:
        p = self.plan
        s, e, tz = p.a_act_start[a], p.a_act_end[a], p.a_tz[a]
        days = np.maximum((e - s) / DAY, 1e-3)
        uniq, inv = np.unique(a, return_inverse=True)
        frac = rng.beta(1.3, 1.6, len(uniq))[inv]  # share of days the person shows up
        phase = rng.random(len(uniq))[inv]
        n_act = np.maximum(1, np.ceil(frac * days))
        k = np.floor(rng.random(len(a)) * n_act)
        day_off = np.floor((k + phase) * days / n_act)
        tz_us = (tz * 3600 * US).astype(np.int64)
        local_day0 = (s + tz_us) // DAY
        d = local_day0 + day_off.astype(np.int64)
        wd = (d + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
        shift = (wd >= 5) & (rng.random(len(a)) < weekday)
        d = d + np.where(shift, 7 - wd, 0)
        hour = _sample_profile(rng, profile, len(a))
        hour = np.where(rng.random(len(a)) < diurnal, hour, rng.integers(0, 24, len(a)))
        ts = d * DAY + hour * 3600 * US + (rng.random(len(a)) * 3600 * US).astype(np.int64) - tz_us
        bad = (ts < s) | (ts >= e)
        ts[bad] = s[bad] + (rng.random(int(bad.sum())) * (e[bad] - s[bad])).astype(np.int64)
        out: np.ndarray = ts
        return out

    def _windows(self, weights: np.ndarray, rng: np.random.Generator, a: np.ndarray) -> np.ndarray:
        """Start times drawn from per-window weights shared by accounts ``a`` (within their active span)."""
        p = self.plan
        cdf = np.concatenate([[0.0], np.cumsum(weights)])
        cdf /= cdf[-1]
        w_s = np.clip((p.a_act_start[a] - self.start) // WINDOW, 0, self.n_windows - 1)
        w_e = np.clip((p.a_act_end[a] - self.start + WINDOW - 1) // WINDOW, w_s + 1, self.n_windows)
        lo, hi = cdf[w_s], cdf[w_e]
        u = lo + rng.random(len(a)) * (hi - lo)
        win = np.clip(np.searchsorted(cdf, u, side="right") - 1, w_s, w_e - 1)
        ts = self.start + win * WINDOW + (rng.random(len(a)) * WINDOW).astype(np.int64)
        out: np.ndarray = np.clip(ts, p.a_act_start[a], p.a_act_end[a] - 1)
        return out

    def _rate_weights(self, idx: int, rng: np.random.Generator, floor: float = 0.05) -> np.ndarray:
        rates = self.pools.client_rates
        if not rates:
            return np.ones(self.n_windows)
        r = rates[idx % len(rates)]
        shift = int(rng.integers(0, len(r)))
        w = np.resize(np.roll(r, -shift), self.n_windows)
        return w + floor * max(float(w.mean()), 1e-9)

    def _campaign_weights(self, ci: int, run: CampaignRun) -> np.ndarray:
        """A campaign's shared schedule: its operator's hours × a real client's bursts (lockstep)."""
        if ci not in self._camp_cdf:
            rng = np.random.default_rng([ci, 17, self.sc.seed])
            burst = self._rate_weights(run.rate_profile, rng, floor=0.5)
            burst = np.sqrt(burst / burst.mean())
            hours = ((self.start + np.arange(self.n_windows) * WINDOW) // (3600 * US) + int(run.op_tz)) % 24
            prof = WORK / WORK.mean()
            w = (1 - run.diurnal) + run.diurnal * prof[hours]
            self._camp_cdf[ci] = w * burst
        return self._camp_cdf[ci]

    def _burst(self, rng: np.random.Generator, a: np.ndarray) -> np.ndarray:
        """Eval runs: a few days, each with a dense run of some hours."""
        p = self.plan
        out = np.empty(len(a), np.int64)
        for acct in np.unique(a):
            m = a == acct
            k = int(m.sum())
            s, e = int(p.a_act_start[acct]), int(p.a_act_end[acct])
            n_runs = int(rng.integers(1, 5))
            starts = s + (rng.random(n_runs) * max(e - s - 8 * 3600 * US, 1)).astype(np.int64)
            dur = (rng.uniform(0.5, 8, n_runs) * 3600 * US).astype(np.int64)
            which = rng.integers(0, n_runs, k)
            out[m] = np.minimum(starts[which] + (rng.random(k) * dur[which]).astype(np.int64), e - 1)
        return out

    def _regular(self, rng: np.random.Generator, rows: Rows) -> np.ndarray:
        """Naive scripts: one request every fixed interval, with a little jitter."""
        p = self.plan
        a = rows.acct
        uniq, first, counts = np.unique(a, return_index=True, return_counts=True)
        idx = np.arange(len(a)) - np.repeat(first, counts)  # rows of one account are contiguous
        pos = np.searchsorted(uniq, a)
        s, e = p.a_act_start[a], p.a_act_end[a]
        step = (e - s) / counts[pos]
        jitter = rng.uniform(0, 0.3, len(uniq))[pos]
        out: np.ndarray = (s + (idx + rng.random(len(a)) * jitter) * step).astype(np.int64)
        return out

    # ------------------------------------------------------------------ lengths
    def _out_tokens(self, rng: np.random.Generator, kind: str, rows: Rows) -> np.ndarray:
        n = len(rows)
        pl = self.pools

        def trace(arr: np.ndarray, col: int) -> np.ndarray:
            if len(arr) == 0:
                return rng.lognormal(5, 0.8, n)
            out: np.ndarray = arr[rng.integers(0, len(arr), n), col].astype(np.float64)
            return out

        if kind == "conv":
            return trace(pl.azure_conv, 1)
        if kind == "dev":
            return np.where(rng.random(n) < 0.75, trace(pl.azure_conv, 1) * rng.lognormal(0.2, 0.4, n),
                            trace(pl.azure_code, 1))
        if kind == "moon":
            return trace(pl.mooncake, 1)
        if kind == "ent":
            uniq, inv = np.unique(rows.acct, return_inverse=True)
            med = np.exp(rng.uniform(np.log(60), np.log(700), len(uniq)))[inv]
            return med * rng.lognormal(0, 0.3, n)
        if kind == "eval":
            return rng.lognormal(np.log(250), 0.9, n)
        raise ValueError(kind)

    def _ctx_tokens(self, rng: np.random.Generator, kind: str, rows: Rows) -> np.ndarray:
        n_conv = int(rows.conv.max()) + 1
        pl = self.pools
        if kind == "code" and len(pl.azure_code):
            extra = pl.azure_code[rng.integers(0, len(pl.azure_code), n_conv), 0] * (rng.random(n_conv) < 0.5)
        elif kind == "moon" and len(pl.mooncake):
            extra = pl.mooncake[rng.integers(0, len(pl.mooncake), n_conv), 0] * rng.uniform(0.2, 1.0, n_conv)
        else:
            return np.zeros(len(rows), np.int64)
        out: np.ndarray = np.asarray(extra, np.int64)[rows.conv]
        return out

    # ------------------------------------------------------------------ one behaviour group
    def _group(self, rng: np.random.Generator, accts: np.ndarray, key: int) -> dict[str, object]:
        p = self.plan
        run: CampaignRun | None = None
        if key >= 0:
            run = p.campaigns[key]
            arch = run.spec.archetype
            turns = np.full(len(accts), run.mean_turns)
        else:
            arch = ARCHETYPES[-key - 1]
            beh = BENIGN_BEHAVIOUR[arch]
            turns = np.full(len(accts), beh.turns)
        rows = self._conversations(rng, accts, turns)
        n = len(rows)
        if n == 0:
            return {}
        conv_first = np.flatnonzero(rows.turn == 0)
        conv_acct = rows.acct[conv_first]
        # --- conversation starts
        if run is None:
            if beh.timing == "human":
                starts = self._human(rng, conv_acct, np.asarray(beh.profile), beh.diurnal, beh.weekday)
            elif beh.timing == "rate":
                starts = np.empty(len(conv_acct), np.int64)
                for acct in np.unique(conv_acct):
                    m = conv_acct == acct
                    w = self._rate_weights(int(p.a_profile[acct]), rng)
                    starts[m] = self._windows(w, rng, conv_acct[m])
            else:
                starts = self._burst(rng, conv_acct)
            gap_s = beh.gap_s
        else:
            sitting: np.ndarray | None = None
            if run.pacing == "sessions":
                profile = run.profile if run.profile is not None else WORK
                starts, sitting = tactics.sessions(rng, conv_acct, p.a_act_start[conv_acct], p.a_act_end[conv_acct],
                                                   p.a_tz[conv_acct], profile, run.per_day, run.minutes)
            elif arch == "naive_scraper":
                starts = self._regular(rng, Rows(conv_acct, np.arange(len(conv_acct)), np.zeros(len(conv_acct), np.int64),
                                                 np.ones(len(conv_acct), np.int64)))
            elif arch == "stealth":
                profile = CASUAL if rng.random() < 0.5 else WORK
                starts = self._human(rng, conv_acct, profile, run.diurnal, 0.3)
            else:
                starts = self._windows(self._campaign_weights(key, run), rng, conv_acct)
            gap_s = run.gap_s
        # --- residential exits: one per sitting, from the fleet's pool (-1: the account's own networks)
        net = np.full(n, -1, np.int64)
        if run is not None and run.proxy_pool is not None and sitting is not None and len(sitting):
            exits = run.proxy_pool[rng.integers(0, len(run.proxy_pool), int(sitting.max()) + 1)]
            net = exits[sitting[rows.conv]]
        # --- content
        rows.ts = starts[rows.conv]
        if run is None:
            content = self._benign_content(rng, rows, arch)
        else:
            warm = None
            if run.style.warmup_days > 0:
                warm = rows.ts < p.a_act_start[rows.acct] + int(run.style.warmup_days * DAY)
            elif p.a_warm[accts].any():
                warm = rows.ts < p.a_act_start[rows.acct] + p.a_warm[rows.acct]
            content = ab.build_content(self.ctx, rng, rows, run.content or arch, run.style, warm)
        # --- lengths
        prompt_tok = np.ceil(pc.utf8_length(content.prompt).to_numpy(zero_copy_only=False) / 4).astype(np.int64)
        sys_len = pc.fill_null(pc.utf8_length(content.system), 0).to_numpy(zero_copy_only=False)
        sys_tok = np.ceil(sys_len / 4).astype(np.int64)
        if run is None:
            out = self._out_tokens(rng, beh.out, rows)
            extra = self._ctx_tokens(rng, beh.ctx, rows)
            maxtok = np.where(rng.random(n) < 0.85, p.a_maxtok[rows.acct],
                              MAXTOK_VALUES[rng.choice(len(MAXTOK_VALUES), n, p=MAXTOK_BENIGN / MAXTOK_BENIGN.sum())])
            err = beh.error
        else:
            if arch in ("stealth", "careful"):
                out = np.where(rng.random(n) < 0.5, self._out_tokens(rng, "conv", rows),
                               rng.lognormal(np.log(run.out_median), run.out_sigma, n))
            else:
                out = rng.lognormal(np.log(run.out_median), run.out_sigma, n)
            extra = np.zeros(n, np.int64)
            maxtok = np.where(rng.random(n) < run.pin_share, run.max_tokens, p.a_maxtok[rows.acct])
            err = run.error_rate
        tools_tok = np.where(content.has_tools, (rows.acct * 2654435761) % 1750 + 250, 0)  # per-account tool set size
        out = np.maximum(1, out).astype(np.int64)
        hit = out >= maxtok
        out = np.minimum(out, maxtok)
        # history: earlier turns of the conversation are re-sent as input
        turn_cost = prompt_tok + out
        cs = np.cumsum(turn_cost)
        before = cs - turn_cost
        history = before - before[conv_first][rows.conv]
        inp = sys_tok + tools_tok + prompt_tok + history + extra + 8
        # --- status and latency
        u = rng.random(n)
        status = np.where(u < err * 0.7, 429, np.where(u < err * 0.8, 500, np.where(u < err, 529, 200))).astype(np.int32)
        ok = status == 200
        tpot = rng.lognormal(np.log(22), 0.25, n)
        latency = (rng.lognormal(np.log(450), 0.35, n) + inp * 0.02 + out * tpot).astype(np.int64)
        latency = np.where(ok, latency, rng.integers(20, 400, n))
        out = np.where(ok, out, 0)
        # --- turn timestamps: previous latency + think/tool time
        gaps = np.zeros(n)
        later = rows.turn > 0
        prev_lat = np.concatenate([[0], latency[:-1]]) * 1000  # ms -> µs
        gaps[later] = prev_lat[later] + rng.lognormal(np.log(gap_s), 0.6, int(later.sum())) * US
        cg = np.cumsum(gaps)
        ts = starts[rows.conv] + (cg - cg[conv_first][rows.conv]).astype(np.int64)
        # --- eval runners go through their benchmark in order
        if run is None and arch == "eval_runner":
            order = np.lexsort((ts, rows.acct))
            rank = np.empty(n, np.int64)
            _, first, counts = np.unique(rows.acct[order], return_index=True, return_counts=True)
            rank[order] = np.arange(n) - np.repeat(first, counts)
            content = ab.eval_runner(self.ctx, rng, rows, p.a_bench, rank + rows.acct * 7919, p.a_fmt)
            prompt_tok = np.ceil(pc.utf8_length(content.prompt).to_numpy(zero_copy_only=False) / 4).astype(np.int64)
            sys_tok = np.ceil(pc.fill_null(pc.utf8_length(content.system), 0).to_numpy(zero_copy_only=False) / 4)
            inp = prompt_tok + 8 + np.where(rng.random(n) < 0.5, 120, 0) + sys_tok.astype(np.int64)
        stop = np.where(~ok, 0, np.where(hit, 1, np.where(content.has_tools & (rows.turn < rows.conv_len - 1)
                                                           & (rng.random(n) < 0.9), 2,
                                                           np.where((arch == "eval_runner") & (rng.random(n) < 0.3), 3, 4))))
        resp = self.ctx.fill_responses(rng, content.response, content.kind) if self.responses else pa.nulls(n, pa.string())
        resp = pc.if_else(pa.array(ok), _clip_text(resp, 4 * out), pa.nulls(n, pa.string()))
        return {
            "acct": rows.acct, "ts": ts, "prompt": content.prompt, "system": content.system, "response": resp,
            "has_tools": content.has_tools, "n_messages": (2 * rows.turn + 1).astype(np.int32),
            "max_tokens": maxtok.astype(np.int32), "input_tokens": inp.astype(np.int64),
            "output_tokens": out.astype(np.int64), "stop": stop.astype(np.int8), "status": status,
            "latency_ms": latency.astype(np.int64), "fast_adopt": np.full(n, run is not None),
            "arch": np.full(n, ARCHETYPES.index(arch), np.int8), "net": net,
        }

    def _benign_content(self, rng: np.random.Generator, rows: Rows, arch: str) -> Content:
        p = self.plan
        apps = pa.array(self.pools.apps, pa.string())
        app = p.a_app[rows.acct]
        system = pc.if_else(pa.array(app >= 0), apps.take(pa.array(np.maximum(app, 0) % len(self.pools.apps))),
                            pa.nulls(len(rows), pa.string()))
        if arch == "casual":
            return ab.benign_chat(self.ctx, rng, rows)
        if arch == "nat_shared":
            return ab.benign_chat(self.ctx, rng, rows, (0.25, 0.3, 0.3, 0.15))
        if arch in ("developer", "org_member"):
            if arch == "org_member":
                chat = ab.benign_chat(self.ctx, rng, rows, (0.2, 0.5, 0.2, 0.1))
                dev = ab.developer(self.ctx, rng, rows, system)
                pick = (rng.random(int(rows.conv.max()) + 1) < 0.5)[rows.conv]
                m = pa.array(pick)
                return Content(pc.if_else(m, dev.prompt, chat.prompt), pc.if_else(m, dev.response, chat.response),
                               pc.if_else(m, dev.system, chat.system), np.zeros(len(rows), bool),
                               np.where(pick, dev.kind, chat.kind).astype(np.int8))
            return ab.developer(self.ctx, rng, rows, system)
        if arch == "agent_user":
            return ab.agent_user(self.ctx, rng, rows, system)
        if arch == "enterprise_app":
            return ab.enterprise(self.ctx, rng, rows, p.a_app)
        if arch == "eval_runner":  # filled after timestamps are known
            n = len(rows)
            return Content(pa.array([""] * n, pa.string()), pa.nulls(n, pa.string()), pa.nulls(n, pa.string()),
                           np.zeros(n, bool), np.full(n, 3, np.int8))
        raise ValueError(arch)

    # ------------------------------------------------------------------ a chunk of accounts
    def chunk(self, rng: np.random.Generator, accts: np.ndarray) -> tuple[pa.Table, np.ndarray]:
        """Exchanges of ``accts`` sorted by time, and each row's archetype code (for statistics only)."""
        p = self.plan
        keys = np.where(p.a_camp[accts] >= 0, p.a_camp[accts], -(p.a_arch[accts].astype(np.int64) + 1))
        parts = []
        for key in np.unique(keys):
            g = self._group(rng, np.sort(accts[keys == key]), int(key))
            if g:
                parts.append(g)
        cols: dict[str, list[object]] = {}
        for g in parts:
            for k, v in g.items():
                cols.setdefault(k, []).append(v)

        def cat_np(k: str) -> np.ndarray:
            return np.concatenate([np.asarray(x) for x in cols[k]])

        def cat_pa(k: str) -> pa.Array:
            return pa.concat_arrays([x.cast(pa.string()) for x in cols[k]])  # type: ignore[attr-defined]

        acct, ts = cat_np("acct"), cat_np("ts")
        n = len(acct)
        order = np.argsort(ts, kind="stable")
        acct, ts = acct[order], ts[order]
        take = pa.array(order)
        # network, device, key: per-account artifact lists, concentration set per account
        skew = p.a_net_skew[acct]
        ni = p.nets_data[p.nets_off[acct] + np.minimum((p.nets_len[acct] * rng.random(n) ** skew).astype(np.int64), p.nets_len[acct] - 1)]
        sticky = cat_np("net")[order]
        ni = np.where(sticky >= 0, sticky, ni)
        di = p.devs_data[p.devs_off[acct] + np.minimum((p.devs_len[acct] * rng.random(n) ** skew).astype(np.int64), p.devs_len[acct] - 1)]
        ki = p.keys_data[p.keys_off[acct] + np.minimum((p.keys_len[acct] * rng.random(n)).astype(np.int64), p.keys_len[acct] - 1)]
        fam = self.family[di]
        endpoint = np.where(fam == 2, p.a_endpoint[acct], fam)
        # model: campaigns move within a day of a release, people over weeks
        fast = cat_np("fast_adopt")[order]
        model = np.zeros(n, np.int64)
        u = rng.random(n)
        for m in range(1, len(self.release)):
            delay = np.where(fast, 0.3 * DAY, p.a_adopt[acct] * DAY)
            tau = np.where(fast, 0.1 * DAY, 3 * DAY)
            x = np.clip((ts - self.release[m] - delay) / tau, -50, 50)
            pm = np.where(ts >= self.release[m], np.where(fast, 0.92, 0.85) / (1 + np.exp(-x)), 0.0)
            model = np.where(u < pm, m, model)
        stop_names = pa.array([None, "max_tokens", "tool_use", "stop_sequence", "end_turn"], pa.string())
        ids = pa.array(p.account_id, pa.string())
        table = pa.table({
            "request_id": rand_ids(rng, n, "req_", 24, hexa=True),
            "ts": pa.array(ts, pa.int64()).cast(schema.TS),
            "account_id": ids.take(pa.array(acct)),
            "api_key_id": self.keys.take(pa.array(ki)),
            "ip": self.ip.take(pa.array(ni)),
            "ip_prefix": self.prefix.take(pa.array(ni)),
            "asn": self.asn.take(pa.array(ni)),
            "user_agent": self.ua.take(pa.array(di)),
            "device_fp": self.fp.take(pa.array(di)),
            "endpoint": self.endpoints.take(pa.array(endpoint.astype(np.int64))),
            "model": self.models.take(pa.array(model)),
            "system": cat_pa("system").take(take),
            "prompt": cat_pa("prompt").take(take),
            "n_messages": pa.array(cat_np("n_messages")[order], pa.int32()),
            "has_tools": pa.array(cat_np("has_tools")[order], pa.bool_()),
            "max_tokens": pa.array(cat_np("max_tokens")[order], pa.int32()),
            "input_tokens": pa.array(cat_np("input_tokens")[order], pa.int64()),
            "output_tokens": pa.array(cat_np("output_tokens")[order], pa.int64()),
            "stop_reason": stop_names.take(pa.array(cat_np("stop")[order].astype(np.int64))),
            "status": pa.array(cat_np("status")[order], pa.int32()),
            "latency_ms": pa.array(cat_np("latency_ms")[order], pa.int64()),
            "response": cat_pa("response").take(take),
        })
        return table, cat_np("arch")[order]


def _clip_text(text: pa.Array, limit: np.ndarray) -> pa.Array:
    """Cut each text to at most ``limit`` characters (rounded down to a power of two, vectorised).

    Response text is a stand-in from the corpora and is often shorter than the
    output token count says; cutting it keeps it from ever being longer, for
    every archetype alike. Lengths come from ``output_tokens``.
    """
    if len(text) == 0:
        return text
    b = np.clip(np.floor(np.log2(np.maximum(limit, 1))), 4, 15).astype(np.int64)
    out = text
    for k in np.unique(b):
        if k >= 15:
            continue
        cut = pc.utf8_slice_codeunits(text, 0, int(2**k))
        out = pc.if_else(pa.array(b == k), cut, out)
    return out


def benign_key(arch: str) -> int:
    """The group key of a benign archetype (campaigns use their index >= 0)."""
    return -(BENIGN.index(arch) + 1)
