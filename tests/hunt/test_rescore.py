"""The live re-score: incremental ``flags()`` after small batches against a from-scratch one."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from distillguard.hunt.detector import HuntDetector
from distillguard.io import LogReader
from distillguard.signals import SIGNALS
from distillguard.signals.base import Finding, TableSpec
from distillguard.signals.lived_time import LivedTimeSignal

COLS = ["account_id", "flagged", "campaign", "decision"]


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from distillguard.sim import simulate

    out = tmp_path_factory.mktemp("demo")
    simulate("demo", scale=0.1, seed=11, out=out, responses=False, progress=False)
    return out


def scratch_flags(det: HuntDetector, same_day_shapes: bool = False) -> pl.DataFrame:
    """``flags()`` of a new detector over the same state, with signals of its own (lived
    time keeps a calibration on its signal object).

    ``same_day_shapes``: lived time fits every account against the day shapes ``det``'s last
    full re-score learned, as its incremental re-scores do (hunt/rescore.py: the one way the
    two may differ until the next full re-score; on demo at 0.1, seed 11, four accounts
    moved in and out of a campaign batch by batch with fresh shapes)."""
    fresh = HuntDetector(det.config)
    fresh.state = copy.copy(det.state)
    fresh.state.signals = det.config.build_signals()
    fresh.accounts = det.accounts
    kept = next(s for s in det.state.signals if isinstance(s, LivedTimeSignal))
    if same_day_shapes and kept._fitted is not None and not kept._early:
        mine = next(s for s in fresh.state.signals if isinstance(s, LivedTimeSignal))
        fitted = kept._fitted

        def against_kept_shapes(accounts: pl.DataFrame) -> Finding | None:
            assert mine._profiles is not None
            mine._fitted, mine._early = fitted, False
            return mine.refinalize_accounts(accounts, pl.Series(mine._profiles.account), None)

        mine.finalize_accounts = against_kept_shapes  # type: ignore[method-assign]
    out = pl.from_arrow(fresh.flags())
    assert isinstance(out, pl.DataFrame)
    return out


def flags(det: HuntDetector) -> pl.DataFrame:
    out = pl.from_arrow(det.flags(incremental=True))
    assert isinstance(out, pl.DataFrame)
    return out


def test_incremental_equals_scratch_after_batches(demo_log: Path) -> None:
    reader = LogReader(demo_log)
    det = HuntDetector()
    det.observe_accounts(reader.accounts())
    days = list(reader.exchange_batches(columns=det.columns))
    for day in days[:-1]:
        det.observe(day)
    assert flags(det)["flagged"].sum() > 0 and det.rescorer.last_mode == "full"
    last = pl.from_arrow(days[-1])
    assert isinstance(last, pl.DataFrame)
    for batch in last.sort("ts").iter_slices(last.height // 4 + 1):  # four small batches of the last day
        det.observe(batch.to_arrow())
        inc = flags(det)
        assert det.rescorer.last_mode == "incremental"
        assert inc.select(COLS).equals(scratch_flags(det, same_day_shapes=True).select(COLS))
    det.rescorer.refresh_next()
    refreshed = flags(det)
    assert det.rescorer.last_mode == "full"
    assert refreshed.equals(scratch_flags(det))  # risk too: a full re-score is a from-scratch one


def test_full_rescore_every_refresh_every() -> None:
    from tests.hunt.population import population

    ex, acc, _ = population(seed=2)
    ex = ex.sort("ts")
    det = HuntDetector()
    det.rescorer.refresh_every = 3
    det.observe_accounts(acc.to_arrow())
    cut = int(ex.height * 0.8)
    det.observe(ex.head(cut).to_arrow())
    modes = [det.rescorer.last_mode for _ in [flags(det)]]
    for part in ex.slice(cut).iter_slices(ex.height // 20 + 1):
        det.observe(part.to_arrow())
        inc = flags(det)
        modes.append(det.rescorer.last_mode)
        assert inc.select(COLS).equals(scratch_flags(det, same_day_shapes=True).select(COLS))
    assert modes[:4] == ["full", "incremental", "incremental", "full"]


def test_full_rescore_once_now_is_refresh_s_past_the_last_full_one() -> None:
    import datetime as dt

    from tests.hunt.population import population

    ex, acc, _ = population(seed=2)
    ex = ex.sort("ts")
    det = HuntDetector()
    det.rescorer.refresh_every = 1000
    det.observe_accounts(acc.to_arrow())
    cut = int(ex.height * 0.8)
    det.observe(ex.head(cut).to_arrow())
    t = ex["ts"][cut - 1] + dt.timedelta(seconds=1)
    modes = []
    rest = ex.slice(cut)
    for i, part in enumerate(rest.iter_slices(rest.height // 6 + 1)):
        det.observe(part.to_arrow())
        det.flags(t + dt.timedelta(seconds=[0, 100, 200, 310, 400, 620][i]), incremental=True)
        modes.append(det.rescorer.last_mode)
    assert modes == ["full", "incremental", "incremental", "full", "incremental", "full"]


def test_touched_accounts_are_taken_once() -> None:
    from tests.hunt.population import population

    ex, _, _ = population(seed=3)
    det = HuntDetector()
    det.observe(ex.head(50).to_arrow())
    touched = det.state.take_touched()
    assert touched.dtype == pl.UInt32 and touched.is_sorted()
    want = det.state.index.join(ex.head(50).select("account_id").unique(), on="account_id")["account"].sort()
    assert touched.to_list() == want.to_list()
    assert det.state.take_touched().len() == 0


@pytest.mark.parametrize(("signal", "table"), [(s, t) for s, c in SIGNALS.items() for t, spec in c.tables.items() if spec.keys[0] == "account"])
def test_splice_folds_like_a_full_merge(signal: str, table: str) -> None:
    """A small batch folded into a large table (spliced by account) gives the rows merging
    everything gives, heavy-hitter cuts included."""
    spec: TableSpec = SIGNALS[signal].tables[table]
    rng = np.random.default_rng(0)
    empty = spec.empty()

    def table_of(n: int, accounts: int) -> pl.DataFrame:
        cols: dict[str, object] = {}
        for c, t in empty.schema.items():
            if c == "account":
                cols[c] = rng.integers(0, accounts, n)
            elif t == pl.String:
                cols[c] = [f"r{x}" for x in rng.integers(0, 5, n)]
            else:  # over 100 distinct values of a second key per account: heavy hitters get cut
                cols[c] = rng.integers(1, 120, n)
        df = pl.DataFrame(cols).cast(dict(empty.schema))  # type: ignore[arg-type]
        return spec._compact([df, df.head(1)])

    big, small = table_of(150_000, 3_000), table_of(2_000, 10)  # a few accounts, each with many new values
    spliced = spec.compact([big, small])
    whole = spec._compact([big, small])
    keys = list(spec.keys)
    if spec.top_k is not None:  # the case where a cut depends on every row of an account
        assert whole.height < pl.concat([big, small]).unique(keys).height
    assert spliced.height == whole.height
    assert spliced.select(whole.columns).sort(keys).equals(whole.sort(keys))
    key = spec.merge_key()
    if key is not None and big.select(key).to_series().is_sorted():  # a folded state stays sorted
        assert spliced.select(key).to_series().is_sorted()
    # New accounts between and after the state's, and accounts the state has: each lands in place.
    fresh = table_of(500, 10).with_columns(pl.col("account") * 400 + 7)
    spliced = spec.compact([big, fresh])
    whole = spec._compact([big, fresh])
    assert spliced.select(whole.columns).sort(keys).equals(whole.sort(keys))
    if key is not None and big.select(key).to_series().is_sorted():
        assert spliced.select(key).to_series().is_sorted()


@pytest.mark.parametrize(("signal", "table"), [(s, t) for s, c in SIGNALS.items() for t, spec in c.tables.items() if spec.keys == ("value",)])
def test_append_folds_like_a_full_merge(signal: str, table: str) -> None:
    """A few rows folded into a large table keyed by value alone: new values appended, held
    ones merged, the same rows as merging everything."""
    spec: TableSpec = SIGNALS[signal].tables[table]
    big = pl.DataFrame({"value": np.arange(0, 20_000, 2, dtype=np.uint64), "text": [f"t{i % 97}" for i in range(10_000)]})
    for small in (
        pl.DataFrame({"value": np.array([1, 3, 20_001], np.uint64), "text": ["a", "b", "c"]}),  # new values only
        pl.DataFrame({"value": np.array([0, 2, 5], np.uint64), "text": ["a", "zz", "c"]}),  # two held: min text
    ):
        small = small.cast(dict(big.schema))  # type: ignore[arg-type]
        out = spec.compact([big, small])
        whole = spec._compact([big, small])
        assert out.sort("value").equals(whole.select(out.columns).sort("value"))
    assert spec.compact([big, small]).filter(pl.col("value") == 2)["text"].to_list() == ["t1"]


def test_splices_stay_in_few_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spliced tables are not copied into one buffer at every fold, but never hold more than
    ``MAX_CHUNKS`` chunks either; the rows stay those of a full merge."""
    import distillguard.signals.base as base

    monkeypatch.setattr(base, "MAX_CHUNKS", 8)
    spec: TableSpec = SIGNALS["template"].tables["head"]
    rng = np.random.default_rng(3)

    def batch(n: int, accounts: int) -> pl.DataFrame:
        df = pl.DataFrame({"account": rng.integers(0, accounts, n), "value": rng.integers(1, 50, n), "n": rng.integers(1, 5, n)})
        return spec._compact([df.cast(dict(spec.empty().schema))])  # type: ignore[arg-type]

    state = batch(50_000, 2_000)
    whole = state
    chunks = []
    for _ in range(12):
        small = batch(2, 2_000)  # one or two accounts: a few pieces
        state = spec.compact([state, small])
        whole = spec._compact([whole, small])
        chunks.append(state.n_chunks())
        assert state.n_chunks() <= 8
    assert max(chunks) > 1  # some folds did leave pieces
    keys = list(spec.keys)
    assert state.sort(keys).equals(whole.select(state.columns).sort(keys))
