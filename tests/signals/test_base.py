"""Shared signal helpers: the distinct-prompt index and ``on_unique``."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from distillguard.signals.base import TableSpec, on_unique, shrunk, with_distinct_index

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


def test_heavy_hitter_tables_stay_small_keep_heavy_values_and_merge() -> None:
    import random


    spec = TableSpec(("account", "value"), {"n": "sum"}, {"account": pl.UInt32, "value": pl.UInt64}, top_k=4)
    rng = random.Random(1)
    # Account 0: value 7 is a third of its rows, the rest spread thin; account 1: 3 values.
    rows = [(0, 7) for _ in range(300)] + [(0, rng.randrange(100, 10_000)) for _ in range(600)]
    rows += [(1, v) for v in (1, 2, 3) for _ in range(5)]
    rng.shuffle(rows)
    frame = pl.DataFrame(rows, schema={"account": pl.UInt32, "value": pl.UInt64}, orient="row")
    batches = [frame[i : i + 100].group_by("account", "value").agg(n=pl.len()) for i in range(0, frame.height, 100)]
    merged = spec.compact(batches)
    assert merged.group_by("account").len().sort("account")["len"].to_list()[0] <= 4
    top = merged.filter(pl.col("account") == 0).sort("n", descending=True).row(0, named=True)
    assert top["value"] == 7 and 300 - 900 / 5 <= top["n"] <= 300  # Misra-Gries error bound
    assert sorted(merged.filter(pl.col("account") == 1).select("value", "n").rows()) == [(1, 5), (2, 5), (3, 5)]
    assert spec.compact([merged]).equals(merged)  # idempotent


def _by_hash(spec: TableSpec, frames: list[pl.DataFrame]) -> pl.DataFrame:
    aggs = spec.merge_aggs()
    return pl.concat(frames).group_by(list(spec.keys)).agg(aggs).sort(list(spec.keys))


def test_sorted_folds_match_a_hash_group_by_even_when_values_share_a_merge_key() -> None:
    import random

    from distillguard.signals.base import grouped

    rng = random.Random(5)
    u64 = {"account": pl.UInt32, "value": pl.UInt64}
    spec = TableSpec(("account", "value"), {"n": "sum", "first": "min"}, {**u64, "first": pl.Int64})
    # Values of one account whose two halves xor to the same 32 bits get one merge key:
    # the fold must still keep them apart and add up each one.
    high = [rng.getrandbits(32) << 32 for _ in range(3)]
    values = [h + (lo ^ (h >> 32)) for h in high for lo in (1, 2, 3)] + [(5 << 32) + 6, (6 << 32) + 5]
    values += [rng.getrandbits(64) for _ in range(20)]
    frames = []
    for _ in range(6):
        rows = pl.DataFrame(
            {"account": [rng.randrange(4) for _ in range(300)], "value": [rng.choice(values) for _ in range(300)],
             "t": [rng.randrange(1000) for _ in range(300)]},
            schema={**u64, "t": pl.Int64},
        )
        frames.append(grouped(rows, spec, {"n": pl.len(), "first": pl.col("t").min()}))
    folded = spec.compact([spec.compact(frames[:3]), *frames[3:]])
    assert_frame_equal(folded.sort("account", "value"), _by_hash(spec, frames))
    assert folded.select(pl.struct("account", "value").is_duplicated().any()).item() is False


def test_sorted_folds_take_small_signed_keys_and_unsorted_frames() -> None:

    spec = TableSpec(("account", "day"), {"n": "sum"}, {"account": pl.UInt32, "day": pl.Int32})
    a = pl.DataFrame({"account": [2, 0, 1, 0], "day": [-3, 5, -3, -1], "n": [1, 2, 3, 4]}, schema=spec.empty().schema)
    b = pl.DataFrame({"account": [0, 2, 0], "day": [5, -3, 7], "n": [10, 20, 30]}, schema=spec.empty().schema)
    assert_frame_equal(spec.compact([a, b]).sort("account", "day"), _by_hash(spec, [a, b]))


def test_shrunk_pulls_thin_accounts_toward_the_median_of_the_reliable_ones() -> None:
    df = pl.DataFrame({"v": [0.1, 0.2, 0.3, 1.0, 1.0, None], "n": [40, 20, 30, 10, 1, 0]})
    out = df.select(s=shrunk(pl.col("v"), pl.col("n"), 20))["s"].to_list()
    assert out[:3] == [0.1, 0.2, 0.3]  # enough rows: their own value
    assert out[3] == 0.5 * 1.0 + 0.5 * 0.2  # half the rows: half way to the median 0.2
    assert abs(out[4] - (0.05 + 0.95 * 0.2)) < 1e-12 and out[5] == 0.2  # one row: near the median; none: the median
    # Nobody reliable yet (the first hours of a log): the prior is zero, so thin evidence still ranks.
    early = pl.DataFrame({"v": [1.0, 0.1], "n": [10, 5]}).select(s=shrunk(pl.col("v"), pl.col("n"), 20))["s"].to_list()
    assert early == [0.5, 0.025]
