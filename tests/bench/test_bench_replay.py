"""The replay: chunking in simulated time, first-flag times, columns handed to the detector."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pyarrow as pa
import pytest
from bench_fixtures import (
    T0,
    AccountOnlyDetector,
    AllColumnsDetector,
    FakeReader,
    ScriptedDetector,
    accounts_table,
    at,
    exchanges_table,
)

from distillguard import schema
from distillguard.bench.replay import FIRST_FLAGS, FLAG_CHANGES, replay
from distillguard.errors import ConfigError

HOUR = timedelta(hours=1)


def test_hourly_chunks_call_verdicts_at_each_chunk_end() -> None:
    det = ScriptedDetector()
    res = replay(det, FakeReader(), every=HOUR, progress=False)
    # Hours holding exchanges: 0,1,2,3,4,5,10 on day one, 25,26 on day two; empty hours are skipped.
    assert det.nows == [at(h) for h in (1, 2, 3, 4, 5, 6, 11, 26, 27)]
    assert res.chunks == 9
    assert res.exchanges == 20 == sum(b.num_rows for b in det.batches)
    assert (res.start, res.end) == (T0, at(27))
    assert res.detector == "scripted"


def test_each_observed_piece_lies_in_one_chunk_in_time_order() -> None:
    det = ScriptedDetector()
    replay(det, FakeReader(), every=HOUR, progress=False)
    seen = [t for b in det.batches for t in b["ts"].to_pylist()]
    assert seen == sorted(seen)
    for b in det.batches:
        hours = {int((t - T0) / HOUR) for t in b["ts"].to_pylist()}
        assert len(hours) == 1


def test_first_flag_time_is_the_end_of_the_first_flagging_chunk() -> None:
    res = replay(ScriptedDetector(), FakeReader(), every=HOUR, progress=False)
    assert res.first_flags.schema == FIRST_FLAGS
    assert res.first_flag_times() == {
        "n1": at(1),  # window [0.5, 2.5): first verdicts at 01:00
        "c1a": at(1),
        "c2a": at(2),  # flagged from 01:45
        "c2b": at(2),
        "c1b": at(3),  # flagged from 02:30
        "n2": at(6),  # flagged from 05:30
    }
    assert set(res.first_flags["first_risk"].to_pylist()) == {0.9}
    # Final verdicts: n1's window closed at 02:30, so it is not flagged at the end.
    assert res.final.flagged_ids() == {"c1a", "c1b", "c2a", "c2b", "n2"}


def test_flag_changes_hold_every_set_and_clear_at_the_chunk_end_that_saw_it() -> None:
    res = replay(ScriptedDetector(), FakeReader(), every=HOUR, progress=False)
    assert res.flag_changes.schema == FLAG_CHANGES
    rows = sorted(zip(*(res.flag_changes[c].to_pylist() for c in ("account_id", "at", "flagged")), strict=True))
    assert rows == [
        ("c1a", at(1), True),
        ("c1b", at(3), True),
        ("c2a", at(2), True),
        ("c2b", at(2), True),
        ("n1", at(1), True),
        ("n1", at(3), False),  # window [0.5, 2.5): still flagged at 02:00, cleared by 03:00
        ("n2", at(6), True),
    ]


def test_coarser_chunks_delay_first_flags() -> None:
    det = ScriptedDetector()
    res = replay(det, FakeReader(), every=2 * HOUR, progress=False)
    assert det.nows == [at(h) for h in (2, 4, 6, 12, 26, 28)]
    flags = res.first_flag_times()
    assert (flags["c1a"], flags["c1b"], flags["n1"], flags["n2"]) == (at(2), at(4), at(2), at(6))

    det = ScriptedDetector()
    res = replay(det, FakeReader(), every=24 * HOUR, progress=False)
    assert det.nows == [at(24), at(48)]
    assert "n1" not in res.first_flag_times()  # its flag window fell between two re-scores


def test_detector_gets_only_the_columns_it_asks_for() -> None:
    det = ScriptedDetector()
    reader = FakeReader()
    replay(det, reader, progress=False)
    assert reader.columns_asked == [["account_id", "ts", "output_tokens"]]
    assert {tuple(b.column_names) for b in det.batches} == {("account_id", "ts", "output_tokens")}

    det = AccountOnlyDetector()
    reader = FakeReader()
    replay(det, reader, progress=False)
    assert reader.columns_asked == [["account_id", "ts"]]  # ts is read to cut chunks...
    assert {tuple(b.column_names) for b in det.batches} == {("account_id",)}  # ...not passed on

    class Generous(FakeReader):  # like LogReader, which always adds the required columns
        def exchange_batches(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
            yield from super().exchange_batches(None)

    det = ScriptedDetector()
    replay(det, Generous(), progress=False)
    assert {tuple(b.column_names) for b in det.batches} == {("account_id", "ts", "output_tokens")}

    det = AllColumnsDetector()
    reader = FakeReader()
    replay(det, reader, progress=False)
    assert reader.columns_asked == [None]
    assert {tuple(b.column_names) for b in det.batches} == {tuple(schema.EXCHANGES.names)}


def test_replay_never_reads_labels() -> None:
    reader = FakeReader()
    replay(ScriptedDetector(), reader, progress=False)
    assert "reader.labels" not in reader.events


def test_unsorted_batches_are_put_in_time_order() -> None:
    class Shuffled(FakeReader):
        def exchange_batches(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
            t = exchanges_table()
            yield t.take(pa.array(list(reversed(range(t.num_rows))))).select(columns or t.column_names)

    det = ScriptedDetector()
    res = replay(det, Shuffled(), progress=False)
    seen = [t for b in det.batches for t in b["ts"].to_pylist()]
    assert seen == sorted(seen)
    assert res.chunks == 9


def test_late_rows_count_in_the_chunk_being_filled() -> None:
    class Late(FakeReader):
        def exchange_batches(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
            t = exchanges_table().sort_by("ts")
            yield t.slice(10)  # from 02:05 on
            yield t.slice(0, 10)  # the first ten rows arrive late

    det = ScriptedDetector()
    res = replay(det, Late(), progress=False)
    assert res.exchanges == 20
    assert det.nows[-1] == at(27)
    assert len(det.nows) == len(set(det.nows))  # the clock never went back


def test_rows_without_a_timestamp_are_skipped() -> None:
    class NullDay(FakeReader):
        def exchange_batches(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
            t = exchanges_table().slice(0, 2)
            yield t.set_column(1, "ts", pa.nulls(2, t.schema.field("ts").type))
            yield from super().exchange_batches(columns)

    res = replay(ScriptedDetector(), NullDay(), progress=False)
    assert res.exchanges == 20


def test_empty_log_scores_once_with_no_clock() -> None:
    empty = exchanges_table().slice(0, 0)
    det = ScriptedDetector()
    res = replay(det, FakeReader(exchanges=empty), progress=False)
    assert det.nows == [None]
    assert (res.chunks, res.exchanges, res.start, res.end) == (0, 0, None, None)
    assert res.final.accounts.num_rows == accounts_table().num_rows


def test_timing_and_memory_are_recorded() -> None:
    res = replay(ScriptedDetector(), FakeReader(), progress=False)
    assert res.seconds == pytest.approx(res.seconds_observe + res.seconds_verdicts)
    assert 0 < res.seconds <= res.wall_seconds
    assert res.peak_rss_bytes > 1_000_000


def test_progress_bar_does_not_break_the_replay() -> None:
    res = replay(ScriptedDetector(), FakeReader(), progress=True)
    assert res.exchanges == 20


def test_interval_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="positive"):
        replay(ScriptedDetector(), FakeReader(), every=timedelta(0), progress=False)


def test_flags_between_chunks_full_verdicts_only_at_the_end() -> None:
    class Cheap(ScriptedDetector):
        def flags(self, now: datetime | None = None) -> pa.Table:
            self.events.append("detector.flags")
            return super().verdicts(now).accounts

    det = Cheap()
    res = replay(det, FakeReader(), every=HOUR, progress=False)
    calls = [e for e in det.events if e in ("detector.flags", "detector.verdicts")]
    assert calls.count("detector.flags") == res.chunks - 1 == 8
    assert calls[-1] == "detector.verdicts" and calls.count("detector.verdicts") == 9  # super() inside flags
    # The same first flags as a detector that only has verdicts.
    assert res.first_flags.equals(replay(ScriptedDetector(), FakeReader(), every=HOUR, progress=False).first_flags)
