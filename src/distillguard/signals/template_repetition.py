"""Template repetition: many prompts from few templates, and templates shared across accounts.

Harvesting scripts fill a fixed wrapper ("You are asked to come up with a set of 20
diverse task instructions ...", "Solve step by step: {task}") with changing content.
Each prompt is masked (case, digits, punctuation) and fingerprinted three ways, so that
fill-ins in the middle, at the end or at the start still leave one fingerprint intact:

* ``head``: the first ``k`` masked words, ``tail``: the words of the last 64 characters
  (prompts of at least ``min_words`` words; shorter prompts are too generic to call a
  template);
* ``exact``: the whole prompt (exact repeats, e.g. a fixed grading prompt).

Per account the signal measures concentration (share of its prompts on its top
fingerprint). Across accounts, fingerprints an account leans on become *artifacts*;
the link step tests whether the accounts sharing one behave like the population or not,
so a greeting shared by thousands of people is weak evidence and a wrapper shared by
thousands of scripted accounts is strong.

References: masked-token template mining as in Drain (He et al., ICWS 2017); k-shingle
prefix/suffix fingerprints as cheap LSH bands (Broder, 1997).
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
    on_unique,
    shrunk,
    tail_score,
    texts_seen,
)

_U: dict[str, DType] = {"account": pl.UInt32, "value": pl.UInt64}
KINDS = ("head", "tail", "exact")
# Values kept per account: any with over 1/33 of its prompts survives, undercounted by at
# most that share; templates that matter hold 20% or more (``min_share``). At full scale
# 64 doubled the state that every fold merges (the hunt's largest cost there).
TOP_K = 32


def mask(words: pl.Expr) -> pl.Expr:
    """Lower-case, digit runs to 0, every run of punctuation and space to one space.

    Applied to the few words a fingerprint keeps, never to whole prompts: regex
    replacement over full text costs about a second per million prompts per pass.
    """
    # ``[\W_]+ -> " "``, written so that the single spaces between words (most of the
    # runs) do not match: replacing a match costs more than scanning (2.7x on real endings).
    return (
        words.str.to_lowercase()
        .str.replace_all(r"[0-9]+", "0")
        .str.replace_all(r"[\W_]{2,}|[^\w ]|_", " ")
        .str.strip_chars()
    )


class TemplateSignal(Signal):
    name: ClassVar[str] = "template"
    features: ClassVar[tuple[str, ...]] = (
        "n_prompts", "n_long", "top_head", "top_head_value", "top_tail", "top_tail_value", "top_exact",
        "top_exact_value", "top_share", "top_kind", "concentration", "ts_concentration", "top_head_text",
    )
    requires: ClassVar[tuple[str, ...]] = ("prompt",)
    local: ClassVar[bool] = True
    population: ClassVar[tuple[str, ...]] = ('ts_concentration',)
    tables: ClassVar[dict[str, TableSpec]] = {
        # Heavy hitters per account: concentration and shared templates only need values
        # with a large share of an account's prompts, not every distinct prompt it sent.
        **{k: TableSpec(("account", "value"), {"n": "sum"}, _U, top_k=TOP_K) for k in KINDS},
        "acct": TableSpec(("account",), {"n": "sum", "n_long": "sum"}, {"account": pl.UInt32}),
        "text": TableSpec(("value",), {"text": "min"}, {"value": pl.UInt64, "text": pl.String}),
    }
    artifact_kinds: ClassVar[dict[str, ArtifactKind]] = {
        "tpl_head": ArtifactKind("prompt template (same opening words)", wording=True),
        "tpl_tail": ArtifactKind("prompt template (same closing words)", wording=True),
        "tpl_exact": ArtifactKind("identical prompt", wording=True),
    }

    def __init__(self, k: int = 6, min_words: int = 8, min_count: int = 5, min_share: float = 0.2) -> None:
        self.k = k
        self.min_words = min_words
        self.min_count = min_count
        self.min_share = min_share

    def enrich(self, batch: pl.DataFrame) -> pl.DataFrame:
        # Each fingerprint runs once per distinct prompt (see ``fingerprints``).
        return on_unique(batch, "prompt", self.fingerprints)

    def fingerprints(self, u: pl.DataFrame) -> pl.DataFrame:
        """``tpl_exact``, ``tpl_head``, ``tpl_tail`` and ``tpl_head_text`` of each ``prompt``
        of ``u``. Head and tail are cut from the first 240 and last 64 characters; "exact"
        is the whole prompt. The tail runs once per distinct ending (scripts that vary the
        start repeat it: about half the cost)."""
        k = self.k - 1
        # No capture group: the regex engine finds a plain match 3x faster; mask() strips.
        words = rf"^\W*\w+(?:\W+\w+){{0,{k}}}"

        def tails(u: pl.DataFrame) -> pl.DataFrame:
            # The words of the ending, less a cut-off first word. A start-anchored replace:
            # an end-anchored match, a capture group or reversing the text costs 3-5x more.
            t = mask(pl.col("ending").str.replace(r"^\w*\W+", ""))
            return u.select(tail=pl.when(t.str.len_bytes() > 0).then(t).hash(3))

        p = pl.col("prompt")
        head = p.str.slice(0, 240)
        fp = u.select(
            tpl_exact=pl.when(p.is_not_null()).then(p.hash(1)),
            long=head.str.contains(rf"^\W*(?:\w+\W+){{{self.min_words - 1}}}\w"),
            head=mask(head.str.extract(words, 0)),
            ending=p.str.slice(-64),
        )
        return fp.select(
            "tpl_exact",
            tpl_head=pl.when(pl.col("long")).then(pl.col("head").hash(2)),
            tpl_tail=pl.when(pl.col("long")).then((tails(fp) if fp.height == 1 else on_unique(fp, "ending", tails))["tail"]),
            tpl_head_text=pl.col("head"),
        )

    def update(self, state: State, rows: pl.DataFrame) -> State:
        t = self.tables
        out: State = {}
        for k in KINDS:
            out[k] = count_values(state, rows, t[k], k, f"tpl_{k}")
        acct = grouped(
            rows.select("account", "tpl_exact", "tpl_head").filter(pl.col("tpl_exact").is_not_null()),
            t["acct"],
            {"n": pl.len(), "n_long": pl.col("tpl_head").is_not_null().sum()},
        )
        out["acct"] = t["acct"].compact([state["acct"], acct])
        # Keep readable text only for heads repeated in this batch: enough to quote templates.
        txt = texts_seen(pl.col("tpl_head"), pl.col("tpl_head_text"), rows)
        out["text"] = t["text"].compact([state["text"], txt])
        return out

    def finalize(self, state: State, n_accounts: int) -> Finding:
        acct = state["acct"]
        feats = acct.rename({"n": "n_prompts"})
        arts = []
        totals = acct.select("account", tot="n")
        for k in KINDS:
            top = state[k].group_by("account").agg(
                **{
                    f"top_{k}": pl.col("n").max(),
                    f"top_{k}_value": pl.col("value").sort_by(["n", "value"], descending=[True, False]).first(),
                }
            )
            feats = feats.join(top, on="account", how="left")
            arts.append(concentrated(state[k], totals, f"tpl_{k}", self.min_count, self.min_share))
        feats = feats.with_columns(
            top_share=pl.max_horizontal(*(pl.col(f"top_{k}").fill_null(0) for k in KINDS)).cast(pl.Float64)
            / pl.col("n_prompts"),
            top_kind=pl.when(pl.col("top_exact").fill_null(0) >= pl.col("top_head").fill_null(0))
            .then(pl.lit("exact"))
            .otherwise(pl.lit("head")),
        ).with_columns(
            # Concentration only speaks once an account has sent enough prompts.
            concentration=pl.when(pl.col("n_prompts") >= 20).then(pl.col("top_share")).otherwise(0.0),
        )
        feats = self.with_population(feats)
        texts = state["text"]
        feats = feats.join(
            texts.rename({"value": "top_head_value", "text": "top_head_text"}), on="top_head_value", how="left"
        )
        artifacts = pl.concat(arts).cast(ARTIFACTS_SCHEMA) if arts else None  # type: ignore[arg-type]
        return Finding(feats, artifacts, _explain, texts=texts)

    def with_population(self, features: pl.DataFrame) -> pl.DataFrame:
        return features.with_columns(ts_concentration=tail_score(shrunk(pl.col("top_share"), pl.col("n_prompts"), 20)))


_DOOR = TemplateSignal()


def prompt_signatures(prompts: list[str | None], signal: TemplateSignal | None = None) -> list[frozenset[str]]:
    """Per prompt, the template signatures it carries as the hunt's evidence prints them:
    the masked opening words, and the head, tail and exact fingerprints as 16 hex digits
    (``#`` left off, lower case). What a blocklist of templates is matched against."""
    rows = (signal or _DOOR).fingerprints(pl.DataFrame({"prompt": prompts}, schema={"prompt": pl.String}))
    out = []
    for exact, head, tail, text in rows.select("tpl_exact", "tpl_head", "tpl_tail", "tpl_head_text").iter_rows():
        keys = {f"{v:016x}" for v in (exact, head, tail) if v is not None}
        if head is not None and text:
            keys.add(text)
        out.append(frozenset(keys))
    return out


def _explain(r: dict[str, Any]) -> list[str]:
    n = r.get("n_prompts") or 0
    if (r.get("ts_concentration") or 0) < 1.0 or not n:
        return []
    top = max(r.get("top_exact") or 0, r.get("top_head") or 0, r.get("top_tail") or 0)
    s = f"{top:,} of {int(n):,} prompts ({top / n:.0%}) follow one template"
    if r.get("top_head_text") and (r.get("top_head") or 0) >= top:
        s += f" beginning \u201c{r['top_head_text']} \u2026\u201d"
    return [s]
