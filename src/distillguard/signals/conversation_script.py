"""Conversation script: the follow-up turns an operator's script sends, reworded, across a fleet.

A careful operator rewords every task, but after the answer its script asks the same few
things again and again, in much the same order: "Now write unit tests for it.", "What are
the edge cases?", "Rewrite it in Rust.". People follow up too, with what their answer
needed; a fleet follows up with its script. Each short follow-up turn (``n_messages`` at
least ``min_turn``, at most ``max_chars`` characters: a pasted document or a tool result is
content, not a script line) gets ``bands`` LSH keys of ``rows`` MinHash values of its masked
content words (:mod:`~distillguard.signals.minhash`; a lead-in, a sign-off or lower case
leave most of a line's words), so "Thanks. Now write unit tests for it. thx" and "now
write unit tests for it" share a key with probability ``1 - (1 - J^rows)^bands`` (0.91 at
word-set Jaccard 0.75).

Per account the state keeps the heavy hitters of those keys (a script of a few lines
holds a large share of an account's follow-ups). A key an account leans on is a
``script_line`` artifact. Popular follow-ups ("thanks", "explain more") are shared by
thousands of ordinary people, so the link step keeps a line only when its carriers behave
unlike the population; and a line only *joins* identity webs (``joins``, not ``links``):
cells of one operator that send one script become one web, tested as a whole on its
members' behaviour, while a person who happens to send a fleet's line is never linked
through it. No ``ts_`` feature either: alone, a line accuses nobody.

Without conversation ids in the log (the spec has none), the "sequence" of a script is the
set of lines an account sends at follow-up turns; the turn each line comes at is not used,
so a script started mid-way or shuffled still matches.
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from distillguard.signals.base import (
    ARTIFACTS_SCHEMA,
    ArtifactKind,
    DType,
    Finding,
    Signal,
    State,
    TableSpec,
    concentrated,
    count_values,
    grouped,
)
from distillguard.signals.minhash import lsh_keys

__all__ = ["ConversationScriptSignal"]

_U: dict[str, DType] = {"account": pl.UInt32, "value": pl.UInt64}
# Keys kept per account: a script is a few lines times ``bands`` keys each.
TOP_K = 16


class ConversationScriptSignal(Signal):
    """Reworded follow-up turns, keyed so that one script line keeps one key across accounts.

    Parameters
    ----------
    min_turn
        Fewest messages in a request for its last user turn to be a follow-up.
    max_chars
        Longest follow-up read as a script line.
    min_words
        Fewest masked content words for a line (shorter ones say nothing of a script).
    bands, rows
        LSH bands and MinHash values per band.
    min_count, min_share
        A key becomes an account's artifact when it carries at least ``min_count`` of the
        account's follow-ups and at least ``min_share`` of them.
    """

    name: ClassVar[str] = "script"
    features: ClassVar[tuple[str, ...]] = ("n_follow_ups", "top_line", "top_line_value", "line_share", "top_line_text")
    requires: ClassVar[tuple[str, ...]] = ("prompt", "n_messages")
    local: ClassVar[bool] = True
    population: ClassVar[tuple[str, ...]] = ()
    tables: ClassVar[dict[str, TableSpec]] = {
        "line": TableSpec(("account", "value"), {"n": "sum"}, _U, top_k=TOP_K),
        "acct": TableSpec(("account",), {"n": "sum"}, {"account": pl.UInt32}),
        "text": TableSpec(("value",), {"text": "min"}, {"value": pl.UInt64, "text": pl.String}),
    }
    artifact_kinds: ClassVar[dict[str, ArtifactKind]] = {
        # Joins identity webs (cells of one operator sending one script), links nobody alone:
        # ordinary people send a fleet's lines too ("Go on.", "Explain why this works.").
        "script_line": ArtifactKind("scripted follow-up (reworded)", links=False, joins=True, signature=True, wording=True),
    }

    def __init__(
        self,
        min_turn: int = 3,
        max_chars: int = 200,
        min_words: int = 2,
        bands: int = 3,
        rows: int = 2,
        min_count: int = 3,
        min_share: float = 0.05,
    ) -> None:
        self.min_turn = min_turn
        self.max_chars = max_chars
        self.min_words = min_words
        self.bands = bands
        self.rows = rows
        self.min_count = min_count
        self.min_share = min_share

    def enrich(self, batch: pl.DataFrame) -> pl.DataFrame:
        # Keys only for short follow-up turns, once per distinct text among them: most short
        # prompts are first turns, and keying every one cost a fifth of the full-scale hunt.
        line = (pl.col("n_messages").fill_null(0) >= self.min_turn) & (
            pl.col("prompt").str.len_chars().fill_null(self.max_chars + 1) <= self.max_chars
        )
        rows = batch.select("prompt", line=line).with_row_index("row").filter("line")
        dtype = pl.Array(pl.UInt64, self.bands)
        if rows.height == 0:
            return pl.DataFrame({"script_keys": pl.Series([None] * batch.height, dtype=dtype)})
        texts = rows.select("prompt").unique(maintain_order=True)
        keyed = texts.with_columns(lsh_keys(texts["prompt"], self.bands, self.rows, self.min_words, "script_keys"))
        at = rows.join(keyed, on="prompt", how="left").select("row", "script_keys")
        full = pl.DataFrame({"row": pl.int_range(batch.height, dtype=pl.UInt32, eager=True)})
        return full.join(at, on="row", how="left").sort("row").select("script_keys")

    def update(self, state: State, rows: pl.DataFrame) -> State:
        t = self.tables
        r = rows.select("account", "script_keys").filter(pl.col("script_keys").is_not_null())
        flat = r.select("account", value=pl.col("script_keys").arr.to_list()).explode("value")
        out: State = {"line": count_values(state, flat, t["line"], "line", "value")}
        out["acct"] = t["acct"].compact([state["acct"], grouped(r, t["acct"], {"n": pl.len()})])
        # Readable text: the most common wording of each key repeated in a sample of the batch
        # (sampled before the keys are spread out, so no text is copied per band).
        sample = rows.select("script_keys", "prompt").gather_every(8).filter(pl.col("script_keys").is_not_null())
        txt = (
            sample.select(value=pl.col("script_keys").arr.to_list(), text="prompt")
            .explode("value")
            .group_by("value", "text")
            .agg(c=pl.len())
            .filter(pl.col("c") >= 2)  # a wording seen twice in the sample
            .sort(["value", "c", "text"], descending=[False, True, False])
            .unique("value", keep="first")
            .select("value", pl.col("text").str.strip_chars())
        )
        # Only lines some account leans on can be quoted: the table stays as small as the heavy
        # hitters (at full scale, texts of every repeated follow-up cost gigabytes).
        leaned = out["line"].filter(pl.col("n") >= self.min_count).select("value").unique()
        txt = txt.join(leaned, on="value", how="semi")
        out["text"] = t["text"].compact([state["text"], txt])
        return out

    def finalize(self, state: State, n_accounts: int) -> Finding:
        acct = state["acct"].rename({"n": "n_follow_ups"})
        totals = acct.select("account", tot="n_follow_ups")
        top = state["line"].group_by("account").agg(
            top_line=pl.col("n").max(),
            top_line_value=pl.col("value").sort_by(["n", "value"], descending=[True, False]).first(),
        )
        texts = state["text"]
        feats = (
            acct.join(top, on="account", how="left")
            .with_columns(pl.col("top_line").fill_null(0))
            .with_columns(line_share=pl.col("top_line").cast(pl.Float64) / pl.col("n_follow_ups").clip(lower_bound=1))
            .join(texts.rename({"value": "top_line_value", "text": "top_line_text"}), on="top_line_value", how="left")
        )
        arts = concentrated(state["line"], totals, "script_line", self.min_count, self.min_share)
        return Finding(feats, arts.cast(ARTIFACTS_SCHEMA), _explain, texts=texts)  # type: ignore[arg-type]


def _explain(r: dict[str, Any]) -> list[str]:
    n = int(r.get("n_follow_ups") or 0)
    top = int(r.get("top_line") or 0)
    if n < 5 or top < 3 or not r.get("top_line_text"):
        return []
    return [f"{top:,} of its {n:,} short follow-up turns ({top / n:.0%}) reword one line, e.g. \u201c{r['top_line_text']}\u201d"]
