"""Shared signal helpers: the distinct-prompt index and ``on_unique``."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from distillguard.signals.base import on_unique, with_distinct_index

PROMPTS = ["a", "b", "a", None, "c", "b", None, "a"]


def _calls(u: pl.DataFrame, seen: list[int]) -> pl.DataFrame:
    seen.append(u.height)
    return u.select(upper=pl.col("prompt").str.to_uppercase())


def test_fast_path_runs_once_per_distinct_value_and_matches_the_slow_one() -> None:
    df = pl.DataFrame({"prompt": PROMPTS})
    seen: list[int] = []
    slow = on_unique(df, "prompt", lambda u: _calls(u, seen))
    fast = on_unique(with_distinct_index(df, "prompt"), "prompt", lambda u: _calls(u, seen))
    assert seen == [4, 4]  # a, b, null, c
    assert_frame_equal(slow, fast)
    assert fast["upper"].to_list() == ["A", "B", "A", None, "C", "B", None, "A"]


def test_a_stale_index_after_slicing_or_filtering_falls_back_to_the_slow_path() -> None:
    df = with_distinct_index(pl.DataFrame({"prompt": PROMPTS}), "prompt")
    for part in (df[3:], df[:5], df.filter(pl.col("prompt") != "a"), df.reverse(), df.head(0)):
        got = on_unique(part, "prompt", lambda u: u.select(upper=pl.col("prompt").str.to_uppercase()))
        want = part.select(upper=pl.col("prompt").str.to_uppercase())
        assert_frame_equal(got, want)
