"""ElicitationSignal on hand-made exchanges."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from distillguard.signals.base import State, pct
from distillguard.signals.elicitation import ElicitationSignal

CHAT = ["hi, how are you?", "what is the capital of Peru?", "tell me a joke", "recommend a film"]
ELICIT = "Solve 17*23. Think step by step and show your reasoning."
STRUCT = "Classify the review. Respond in JSON."


def population() -> pl.DataFrame:
    """Accounts 0-4: 25 chat prompts with 1 elicitation; account 5: 27 of 30 elicitation,
    3 of them also structured; account 6: 2 prompts, both elicitation; account 7: no text."""
    accounts: list[int] = []
    prompts: list[str | None] = []
    for acc in range(5):
        accounts += [acc] * 25
        prompts += [CHAT[i % 4] for i in range(24)] + [ELICIT]
    accounts += [5] * 30
    prompts += [ELICIT] * 24 + [ELICIT + " Respond in JSON."] * 3 + CHAT[:3]
    accounts += [6, 6, 7, 7]
    prompts += [ELICIT, ELICIT, None, None]
    return pl.DataFrame(
        {
            "account": pl.Series(accounts, dtype=pl.UInt32),
            "prompt": pl.Series(prompts, dtype=pl.String),
        }
    )


@pytest.fixture
def sig() -> ElicitationSignal:
    return ElicitationSignal()


def assert_state_equal(a: State, b: State) -> None:
    assert set(a) == set(b)
    for key in a:
        keys = ["account", "rule"] if key == "rule" else ["account"]
        assert_frame_equal(a[key].sort(keys), b[key].sort(keys))


def test_enrich_is_row_aligned_and_pure(sig: ElicitationSignal) -> None:
    df = population()
    before = df.clone()
    out = sig.enrich(df)
    assert_frame_equal(df, before)
    assert out.height == df.height
    assert out.columns == ["elicitation_hit", "structure_hit", "elicitation_bits", "elicitation_read"]
    assert out["elicitation_hit"].sum() == 5 + 27 + 2
    assert out["structure_hit"].sum() == 3


def test_categories_fire_on_typical_text_not_plain_chat(sig: ElicitationSignal) -> None:
    df = pl.DataFrame({"prompt": [ELICIT, STRUCT, *CHAT]})
    out = sig.enrich(df)
    assert out["elicitation_hit"].to_list() == [True, False, False, False, False, False]
    assert out["structure_hit"].to_list() == [False, True, False, False, False, False]


def test_state_counts(sig: ElicitationSignal) -> None:
    state = sig.update(sig.empty(), population())
    acct = {r[0]: r[1:] for r in state["acct"].rows()}
    assert acct[0] == (25, 1, 0)
    assert acct[5] == (30, 27, 3)
    assert acct[6] == (2, 2, 0)
    assert acct[7] == (0, 0, 0)
    rules = {(a, r): n for a, r, n in state["rule"].rows()}
    assert rules[(5, "elicitation.step_by_step")] == 27
    assert rules[(5, "structure.output_format")] == 3


def test_merge_matches_one_update(sig: ElicitationSignal) -> None:
    df = population().sample(fraction=1.0, shuffle=True, seed=7)
    a, b = df[:50], df[50:]
    whole = sig.update(sig.empty(), df)
    parts = sig.merge(sig.update(sig.empty(), a), sig.update(sig.empty(), b))
    assert_state_equal(whole, parts)
    # sequential updates, and three-way merges in both groupings
    assert_state_equal(whole, sig.update(sig.update(sig.empty(), a), b))
    c, d, e = (sig.update(sig.empty(), x) for x in (df[:30], df[30:90], df[90:]))
    assert_state_equal(sig.merge(sig.merge(c, d), e), sig.merge(c, sig.merge(d, e)))
    assert_state_equal(sig.merge(c, d), sig.merge(d, c))


def test_empty_state_is_identity_and_empty_batch_noop(sig: ElicitationSignal) -> None:
    state = sig.update(sig.empty(), population())
    assert_state_equal(sig.merge(state, sig.empty()), state)
    assert_state_equal(sig.merge(sig.empty(), state), state)
    assert_state_equal(sig.update(state, population()[:0]), state)


def test_state_round_trips_through_bytes(sig: ElicitationSignal) -> None:
    for state in (sig.empty(), sig.update(sig.empty(), population())):
        assert_state_equal(sig.from_bytes(sig.to_bytes(state)), state)


def test_features_and_evidence_numbers(sig: ElicitationSignal) -> None:
    finding = sig.finalize(sig.update(sig.empty(), population()), n_accounts=9)
    f = finding.features
    assert f.columns == ["account", "elicit_share", "struct_share", "ts_elicit", "ts_struct"]
    assert f.height == 9 and f["account"].dtype == pl.UInt32
    # median over accounts with >= 20 prompts: five at 1/25, one at 27/30
    median = 1 / 25
    assert f.row(5, named=True)["elicit_share"] == pytest.approx(27 / 30)
    assert f.row(0, named=True)["elicit_share"] == pytest.approx(median)
    # account 6: 2 prompts, both elicitation -> weight 2/20 toward its raw share of 1
    assert f.row(6, named=True)["elicit_share"] == pytest.approx(0.1 * 1 + 0.9 * median)
    # accounts 7 and 8 have no prompt text: they sit at the median
    assert f.row(7, named=True)["elicit_share"] == pytest.approx(median)
    assert f.row(8, named=True)["elicit_share"] == pytest.approx(median)
    assert f["ts_elicit"].arg_max() == 5
    assert finding.explain is not None
    lines = finding.explain(f.row(5, named=True))
    assert lines[0] == (
        "27 of 30 prompts (90%) ask for step-by-step reasoning, rubric grading or generated "
        "batches of examples, against 4% for the median account; most often rule "
        "elicitation.step_by_step (asks for step-by-step reasoning, 27 prompts)."
    )
    assert lines[1].startswith("3 of 30 prompts (10%) demand a rigid template")
    assert "structure.output_format" in lines[1] and "0% for the median account" in lines[1]
    assert finding.explain(f.row(0, named=True)) == [
        "1 of 25 prompts (4%) ask for step-by-step reasoning, rubric grading or generated "
        "batches of examples, against 4% for the median account; most often rule "
        "elicitation.step_by_step (asks for step-by-step reasoning, 1 prompts)."
    ]
    short = finding.explain(f.row(6, named=True))
    assert short[-1].startswith("Only 2 prompts with text: shares were pulled toward")
    assert finding.explain(f.row(7, named=True)) == []
    json.dumps(lines)  # evidence is JSON-serialisable


def test_evidence_counts_match_the_data(sig: ElicitationSignal) -> None:
    df = population()
    finding = sig.finalize(sig.update(sig.empty(), df), n_accounts=8)
    assert finding.explain is not None
    enriched = df.hstack(sig.enrich(df))
    for acc in range(8):
        rows = enriched.filter(pl.col("account") == acc)
        n = int(rows["prompt"].is_not_null().sum())
        k = int(rows["elicitation_hit"].sum())
        lines = finding.explain(finding.features.row(acc, named=True))
        if k:
            assert lines[0].startswith(f"{k} of {n} prompts ({pct(k / n)})")


def test_missing_prompt_column_gives_zero_shares(sig: ElicitationSignal) -> None:
    df = pl.DataFrame({"account": pl.Series([0, 0, 1, 2], dtype=pl.UInt32)})
    state = sig.update(sig.empty(), df)
    f = sig.finalize(state, n_accounts=3).features
    assert f["elicit_share"].to_list() == [0.0, 0.0, 0.0]
    assert f["struct_share"].to_list() == [0.0, 0.0, 0.0]
    all_null = df.with_columns(prompt=pl.lit(None))  # dtype Null
    assert_state_equal(sig.update(sig.empty(), all_null), state)


def test_finalize_of_empty_state(sig: ElicitationSignal) -> None:
    f = sig.finalize(sig.empty(), n_accounts=0).features
    assert f.height == 0 and "ts_elicit" in f.columns


def test_extra_rules_are_used(tmp_path: Path, sig: ElicitationSignal) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "- id: mine.magic\n  title: magic word\n  category: elicitation\n  match: {contains: [xyzzy]}\n"
    )
    mine = ElicitationSignal(extra_rules=(str(path),))
    df = pl.DataFrame({"prompt": ["say xyzzy"]})
    assert mine.enrich(df)["elicitation_hit"].to_list() == [True]
    assert sig.enrich(df)["elicitation_hit"].to_list() == [False]
    assert repr(mine) == f"ElicitationSignal(extra_rules={(str(path),)!r}, min_prompts=20, sample=1)"


def test_typical_accounts_score_zero(sig: ElicitationSignal) -> None:
    f = sig.finalize(sig.update(sig.empty(), population()), n_accounts=8).features
    # six accounts tie at the median share (0-4, and 7 with no text): at or above it are
    # all 8, so their tail score is 0; account 5 alone is the most extreme
    assert [f.row(a, named=True)["ts_elicit"] for a in (0, 7)] == [0.0, 0.0]
    assert f.row(5, named=True)["ts_elicit"] == pytest.approx(math.log10(8))


def test_sampling_reads_a_stable_share_of_prompts_and_says_so() -> None:
    rows = pl.DataFrame(
        {
            "account": pl.Series([0] * 400, dtype=pl.UInt32),
            "prompt": [f"Explain step by step how to solve task {i}" for i in range(400)],
        }
    )
    sig = ElicitationSignal(sample=4)
    out = sig.enrich(rows)
    read = out["elicitation_read"]
    assert 60 < read.sum() < 140  # about one in four distinct prompts
    assert out.filter(read)["elicitation_hit"].all()
    assert sig.enrich(rows).equals(out)  # the same prompts every time
    state = sig.update(sig.empty(), pl.concat([rows, out], how="horizontal"))
    finding = sig.finalize(state, 1)
    assert finding.explain is not None
    line = finding.explain(finding.features.row(0, named=True))[0]
    assert f"of {read.sum()} prompts read (a sample of 1 in 4)" in line
