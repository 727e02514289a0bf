"""VolumeBaseline: the per-account peak-daily-volume rule the bench compares the hunt against."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from distillguard.bench.replay import replay
from distillguard.detectors import VolumeBaseline, get_detector
from distillguard.errors import ConfigError
from distillguard.verdicts import VERDICTS

DAY1 = datetime(2026, 4, 22, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


def _rows(counts: dict[str, int], day: datetime, hour: int = 9) -> pa.Table:
    ids = [a for a, n in counts.items() for _ in range(n)]
    ts = [day + timedelta(hours=hour, seconds=i) for i in range(len(ids))]
    return pa.table({"account_id": ids, "ts": pa.array(ts, pa.timestamp("us", tz="UTC"))})


def _population() -> dict[str, int]:
    # Nine ordinary accounts (1..9 exchanges a day) and one heavy one.
    return {**{f"a{i}": i for i in range(1, 10)}, "heavy": 100}


def _by_id(det: VolumeBaseline) -> dict[str, dict[str, object]]:
    return {r["account_id"]: r for r in det.verdicts().accounts.to_pylist()}


def test_flags_peaks_above_the_population_quantile_with_one_sentence() -> None:
    det = VolumeBaseline(quantile=0.9)
    det.observe_accounts(pa.table({"account_id": ["quiet"]}))
    det.observe(_rows(_population(), DAY2))
    v = det.verdicts()
    assert v.accounts.schema == VERDICTS
    assert v.flagged_ids() == {"heavy"}
    rows = _by_id(det)
    # np.quantile([1..9, 100], 0.9): 9 + 0.1 * (100 - 9) = 18.1
    assert rows["heavy"]["evidence"] == [
        "peak daily volume 100 exchanges on 2026-04-23, above the population's 90th percentile of 18.1"
    ]
    assert rows["heavy"]["decision"] == "throttle"
    assert rows["a5"]["evidence"] is None and rows["a5"]["decision"] == "allow"
    assert all(r["campaign"] is None for r in rows.values())


def test_risk_is_the_ecdf_of_peak_volume_and_quiet_accounts_score_zero() -> None:
    det = VolumeBaseline()
    det.observe_accounts(pa.table({"account_id": ["quiet", "a1"]}))
    det.observe(_rows(_population(), DAY1))
    rows = _by_id(det)
    assert rows["a5"]["risk"] == pytest.approx(0.5)
    assert rows["heavy"]["risk"] == 1.0
    assert rows["quiet"]["risk"] == 0.0 and rows["quiet"]["flagged"] is False
    assert len(rows) == 11  # registered and seen accounts, each once


def test_peak_is_the_busiest_single_day() -> None:
    det = VolumeBaseline(threshold=4)
    det.observe(_rows({"x": 3, "y": 4}, DAY1))
    det.observe(_rows({"x": 3, "y": 1}, DAY2))
    # x: 6 in total but at most 3 a day; y: 4 on day one, not above 4.
    assert det.verdicts().flagged_ids() == set()
    det.observe(_rows({"x": 2}, DAY2, hour=20))
    rows = _by_id(det)
    assert rows["x"]["flagged"] is True
    assert rows["x"]["evidence"] == ["peak daily volume 5 exchanges on 2026-04-23, above the fixed threshold of 4"]


def test_batch_split_does_not_change_verdicts() -> None:
    rng = np.random.default_rng(0)
    ids = rng.choice([f"a{i}" for i in range(50)], size=3000, p=None)
    ts = np.sort(rng.integers(0, 3 * 86_400_000_000, size=3000)) + int(DAY1.timestamp() * 1e6)
    table = pa.table({"account_id": ids, "ts": pa.array(ts, pa.timestamp("us", tz="UTC"))})
    whole, split = VolumeBaseline(quantile=0.9), VolumeBaseline(quantile=0.9)
    whole.observe(table)
    for start in range(0, 3000, 250):
        split.observe(table.slice(start, 250))
    a, b = whole.verdicts().accounts, split.verdicts().accounts
    assert a.sort_by("account_id").equals(b.sort_by("account_id"))


def test_rows_more_than_a_day_late_count_toward_the_day_before_the_newest() -> None:
    det = VolumeBaseline(threshold=2)
    det.observe(_rows({"x": 2}, DAY2 + timedelta(days=1)))
    det.observe(_rows({"x": 1}, DAY1))  # two days late: counted on DAY2
    assert det.verdicts().flagged_ids() == set()
    det.observe(_rows({"x": 2}, DAY2))  # now 3 on DAY2
    assert det.verdicts().flagged_ids() == {"x"}


def test_empty_detector_gives_empty_verdicts() -> None:
    v = VolumeBaseline().verdicts()
    assert v.accounts.num_rows == 0 and v.flagged_ids() == set()


def test_parameters_are_checked() -> None:
    with pytest.raises(ConfigError, match="quantile"):
        VolumeBaseline(quantile=1.0)
    with pytest.raises(ConfigError, match="threshold"):
        VolumeBaseline(threshold=-1)
    with pytest.raises(ConfigError, match="decision"):
        VolumeBaseline(decision="nuke")


def test_registered_and_asks_only_for_two_columns() -> None:
    det = get_detector("baseline", quantile=0.99)
    assert isinstance(det, VolumeBaseline)
    assert det.columns == ("account_id", "ts")
    assert "quantile=0.99" in repr(det)


def test_through_the_replay() -> None:
    class Reader:
        def accounts(self) -> pa.Table:
            return pa.table({"account_id": ["quiet"]})

        def exchange_batches(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
            yield _rows({"a1": 1, "a2": 1, "a3": 1}, DAY1, hour=1)
            yield _rows({"a1": 1, "a2": 1, "a3": 1, "heavy": 50}, DAY2, hour=3)

    res = replay(VolumeBaseline(quantile=0.5), Reader(), progress=False)
    # Hour one of day one: every active account has peak 1 -> nobody is above the median.
    # Day two, 04:00: peaks a*=1, heavy=50; median 1 -> heavy flagged at 04:00.
    assert res.first_flag_times() == {"heavy": DAY2 + timedelta(hours=4)}
    assert res.final.accounts.num_rows == 5
