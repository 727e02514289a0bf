"""Lived time: the UTC offset an account's activity keeps, against the place it claims.

People sleep, work and rest on their local clock, so the UTC hours of an account's
requests tell the offset it lives at. A fleet run from one office lives at its operators'
offset whatever country each account was billed in; an account billed in Germany that is
busy 09:00-18:00 at UTC+8 every day claims one place and lives in another.

How the lived offset is found, calibrated on the population, never on constants:

* The state is, per account and UTC hour, the requests and the days the account was active
  in that hour (a bitmask of the day modulo 64, merged by OR). Requests in one active hour
  are one sitting, so the *active hours* (distinct day-hour cells) measure how much the
  profile says, not the requests: 40 turns of one agent session are one observation.
* The reference day ``r`` (24 local-hour shares) is learned from the population: the mean
  local-time profile of accounts billed in a country that keeps one offset (summer time
  aside), then once more from every account whose lived offset agrees with its claim.
* Each account's lived offset is the ``o`` (and uniform share ``b``) that maximises the
  likelihood of its counts under ``(1 - b) r(utc hour + o) + b / 24``: ``fit = 1 - b`` is
  the share of requests that follow a human day there. ``confidence`` is the posterior
  mass (flat prior) of the offsets within an hour of the best one, the log-likelihood
  scaled to one observation per active hour (quasi-likelihood: requests per active hour
  is the dispersion). Round-the-clock scripts (every offset fits alike) and accounts with
  a handful of requests get a low confidence, so no lived offset speaks for them.

Claimed offsets come from ``rules/countries.yaml`` (every offset a country's zones keep,
summer time included); ``tz_gap`` is the circular distance in hours from the lived offset
to the nearest claimed one. Another claim column (a locale, a declared time zone) is one
entry in :data:`CLAIMS`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

import numpy as np
import polars as pl
import yaml
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from distillguard.signals.base import (
    ARTIFACTS_SCHEMA,
    TEXT_SPEC_DTYPES,
    ArtifactKind,
    Finding,
    Signal,
    State,
    TableSpec,
    grouped,
    tail_score,
)
from distillguard.signals.registration import phone_held

__all__ = ["CLAIMS", "LivedTimeSignal", "country_offsets", "identity_rings"]

HOURS = 24
OFFSETS = np.arange(HOURS) - 11  # lived offsets UTC-11 .. UTC+12 (+13, +14 are -11, -10 a day on)
BETAS = np.linspace(0.0, 1.0, 11)  # shares of round-the-clock activity tried in the fit
CHUNK = 32_768  # accounts fitted at once (bounds the likelihood grid's memory)

# Account columns that claim a place, each mapped to an ISO 3166 alpha-2 country. A locale
# column ("de-DE") would add ``"locale": lambda c: c.str.extract(r"[-_]([A-Za-z]{2})$", 1)``.
CLAIMS: dict[str, Callable[[pl.Expr], pl.Expr]] = {
    "country": lambda c: c.str.strip_chars().str.to_uppercase(),
}


@functools.cache
def country_offsets() -> dict[str, tuple[float, ...]]:
    """``rules/countries.yaml``: ISO alpha-2 -> every UTC offset (hours) its zones keep."""
    doc = yaml.safe_load(
        resources.files("distillguard").joinpath("rules/countries.yaml").read_text()
    )
    return {str(k): tuple(float(o) for o in v) for k, v in doc.items()}


def fold_days(rows: pl.DataFrame) -> pl.DataFrame:
    """Merge per-(account, hour) rows: requests add, active-day bitmasks OR (both associative)."""
    return rows.group_by("account", "hour").agg(pl.col("n").sum(), pl.col("days").bitwise_or())


@dataclass(frozen=True)
class Profiles:
    """Per account (row-aligned): UTC-hour request counts and distinct active hours."""

    account: np.ndarray  # u32
    counts: np.ndarray  # (accounts, 24) float
    cells: np.ndarray  # (accounts,) float


def profiles(hour: pl.DataFrame) -> Profiles:
    """The profiles of every account in ``hour`` (one row per account and UTC hour).
    Accounts are dense u32 indices, so rows find their account by a lookup table, not a
    sort (2.6 million rows: 0.22 s, where ``np.unique`` and ``np.add.at`` took 0.46-0.60 s)."""
    acct = hour["account"].to_numpy().astype(np.int64)
    if acct.size == 0:
        return Profiles(np.zeros(0, np.uint32), np.zeros((0, HOURS)), np.zeros(0))
    uniq = np.flatnonzero(np.bincount(acct))
    pos = np.zeros(int(acct.max()) + 1, np.int64)
    pos[uniq] = np.arange(len(uniq))
    inv = pos[acct]
    counts = np.zeros((len(uniq), HOURS))
    counts[inv, hour["hour"].to_numpy().astype(np.int64)] = hour["n"].to_numpy()
    cells = np.bincount(inv, weights=hour["days"].bitwise_count_ones().to_numpy().astype(np.float64), minlength=len(uniq))
    return Profiles(uniq.astype(np.uint32), counts, cells)


def _reference_rows(p: Profiles, claimed: np.ndarray, min_cells: int, min_reference: int) -> np.ndarray:
    """The accounts a reference day is learned from: those with a known single-offset claim
    (``claimed``) and ``min_cells`` active hours. In a log's first days fewer than
    ``min_reference`` have that many; then the ``min_reference`` most active of them (and
    every account as active as the last of those), once together they have been seen in
    every hour of the day. The reference is a mean over many accounts, so it needs many
    accounts, not long ones; each account's own offset still needs ``min_cells``."""
    enough: np.ndarray = claimed & (p.cells >= min_cells)
    if enough.sum() >= min_reference or claimed.sum() < min_reference:
        return enough
    floor = np.sort(p.cells[claimed])[::-1][min_reference - 1]
    most: np.ndarray = claimed & (p.cells >= max(floor, 1.0))
    return most if (p.counts[most].sum(axis=0) > 0).all() else enough


def circ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Circular distance in hours between offsets (broadcasting)."""
    d = np.abs(a - b) % HOURS
    out: np.ndarray = np.minimum(d, HOURS - d)
    return out


def reference(counts: np.ndarray, shift: np.ndarray, kinds: int = 2) -> np.ndarray:
    """Local-time day shapes of ``counts`` (rows weighted alike; local hour = UTC + shift):
    ``kinds`` curves by k-means (Lloyd, started from a split on the first principal
    component, so it is deterministic), one row each.

    Why more than one: office hours and evening use peak eight hours apart. One mean curve
    sits between them and reads office workers an hour east and evening users two west.
    A kind with fewer than a tenth of the rows is dropped (one curve is then the mean).
    """
    share = counts / counts.sum(axis=1, keepdims=True)
    idx = (
        np.arange(HOURS)[None, :] - shift[:, None].astype(np.int64)
    ) % HOURS  # local h <- UTC h - shift
    local = np.take_along_axis(share, idx, axis=1)
    label = np.zeros(len(local), np.int64)
    if kinds > 1 and len(local) >= 2 * kinds:
        centred = local - local.mean(axis=0)
        pc = np.linalg.svd(centred, full_matrices=False)[2][0]
        score = centred @ pc
        label = np.minimum((np.argsort(np.argsort(score)) * kinds) // len(local), kinds - 1)
        for _ in range(20):
            means = np.stack([local[label == i].mean(axis=0) for i in range(kinds)])
            new = ((local[:, None, :] - means[None]) ** 2).sum(axis=2).argmin(axis=1)
            if (new == label).all() or np.bincount(new, minlength=kinds).min() == 0:
                break
            label = new
    sizes = np.bincount(label, minlength=kinds)
    keep = [i for i in range(kinds) if sizes[i] >= max(1, len(local) // 10)]
    curves = (
        np.stack([local[label == i].mean(axis=0) for i in keep])
        if len(keep) > 1
        else local.mean(axis=0)[None]
    )
    curves = curves + 1e-3 / HOURS  # no hour is impossible, however small the population
    out: np.ndarray = curves / curves.sum(axis=1, keepdims=True)
    return out


def fit(
    counts: np.ndarray, cells: np.ndarray, r: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lived offset index (into :data:`OFFSETS`), fit (1 - uniform share) and confidence per
    row, against the day shapes ``r`` (one per row; an account takes the one it fits best)."""
    # logp[c, k, j, u]: log chance of UTC hour u on curve c at offset k, uniform share BETAS[j].
    shifted = r[:, (np.arange(HOURS)[None, :] + OFFSETS[:, None]) % HOURS]  # (c, k, u)
    p = (1.0 - BETAS)[None, None, :, None] * shifted[:, :, None, :] + BETAS[
        None, None, :, None
    ] / HOURS
    logp = np.log(p).reshape(-1, HOURS)
    k_best = np.zeros(len(counts), np.int64)
    share = np.zeros(len(counts))
    conf = np.zeros(len(counts))
    near = circ(OFFSETS[:, None], OFFSETS[None, :]) <= 1  # (k, k)
    for lo in range(0, len(counts), CHUNK):
        c = counts[lo : lo + CHUNK]
        ll = (c @ logp.T).reshape(len(c), len(r), HOURS, len(BETAS))
        by_curve = ll.max(axis=3)  # (row, curve, offset)
        curve = by_curve.argmax(axis=1)  # the day shape each offset fits best
        llo = by_curve.max(axis=1)
        k = llo.argmax(axis=1)
        rows = np.arange(len(c))
        j = ll[rows, curve[rows, k], k].argmax(axis=1)
        # One observation per active hour: requests in one sitting are not independent.
        scale = np.maximum(cells[lo : lo + CHUNK], 1.0) / np.maximum(c.sum(axis=1), 1.0)
        post = np.exp((llo - llo.max(axis=1, keepdims=True)) * np.minimum(scale, 1.0)[:, None])
        post /= post.sum(axis=1, keepdims=True)
        k_best[lo : lo + CHUNK] = k
        share[lo : lo + CHUNK] = 1.0 - BETAS[j]
        conf[lo : lo + CHUNK] = (post * near[k]).sum(axis=1)
    return k_best, share, conf


def busy_window(counts: np.ndarray, share: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """The shortest run of UTC hours (circular) holding ``share`` of each row's requests:
    its first hour and its length."""
    cs = np.concatenate(
        [np.zeros((len(counts), 1)), np.cumsum(np.concatenate([counts, counts], axis=1), axis=1)],
        axis=1,
    )
    need = share * counts.sum(axis=1)
    start = np.zeros(len(counts), np.int64)
    length = np.full(len(counts), HOURS, np.int64)
    done = np.zeros(len(counts), bool)
    for n in range(1, HOURS + 1):
        win = cs[:, n : n + HOURS] - cs[:, :HOURS]  # win[:, s]: hours s .. s+n-1
        ok = ~done & (win.max(axis=1) >= need - 1e-9)
        start[ok], length[ok] = win[ok].argmax(axis=1), n
        done |= ok
    return start, length


class LivedTimeSignal(Signal):
    """Lived UTC offset from the hours of activity, against the offsets of the claimed country.

    The exchanges give the profile (:meth:`finalize`); the claim is in the accounts table
    (:meth:`finalize_accounts`), which the hunt calls next with that table alone, so the
    profiles of the last :meth:`finalize` are kept for it. Without an accounts table the
    signal reports activity only (no claim, so no reference day and no lived offset).

    Artifact ``lived_tz``, one per lived offset, carried only by accounts that live at
    least ``min_gap`` hours from every offset of their claimed country with confidence:
    the fleet that lives at UTC+8 while billed in the US, Germany and Brazil. It links
    (``links=True``): the link test calls it only when most of its carriers behave like
    scripts, and then the shared clock is the fleet's operators'. It is a ``bystander``
    kind: every population holds expats, travellers, night-shift workers and VPN users who
    live away from their billing country, and a time zone holds millions of people, so a
    carrier joins a campaign through it only if it ranks above the link quantile itself
    and holds another tie (a second network, a template, an identity artifact). Living at
    the campaign's hours alone never pulls an ordinary account in.

    Rings: a careful operator keeps each account to a few sittings a day, so one account
    takes a week to show ``min_cells`` active hours; the small identity rings it keeps
    (a phone, a card or a front domain shared by three to eight accounts) show them in a
    day. Accounts joined by such a value (held by 2 to ``ring_max`` accounts, not all of
    one declared organisation) are pooled into one profile and fitted like one account;
    where the ring lives confidently at least ``min_gap`` hours from the claim of any of
    its members (one clock, places it cannot keep: an operator buys identities in its own
    zone too, so in tactics-2026 a ring of seven with four members billed near the
    operator's zone was left out when most had to be far), every member whose own clock
    does not disagree carries the ring's ``lived_tz_near``, so rings of one operator meet
    in the link step the day they start.
    Nothing is added to the behaviour score: a ring's clock links, it does not accuse.
    """

    name: ClassVar[str] = "lived_time"
    features: ClassVar[tuple[str, ...]] = (
        "n", "cells", "country", "claimed_offsets", "offset", "fit", "confidence", "tz_gap", "busy_from",
        "busy_hours", "misplaced", "ts_misplaced", "ring_size", "ring_offset",
    )  # fmt: skip
    # How far the lived zone lies from the claimed one: one operator's cells claim different
    # countries from one zone, so their misplacement differs while their clocks agree.
    context_relative: ClassVar[tuple[str, ...]] = ("ts_misplaced",)
    tables: ClassVar[dict[str, TableSpec]] = {
        # ``days``: bit (day mod 64) set when active in that UTC hour; merged by OR (the
        # fold); "max" only declares the column.
        "hour": TableSpec(
            ("account", "hour"),
            {"n": "sum", "days": "max"},
            {"account": pl.UInt32, "hour": pl.Int8, "days": pl.UInt64},
            fold=fold_days,
        ),
    }
    artifact_kinds: ClassVar[dict[str, ArtifactKind]] = {
        "lived_tz": ArtifactKind("lived time zone", links=True, bystander=True),
        # Within an hour of an offset, lived by an account or by its identity ring: joins
        # the rings of one operator (read an hour apart) into one web, links nothing alone.
        "lived_tz_near": ArtifactKind("lived time zone, within an hour", links=False, joins=True),
    }

    def __init__(
        self,
        min_cells: int = 20,
        min_confidence: float = 0.9,
        min_gap: float = 3.0,
        min_reference: int = 20,
        ring_max: int = 64,
        ring_confidence: float = 0.8,
    ) -> None:
        """``min_cells``: fewest active hours (day-hour cells) for a lived offset;
        ``min_confidence``: posterior mass within an hour of it; ``min_gap``: hours from
        every claimed offset that make an account misplaced; ``min_reference``: fewest
        accounts that must agree with their claim to learn the reference day; ``ring_max``:
        most accounts one identity value (or one ring) may join and still be a ring;
        ``ring_confidence``: a ring's ``min_confidence``, lower because a ring's clock only
        links (the joined web is still tested on its members' behaviour) where an account's
        own misplacement adds to its score."""
        self.min_cells = min_cells
        self.min_confidence = min_confidence
        self.min_gap = min_gap
        self.min_reference = min_reference
        self.ring_max = ring_max
        self.ring_confidence = ring_confidence
        self._profiles: Profiles | None = None
        # The day shapes of the last full :meth:`lived` and every account's fit against them
        # (``account, k, share, conf``): the calibration :meth:`refinalize_accounts` reuses.
        self._fitted: tuple[np.ndarray, pl.DataFrame] | None = None
        self._early = False  # whether that reference was learned in a log's first days
        # The accounts table's ring columns and the rings found in them: the live re-score
        # reads an unchanged table every few seconds (finding rings: 0.3 s at 196,017 accounts).
        self._rings: tuple[pl.DataFrame, pl.DataFrame] | None = None

    def update(self, state: State, rows: pl.DataFrame) -> State:
        spec = self.tables["hour"]
        bit = pl.lit(2, pl.UInt64).pow((pl.col("day") % 64).cast(pl.UInt32))
        new = grouped(rows, spec, {"n": pl.len(), "days": bit.bitwise_or()})
        return {"hour": spec.compact([state["hour"], new])}

    def finalize(self, state: State, n_accounts: int) -> Finding:
        self._profiles = profiles(state["hour"])
        p = self._profiles
        feats = pl.DataFrame(
            {
                "account": p.account,
                "n": p.counts.sum(axis=1).astype(np.int64),
                "cells": p.cells.astype(np.int64),
            },
            schema={"account": pl.UInt32, "n": pl.Int64, "cells": pl.Int64},
        )
        return Finding(feats)

    def finalize_accounts(self, accounts: pl.DataFrame) -> Finding | None:
        """The claim against the profiles of the last :meth:`finalize` (None before one)."""
        if self._profiles is None:
            return None
        return self.lived(self._profiles, accounts)

    def refinalize_accounts(self, accounts: pl.DataFrame, dirty: pl.Series, previous: Finding | None) -> Finding | None:
        """As :meth:`finalize_accounts`, but against the day shapes of the last full one:
        only the ``dirty`` accounts (and accounts new since) are fitted again. Rings, tail
        scores and artifacts are recomputed over everyone. The day shapes are a population
        calibration: they move a little with every account, so until the next full
        :meth:`finalize_accounts` an account's fit can differ from a full one's."""
        p = self._profiles
        if p is None:
            return None
        if self._fitted is None or self._early:  # an early reference moves with every hour: learn it again
            return self.finalize_accounts(accounts)
        r, prev = self._fitted
        claim, _, gaps, ci = self._claim_gaps(p, accounts)
        aligned = pl.DataFrame({"account": p.account}, schema={"account": pl.UInt32}).join(
            prev, on="account", how="left", maintain_order="left"
        )
        redo = (aligned["k"].is_null() | aligned["account"].is_in(dirty.implode())).to_numpy()
        k = aligned["k"].fill_null(0).to_numpy().astype(np.int64)
        share = aligned["share"].fill_null(np.nan).to_numpy().astype(np.float64)
        conf = aligned["conf"].fill_null(np.nan).to_numpy().astype(np.float64)
        enough = p.cells >= self.min_cells
        k[redo & ~enough], share[redo & ~enough], conf[redo & ~enough] = 0, np.nan, np.nan
        rows = redo & enough
        if rows.any():
            k[rows], share[rows], conf[rows] = fit(p.counts[rows], p.cells[rows], r)
        self._fitted = (r, _fits(p, k, share, conf))
        found = self._finding(p, claim, ci, gaps, k, share, conf)
        return self._with_rings(found, p, accounts, ci, gaps, r)

    def _claim_gaps(self, p: Profiles, accounts: pl.DataFrame) -> tuple[pl.Series, list[str], np.ndarray, np.ndarray]:
        """Each profiled account's claim, the known claimed countries, ``gaps[i, k]`` (hours
        from lived offset k to the nearest offset of country i; last row: unknown claim) and
        each account's row of it."""
        claim = self._claims(p, accounts)
        table = country_offsets()
        codes = sorted(c for c in claim.drop_nulls().unique().to_list() if c in table)
        gaps = np.full((len(codes) + 1, HOURS), np.nan)
        for i, code in enumerate(codes):
            offs = np.asarray(table.get(code, ()), float)
            if offs.size:
                gaps[i] = circ(OFFSETS[:, None], offs[None, :]).min(axis=1)
        row = {c: i for i, c in enumerate(codes)}
        ci = (
            claim.replace_strict(row, default=len(codes), return_dtype=pl.Int64)
            .fill_null(len(codes))
            .to_numpy()
        )
        return claim, codes, gaps, ci

    def lived(self, p: Profiles, accounts: pl.DataFrame) -> Finding:
        """Features, artifacts and texts from the profiles and the accounts' claims."""
        claim, codes, gaps, ci = self._claim_gaps(p, accounts)
        table = country_offsets()
        enough = p.cells >= self.min_cells
        # Pass 1: accounts billed where one offset holds all year; where too few are, those
        # whose country keeps one offset and summer time, at standard time (an hour's blur).
        k = share = conf = r = None
        self._early = False
        for exact in (True, False):
            shift = np.array([_single_offset(table.get(c, ()), exact) for c in codes] + [np.nan])[
                ci
            ]
            first = _reference_rows(p, ~np.isnan(shift), self.min_cells, self.min_reference)
            if first.sum() >= self.min_reference:
                self._early = bool(p.cells[first].min() < self.min_cells)
                r = reference(p.counts[first], shift[first])
                k, share, conf = self._fit(p, enough, r)
                break
        if k is not None and conf is not None:
            # Pass 2: every account whose lived offset is within an hour of its claim, at
            # the claimed offset (whole hours; the lived one where the claim is a half hour).
            near = np.full((len(codes) + 1, HOURS), np.nan)
            for i, code in enumerate(codes):
                offs = np.asarray(table.get(code, ()), float)
                if offs.size:
                    near[i] = offs[circ(OFFSETS[:, None], offs[None, :]).argmin(axis=1)]
            snap = near[ci, k]
            snap = np.where(snap == np.round(snap), snap, OFFSETS[k])
            agree = enough & (conf >= self.min_confidence) & (gaps[ci, k] <= 1.0)
            if agree.sum() >= self.min_reference:
                self._early = False
                r = reference(p.counts[agree], snap[agree])
                k, share, conf = self._fit(p, enough, r)
        found = self._finding(p, claim, ci, gaps, k, share, conf)
        if r is None or k is None or share is None or conf is None:
            self._fitted = None
            return dataclasses.replace(found, features=_no_ring(found.features))
        self._fitted = (r, _fits(p, k, share, conf))
        return self._with_rings(found, p, accounts, ci, gaps, r)

    @staticmethod
    def _fit(
        p: Profiles, rows: np.ndarray, r: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:func:`fit` on the ``rows`` with enough active hours (the rest: offset index 0, NaN)."""
        k, share, conf = (
            np.zeros(len(rows), np.int64),
            np.full(len(rows), np.nan),
            np.full(len(rows), np.nan),
        )
        k[rows], share[rows], conf[rows] = fit(p.counts[rows], p.cells[rows], r)
        return k, share, conf

    def _claims(self, p: Profiles, accounts: pl.DataFrame) -> pl.Series:
        """The claimed country of each profiled account (null where none or unknown)."""
        present = [c for c in CLAIMS if c in accounts.columns]
        if not present:
            return pl.Series("claim", [None] * len(p.account), dtype=pl.String)
        exprs = [CLAIMS[c](pl.col(c).cast(pl.String)) for c in present]
        claims = accounts.select(pl.col("account").cast(pl.UInt32), claim=pl.coalesce(exprs))
        out = pl.DataFrame({"account": p.account}, schema={"account": pl.UInt32}).join(
            claims.unique("account", keep="first"), on="account", how="left", maintain_order="left"
        )
        return out["claim"]

    def _finding(
        self,
        p: Profiles,
        claim: pl.Series,
        ci: np.ndarray,
        gaps: np.ndarray,
        k: np.ndarray | None,
        share: np.ndarray | None,
        conf: np.ndarray | None,
    ) -> Finding:
        n = p.counts.sum(axis=1)
        table = country_offsets()
        codes = claim.drop_nulls().unique().sort().to_list()
        offsets = pl.DataFrame(
            {"country": codes, "claimed_offsets": [list(table.get(c, ())) or None for c in codes]},
            schema={"country": pl.String, "claimed_offsets": pl.List(pl.Float64)},
        )
        base = pl.DataFrame(
            {
                "account": pl.Series(p.account, dtype=pl.UInt32),
                "n": pl.Series(n.astype(np.int64)),
                "cells": pl.Series(p.cells.astype(np.int64)),
                "country": claim.alias("country"),
            }
        ).join(offsets, on="country", how="left", maintain_order="left")
        if k is None or share is None or conf is None:  # no reference day: nothing lived
            f = base.with_columns(
                offset=pl.lit(None, pl.Int8), fit=pl.lit(None, pl.Float64), confidence=pl.lit(None, pl.Float64),
                tz_gap=pl.lit(None, pl.Float64), busy_from=pl.lit(None, pl.Int64), busy_hours=pl.lit(None, pl.Int64),
                misplaced=pl.lit(0.0), ts_misplaced=pl.lit(0.0),
            )  # fmt: skip
            return Finding(f, explain=self._explain)
        sure = (p.cells >= self.min_cells) & (conf >= self.min_confidence)
        gap = gaps[ci, k]
        lived = np.where(sure, OFFSETS[k], 0)
        mis = sure & (gap >= self.min_gap)
        start, length = busy_window(p.counts[mis])
        busy_from = np.full(len(n), -1, np.int64)
        busy_len = np.zeros(len(n), np.int64)
        busy_from[mis] = (start + OFFSETS[k[mis]]) % HOURS  # local hour at the lived offset
        busy_len[mis] = length
        f = base.with_columns(
            offset=pl.when(pl.Series(sure)).then(pl.Series(lived, dtype=pl.Int8)),
            fit=pl.Series(share),
            confidence=pl.Series(conf),
            tz_gap=pl.when(pl.Series(sure)).then(pl.Series(gap)),  # NaN where the claim is unknown
            busy_from=pl.when(pl.Series(mis)).then(pl.Series(busy_from)),
            busy_hours=pl.when(pl.Series(mis)).then(pl.Series(busy_len)),
        )
        f = f.with_columns(pl.col("fit", "confidence", "tz_gap").fill_nan(None))
        # Misplaced: confidently living ``min_gap`` hours or more from the claim; the tail
        # score ranks how far among every account (0 for the rest), so only a confident
        # gap ever adds to the behaviour score.
        f = f.with_columns(
            misplaced=pl.when(pl.Series(mis)).then(pl.col("tz_gap")).otherwise(0.0)
        ).with_columns(
            ts_misplaced=pl.when(pl.col("misplaced") > 0)
            .then(tail_score(pl.col("misplaced")))
            .otherwise(0.0)
        )
        mis = f.filter(pl.col("misplaced") > 0)
        arts = pl.concat(
            [
                mis.select(
                    "account",
                    kind=pl.lit("lived_tz"),
                    value=_tz_value(pl.col("offset")),
                    share="fit",
                ),
                _near_artifacts(mis, pl.col("offset"), pl.col("fit")),
            ]
        )
        texts = pl.concat([self._texts(mis), self._texts(mis, near=True)])
        return Finding(f, arts.cast(ARTIFACTS_SCHEMA), explain=self._explain, texts=texts)  # type: ignore[arg-type]

    def _with_rings(
        self,
        found: Finding,
        p: Profiles,
        accounts: pl.DataFrame,
        ci: np.ndarray,
        gaps: np.ndarray,
        r: np.ndarray,
    ) -> Finding:
        """``found`` with the lived offsets of identity rings: their members' profiles pooled
        (see the class docstring), ``ring_size`` and ``ring_offset`` on every member of a
        misplaced ring, and one ``lived_tz`` artifact per member not already carrying it."""
        ring = self._identity_rings(accounts)
        pos = pl.DataFrame(
            {"account": p.account, "row": np.arange(len(p.account))},
            schema={"account": pl.UInt32, "row": pl.Int64},
        )
        ring = ring.join(pos, on="account", how="left")
        traced = ring.drop_nulls("row")
        feats = found.features
        none = _no_ring(feats)
        if traced.height == 0:
            return dataclasses.replace(found, features=none)
        rid = traced["ring"].to_numpy()
        rows = traced["row"].to_numpy()
        uniq, inv = np.unique(rid, return_inverse=True)
        counts = np.zeros((len(uniq), HOURS))
        np.add.at(counts, inv, p.counts[rows])
        cells = np.zeros(len(uniq))
        np.add.at(cells, inv, p.cells[rows])
        speakers = np.bincount(inv, minlength=len(uniq))
        sure = (cells >= self.min_cells) & (speakers >= 2)
        k = np.zeros(len(uniq), np.int64)
        conf = np.zeros(len(uniq))
        if sure.any():
            k[sure], _, conf[sure] = fit(counts[sure], cells[sure], r)
        sure &= conf >= self.ring_confidence
        # Misplaced: two or more members with a known claim, one of them min_gap from the ring's offset.
        member_gap = gaps[ci[rows], k[inv]]
        known = ~np.isnan(member_gap)
        far = np.bincount(
            inv, weights=(known & (member_gap >= self.min_gap)).astype(float), minlength=len(uniq)
        )
        told = np.bincount(inv, weights=known.astype(float), minlength=len(uniq))
        misplaced = sure & (told >= 2) & (far >= 1)
        if not misplaced.any():
            return dataclasses.replace(found, features=none)
        lived = pl.DataFrame(
            {"ring": uniq[misplaced], "ring_offset": OFFSETS[k[misplaced]]},
            schema={"ring": ring["ring"].dtype, "ring_offset": pl.Int8},
        )
        members = (
            ring.join(lived, on="ring")
            .with_columns(ring_size=pl.len().over("ring").cast(pl.Int64))
            .join(feats.select("account", "offset", "country"), on="account", how="left")
            # a member whose own clock is sure and more than an hour away is not the ring's
            .filter(
                pl.col("offset").is_null()
                | ((pl.col("offset") - pl.col("ring_offset")).abs() % HOURS).is_in(
                    [0, 1, HOURS - 1]
                )
            )
            .unique("account", keep="first")
        )
        feats = feats.join(
            members.select("account", "ring_size", "ring_offset"),
            on="account",
            how="left",
            maintain_order="left",
        )
        own = (
            found.artifacts
            if found.artifacts is not None
            else pl.DataFrame(schema=ARTIFACTS_SCHEMA)
        )
        ring_arts = _near_artifacts(members, pl.col("ring_offset"), pl.lit(1.0))
        both = pl.concat([own, ring_arts]).cast(ARTIFACTS_SCHEMA)  # type: ignore[arg-type]
        arts = both.unique(["account", "kind", "value"], keep="first", maintain_order=True)
        # near texts again, from misplaced accounts and ring members together (one text per value)
        mis = feats.filter(pl.col("misplaced") > 0).select("offset", "country")
        near = self._texts(
            pl.concat([mis, members.select(offset="ring_offset", country="country")]), near=True
        )
        exact = found.texts if found.texts is not None else pl.DataFrame(schema=TEXT_SPEC_DTYPES)
        texts = pl.concat([exact.filter(~pl.col("value").is_in(near["value"].implode())), near])
        return dataclasses.replace(found, features=feats, artifacts=arts, texts=texts)

    def _identity_rings(self, accounts: pl.DataFrame) -> pl.DataFrame:
        """:func:`identity_rings`, again only when the columns it reads changed."""
        held = accounts.select(c for c in ("account", "org_id", "email", "created_at", *RING_COLUMNS) if c in accounts.columns)
        if self._rings is not None and self._rings[0].equals(held):
            return self._rings[1]
        ring = identity_rings(accounts, self.ring_max)
        self._rings = (held, ring)
        return ring

    @staticmethod
    def _texts(mis: pl.DataFrame, near: bool = False) -> pl.DataFrame:
        """Readable lived offsets (``near``: every offset within an hour of each), with the
        countries their carriers are billed in (most first)."""
        rows = mis.select("offset", "country")
        if near:
            rows = rows.with_columns(offset=_within_an_hour(pl.col("offset"))).explode("offset")
        per = (
            rows.group_by("offset", "country")
            .len()
            .sort(["offset", "len", "country"], descending=[False, True, False], nulls_last=True)
            .group_by("offset", maintain_order=True)
            .agg(pl.col("country").drop_nulls())
        )
        out = []
        for off, countries in per.iter_rows():
            where = _countries(countries)
            name = f"within an hour of {_utc(off)}" if near else _utc(off)
            value = _near_hash(int(off)) if near else _tz_hash(int(off))
            out.append({"value": value, "text": f"{name}, billed in {where}" if where else name})
        return pl.DataFrame(out, schema={"value": pl.UInt64, "text": pl.String})

    def _explain(self, r: dict[str, Any]) -> list[str]:
        if not r.get("misplaced") and r.get("ring_offset") is not None:
            return [
                f"one of a ring of {int(r['ring_size'])} accounts sharing a phone, card or domain that together "
                f"live at {_utc(int(r['ring_offset']))}, hours from where most of them are billed"
                + (f" (this one in {r['country']})" if r.get("country") else "")
            ]
        if not r.get("misplaced"):
            return []
        off = int(r["offset"])
        claimed = "/".join(f"{o:+g}" for o in (r.get("claimed_offsets") or []))
        busy = ""
        if (
            r.get("busy_from") is not None and (r.get("busy_hours") or 24) <= 12
        ):  # a longer run says little
            b0, b1 = int(r["busy_from"]), (int(r["busy_from"]) + int(r["busy_hours"])) % HOURS
            busy = f", busiest {b0:02d}:00-{b1:02d}:00 there"
        return [
            f"lives at {_utc(off)} ({r['fit']:.0%} of {int(r['n']):,} requests fit a human day there, "
            f"{int(r['cells']):,} active hours{busy}), billed in {r['country']} (UTC{claimed}): "
            f"{r['tz_gap']:g} hours from every offset of its claimed country"
        ]


def _fits(p: Profiles, k: np.ndarray, share: np.ndarray, conf: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame(
        {"account": p.account, "k": k, "share": share, "conf": conf},
        schema={"account": pl.UInt32, "k": pl.Int64, "share": pl.Float64, "conf": pl.Float64},
    )


def _no_ring(feats: pl.DataFrame) -> pl.DataFrame:
    return feats.with_columns(ring_size=pl.lit(None, pl.Int64), ring_offset=pl.lit(None, pl.Int8))


RING_COLUMNS = ("phone_hash", "payment_fp", "email_domain")


def identity_rings(accounts: pl.DataFrame, ring_max: int, max_share: float = 0.01) -> pl.DataFrame:
    """``account, ring``: accounts joined through phones, cards or mail domains that 2 to
    ``ring_max`` accounts (and at most ``max_share`` of them, eight at the least) share,
    not all of one declared organisation (its card is its own); connected groups of 3 to
    ``ring_max`` accounts. A webmail domain (thousands) joins nothing, nor does a phone
    number the carrier reissued to someone else (:func:`~distillguard.signals.registration.phone_held`).
    A group past ``ring_max`` loses its most held value (a mid-sized domain that a few
    cells and many strangers use) and is taken apart again, up to ``HUB_PEELS`` times, so
    the cells inside stay rings (dropped whole, a careful fleet's rings went unread)."""
    empty = pl.DataFrame(schema={"account": pl.UInt32, "ring": pl.Int64})
    a = phone_held(accounts)
    if "email_domain" in a.columns or "email" in a.columns:
        dom = [pl.col(c) for c in ("email_domain",) if c in a.columns]
        dom += [pl.col("email").str.extract(r"@(.+)$", 1)] if "email" in a.columns else []
        a = a.with_columns(email_domain=pl.coalesce(dom).str.to_lowercase())
    cols = [c for c in RING_COLUMNS if c in a.columns]
    if not cols or a.height == 0:
        return empty
    org = pl.col("org_id") if "org_id" in a.columns else pl.lit(None, pl.String)
    held = pl.concat(
        [
            a.select(
                pl.col("account").cast(pl.UInt32),
                org_id=org,
                value=pl.format("{}:{}", pl.lit(c), pl.col(c)),
            ).drop_nulls("value")
            for c in cols
        ]
    )
    per = held.group_by("value").agg(
        k=pl.len(), orgs=pl.col("org_id").n_unique(), org_null=pl.col("org_id").null_count()
    )
    one_org = (pl.col("orgs") == 1) & (pl.col("org_null") == 0)
    kmax = min(ring_max, max(8, int(max_share * a.height)))
    edges = held.join(
        per.filter((pl.col("k") >= 2) & (pl.col("k") <= kmax) & ~one_org).select("value"),
        on="value",
    )
    # A group past ``ring_max``: its most held value goes, the rest is taken apart again.
    kept = empty
    for _ in range(HUB_PEELS):
        if edges.height == 0:
            break
        rings = _components(edges)
        big = pl.len().over("ring") > ring_max
        kept = pl.concat([kept, rings.filter(~big)])
        inside = edges.join(rings.filter(big), on="account")
        k = inside.group_by("value").agg(k=pl.len(), ring=pl.col("ring").first())
        edges = inside.join(k.filter(pl.col("k") < pl.col("k").max().over("ring")).select("value"), on="value").drop("ring")
    return kept.filter(pl.len().over("ring").is_between(3, ring_max))


HUB_PEELS = 8


def _components(edges: pl.DataFrame) -> pl.DataFrame:
    """``account, ring``: connected groups of ``edges`` (``account, value``); ring labels
    unique across calls (the smallest account of the group)."""
    nodes = edges.select("value").unique(maintain_order=True).with_row_index("node")
    accts = edges["account"].unique().sort()
    local = pl.DataFrame({"account": accts, "i": np.arange(accts.len())})
    e = edges.join(nodes, on="value").join(local, on="account")
    n = accts.len() + nodes.height
    adj = sparse.coo_matrix(
        (
            np.ones(e.height, np.int8),
            (e["i"].to_numpy(), e["node"].to_numpy().astype(np.int64) + accts.len()),
        ),
        shape=(n, n),
    )
    _, labels = connected_components(adj, directed=False)
    rings = local.select("account", ring=pl.Series(labels[: accts.len()]).cast(pl.Int64))
    return rings.with_columns(ring=pl.col("account").min().over("ring").cast(pl.Int64))


def _single_offset(offs: tuple[float, ...], exact: bool) -> float:
    """The offset of a country that keeps one in whole hours (``exact``: all year; else
    summer time aside, at standard time), else NaN."""
    if not offs or any(o != int(o) for o in offs) or max(offs) - min(offs) > (0 if exact else 1):
        return float("nan")
    return float(min(offs))


def _within_an_hour(offset: pl.Expr) -> pl.Expr:
    """The offset and its two neighbours (UTC-11 .. UTC+12, wrapped): a lived offset is
    sure to an hour (``confidence``), so one fleet reads +7 on one account, +8 on another."""
    return pl.concat_list(
        [((offset.cast(pl.Int16) + d + 11) % HOURS - 11).cast(pl.Int8) for d in (-1, 0, 1)]
    )


def _near_artifacts(carriers: pl.DataFrame, offset: pl.Expr, share: pl.Expr) -> pl.DataFrame:
    """``lived_tz_near`` rows: one per carrier and offset within an hour of its lived one,
    so carriers read an hour apart still hold a value in common."""
    rows = carriers.select("account", offset=_within_an_hour(offset), share=share).explode("offset")
    return rows.select(
        "account", kind=pl.lit("lived_tz_near"), value=_near_value(pl.col("offset")), share="share"
    )


def _near_hash(offset: int) -> int:
    return int(pl.select(_near_value(pl.lit(offset, pl.Int8))).item())


def _near_value(offset: pl.Expr) -> pl.Expr:
    return offset.cast(pl.Int8).hash(43)


def _tz_hash(offset: int) -> int:
    return int(pl.select(_tz_value(pl.lit(offset, pl.Int8))).item())


def _tz_value(offset: pl.Expr) -> pl.Expr:
    return offset.cast(pl.Int8).hash(41)


def _utc(offset: int) -> str:
    return f"UTC{int(offset):+d}" if offset else "UTC"


def _countries(codes: list[str], most: int = 6) -> str:
    if len(codes) <= most:
        return (
            ", ".join(codes[:-1]) + (" and " if len(codes) > 1 else "") + codes[-1] if codes else ""
        )
    return f"{', '.join(codes[:most])} and {len(codes) - most} more"
