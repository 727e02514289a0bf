"""Elicitation: how many of an account's prompts are harvesting templates.

Distillation scripts ask for exactly what makes good training data: visible reasoning
("think step by step"), graded comparisons, batches of generated tasks, and answers in
a rigid machine-readable format. Ordinary users ask for these too, now and then; a
harvesting account asks for them in most of its prompts. The signal therefore scores
each account's *share* of such prompts against the population, never a raw count.

The small helpers at the bottom (dense account frame, shrunk shares, percentages) are
shared with :mod:`distillguard.signals.capability`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, ClassVar

import polars as pl

from distillguard.ruleset import RuleSet, builtin_paths
from distillguard.signals.base import (
    Finding,
    Signal,
    State,
    TableSpec,
    account_frame,
    grouped,
    in_sample,
    on_unique,
    pct,
    rules_on_sample,
    shrunk_shares,
    tail_score,
)
from distillguard.signals.prepare import fill_missing

__all__ = ["ElicitationSignal"]

# category -> (count column in state, feature prefix, what a matching prompt does)
_CATEGORIES: dict[str, tuple[str, str, str]] = {
    "elicitation": (
        "n_elicit",
        "elicit",
        "ask for step-by-step reasoning, rubric grading or generated batches of examples",
    ),
    "structure": (
        "n_struct",
        "struct",
        "demand a rigid template or output format, or are data and code rather than prose",
    ),
}


class ElicitationSignal(Signal):
    """Share of an account's prompts that match elicitation or structure rules.

    Rules come from ``rules/elicitation.yaml`` (categories ``elicitation`` and
    ``structure``) plus any ``extra_rules`` files. ``enrich`` adds per-prompt flags;
    the state counts prompts with text, and matches, per account and per rule.

    Features (one row per account; larger = more suspicious):

    ``elicit_share``, ``struct_share``
        share of the account's prompts in each category. An account with fewer than
        ``min_prompts`` prompts has too little evidence for a share to mean much, so
        its share is pulled toward the population median: with ``w = n / min_prompts``
        (capped at 1) the feature is ``w * share + (1 - w) * median``. At or above
        ``min_prompts`` it is the plain share.
    ``ts_elicit``, ``ts_struct``
        :func:`~distillguard.signals.base.tail_score` of those shares in the population.

    Parameters
    ----------
    extra_rules
        Paths of rule files loaded on top of the built-in ones; only their
        ``elicitation`` and ``structure`` rules are used.
    min_prompts
        Prompts an account needs before its shares are taken at face value.

    Examples
    --------
    >>> import polars as pl
    >>> sig = ElicitationSignal()
    >>> rows = pl.DataFrame({
    ...     "account": pl.Series([0, 0, 1, 1, 1], dtype=pl.UInt32),
    ...     "prompt": ["Think step by step: 2+2?", "Explain your reasoning.",
    ...                "hi", "what is a cat", None],
    ... })
    >>> state = sig.update(sig.empty(), rows)
    >>> state["acct"].rows()
    [(0, 2, 2, 0), (1, 2, 0, 0)]

    References
    ----------
    Wang et al., "Self-Instruct" (2023); Taori et al., "Stanford Alpaca" (2023);
    Mukherjee et al., "Orca: Progressive Learning from Complex Explanation Traces" (2023);
    Xu et al., "WizardLM: Evol-Instruct" (2023); Zheng et al., "Judging LLM-as-a-Judge
    with MT-Bench" (2023) -- the public templates the rules are drawn from.
    """

    name: ClassVar[str] = "elicitation"
    features: ClassVar[tuple[str, ...]] = ("elicit_share", "struct_share", "ts_elicit", "ts_struct",)
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("prompt",)
    tables: ClassVar[Mapping[str, TableSpec]] = {
        "acct": TableSpec(
            keys=("account",),
            values={"n": "sum", "n_elicit": "sum", "n_struct": "sum"},
            dtypes={"account": pl.UInt32()},
        ),
        "rule": TableSpec(
            keys=("account", "rule"),
            values={"n": "sum"},
            dtypes={"account": pl.UInt32(), "rule": pl.String()},
        ),
    }

    def __init__(self, extra_rules: tuple[str, ...] = (), min_prompts: int = 20, sample: int = 1) -> None:
        self.extra_rules = extra_rules
        self.min_prompts = min_prompts
        # Evaluate the rules on one distinct prompt in ``sample`` (chosen by a hash of its
        # text, so a prompt is always in or always out): shares stay unbiased, the cost of
        # the slowest signal drops by that factor, and evidence says it was a sample.
        self.sample = sample
        rules = RuleSet.load([*builtin_paths(), *extra_rules]) if extra_rules else RuleSet.builtin()
        self._rules = rules.select(_CATEGORIES)  # compiled once, inside the RuleSet

    def state_params(self) -> dict[str, Any]:
        return {**super().state_params(), "rules": self._rules.digest()}

    def enrich(self, batch: pl.DataFrame) -> pl.DataFrame:
        """``elicitation_hit``, ``structure_hit`` (bool), ``elicitation_bits`` (matched rules,
        bit i for rule i: see :meth:`RuleSet.apply`) and
        ``elicitation_read`` (the prompt was read: it has text and is in the sample)."""
        frame = fill_missing(batch)
        sample = self.sample

        def flags(u: pl.DataFrame) -> pl.DataFrame:
            read = u.select(pl.col("prompt").is_not_null() & in_sample(pl.col("prompt"), sample)).to_series()
            hits = rules_on_sample(u, self._rules, list(_CATEGORIES), read, bits="elicitation_bits")
            return hits.select(
                *(pl.col(c).alias(f"{c}_hit") for c in _CATEGORIES), "elicitation_bits", read.alias("elicitation_read")
            )

        return on_unique(frame, "prompt", flags)

    def update(self, state: State, rows: pl.DataFrame) -> State:
        """Count prompts with text, and matches per category and per rule, by account."""
        self._check(state)
        if "elicitation_bits" not in rows.columns:
            rows = rows.hstack(self.enrich(rows))
        has_text = pl.col("elicitation_read")
        spec = self.tables["acct"]
        acct = grouped(
            rows,
            spec,
            {
                "n": has_text.sum(),
                **{col: pl.col(f"{c}_hit").sum() for c, (col, _, _) in _CATEGORIES.items()},
            },
        ).sort("account")
        rspec = self.tables["rule"]
        hit = rows.select("account", "elicitation_bits").filter(pl.col("elicitation_bits") != 0)
        per_rule = (
            hit.group_by("account")
            .agg(**self._rules.count_bits(pl.col("elicitation_bits")))
            .unpivot(index="account", variable_name="rule", value_name="n")
            .filter(pl.col("n") > 0)
            .cast({"account": pl.UInt32, "n": pl.Int64})
            .sort(["account", "rule"])
            if hit.height and len(self._rules)
            else rspec.empty()
        )
        return {
            "acct": spec.compact([state["acct"], acct]),
            "rule": rspec.compact([state["rule"], per_rule]),
        }

    def finalize(self, state: State, n_accounts: int) -> Finding:
        """Shrunk shares, their tail scores, and an explanation with exact counts."""
        self._check(state)
        counts = account_frame(state["acct"], n_accounts, ["n", "n_elicit", "n_struct"])
        hits = {f"{pre}_share": col for col, pre, _ in _CATEGORIES.values()}
        shares, medians = shrunk_shares(counts, "n", hits, self.min_prompts)
        features = shares.select(
            "account",
            *hits,
            *(
                tail_score(pl.col(f"{pre}_share")).alias(f"ts_{pre}")
                for _, pre, _ in _CATEGORIES.values()
            ),
        )
        per_rule = state["rule"]

        @functools.cache
        def tops() -> dict[tuple[int, str], tuple[str, int]]:
            # Built on the first explanation only: the live re-score writes none, and this
            # table cost it 0.4 s per cycle at 200,000 accounts.
            return {(r["account"], r["category"]): (r["rule"], int(r["n"])) for r in self._top_rules(per_rule).to_dicts()}

        min_prompts = self.min_prompts
        rules = self._rules
        of = "prompts" if self.sample == 1 else f"prompts read (a sample of 1 in {self.sample})"

        def explain(row: Mapping[str, Any]) -> list[str]:
            acc = int(row["account"])
            if acc >= counts.height:
                return []
            c = counts.row(acc, named=True)
            n = int(c["n"])
            out: list[str] = []
            for cat, (col, pre, what) in _CATEGORIES.items():
                k = int(c[col])
                if k == 0:
                    continue
                sentence = (
                    f"{k} of {n} {of} ({pct(k / n)}) {what}, against "
                    f"{pct(medians[f'{pre}_share'])} for the median account"
                )
                top = tops().get((acc, cat))
                if top is not None:
                    rid, rn = top
                    sentence += f"; most often rule {rid} ({rules[rid].title}, {rn} prompts)"
                out.append(sentence + ".")
            if 0 < n < min_prompts:
                out.append(
                    f"Only {n} prompts with text: shares were pulled toward the population "
                    f"median (full weight from {min_prompts} prompts)."
                )
            return out

        return Finding(features=features, explain=explain)

    def _top_rules(self, per_rule: pl.DataFrame) -> pl.DataFrame:
        """Per account and category, the rule matched most often (ties: lowest id)."""
        cats = pl.DataFrame(
            {
                "rule": [r.id for r in self._rules.rules],
                "category": [r.category for r in self._rules.rules],
            },
            schema={"rule": pl.String, "category": pl.String},
        )
        return (
            per_rule.join(cats, on="rule", how="inner")
            .sort(["account", "category", "n", "rule"], descending=[False, False, True, False])
            .group_by(["account", "category"], maintain_order=True)
            .first()
        )
