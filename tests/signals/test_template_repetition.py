from __future__ import annotations

import datetime as dt
import random

import polars as pl

from distillguard.signals.template_repetition import TemplateSignal, mask
from tests.signals.helpers import by_id, finding

T0 = dt.datetime(2026, 4, 22, tzinfo=dt.UTC)


def _row(aid: str, k: int, prompt: str) -> dict[str, object]:
    return {"request_id": f"{aid}{k}", "ts": T0 + dt.timedelta(minutes=k), "account_id": aid, "prompt": prompt,
            "input_tokens": 1, "output_tokens": 1}  # fmt: skip


def test_mask_normalises_case_digits_punctuation() -> None:
    out = pl.select(mask(pl.lit("Task #12: Sort   THESE 3 numbers!"))).item()
    assert out == "task 0 sort these 0 numbers"


def test_mask_equals_the_plain_regex_form_on_random_text() -> None:
    # mask() avoids matching single spaces for speed; it must still equal ``[\W_]+ -> " "``.
    rng = random.Random(3)
    alphabet = "ab Z9_ -,.\t\n\u00e9\u4e2d\u2014"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30))) for _ in range(2000)]
    ref = pl.col("t").str.to_lowercase().str.replace_all(r"[0-9]+", "0").str.replace_all(r"[\W_]+", " ").str.strip_chars()
    frame = pl.DataFrame({"t": texts})
    assert frame.select(mask(pl.col("t"))).equals(frame.select(ref))


def test_fill_ins_keep_the_template_and_accounts_share_it() -> None:
    rows = []
    for a in range(3):
        for k in range(30):  # wrapper with a changing task at the end
            rows.append(_row(f"s{a}", k, f"You are an expert. Solve the following task carefully and completely: task {k} about topic {a}-{k}"))
    for k in range(30):
        words = ["why", "does", "my", "cat", "sleep", "so", "much", "during", "the", "day", "and", "night"]
        rows.append(_row("human", k, " ".join(words[k % 5 :] + words[: k % 5]) + f" {'please' * (k % 3)}"))
    rng = random.Random(0)
    vocab = ["rice", "peru", "poem", "cat", "taxes", "sky", "book", "lisbon", "resume", "garden", "bike", "loan"]
    for a in range(40):  # a population of varied askers
        for k in range(20):
            rows.append(_row(f"p{a}", k, " ".join(rng.choices(vocab, k=10))))
    f, idx = finding(TemplateSignal(), rows)
    r = by_id(f, idx)
    assert r["s0"]["concentration"] == 1.0
    assert r["human"]["concentration"] < 0.5
    assert r["s0"]["top_head_text"] == "you are an expert solve the"
    arts = f.artifacts
    assert arts is not None
    shared = arts.filter(pl.col("kind") == "tpl_head").group_by("value").len().filter(pl.col("len") > 1)
    assert shared["len"].to_list() == [3]  # one template shared, by three carriers
    assert f.explain is not None
    assert f.explain(r["s0"])[0].startswith("30 of 30 prompts (100%) follow one template")


def test_a_dozen_prompts_on_one_template_already_rank_above_varied_askers() -> None:
    # A campaign's accounts start with a few requests each: concentration speaks from 20
    # prompts, but the tail score sees a thin account pulled toward the population, not zeroed.
    rows = [_row("new", k, f"You are an expert. Solve the following task carefully and completely: task {k}") for k in range(10)]
    rng = random.Random(1)
    vocab = ["rice", "peru", "poem", "cat", "taxes", "sky", "book", "lisbon", "resume", "garden", "bike", "loan"]
    for a in range(30):
        for k in range(20):
            rows.append(_row(f"p{a}", k, " ".join(rng.choices(vocab, k=10))))
    rows += [_row("once", 0, "hello there, how are you today my friend")]
    f, idx = finding(TemplateSignal(), rows)
    r = by_id(f, idx)
    assert r["new"]["concentration"] == 0.0  # the explained feature still waits for 20 prompts
    assert r["new"]["ts_concentration"] > max(r[f"p{a}"]["ts_concentration"] for a in range(30))
    assert r["once"]["ts_concentration"] < r["new"]["ts_concentration"]


def test_short_prompts_are_not_templates() -> None:
    rows = [_row(f"u{a}", k, "hello") for a in range(5) for k in range(10)]
    f, _ = finding(TemplateSignal(), rows)
    assert f.artifacts is not None
    assert f.artifacts.filter(pl.col("kind") != "tpl_exact").height == 0
