"""Capability: how much of an account's traffic targets the skills worth stealing.

A distillation campaign spends its budget on the capabilities that are expensive to
train: coding, agentic tool use and long multi-step work. A benign account's mix
follows its product; a harvesting account's mix is skewed toward those targets. The
signal scores the share of each account's requests that hit any target capability
against the population.
"""

from __future__ import annotations

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

__all__ = ["CAPABILITIES", "CapabilitySignal"]

# category -> (state count column, words for evidence)
CAPABILITIES: dict[str, tuple[str, str]] = {
    "coding": ("n_coding", "coding"),
    "agentic": ("n_agentic", "agentic / tool use"),
    "long_horizon": ("n_long", "long-horizon"),
}


class CapabilitySignal(Signal):
    """Share of an account's requests aimed at coding, agentic or long-horizon work.

    A request is

    - ``coding`` when a ``coding`` rule matches;
    - ``agentic`` when an ``agentic`` rule matches or the request declares tools
      (``has_tools``);
    - ``long_horizon`` when a ``long_horizon`` rule matches, or the conversation has
      at least ``long_messages`` messages, or at least ``long_input_tokens`` input
      tokens;
    - a *target* when it is any of the three.

    Absent optional columns (``has_tools``, ``n_messages``, ``input_tokens``, even
    ``prompt``) count as null and never make a request a target.

    Features (one row per account; larger = more suspicious): ``coding_share``,
    ``agentic_share``, ``long_horizon_share``, ``target_share`` and ``ts_target``
    (:func:`~distillguard.signals.base.tail_score` of ``target_share``). Below
    ``min_requests`` requests, shares are pulled toward the population median with
    weight ``n / min_requests``, as in :class:`~distillguard.signals.elicitation.ElicitationSignal`.
    :meth:`capabilities` lists which categories dominate each account, for campaign
    summaries.

    Parameters
    ----------
    extra_rules
        Rule files loaded on top of the built-in ones; their ``coding``, ``agentic``
        and ``long_horizon`` rules are used.
    min_requests
        Requests an account needs before its shares are taken at face value.
    long_messages
        Conversation length (messages) from which a request counts as long-horizon.
    long_input_tokens
        Input size (tokens) from which a request counts as long-horizon.
    dominant_share
        Share of requests from which a category counts as one of the account's
        dominant capabilities.

    Examples
    --------
    >>> import polars as pl
    >>> sig = CapabilitySignal()
    >>> rows = pl.DataFrame({
    ...     "account": pl.Series([0, 0, 1], dtype=pl.UInt32),
    ...     "prompt": ["Write a function that sorts a list", "hello", "hi"],
    ...     "has_tools": [False, True, None],
    ... })
    >>> sig.update(sig.empty(), rows)["acct"].select("account", "n", "n_coding", "n_agentic").rows()
    [(0, 2, 1, 1), (1, 1, 0, 0)]
    """

    name: ClassVar[str] = "capability"
    features: ClassVar[tuple[str, ...]] = (
        "coding_share", "agentic_share", "long_horizon_share", "target_share", "ts_target",
    )
    version: ClassVar[int] = 1
    requires: ClassVar[tuple[str, ...]] = ("prompt",)
    tables: ClassVar[Mapping[str, TableSpec]] = {
        "acct": TableSpec(
            keys=("account",),
            values=dict.fromkeys(
                ["n", "n_coding", "n_agentic", "n_long", "n_target", "n_tools", "n_long_ctx"], "sum"
            ),
            dtypes={"account": pl.UInt32()},
        )
    }

    def __init__(
        self,
        extra_rules: tuple[str, ...] = (),
        min_requests: int = 20,
        long_messages: int = 10,
        long_input_tokens: int = 8000,
        dominant_share: float = 0.3,
        sample: int = 1,
    ) -> None:
        self.extra_rules = extra_rules
        # Read one request in ``sample`` (by a hash of its prompt; requests without text are
        # always read): shares stay unbiased and the text rules cost that much less.
        self.sample = sample
        self.min_requests = min_requests
        self.long_messages = long_messages
        self.long_input_tokens = long_input_tokens
        self.dominant_share = dominant_share
        rules = RuleSet.load([*builtin_paths(), *extra_rules]) if extra_rules else RuleSet.builtin()
        self._rules = rules.select(CAPABILITIES)  # compiled once, inside the RuleSet

    def state_params(self) -> dict[str, Any]:
        return {**super().state_params(), "rules": self._rules.digest()}

    def enrich(self, batch: pl.DataFrame) -> pl.DataFrame:
        """``cap_coding``, ``cap_agentic``, ``cap_long_horizon`` flags, plus ``cap_tools``
        and ``cap_long_ctx`` (the metadata part of the last two, for evidence)."""
        frame = fill_missing(batch)
        tools = pl.col("has_tools").fill_null(False)
        long_ctx = (
            (pl.col("n_messages") >= self.long_messages)
            | (pl.col("input_tokens") >= self.long_input_tokens)
        ).fill_null(False)
        sample = self.sample

        def flags(u: pl.DataFrame) -> pl.DataFrame:
            # Rows without text are read too: their metadata still counts.
            read = u.select(pl.col("prompt").is_null() | in_sample(pl.col("prompt"), sample)).to_series()
            return rules_on_sample(u, self._rules, list(CAPABILITIES), read).with_columns(read.alias("cap_read"))

        return on_unique(frame, "prompt", flags).hstack(
            frame.select(tools.alias("cap_tools"), long_ctx.alias("cap_long_ctx"))
        ).select(
            pl.col("coding").alias("cap_coding"),
            (pl.col("agentic") | pl.col("cap_tools")).alias("cap_agentic"),
            (pl.col("long_horizon") | pl.col("cap_long_ctx")).alias("cap_long_horizon"),
            "cap_tools",
            "cap_long_ctx",
            "cap_read",
        )

    def update(self, state: State, rows: pl.DataFrame) -> State:
        """Count requests, and requests per capability, by account."""
        self._check(state)
        if "cap_coding" not in rows.columns:
            rows = rows.hstack(self.enrich(rows))
        spec = self.tables["acct"]
        rows = rows.select("account", pl.col("^cap_.*$"))  # not the batch's text columns
        rows = rows.filter(pl.col("cap_read")) if "cap_read" in rows.columns else rows
        flags = [pl.col(f"cap_{c}") for c in CAPABILITIES]
        new = grouped(
            rows,
            spec,
            {
                "n": pl.len(),
                **{col: pl.col(f"cap_{c}").sum() for c, (col, _) in CAPABILITIES.items()},
                "n_target": pl.any_horizontal(flags).sum(),
                "n_tools": pl.col("cap_tools").sum(),
                "n_long_ctx": pl.col("cap_long_ctx").sum(),
            },
        ).sort("account")
        return {"acct": spec.compact([state["acct"], new])}

    def finalize(self, state: State, n_accounts: int) -> Finding:
        """Shrunk shares, the tail score of ``target_share``, and exact-count evidence."""
        self._check(state)
        counts = account_frame(state["acct"], n_accounts, list(self.tables["acct"].values))
        hits = {f"{c}_share": col for c, (col, _) in CAPABILITIES.items()} | {
            "target_share": "n_target"
        }
        shares, medians = shrunk_shares(counts, "n", hits, self.min_requests)
        features = shares.select(
            "account", *hits, tail_score(pl.col("target_share")).alias("ts_target")
        )
        dominant: list[pl.DataFrame] = []  # computed at the first explanation (flags() writes none)
        min_requests = self.min_requests
        lm, lt = self.long_messages, self.long_input_tokens
        of = "requests" if self.sample == 1 else f"requests read (a sample of 1 in {self.sample})"

        def explain(row: Mapping[str, Any]) -> list[str]:
            acc = int(row["account"])
            if acc >= counts.height:
                return []
            c = counts.row(acc, named=True)
            n, k = int(c["n"]), int(c["n_target"])
            if k == 0:
                return []
            parts = [f"{words} {int(c[col])}" for col, words in CAPABILITIES.values() if c[col]]
            out = [
                f"{k} of {n} {of} ({pct(k / n)}) target coding, agentic or long-horizon "
                f"work ({', '.join(parts)}), against {pct(medians['target_share'])} "
                "for the median account."
            ]
            details = []
            if c["n_tools"]:
                details.append(f"{c['n_tools']} declare tools")
            if c["n_long_ctx"]:
                details.append(
                    f"{c['n_long_ctx']} have at least {lm} messages or {lt} input tokens"
                )
            if details:
                out.append(f"Of the {n} requests, {' and '.join(details)}.")
            if not dominant:
                dominant.append(self.capabilities(features))
            caps = dominant[0].row(acc, named=True)["capabilities"]
            if caps:
                listed = ", ".join(
                    f"{cap} ({pct(int(c[CAPABILITIES[cap][0]]) / n)})" for cap in caps
                )
                out.append(f"Dominant capabilities: {listed}.")
            if n < min_requests:
                out.append(
                    f"Only {n} requests: shares were pulled toward the population median "
                    f"(full weight from {min_requests} requests)."
                )
            return out

        return Finding(features=features, explain=explain)

    def capabilities(self, features: pl.DataFrame) -> pl.DataFrame:
        """Which capabilities dominate each account, for campaign summaries.

        Parameters
        ----------
        features
            The ``features`` frame of this signal's :class:`Finding`.

        Returns
        -------
        polars.DataFrame
            ``account`` and ``capabilities`` (list of category names whose share is at
            least ``dominant_share``, in the order coding, agentic, long_horizon).
        """
        picks = [
            pl.when(pl.col(f"{c}_share") >= self.dominant_share).then(pl.lit(c))
            for c in CAPABILITIES
        ]
        return features.select(
            "account", pl.concat_list(picks).list.drop_nulls().alias("capabilities")
        )
