"""One suite for every engine (ibis's backend tests are the model): each registered engine
gives the same verdicts as the reference fold, and the batch hunt agrees with the replay."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from distillguard.bench import run_bench
from distillguard.errors import ConfigError
from distillguard.hunt import run_hunt
from distillguard.hunt.detector import HuntDetector
from distillguard.hunt.engines import ENGINES, get_engine
from distillguard.io import LogReader
from distillguard.sim import simulate
from distillguard.verdicts import Verdicts


@pytest.fixture(scope="module")
def smoke_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("engines-smoke")
    simulate("smoke", seed=3, out=out, progress=False, responses=False)
    return out


@pytest.fixture(params=sorted(ENGINES))
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _table(v: Verdicts) -> pl.DataFrame:
    t = pl.from_arrow(v.accounts)
    assert isinstance(t, pl.DataFrame)
    return t.sort("account_id")


def test_engine_gives_the_reference_verdicts(engine: str, smoke_log: Path) -> None:
    got = _table(run_hunt([smoke_log], engine=engine, progress=False))
    ref = HuntDetector()
    reader = LogReader(smoke_log)
    ref.observe_accounts(reader.accounts())
    for batch in reader.exchange_batches(columns=list(ref.columns or ())):
        ref.observe(batch)
    want = _table(ref.verdicts())
    assert got["flagged"].sum() > 0
    assert got.select("account_id", "flagged", "campaign", "decision").equals(
        want.select("account_id", "flagged", "campaign", "decision")
    )
    assert (got["risk"] - want["risk"]).abs().max() <= 1e-9  # type: ignore[operator]


@pytest.mark.parametrize("every", [1.0, 6.0])
def test_batch_hunt_agrees_with_the_replay(engine: str, smoke_log: Path, every: float) -> None:
    batch = run_hunt([smoke_log], engine=engine, progress=False)
    replay = run_bench(smoke_log, replay_every_hours=every, progress=False).replay_result
    assert replay is not None
    a, b = batch.flagged_ids(), replay.final.flagged_ids()
    assert a
    assert len(a ^ b) <= len(a) // 100, f"batch {len(a)} vs replay {len(b)} flagged"


def test_unknown_engine_and_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="unknown engine 'nope'; known: polars, spark"):
        get_engine("nope")
    monkeypatch.setitem(ENGINES, "cluster", ("distillguard_no_such_module:Engine", "spark"))
    with pytest.raises(ConfigError, match=r"pip install 'distillguard\[spark\]'"):
        get_engine("cluster")
