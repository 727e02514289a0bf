"""Prompt content of the careful operator and of the eval-runner trap."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pyarrow as pa

from distillguard.sim.archetypes import ANSWER_FORMATS, FOLLOW_UPS, reword

from .conftest import Tactics, needs_corpora


def _shingles(text: str, k: int = 6) -> set[str]:
    w = re.findall(r"[a-z0-9]+", text.lower())
    return {" ".join(w[i:i + k]) for i in range(len(w) - k + 1)}


def test_reword_rarely_repeats_a_task_but_keeps_it_recognisable() -> None:
    task = "Write a short story about a robot who learns to paint. Use simple language for children."
    n = 400
    out = reword(np.random.default_rng(0), pa.array([task] * n), pa.nulls(n, pa.string()), foreign_p=0.1).to_pylist()
    assert len(set(out)) > 0.8 * n
    core = _shingles("a robot who learns to paint", 4)
    assert np.mean([bool(core & _shingles(t, 4)) for t in out]) > 0.95
    assert any(re.search(r"[¿éüçñ]|[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af\u0400-\u04ff]", t) for t in out)


@needs_corpora
def test_paraphrase_fleet_rarely_repeats_a_prompt_but_shares_tasks_across_accounts(tactics: Tactics) -> None:
    first = tactics.x.filter(
        (pl.col("archetype") == "careful") & (pl.col("n_messages") == 1) & (pl.col("ts") >= pl.col("harvest_start"))
    ).select("account_id", "prompt")
    exact = first.group_by("prompt").agg(pl.col("account_id").n_unique().alias("k"))
    assert (exact["k"] > 1).sum() / first.height < 0.02
    owners: dict[str, set[str]] = {}
    for acct, prompt in first.iter_rows():
        for s in _shingles(prompt or ""):
            owners.setdefault(s, set()).add(acct)
    shared = [any(len(owners[s]) > 1 for s in _shingles(p or "")) for _, p in first.iter_rows()]
    assert np.mean(shared) > 0.3  # the same task comes back, reworded, from another account


def test_follow_ups_come_from_the_operators_script_after_warm_up(tactics: Tactics) -> None:
    script = [f.lower().rstrip(".?") for f in FOLLOW_UPS]
    fleet = tactics.x.filter(pl.col("campaign_id") == "c-main").with_columns(
        pl.col("prompt").str.to_lowercase().alias("p"))
    hit = pl.any_horizontal([pl.col("p").str.contains(s, literal=True) for s in script])
    later = fleet.filter(pl.col("n_messages") >= 3)
    harvest = later.filter(pl.col("ts") >= pl.col("harvest_start"))
    warm = later.filter(pl.col("ts") < pl.col("harvest_start"))
    assert harvest.select(hit.mean()).item() > 0.8
    assert warm.height > 0 and warm.select(hit.mean()).item() < 0.05
    # a small script: a handful of follow-ups, not a corpus of them
    used = {s for s in script if harvest["p"].str.contains(s, literal=True).any()}
    assert 4 <= len(used) <= 8


def test_eval_runners_send_one_fixed_answer_format_system_prompt(tactics: Tactics) -> None:
    ev = tactics.x.filter(pl.col("archetype") == "eval_runner")
    per = ev.group_by("account_id").agg(pl.col("system").n_unique().alias("k"), pl.col("system").first(),
                                        pl.col("ip_prefix").n_unique().alias("nets"))
    assert per.height == 3
    assert (per["k"] == 1).all() and set(per["system"].to_list()) <= set(ANSWER_FORMATS)
    assert per["nets"].max() <= 2  # type: ignore[operator]
