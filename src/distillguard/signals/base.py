"""The one protocol every signal implements.

A signal owns one piece of evidence end to end (DESIGN.md): it *enriches* an exchange
batch (vectorised, row-aligned), folds rows into a per-account *state* that merges
associatively (so batch, replay, Spark partitions and the gateway all share it), and
*finalizes* the state into per-account features, human-readable evidence and the
shared artifacts the link step joins accounts on.

State is a dict of small Polars tables. Each table declares its key columns and how
each value column merges (``sum``, ``min``, ``max``), so merging is a group-by (for
per-account tables, a merge of tables sorted by account): associative, commutative,
with the empty state as identity.
"""

from __future__ import annotations

import io
import json
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import polars as pl

from distillguard.errors import SignalStateError

if TYPE_CHECKING:
    from distillguard.ruleset import RuleSet

Agg = Literal["sum", "min", "max"]
DType = pl.DataType | type[pl.DataType]


@dataclass(frozen=True)
class TableSpec:
    """Shape of one state table: its keys and how each value column merges."""

    keys: tuple[str, ...]
    values: Mapping[str, Agg]
    dtypes: Mapping[str, DType] = field(default_factory=dict)
    # Heavy hitters only: keep at most ``top_k`` values per ``keys[0]`` (the account) as a
    # Misra-Gries summary on the single ``sum`` column. Summaries merge (Agarwal et al.,
    # "Mergeable summaries", PODS 2012): any value with more than 1/(top_k+1) of an
    # account's count survives, undercounted by at most that share. Bounds the memory of
    # per-(account, fingerprint) tables, which otherwise grow with every distinct prompt.
    top_k: int | None = None
    # ... but cut an account only once it holds more than ``slack * top_k`` values. The
    # bound is the same (each cut subtracts the (top_k+1)-th count), but values are cut
    # less often, so the summary depends less on how the log was cut into batches: with a
    # cut at every batch, the batch hunt (daily batches) and an hourly replay of one log
    # flagged 280 and 293 accounts (demo, seed 11); exact counts flag 290; slack 2 flags
    # 288 and 291 (1.04 % apart), slack 3 291 and 291, slack 4 290 and 290 but doubles the
    # template folds' cost at scale 0.1 (benchmarks/results/core/README.md has the numbers).
    slack: int = 3
    # A merge that is not a per-column aggregate (e.g. gaps that bridge two time segments):
    # given every row to combine (already aggregated per segment), returns one row per key.
    # It must be associative and commutative, like the aggregates.
    fold: Callable[[pl.DataFrame], pl.DataFrame] | None = None

    def empty(self) -> pl.DataFrame:
        cols: dict[str, DType] = {**dict.fromkeys(self.keys, pl.UInt64), **dict.fromkeys(self.values, pl.Int64)}
        cols.update(self.dtypes)
        return pl.DataFrame(schema=cols)

    def compact(self, frames: list[pl.DataFrame]) -> pl.DataFrame:
        # Every frame is already aggregated by the keys, so a single one is returned as is.
        frames = [f for f in frames if f.height]
        if not frames:
            return self.empty()
        if len(frames) == 1:  # one batch's table: reduced when it is next merged
            return frames[0]
        big = max(frames, key=lambda f: f.height)
        rest = [f for f in frames if f is not big]
        if SPLICE * sum(f.height for f in rest) < big.height:
            if self.keys[0] == "account":
                return self._splice(big, rest)
            if len(self.keys) == 1 and self.top_k is None:
                return self._append(big, rest)
        return self._compact(frames)

    def _append(self, big: pl.DataFrame, rest: list[pl.DataFrame]) -> pl.DataFrame:
        """A few rows folded into a large table with one key (texts by value): rows with new
        keys are appended, only keys already held are merged (a 200,000-row table: 90 ms for
        a group-by of everything at every cycle of the live re-score)."""
        (key,) = self.keys
        small = self._compact(rest)
        held = big[key].is_in(small[key].implode())
        if held.any():
            small = self._compact([big.filter(held), small])
            big = big.filter(~held)
        return few_chunks(pl.concat([big, small.select(big.columns).cast(dict(big.schema))], rechunk=False))  # type: ignore[arg-type]

    def _splice(self, big: pl.DataFrame, rest: list[pl.DataFrame]) -> pl.DataFrame:
        """A few seconds of traffic folded into a large state: only the accounts it touches
        are merged (every table keyed by account merges each account's rows on their own:
        sums, heavy hitters and folds alike), then put back in their place. The same rows
        as merging everything, at a fraction of the cost (the live re-score folds every
        few seconds; benchmarks/results/gateway/rescore.json)."""
        touched = pl.concat([f.select("account") for f in rest])["account"].unique().sort()
        key = self.merge_key()
        # Sorted by account suffices: each account's rows are one run, replaced whole. (The
        # merge key's order within runs is kept where it held; checking it cost 50-100 ms
        # per 6-million-row table and cycle.)
        if key is not None and big["account"].is_sorted():
            return self._splice_sorted(big, rest, touched, key)
        inside = big["account"].is_in(touched.implode())
        merged = self._compact([big.filter(inside), *rest])
        out = big.filter(~inside)
        if out.height == 0:
            return merged
        merged = merged.select(out.columns).cast(dict(out.schema))  # type: ignore[arg-type]
        return pl.concat([out, merged])

    def _splice_sorted(self, big: pl.DataFrame, rest: list[pl.DataFrame], touched: pl.Series, key: pl.Expr) -> pl.DataFrame:
        """:meth:`_splice` of a state sorted by account (as folds leave it): each touched
        account's rows are found by binary search and the merged rows put in their place, so
        the result stays sorted without a merge of the whole table (a 6.2M-row template table
        with 300 accounts touched: 30 ms instead of 690 ms). The pieces are not copied into
        one buffer until they number ``MAX_CHUNKS``: copying a 120 MB table took 100 ms, at
        every cycle of the live re-score."""
        acc = big["account"]
        lo = acc.search_sorted(touched, side="left").to_numpy()
        hi = acc.search_sorted(touched, side="right").to_numpy()
        mine = [big.slice(a, b - a) for a, b in zip(lo.tolist(), hi.tolist(), strict=True) if b > a]
        merged = self._compact([pl.concat(mine) if mine else big.clear(), *rest])
        if int((hi - lo).sum()) == big.height:
            return merged
        merged = merged.select(big.columns).cast(dict(big.schema))  # type: ignore[arg-type]
        km = merged.with_columns(key.alias("__k__"))
        if not km["__k__"].is_sorted():
            merged = km.sort("__k__", maintain_order=True).drop("__k__")
        macc = merged["account"]
        mlo = macc.search_sorted(touched, side="left").to_numpy().tolist()
        mhi = macc.search_sorted(touched, side="right").to_numpy().tolist()
        pieces, prev = [], 0
        for a, b, c, d in zip(lo.tolist(), hi.tolist(), mlo, mhi, strict=True):
            pieces += [big.slice(prev, a - prev), merged.slice(c, d - c)]
            prev = b
        pieces.append(big.slice(prev))
        return few_chunks(pl.concat(pieces, rechunk=False))

    def _compact(self, frames: list[pl.DataFrame]) -> pl.DataFrame:
        if self.fold is not None:
            return self.fold(pl.concat(frames, how="vertical_relaxed"))
        aggs = self.merge_aggs()
        if self.merge_key() is not None:
            return self.heavy(self._merge(frames, aggs))
        df = pl.concat(frames, how="vertical_relaxed")
        return self.heavy(df.group_by(list(self.keys)).agg(aggs))

    def merge_aggs(self) -> list[pl.Expr]:
        """How rows already aggregated by the keys combine."""
        return [getattr(pl.col(c), a)().alias(c) for c, a in self.values.items()]

    def merge_key(self) -> pl.Expr | None:
        """One u64 per row that sorts per-account tables: the account in the high 32 bits,
        the second key (if any) in the low ones (its two halves xor-ed if it is 64-bit).

        Folding a day into a state of millions of rows is then a merge of sorted runs and a
        pass over adjacent rows, not a hash group-by of everything: 3.5x faster on the
        template tables at full scale (benchmarks/results/hunt-*.json profiles the folds).
        """
        if self.keys[0] != "account":
            return None
        acct = pl.col("account").cast(pl.UInt64) * (1 << 32)
        if len(self.keys) == 1:
            return acct
        second = self.dtypes.get(self.keys[1], pl.UInt64)
        if len(self.keys) != 2 or not second.is_integer():
            return None
        x = pl.col(self.keys[1])
        if second in (pl.Int64, pl.UInt64):  # both halves folded: rows that share it are regrouped
            u = x.reinterpret(signed=False)
            return acct + ((u // (1 << 32)) ^ (u % (1 << 32)))
        return acct + (x.cast(pl.Int64) + (1 << 32)) % (1 << 32)  # exact for 32 bits or fewer

    def _sorted(self, table: pl.DataFrame) -> pl.DataFrame:
        """``table`` with its merge key as ``__k__``, sorted by it (states already are)."""
        key = self.merge_key()
        assert key is not None
        out = table.with_columns(key.alias("__k__"))
        return out if out["__k__"].is_sorted() else out.sort("__k__")

    def _merge(self, frames: list[pl.DataFrame], aggs: list[pl.Expr]) -> pl.DataFrame:
        parts = sorted((self._sorted(f) for f in frames), key=lambda f: -f.height)
        # Sorted runs concatenated and sorted again (stable: rows of one key keep their order):
        # twice as fast as merging the state with the sorted pending rows (``merge_sorted``).
        schema = parts[0].schema
        merged = pl.concat([parts[0], *(p.cast(schema) for p in parts[1:])]).sort("__k__", maintain_order=True)  # type: ignore[arg-type]
        sums = list(self.values) if all(a == "sum" for a in self.values.values()) else []
        return self.runs(merged, aggs, sums).cast(dict(parts[0].drop("__k__").schema))  # type: ignore[arg-type]

    def runs(self, rows: pl.DataFrame, aggs: Sequence[pl.Expr], sums: Sequence[str] = ()) -> pl.DataFrame:
        """Aggregate ``rows`` sorted by the merge key (``__k__``): a pass over adjacent rows.
        ``sums``: instead of ``aggs``, these columns summed per run, from their running sums
        at each run's last row (no grouping: a third of the cost)."""
        if sums:
            last = pl.any_horizontal(pl.col(c) != pl.col(c).shift(-1) for c in self.keys).fill_null(True)
            ends = rows.select(*self.keys, "__k__", *(pl.col(c).cum_sum() for c in sums)).filter(last)
            out = ends.with_columns(pl.col(c) - pl.col(c).shift(1, fill_value=0) for c in sums)
        else:
            run = pl.struct(*self.keys).rle_id().alias("__r__")  # equal keys are adjacent ...
            firsts = [pl.col(c).first() for c in (*self.keys, "__k__")]
            out = rows.group_by(run, maintain_order=True).agg(*firsts, *aggs).drop("__r__")
        # ... unless two 64-bit second keys of one account fold to one merge key: the sort
        # may have interleaved them. Those few rows are regrouped by the full keys.
        k = pl.col("__k__")
        tie = ((k == k.shift(1)) | (k == k.shift(-1))).fill_null(False)
        if out.select(tie.any()).item():
            fixed = out.filter(tie).group_by([*self.keys, "__k__"]).agg(self.merge_aggs()).sort("__k__")
            out = out.filter(~tie).merge_sorted(fixed.select(out.columns), "__k__")
        return out.drop("__k__")

    def heavy(self, table: pl.DataFrame) -> pl.DataFrame:
        """The Misra-Gries reduction: where an account holds more than ``slack * top_k``
        values, subtract its (top_k+1)-th largest count from all and drop what reaches zero."""
        k = self.top_k
        if k is None or table.height <= k:
            return table
        (n,) = self.values
        # Sorted by account (the merge key), so each account is one run; only the runs
        # over ``k`` need a cut (a per-group top-k over every account costs 5x more).
        per = self.keys[0]
        # Folded tables come sorted by their merge key, so by account: only then is the key skipped.
        t = table if table[per].is_sorted() else self._sorted(table).drop("__k__")
        t = t.with_columns(pl.col(per).rle_id().alias("__r__"))
        over = t.select(pl.col(per).rle().struct.field("len") > self.slack * k).to_series()
        if not over.any():
            return table
        big = t.filter(over.gather(t["__r__"])).group_by("__r__", maintain_order=True)
        cuts = big.agg(pl.col(n).top_k(k + 1).min().cast(pl.Int64))
        cut = pl.zeros(over.len(), pl.Int64, eager=True).scatter(cuts["__r__"], cuts[n])
        left = pl.col(n).cast(pl.Int64) - cut.gather(t["__r__"])  # signed: no wrap below zero
        out = t.with_columns(left.alias("__r__")).filter(pl.col("__r__") > 0)
        return out.with_columns(pl.col("__r__").cast(table.schema[n]).alias(n)).drop("__r__")


# A fold of frames whose rows are fewer than 1/SPLICE of the largest's merges only the
# accounts they touch into it (``TableSpec._splice``).
SPLICE = 8
# Chunks a spliced table may hold before it is copied into one (about seven cycles of 300
# accounts each); below it, a scan of the table costs about what it does on one chunk
# (the template signal's finalize at 196,017 accounts, tables in 3,000 chunks or one).
MAX_CHUNKS = 4096



def few_chunks(df: pl.DataFrame) -> pl.DataFrame:
    """``df``, copied into one buffer once it holds more than ``MAX_CHUNKS`` chunks: tables
    patched at every live re-score (spliced states, refinalized artifacts) would otherwise
    gain chunks at each cycle, and every later scan pays for each."""
    return df.rechunk() if df.n_chunks() > MAX_CHUNKS else df


State = dict[str, pl.DataFrame]
_MAGIC = b"DGSTATE1"


@dataclass(frozen=True)
class ArtifactKind:
    """How the hunt treats one kind of artifact a signal emits.

    ``label`` names it in evidence sentences ("IP prefix"). ``links``: sharing it can tie
    accounts into one campaign (False for things many unrelated actors share by nature, an
    SDK's user agent or a model's launch day: evidence only). ``bystander``: people outside
    a campaign can carry it by accident (a proxy exit that is also a home network), so a
    carrier must itself behave unusually to be linked. ``identity``: one person or operator
    holds it (phone, card, device, small mail domain): webs of accounts sharing it are
    tested as a whole. ``group``: the signal has found a candidate group (a proxy pool's
    core), so its carriers form one web whatever its size, tested as a whole like an
    identity web: a quiet fleet is judged by how its members behave together, not by how
    many of them stand out alone. ``joins``: it joins identity webs into one (cells of one
    operator that share its clock) even where ``links`` is False: a web joined through it is
    still tested as a whole, while no account is ever linked through it alone.
    ``signature``: the operator's own wording (a scripted follow-up): an account outside
    every campaign that carries ``link.signature_min_ties`` (2) of one campaign's signatures,
    each carried mostly by that campaign's members, joins it (:func:`distillguard.hunt.link.associates`),
    though one such value links nobody. ``cohort``: accounts that signed up together (one
    network, one week): an account outside every campaign that ranks high and signed up
    beside a member joins it when more such accounts did than chance explains
    (:func:`distillguard.hunt.link._signup_cohorts`). ``wording``: the text of the requests
    (a template, an identical or reworded prompt, a scripted turn); ``origin``: where an
    account comes from (a network, a device, a card, a phone, a small mail domain, the network
    it signed up from). Two accounts at the very top of the population that share a rare
    value of each are tested as a pair (:func:`distillguard.hunt.link.outlier_pairs`).
    """

    label: str
    links: bool = True
    bystander: bool = False
    identity: bool = False
    group: bool = False
    joins: bool = False
    signature: bool = False
    cohort: bool = False
    wording: bool = False
    origin: bool = False


@dataclass
class Finding:
    """What a signal finalizes into.

    ``features``: one row per account (``account`` key, u32 index) with numeric columns,
    larger = more suspicious. ``artifacts``: rows ``(account, kind, value, share)``
    linking accounts to shared things (templates, prefixes, domains). ``explain`` turns
    one account's feature row into sentences a reviewer can check against the log.
    """

    features: pl.DataFrame
    artifacts: pl.DataFrame | None = None
    explain: Callable[[dict[str, Any]], list[str]] | None = None
    texts: pl.DataFrame | None = None  # (value u64, text): readable form of artifact values


ARTIFACTS_SCHEMA: dict[str, DType] = {"account": pl.UInt32, "kind": pl.String, "value": pl.UInt64, "share": pl.Float64}
TEXT_SPEC_DTYPES: dict[str, DType] = {"value": pl.UInt64, "text": pl.String}


def texts_seen(values: pl.Expr, text: pl.Expr, rows: pl.DataFrame, min_count: int = 2) -> pl.DataFrame:
    """Readable text of artifact values repeated in a batch: enough to quote them as evidence."""
    # A sample of rows is enough: an artifact worth quoting repeats many times. Columns are
    # picked before rows: sampling a whole prepared batch copies every prompt (6x the cost).
    return (
        rows.select(value=values, text=text)
        .gather_every(8)
        .drop_nulls("value")
        .group_by("value")
        .agg(pl.col("text").min(), c=pl.len())
        .filter(pl.col("c") >= min_count)
        .select(pl.col("value").cast(pl.UInt64), "text")
    )


class Signal(ABC):
    """Base of every signal. Parameters are ``__init__`` arguments with immutable defaults."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    # Exchange columns the signal cannot work without (beyond account_id and ts).
    requires: ClassVar[tuple[str, ...]] = ()
    tables: ClassVar[Mapping[str, TableSpec]] = {}
    # Every artifact kind the signal's findings emit, with how the hunt treats it.
    artifact_kinds: ClassVar[Mapping[str, ArtifactKind]] = {}
    # Every feature column its findings carry besides ``account``; the hunt names them
    # ``<name>.<feature>``. Declared so readers (the gateway, a policy, the report) can
    # rely on them; the conformance checks hold a finding to exactly this list.
    features: ClassVar[tuple[str, ...]] = ()
    # Features that measure the account against its context, not what it does: against
    # what it claims (its country, its locale) or against other accounts that use the same
    # things (how far its addresses overlap theirs). An operator varies its claims from cell
    # to cell, and its cells sit in the pool more or less densely, while the script and the
    # clock stay one; so the hunt leaves these out of the behaviour profile that tells one
    # operator's cells from another's (:func:`distillguard.hunt.cluster.rejoin_same_profile`).
    # A subset of ``features``.
    context_relative: ClassVar[tuple[str, ...]] = ()
    # ``local``: an account's features (but ``population``'s) and artifacts depend on its own
    # rows of the state alone. Then :meth:`refinalize` finalizes only the accounts whose
    # rows changed and recomputes ``population`` (tail scores, medians: columns over every
    # account, added by :meth:`with_population`) over the patched whole: the live re-score
    # of a 200,000-account state after a few seconds of traffic (hunt/rescore.py).
    local: ClassVar[bool] = False
    population: ClassVar[tuple[str, ...]] = ()

    def enrich(self, batch: pl.DataFrame) -> pl.DataFrame:
        """New row-aligned columns for ``batch`` (default: none). Never mutates its input."""
        return batch.select([])

    @abstractmethod
    def update(self, state: State, rows: pl.DataFrame) -> State:
        """Fold enriched rows (with an ``account`` u32 column) into ``state``; returns the new state."""

    @abstractmethod
    def finalize(self, state: State, n_accounts: int) -> Finding:
        """Per-account features, artifacts and explanations from the merged state."""

    def finalize_accounts(self, accounts: pl.DataFrame) -> Finding | None:
        """Features and artifacts from the accounts table (``account`` index joined, every
        spec column present), for signals that read registration data; default: none."""
        return None

    def with_population(self, features: pl.DataFrame) -> pl.DataFrame:
        """``features`` with the ``population`` columns (computed over every row); a
        ``local`` signal's :meth:`finalize` ends with it, so both paths share one formula."""
        return features

    def refinalize(self, state: State, n_accounts: int, dirty: pl.Series, previous: Finding) -> Finding:
        """:meth:`finalize` when only the accounts in ``dirty`` (u32 indices) changed since
        ``previous`` (this signal's last finding). Features and artifacts are the same as
        :meth:`finalize`'s (texts and ``explain`` are the dirty accounts' only: the live
        re-score writes no evidence). Default: :meth:`finalize` over everything."""
        if not self.local:
            return self.finalize(state, n_accounts)
        keep = dirty.implode()
        sub = {k: (t.filter(pl.col("account").is_in(keep)) if "account" in t.columns else t) for k, t in state.items()}
        part = self.finalize(sub, n_accounts)
        own = [c for c in part.features.columns if c not in self.population]
        feats = pl.concat(
            [previous.features.filter(~pl.col("account").is_in(keep)).select(own), part.features.select(own)],
            how="vertical_relaxed",
        ).sort("account")
        arts = part.artifacts
        if previous.artifacts is not None and arts is not None:
            arts = few_chunks(pl.concat([previous.artifacts.filter(~pl.col("account").is_in(keep)), arts], how="vertical_relaxed"))
        return Finding(self.with_population(feats).select(part.features.columns), arts, part.explain, part.texts)

    def refinalize_accounts(self, accounts: pl.DataFrame, dirty: pl.Series, previous: Finding | None) -> Finding | None:
        """:meth:`finalize_accounts` when only ``dirty`` accounts changed (their exchanges
        or their row of ``accounts``) since ``previous``; default: :meth:`finalize_accounts`."""
        return self.finalize_accounts(accounts)

    # -- generic state algebra -------------------------------------------------------------
    def empty(self) -> State:
        return {k: spec.empty() for k, spec in self.tables.items()}

    def merge(self, a: State, b: State) -> State:
        self._check(a)
        self._check(b)
        return {k: spec.compact([a[k], b[k]]) for k, spec in self.tables.items()}

    def _check(self, state: State) -> None:
        if set(state) != set(self.tables):
            raise SignalStateError(
                f"signal {self.name!r} v{self.version}: state has tables {sorted(state)}, "
                f"expected {sorted(self.tables)}"
            )

    def state_params(self) -> dict[str, Any]:
        """Everything that shapes this signal's state: its version, its ``__init__``
        parameters and the heavy-hitter sizes of its tables. Two states merge only when
        these are equal (a state sampled 1 in 8 and one read in full cannot be added)."""
        out: dict[str, Any] = {"version": self.version}
        out.update({k: v for k, v in vars(self).items() if not k.startswith("_")})
        for key, spec in sorted(self.tables.items()):
            if spec.top_k is not None:
                out[f"{key}.top_k"], out[f"{key}.slack"] = spec.top_k, spec.slack
        wire: dict[str, Any] = json.loads(json.dumps(out, default=str))  # the form it takes on the wire
        return wire

    def check_compatible(self, params: Mapping[str, Any], what: str = "the other state") -> None:
        """Raise :class:`SignalStateError` naming the first parameter whose value differs."""
        mine = self.state_params()
        for key in sorted(set(mine) | set(params)):
            if mine.get(key) != params.get(key):
                raise SignalStateError(
                    f"signal {self.name!r}: {what} was built with {key}={params.get(key)!r}, this one with "
                    f"{key}={mine.get(key)!r}; states built with different settings cannot be merged"
                )

    def to_bytes(self, state: State) -> bytes:
        """Versioned bytes for Redis, Spark partial aggregates or a file: a JSON header
        (signal, :meth:`state_params`, byte order) and each table as Arrow IPC."""
        self._check(state)
        buf = io.BytesIO()
        head = json.dumps({"signal": self.name, "params": self.state_params(), "byteorder": "little"}).encode()
        buf.write(_MAGIC + struct.pack("<I", len(head)) + head)
        for key in sorted(self.tables):
            part = io.BytesIO()
            state[key].write_ipc(part)
            raw = part.getvalue()
            kb = key.encode()
            buf.write(struct.pack("<H", len(kb)) + kb + struct.pack("<Q", len(raw)) + raw)
        return buf.getvalue()

    def from_bytes(self, data: bytes) -> State:
        """A state written by :meth:`to_bytes` of a compatible signal; refuses any other."""
        if not data.startswith(_MAGIC):
            raise SignalStateError(f"signal {self.name!r}: these bytes are not a distillguard signal state")
        pos = len(_MAGIC)
        (n,) = struct.unpack_from("<I", data, pos)
        head = json.loads(data[pos + 4 : pos + 4 + n])
        if head.get("signal") != self.name:
            raise SignalStateError(f"state bytes are for signal {head.get('signal')!r}, not {self.name!r}")
        self.check_compatible(head.get("params", {}), "the state in these bytes")
        pos, out = pos + 4 + n, {}
        while pos < len(data):
            (kn,) = struct.unpack_from("<H", data, pos)
            key = data[pos + 2 : pos + 2 + kn].decode()
            (ln,) = struct.unpack_from("<Q", data, pos + 2 + kn)
            start = pos + 2 + kn + 8
            out[key] = pl.read_ipc(io.BytesIO(data[start : start + ln]))
            pos = start + ln
        self._check(out)
        return out

    def _unit_test_skips(self) -> Mapping[str, str]:
        """Conformance checks (by function name) this signal cannot pass, each with the
        reason; :func:`distillguard.checks.yield_checks` leaves them out. None by default."""
        return {}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


def clip_text(text: pl.Expr, head: int = 1500, tail: int = 500) -> pl.Expr:
    """The first ``head`` and last ``tail`` characters: where instructions, wrappers and
    format demands sit. Keeps text rules at a bounded cost per prompt."""
    long = text.str.len_chars() > head + tail
    return pl.when(long).then(text.str.slice(0, head) + "\n" + text.str.slice(-tail)).otherwise(text)


def with_distinct_index(batch: pl.DataFrame, column: str) -> pl.DataFrame:
    """``batch`` plus columns that let :func:`on_unique` skip its own hashing and join:
    whether a row is the first with its value of ``column``, and the position of that
    first row among the first rows. A caller that runs several signals on one batch (the
    hunt engine) adds them once, so the text signals share one pass over distinct prompts."""
    first, uidx = f"__first_{column}", f"__uidx_{column}"
    # Hash once; the position is materialised before the window (inside ``over`` it would
    # restart per group).
    out = batch.with_columns(pl.col(column).hash().alias(uidx)).with_columns(
        pl.col(uidx).is_first_distinct().alias(first)
    )
    pos = (pl.col(first).cum_sum() - 1).cast(pl.UInt32)
    return out.with_columns(pos.alias("__pos__")).with_columns(
        pl.col("__pos__").first().over(uidx).alias(uidx)
    ).drop("__pos__")


def on_unique(batch: pl.DataFrame, column: str, fn: Callable[[pl.DataFrame], pl.DataFrame]) -> pl.DataFrame:
    """Run ``fn`` once per distinct value of ``column`` and spread its columns back over the rows.

    Real traffic repeats prompts a lot; text rules and fingerprints need not see a repeat
    twice. ``fn`` gets a frame of the distinct values (first-seen order) and returns one
    row per input row. With the :func:`distinct_index` columns present, the distinct
    values are a filter and spreading back is a gather (a sixth of the cost).
    """
    if column not in batch.columns or batch.schema[column] == pl.Null:
        batch = batch.with_columns(pl.lit(None, dtype=pl.String).alias(column))
    first, uidx = f"__first_{column}", f"__uidx_{column}"
    if first in batch.columns and uidx in batch.columns:
        firsts = batch.select(column, uidx, first).filter(pl.col(first))  # not every column of the batch
        n = firsts.height
        # A slice, filter or sort of the batch may have dropped first rows: the index still
        # holds iff the first rows left are numbered 0..n-1 in order and nothing points past.
        if firsts[uidx].equals(pl.arange(0, n, dtype=pl.UInt32, eager=True).alias(uidx)) and (
            batch.height == 0 or int(batch[uidx].max()) < n  # type: ignore[arg-type]
        ):
            return fn(firsts.select(column)).select(pl.all().gather(batch[uidx]))
    key = batch.select(_k=pl.col(column).hash())
    uniq = batch.select(column, _k=pl.col(column).hash()).unique("_k", keep="first", maintain_order=True)
    out = pl.concat([uniq.select("_k"), fn(uniq.select(column))], how="horizontal")
    return key.join(out, on="_k", how="left", maintain_order="left").drop("_k")


def rules_on_sample(
    u: pl.DataFrame, rules: RuleSet, categories: list[str], read: pl.Series, bits: str | None = None
) -> pl.DataFrame:
    """``rules.apply`` on the clipped prompts of the rows of ``u`` where ``read`` holds;
    the other rows get no hits (False, and 0 for ``bits``). Text signals read a hash
    sample of the distinct prompts: the rules only ever see that sample."""
    hits = rules.apply(u.filter(read).select(clip_text(pl.col("prompt"))), categories, bits=bits)
    at = u.select(pl.when(read).then(read.cum_sum() - 1).cast(pl.UInt32)).to_series()
    return hits.select(pl.all().gather(at)).with_columns(
        pl.col(pl.Boolean).fill_null(False), pl.col(pl.Int64).fill_null(0)
    )


def in_sample(prompt: pl.Expr, sample: int) -> pl.Expr:
    """One distinct prompt in ``sample``, chosen by a hash of its text (so a prompt is
    always in or always out): per-account shares estimated on it stay unbiased."""
    return pl.lit(True) if sample <= 1 else prompt.hash(7) % sample == 0


def count_values(state: State, rows: pl.DataFrame, spec: TableSpec, table: str, column: str) -> pl.DataFrame:
    """Fold ``(account, value)`` counts of one fingerprint column into a state table."""
    r = rows.select("account", value=pl.col(column)).drop_nulls("value")
    if spec.merge_key() is None or r.height == 0:
        return spec.compact([state[table], grouped(r, spec, {"n": pl.len()})])
    # Mostly distinct values: a sort and a pass over runs beats a hash group-by, and the
    # table comes out sorted, ready to be merged into the state. Heavy-hitter tables are
    # reduced here already (summaries merge with the same error bound): a day of scripted
    # traffic shrinks 3x before it waits to be folded.
    ones = r.with_columns(n=pl.lit(1, dtype=spec.empty().schema["n"]))
    counts = spec.runs(spec._sorted(ones), [], sums=["n"])
    return spec.compact([state[table], spec.heavy(counts)])


def concentrated(counts: pl.DataFrame, totals: pl.DataFrame, kind: str, min_count: int, min_share: float) -> pl.DataFrame:
    """Artifact rows for the values an account leans on: at least ``min_count`` of its
    requests and ``min_share`` of them. ``counts``: account, value, n; ``totals``: account, tot."""
    return (
        counts.join(totals, on="account")
        .filter((pl.col("n") >= min_count) & (pl.col("n") >= min_share * pl.col("tot")))
        .select("account", kind=pl.lit(kind), value="value", share=pl.col("n") / pl.col("tot"))
    )


def grouped(rows: pl.DataFrame, spec: TableSpec, exprs: Mapping[str, pl.Expr]) -> pl.DataFrame:
    """Aggregate ``rows`` by ``spec.keys`` with ``exprs`` (value name -> agg expression)."""
    if rows.height == 0:
        return spec.empty()
    out = rows.group_by(list(spec.keys)).agg([e.alias(k) for k, e in exprs.items()])
    return out.cast({k: spec.empty().schema[k] for k in out.columns})


def tail_score(x: pl.Expr) -> pl.Expr:
    """How rare a value this high is in the population: -log10(share of accounts at or above it).

    Calibrated on the population itself, never on constants: 0 for the typical account,
    log10(N) for the single most extreme one.
    """
    n = x.count()
    rank = x.rank("max", descending=True)  # accounts with a value >= this one
    return (-((rank.cast(pl.Float64)) / n).log10()).fill_null(0.0)


def shrunk(value: pl.Expr, n: pl.Expr, min_n: int, prior: pl.Expr | None = None) -> pl.Expr:
    """``value`` pulled toward ``prior`` (default: the median of the accounts with at least
    ``min_n`` rows, 0 when none has them), the more the fewer rows an account has (weight
    ``n / min_n``).

    Why not a hard gate: an account with a dozen requests, all one template, is already
    unusual, and a campaign's accounts all start that way; a gate kept their tail scores at
    zero until each had ``min_n`` rows, so a loud fleet went unranked for its first hours."""
    w = (n.cast(pl.Float64) / max(min_n, 1)).clip(upper_bound=1.0).fill_null(0.0)
    med = value.filter(n >= min_n).median().fill_null(0.0) if prior is None else prior
    return w * value.fill_null(med).fill_nan(med) + (1.0 - w) * med


# -- helpers for count-and-share signals (elicitation, capability) ---------------------------
def account_frame(acct: pl.DataFrame, n_accounts: int, values: Sequence[str]) -> pl.DataFrame:
    """One row per account index ``0..N-1`` (row i = account i), zero counts where unseen."""
    top = int(acct["account"].max()) + 1 if acct.height else 0  # type: ignore[arg-type]
    base = pl.DataFrame(
        {"account": pl.arange(0, max(n_accounts, top), dtype=pl.UInt32, eager=True)}
    )
    return base.join(acct.select("account", *values), on="account", how="left").fill_null(0)


def shrunk_shares(
    counts: pl.DataFrame, n: str, hits: Mapping[str, str], min_n: int
) -> tuple[pl.DataFrame, dict[str, float]]:
    """Per-account shares ``hits / n``, pulled toward the median below ``min_n``.

    The median is taken over accounts with at least ``min_n`` rows (over all accounts
    with any row when none has that many; 0 when there are none). Returns the frame
    with one column per key of ``hits`` and the medians used.
    """
    reliable = counts.filter(pl.col(n) >= min_n)
    if reliable.height == 0:
        reliable = counts.filter(pl.col(n) > 0)
    medians: dict[str, float] = {}
    exprs = []
    for out, col in hits.items():
        raw = pl.col(col).cast(pl.Float64) / pl.col(n).cast(pl.Float64)
        med = reliable.select(raw.median()).item() if reliable.height else None
        medians[out] = float(med) if med is not None else 0.0
        exprs.append(shrunk(raw, pl.col(n), min_n, prior=pl.lit(medians[out])).alias(out))
    return counts.with_columns(exprs), medians


def pct(x: float) -> str:
    """A share as a percentage: whole numbers, one decimal for small non-zero shares."""
    p = 100.0 * x
    return f"{p:.1f}%" if 0 < p < 1 or 99 < p < 100 else f"{p:.0f}%"
