"""Conversation script: a fleet's reworded follow-up lines share keys; people's follow-ups do not."""

from __future__ import annotations

import datetime as dt
import random

import polars as pl

from distillguard.hunt.config import LinkParams
from distillguard.signals.conversation_script import ConversationScriptSignal
from tests.signals.helpers import by_id, finding

T0 = dt.datetime(2026, 4, 22, tzinfo=dt.UTC)
SCRIPT = ["Now write unit tests for it.", "What are the edge cases?", "Rewrite it in Rust.", "Give a concrete example."]
LEAD = ["", "", "Thanks. ", "Great, ", "OK. ", "Perfect. ", "ok "]
SIGN = ["", "", " Please.", " Thanks!", " thx"]
# Made-up words, each used once: the people's follow-ups share no word with anyone's.
VOCAB = [f"{a}{b}{c}{d}x" for a in "bcdfghjklm" for b in "aeiou" for c in "npqrstvwz" for d in "aeiou"]


def _rows() -> list[dict[str, object]]:
    rng = random.Random(4)
    rows: list[dict[str, object]] = []
    words = iter(VOCAB)

    def add(aid: str, prompt: str, n_messages: int) -> None:
        ts = T0 + dt.timedelta(minutes=len(rows))
        rows.append({"request_id": f"r{len(rows)}", "ts": ts, "account_id": aid, "prompt": prompt, "n_messages": n_messages})

    for a in range(8):  # a fleet: a task, then two or three lines of the script, reworded
        for conv in range(40):
            add(f"fleet{a}", f"Task {conv} for fleet account {a}: {next(words)} {next(words)} {next(words)}", 1)
            start = rng.randrange(len(SCRIPT))
            for t in range(rng.randint(2, 3)):
                line = SCRIPT[(start + t) % len(SCRIPT)]
                line = line.lower() if rng.random() < 0.3 else line
                add(f"fleet{a}", rng.choice(LEAD) + line + rng.choice(SIGN), 3 + 2 * t)
    for p in range(8):  # people: follow-ups about their own answers
        for _conv in range(12):
            add(f"person{p}", f"My question {next(words)} {next(words)}", 1)
            add(f"person{p}", f"And what about {next(words)} {next(words)}?", 3)
    long_line = "Here is the whole file again: " + " ".join(next(words) for _ in range(60))
    for _k in range(6):  # a pasted document at a follow-up turn is content, not a script line
        add("paster", long_line, 3)
    return rows


def test_fleet_accounts_share_script_lines_and_people_hold_none() -> None:
    sig = ConversationScriptSignal()
    f, index = finding(sig, _rows())
    rows = by_id(f, index)
    assert f.artifacts is not None and f.texts is not None
    arts = f.artifacts.join(index, on="account")
    holders = arts.group_by("value").agg(pl.col("account_id").n_unique().alias("k"))
    assert set(arts["account_id"].unique().to_list()) <= {f"fleet{a}" for a in range(8)}
    assert holders["k"].max() == 8  # one line's key held by the whole fleet, whatever the rewording
    assert all(rows[f"person{p}"]["top_line"] <= 1 for p in range(8))
    assert "paster" not in rows or not rows["paster"]["n_follow_ups"]
    texts = dict(zip(f.texts["value"].to_list(), f.texts["text"].to_list(), strict=True))
    quoted = [texts[v] for v in holders.filter(pl.col("k") == 8)["value"].to_list() if v in texts]
    assert quoted and all(any(s.lower().rstrip(".?") in q.lower() for s in SCRIPT) for q in quoted)
    assert f.explain is not None
    (line,) = f.explain(rows["fleet0"])
    assert "short follow-up turns" in line and "reword one line" in line


def test_a_script_line_joins_webs_and_links_nobody() -> None:
    p = LinkParams()
    assert "script_line" in p.joining and "script_line" in p.supporting
