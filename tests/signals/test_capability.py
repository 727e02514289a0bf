"""CapabilitySignal on hand-made exchanges."""

from __future__ import annotations

import json

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from distillguard.signals.base import State, pct
from distillguard.signals.capability import CapabilitySignal

CHAT = ["hi, how are you?", "what is the capital of Peru?", "tell me a joke", "recommend a film"]
CODE = "Write a function in Python that merges two sorted lists."
AGENT = "You have access to the following tools: search(query). Find the CEO of ACME."
PROJECT = "Build a complete SaaS application with billing, from scratch."


def population() -> pl.DataFrame:
    """Accounts 0-3: 20 chat, 2 code requests each; account 4: 24 code, 4 tool-declaring
    chat, 2 long conversations (12 messages) of plain chat; account 5: 3 project requests."""
    acc: list[int] = []
    prompt: list[str | None] = []
    tools: list[bool | None] = []
    msgs: list[int | None] = []
    toks: list[int | None] = []

    def add(
        a: int, p: str | None, t: bool | None = None, m: int | None = 1, k: int | None = 100
    ) -> None:
        acc.append(a)
        prompt.append(p)
        tools.append(t)
        msgs.append(m)
        toks.append(k)

    for a in range(4):
        for i in range(20):
            add(a, CHAT[i % 4], t=False)
        add(a, CODE)
        add(a, CODE, k=None)
    for _ in range(24):
        add(4, CODE)
    for _ in range(4):
        add(4, CHAT[0], t=True)
    add(4, CHAT[1], m=12)
    add(4, CHAT[2], m=None, k=9000)
    for _ in range(3):
        add(5, PROJECT)
    return pl.DataFrame(
        {
            "account": pl.Series(acc, dtype=pl.UInt32),
            "prompt": pl.Series(prompt, dtype=pl.String),
            "has_tools": pl.Series(tools, dtype=pl.Boolean),
            "n_messages": pl.Series(msgs, dtype=pl.Int32),
            "input_tokens": pl.Series(toks, dtype=pl.Int64),
        }
    )


@pytest.fixture
def sig() -> CapabilitySignal:
    return CapabilitySignal()


def assert_state_equal(a: State, b: State) -> None:
    assert set(a) == set(b) == {"acct"}
    assert_frame_equal(a["acct"].sort("account"), b["acct"].sort("account"))


def test_each_category_fires_on_typical_text_not_plain_chat(sig: CapabilitySignal) -> None:
    df = pl.DataFrame({"prompt": [CODE, AGENT, PROJECT, *CHAT]})
    out = sig.enrich(df)
    assert out["cap_coding"].to_list() == [True, False, False, False, False, False, False]
    assert out["cap_agentic"].to_list() == [False, True, False, False, False, False, False]
    assert out["cap_long_horizon"].to_list() == [False, False, True, False, False, False, False]


def test_metadata_makes_agentic_and_long_horizon(sig: CapabilitySignal) -> None:
    df = pl.DataFrame(
        {
            "prompt": ["hi"] * 5,
            "has_tools": [True, None, False, False, False],
            "n_messages": [1, 10, 9, None, 1],
            "input_tokens": [10, 10, 7999, 8000, None],
        }
    )
    out = sig.enrich(df)
    assert out["cap_agentic"].to_list() == [True, False, False, False, False]
    assert out["cap_long_horizon"].to_list() == [False, True, False, True, False]
    assert out["cap_tools"].to_list() == [True, False, False, False, False]


def test_enrich_is_row_aligned_and_pure(sig: CapabilitySignal) -> None:
    df = population()
    before = df.clone()
    out = sig.enrich(df)
    assert_frame_equal(df, before)
    assert out.height == df.height
    assert out.columns == [
        "cap_coding",
        "cap_agentic",
        "cap_long_horizon",
        "cap_tools",
        "cap_long_ctx",
        "cap_read",
    ]


def test_state_counts(sig: CapabilitySignal) -> None:
    state = sig.update(sig.empty(), population())
    cols = state["acct"].columns
    rows = {r[0]: dict(zip(cols, r, strict=True)) for r in state["acct"].rows()}
    assert rows[0] == dict(
        account=0, n=22, n_coding=2, n_agentic=0, n_long=0, n_target=2, n_tools=0, n_long_ctx=0
    )
    assert rows[4] == dict(
        account=4, n=30, n_coding=24, n_agentic=4, n_long=2, n_target=30, n_tools=4, n_long_ctx=2
    )
    assert rows[5]["n_target"] == 3 and rows[5]["n_long"] == 3


def test_merge_matches_one_update(sig: CapabilitySignal) -> None:
    df = population().sample(fraction=1.0, shuffle=True, seed=3)
    a, b = df[:40], df[40:]
    whole = sig.update(sig.empty(), df)
    assert_state_equal(whole, sig.merge(sig.update(sig.empty(), a), sig.update(sig.empty(), b)))
    assert_state_equal(whole, sig.update(sig.update(sig.empty(), a), b))
    c, d, e = (sig.update(sig.empty(), x) for x in (df[:20], df[20:70], df[70:]))
    assert_state_equal(sig.merge(sig.merge(c, d), e), sig.merge(c, sig.merge(d, e)))


def test_empty_state_is_identity_and_round_trips(sig: CapabilitySignal) -> None:
    state = sig.update(sig.empty(), population())
    assert_state_equal(sig.merge(state, sig.empty()), state)
    assert_state_equal(sig.merge(sig.empty(), state), state)
    assert_state_equal(sig.update(state, population()[:0]), state)
    for s in (sig.empty(), state):
        assert_state_equal(sig.from_bytes(sig.to_bytes(s)), s)


def test_features_capabilities_and_evidence(sig: CapabilitySignal) -> None:
    finding = sig.finalize(sig.update(sig.empty(), population()), n_accounts=6)
    f = finding.features
    assert f.columns == [
        "account",
        "coding_share",
        "agentic_share",
        "long_horizon_share",
        "target_share",
        "ts_target",
    ]
    median = 2 / 22  # the four chat accounts; 4 and 5 lie above
    assert f.row(0, named=True)["target_share"] == pytest.approx(median)
    assert f.row(4, named=True)["target_share"] == pytest.approx(1.0)
    assert f.row(4, named=True)["coding_share"] == pytest.approx(24 / 30)
    # account 5: 3 requests, all targets -> weight 3/20
    assert f.row(5, named=True)["target_share"] == pytest.approx(0.15 + 0.85 * median)
    assert f["ts_target"].arg_max() == 4
    assert f.row(0, named=True)["ts_target"] == 0.0
    caps = dict(sig.capabilities(f).iter_rows())
    assert caps == {0: [], 1: [], 2: [], 3: [], 4: ["coding"], 5: []}
    assert finding.explain is not None
    lines = finding.explain(f.row(4, named=True))
    assert lines == [
        f"30 of 30 requests (100%) target coding, agentic or long-horizon work (coding 24, "
        f"agentic / tool use 4, long-horizon 2), against {pct(median)} for the median account.",
        "Of the 30 requests, 4 declare tools and 2 have at least 10 messages or 8000 input tokens.",
        "Dominant capabilities: coding (80%).",
    ]
    assert pct(median) == "9%"
    short = finding.explain(f.row(5, named=True))
    assert short[0].startswith("3 of 3 requests (100%)")
    assert short[-1].startswith("Only 3 requests: shares were pulled toward")
    json.dumps(lines)


def test_missing_columns_give_zero_shares(sig: CapabilitySignal) -> None:
    df = pl.DataFrame({"account": pl.Series([0, 0, 1], dtype=pl.UInt32)})
    finding = sig.finalize(sig.update(sig.empty(), df), n_accounts=2)
    f = finding.features
    for col in ("coding_share", "agentic_share", "long_horizon_share", "target_share"):
        assert f[col].to_list() == [0.0, 0.0]
    assert finding.explain is not None and finding.explain(f.row(0, named=True)) == []
    nulls = df.with_columns(
        prompt=pl.lit(None),
        has_tools=pl.lit(None),
        n_messages=pl.lit(None),
        input_tokens=pl.lit(None),
    )
    assert_state_equal(sig.update(sig.empty(), nulls), sig.update(sig.empty(), df))


def test_parameters(sig: CapabilitySignal) -> None:
    strict = CapabilitySignal(long_messages=20, long_input_tokens=100_000, dominant_share=0.9)
    df = pl.DataFrame({"prompt": ["hi"], "n_messages": [12], "input_tokens": [9000]})
    assert sig.enrich(df)["cap_long_horizon"].item() is True
    assert strict.enrich(df)["cap_long_horizon"].item() is False
    assert "dominant_share=0.9" in repr(strict)


def test_sampling_reads_a_stable_share_of_requests() -> None:
    rows = pl.DataFrame(
        {
            "account": pl.Series([0] * 400, dtype=pl.UInt32),
            "prompt": [f"Write a python function that sorts list number {i}" for i in range(400)],
        }
    )
    sig = CapabilitySignal(sample=4)
    out = sig.enrich(rows)
    read = out["cap_read"]
    assert 60 < read.sum() < 140 and out.filter(read)["cap_coding"].all()
    state = sig.update(sig.empty(), pl.concat([rows, out], how="horizontal"))
    assert state["acct"]["n"].to_list() == [read.sum()]
