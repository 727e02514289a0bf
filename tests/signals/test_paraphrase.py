from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pytest

from distillguard.checks import Check, yield_checks
from distillguard.signals.paraphrase import SAMPLE_K, ParaphraseSignal, _bottom_k
from tests.signals.helpers import by_id, finding

T0 = dt.datetime(2026, 4, 22, tzinfo=dt.UTC)
TASKS = [
    "Write a Python function that returns the nth Fibonacci number using memoization",
    "Summarize the main causes of the French Revolution in three short paragraphs",
    "Explain the difference between supervised and unsupervised machine learning with examples",
    "Translate the following English sentence into Spanish and explain the grammar used",
    "Create a SQL query that finds the top five customers by total order value last year",
    "Describe how photosynthesis converts sunlight water and carbon dioxide into glucose",
    "Generate a workout plan for a beginner runner preparing for a ten kilometre race",
    "Compare quicksort and mergesort in terms of time complexity memory usage and stability",
    "Write a haiku about autumn leaves falling over a quiet mountain lake at dusk",
    "List the steps required to set up a continuous integration pipeline with GitHub Actions",
]
SWAPS = {"write": "compose", "explain": "describe", "create": "build", "list": "enumerate", "short": "brief",
         "generate": "produce", "summarize": "sum up", "compare": "contrast"}  # fmt: skip
OPENINGS = ["Hey, quick one.", "I need a hand with something.", "Task for you:", "Could you do this for me?", ""]
CLOSINGS = ["Thanks a lot!", "Be thorough.", "Keep it tidy.", "Cheers.", ""]
# Made-up words, each used once by the population: its questions share no word.
VOCAB = [f"{a}{b}{c}{d}x" for a in "bcdfghjklm" for b in "aeiou" for c in "npqrstvwxz" for d in "aeiou"]


@pytest.mark.parametrize("check", list(yield_checks(ParaphraseSignal())), ids=lambda c: c.__name__)
def test_conforms(check: Check) -> None:
    # Not in SIGNALS (opt-in), so tests/test_signals.py does not generate these for it.
    check(ParaphraseSignal())


def _row(aid: str, k: int, prompt: str, n_messages: int = 1) -> dict[str, object]:
    return {"request_id": f"{aid}-{k}", "ts": T0 + dt.timedelta(minutes=k), "account_id": aid, "prompt": prompt,
            "n_messages": n_messages, "input_tokens": 1, "output_tokens": 1}  # fmt: skip


def reword(task: str, rng: random.Random) -> str:
    """Synonym swaps, a clause moved, an opening and a closing."""
    words = [SWAPS.get(w.lower(), w) if rng.random() < 0.7 else w for w in task.split()]
    k = rng.randrange(2, 5)
    if rng.random() < 0.5:
        words = words[k:] + words[:k]
    return f"{rng.choice(OPENINGS)} {' '.join(words)} {rng.choice(CLOSINGS)}".strip()


def _fleet_and_population(rng: random.Random) -> list[dict[str, object]]:
    rows = []
    for a in range(6):  # a fleet: every account sends every task once, each reworded its own way
        for k, task in enumerate(TASKS * 2):
            rows.append(_row(f"fleet{a}", k, reword(task, rng)))
    words = iter(rng.sample(VOCAB, len(VOCAB)))
    for a in range(20):  # a population asking varied, unrelated questions
        for k in range(25):
            rows.append(_row(f"pop{a}", k, "how do I " + " ".join(next(words) for _ in range(4))))
    return rows


def test_reworded_tasks_across_accounts_share_artifacts() -> None:
    rng = random.Random(1)
    f, idx = finding(ParaphraseSignal(), _fleet_and_population(rng))
    r = by_id(f, idx)
    arts = f.artifacts
    assert arts is not None
    shared = arts.filter(pl.col("kind") == "para_shared").join(idx, on="account")
    fleet_keys = shared.filter(pl.col("account_id").str.starts_with("fleet"))
    # Every fleet account holds shared keys, and keys are held by several fleet accounts.
    assert fleet_keys["account_id"].n_unique() == 6
    assert fleet_keys.group_by("value").len()["len"].max() >= 4  # type: ignore[operator]
    # Unrelated prompts do not collide into shared keys.
    assert shared.filter(pl.col("account_id").str.starts_with("pop")).height == 0
    assert min(r[f"fleet{a}"]["shared"] for a in range(6)) > 0.3  # one band in three: 1 - (1 - J^3)^(holders)
    assert max(r[f"pop{a}"]["shared"] for a in range(20)) == 0.0
    assert min(r[f"fleet{a}"]["rank_shared"] for a in range(6)) > max(r[f"pop{a}"]["rank_shared"] for a in range(20))


def test_rewordings_of_one_wrapper_concentrate_within_an_account() -> None:
    rng = random.Random(2)
    wrapper = "You are an expert assistant solve the following problem thoroughly and give a complete solution"
    rows = [_row("op", k, f"{reword(wrapper, rng)} {rng.choice(VOCAB)}") for k in range(40)]
    words = iter(rng.sample(VOCAB, len(VOCAB)))
    rows += [_row("benign", k, "what is " + " ".join(next(words) for _ in range(6))) for k in range(40)]
    f, idx = finding(ParaphraseSignal(), rows)
    r = by_id(f, idx)
    assert r["op"]["concentration"] > 0.5
    assert r["benign"]["concentration"] < 0.2
    arts = f.artifacts
    assert arts is not None
    held = arts.filter(pl.col("kind") == "para_cluster").join(idx, on="account")["account_id"].unique().to_list()
    assert held == ["op"]


def test_short_generic_prompts_get_no_keys() -> None:
    f, idx = finding(ParaphraseSignal(), [_row(f"u{a}", k, "hi there, thanks!") for a in range(5) for k in range(30)])
    assert f.artifacts is not None and f.artifacts.height == 0
    assert "u0" not in by_id(f, idx)  # no prompt with enough content words to fingerprint


def test_bottom_k_keeps_the_smallest_keys_and_sums_counts() -> None:
    rows = pl.DataFrame(
        {"account": [0] * (SAMPLE_K + 10) + [0, 1], "value": [*list(range(SAMPLE_K + 10, 0, -1)), 1, 7], "n": [1] * (SAMPLE_K + 12)},
        schema={"account": pl.UInt32, "value": pl.UInt64, "n": pl.Int64},
    )
    out = _bottom_k(rows)
    a0 = out.filter(pl.col("account") == 0)
    assert a0["value"].to_list() == list(range(1, SAMPLE_K + 1))
    assert a0.filter(pl.col("value") == 1)["n"].item() == 2
    assert out.filter(pl.col("account") == 1)["value"].to_list() == [7]
