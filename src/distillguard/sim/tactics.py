"""A careful operator's tactics, as plain functions over arrays.

Why a module of its own: public reporting on distillation and fraud rings describes
operators who stay under per-account thresholds on purpose: small identity rings
instead of one shared card, sign-ups staggered over weeks with a warm-up before
harvesting, a few human-paced sessions a day in the operator's own timezone,
residential exits rotated per session, and disposable waves of accounts used hard
for a day or three. The ``careful`` and ``disposable`` archetypes
(:mod:`~distillguard.sim.population`, :mod:`~distillguard.sim.traffic`) are built from
these functions; each takes its random generator, so the draws of every other
archetype stay exactly as they were.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CASUAL", "HOURS", "WORK", "ring_of", "sessions", "staggered", "waves"]

US = 1_000_000
HOUR = 3600 * US
DAY = 24 * HOUR
# Local-hour activity profiles (relative weights, 00h..23h): leisure and office hours.
CASUAL = np.array([1.2, 0.8, 0.5, 0.3, 0.25, 0.3, 0.5, 0.9, 1.4, 1.8, 2.0, 2.1, 2.2, 2.1, 2.0, 2.0, 2.1, 2.2,
                   2.3, 2.5, 2.7, 2.6, 2.2, 1.7])
WORK = np.array([0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.4, 0.9, 2.0, 3.0, 3.3, 3.1, 2.4, 2.9, 3.2, 3.1, 2.8, 2.2,
                 1.4, 1.0, 0.9, 0.8, 0.6, 0.4])
HOURS = {"casual": CASUAL, "work": WORK}


def ring_of(rng: np.random.Generator, n: int, lo: int = 3, hi: int = 8) -> np.ndarray:
    """A ring number per account: the fleet cut at random into rings of ``lo``-``hi`` accounts.

    One artifact (a card, a phone of an SMS farm, a front domain) serves one ring, so no
    artifact spans the fleet; a remainder smaller than ``lo`` joins rings that have room.
    """
    if n <= 0:
        return np.zeros(0, np.int64)
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(int(rng.integers(lo, hi + 1)))
    sizes[-1] -= sum(sizes) - n
    if sizes[-1] < lo and len(sizes) > 1:
        rest = sizes.pop()
        for _ in range(rest):
            room = [i for i, s in enumerate(sizes) if s < hi]
            sizes[int(rng.choice(room)) if room else int(rng.integers(0, len(sizes)))] += 1
    ring = np.repeat(np.arange(len(sizes)), sizes)
    out: np.ndarray = rng.permutation(ring)
    return out


def staggered(rng: np.random.Generator, n: int, start: int, span: int, weeks: float, inside: float = 0.6) -> np.ndarray:
    """Sign-up times (µs) spread from ``weeks`` before ``start`` to ``inside`` of the window: a fleet that grows slowly."""
    out: np.ndarray = (start + rng.uniform(-weeks * 7 * DAY, inside * span, n)).astype(np.int64)
    return out


def waves(rng: np.random.Generator, n: int, start: int, end: int, n_waves: int, hours: tuple[float, float] = (1, 4),
          life_days: tuple[float, float] = (1, 3)) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Disposable waves: ``n_waves`` batches registered within a few hours, each account used
    from soon after sign-up for ``life_days`` and then abandoned.

    Returns ``(wave, created, act_start, act_end)`` per account, in µs.
    """
    n_waves = max(1, min(int(n_waves), n))
    last = max(start, end - int(life_days[0] * DAY))
    at = np.sort(start + rng.uniform(0, 1, n_waves) * (last - start)).astype(np.int64)
    # every wave has one account, the rest fall anywhere: setting the first ``n_waves`` of
    # the sorted draws to 0, 1, 2, ... took them all from the first wave (a lone account, then
    # a day or two alone in tactics-2026 seed 2602 and variant-2026 seed 4102)
    wave = np.sort(np.concatenate([np.arange(n_waves), rng.integers(0, n_waves, n - n_waves)]))
    width = rng.uniform(*hours, n_waves) * HOUR
    created = (at[wave] + rng.random(n) * width[wave]).astype(np.int64)
    act_start = created + (rng.uniform(0.1, 2.0, n) * HOUR).astype(np.int64)
    life = (rng.uniform(*life_days, n) * DAY).astype(np.int64)
    act_end = np.minimum(act_start + life, end).astype(np.int64)
    act_start = np.minimum(act_start, act_end - HOUR)
    return wave, created, act_start, act_end


def sessions(rng: np.random.Generator, acct: np.ndarray, act_start: np.ndarray, act_end: np.ndarray, tz: np.ndarray,
             profile: np.ndarray, per_day: tuple[int, int] = (1, 4),
             minutes: tuple[float, float] = (15, 75)) -> tuple[np.ndarray, np.ndarray]:
    """Human pacing: each account sits down a few times a day at human hours in timezone
    ``tz``, and its conversations fall inside those sittings.

    ``acct`` holds one entry per conversation (all of an account's conversations in one
    call); ``act_start``/``act_end``/``tz`` are per entry. Returns each conversation's start
    (µs) and its sitting's number (unique within the call), which a residential proxy
    keeps as its exit for the whole sitting.
    """
    n = len(acct)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    uniq, first, inv, counts = np.unique(acct, return_index=True, return_inverse=True, return_counts=True)
    s, e, off = act_start[first], act_end[first], (tz[first] * HOUR).astype(np.int64)
    days = np.maximum((e - s) / DAY, 1.0 / 24)
    on = rng.uniform(0.55, 0.95, len(uniq))  # share of days the operator works this account
    n_days = np.maximum(1, np.round(on * days)).astype(np.int64)
    k = rng.integers(per_day[0], per_day[1] + 1, len(uniq))
    n_slot = np.minimum(n_days * k, counts)
    slot_base = np.concatenate([[0], np.cumsum(n_slot)[:-1]])
    owner = np.repeat(np.arange(len(uniq)), n_slot)
    # a sitting: a day among the account's working days, an hour of the profile, local time
    local0 = (s[owner] + off[owner]) // DAY
    day = local0 + np.floor(rng.random(len(owner)) * np.maximum((e[owner] - s[owner]) / DAY, 1.0 / 24)).astype(np.int64)
    cdf = np.cumsum(profile) / np.sum(profile)
    hour = np.minimum(np.searchsorted(cdf, rng.random(len(owner))), len(profile) - 1)
    slot_start = day * DAY + hour * HOUR + (rng.random(len(owner)) * HOUR).astype(np.int64) - off[owner]
    length = (rng.uniform(*minutes, len(owner)) * 60 * US).astype(np.int64)
    lo, hi = s[owner], e[owner] - length
    bad = (slot_start < lo) | (slot_start >= hi)
    slot_start[bad] = lo[bad] + (rng.random(int(bad.sum())) * np.maximum(hi[bad] - lo[bad], 1)).astype(np.int64)
    slot = slot_base[inv] + (rng.random(n) * n_slot[inv]).astype(np.int64)
    # every sitting holds at least one conversation when there are enough of them
    order = np.argsort(inv, kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n) - np.repeat(np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    fill = rank < n_slot[inv]
    slot[fill] = slot_base[inv][fill] + rank[fill]
    start = slot_start[slot] + (rng.random(n) * length[slot]).astype(np.int64)
    start = np.clip(start, act_start, act_end - 1)
    return start.astype(np.int64), slot.astype(np.int64)
