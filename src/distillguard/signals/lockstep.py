"""Lockstep: many accounts moving to a newly released model within the same hours.

One disclosed campaign moved most of its traffic to a new model within 24 hours of its
release; people drift over weeks. For each model, an account's adoption time (its first
request to that model) becomes an artifact ``(model, adoption window)``; the link step
then asks whether the accounts adopting in one window are ordinary or scripted. Models
used from the very start of the log carry no adoption information and are skipped.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from distillguard.signals.base import (
    ARTIFACTS_SCHEMA,
    TEXT_SPEC_DTYPES,
    ArtifactKind,
    Finding,
    Signal,
    State,
    TableSpec,
    grouped,
    texts_seen,
)


class LockstepSignal(Signal):
    name: ClassVar[str] = "lockstep"
    features: ClassVar[tuple[str, ...]] = ("adopt_lag_h",)
    requires: ClassVar[tuple[str, ...]] = ("model",)
    tables: ClassVar[dict[str, TableSpec]] = {
        "model": TableSpec(
            ("account", "value"), {"n": "sum", "first": "min"}, {"account": pl.UInt32, "value": pl.UInt64}
        ),
        "text": TableSpec(("value",), {"text": "min"}, TEXT_SPEC_DTYPES),
    }
    artifact_kinds: ClassVar[dict[str, ArtifactKind]] = {
        "model_adopt": ArtifactKind("adoption of a newly released model in the same hours", links=False),
    }

    def __init__(self, window_hours: int = 6, min_count: int = 5) -> None:
        self.window_hours = window_hours
        self.min_count = min_count

    def update(self, state: State, rows: pl.DataFrame) -> State:
        spec = self.tables["model"]
        r = rows.select("account", "epoch_s", "model").filter(pl.col("model").is_not_null())
        r = r.select("account", "epoch_s", value=pl.col("model").hash(21))
        names = texts_seen(pl.col("model").hash(21), pl.col("model"), rows, min_count=1)
        return {
            "model": spec.compact([state["model"], grouped(r, spec, {"n": pl.len(), "first": pl.col("epoch_s").min()})]),
            "text": self.tables["text"].compact([state["text"], names]),
        }

    def finalize(self, state: State, n_accounts: int) -> Finding:
        m = state["model"]
        if m.height == 0:
            return Finding(pl.DataFrame(schema={"account": pl.UInt32}))
        w = self.window_hours * 3600
        start = m["first"].min()
        released = m.with_columns(release=pl.col("first").min().over("value")).filter(
            pl.col("release") > pl.lit(start) + 86400  # the model appeared after the log's first day
        )
        adopt = released.filter(pl.col("n") >= self.min_count).with_columns(
            b=pl.col("first") // w, art=pl.struct("value", b=(pl.col("first") // w)).hash(22)
        )
        arts = adopt.select("account", kind=pl.lit("model_adopt"), value="art", share=pl.lit(1.0))
        texts = (
            adopt.select("art", "value", "b")
            .unique("art")
            .join(state["text"].rename({"value": "value", "text": "model"}), on="value", how="left")
            .select(
                value="art",
                text=pl.format(
                    "{} within {} h of {}",
                    pl.col("model"),
                    pl.lit(self.window_hours),
                    pl.from_epoch(pl.col("b") * w, time_unit="s").dt.strftime("%Y-%m-%d %H:%M UTC"),
                ),
            )
        )
        feats = released.group_by("account").agg(
            adopt_lag_h=((pl.col("first") - pl.col("release")) / 3600).min()
        )
        return Finding(feats, arts.cast(ARTIFACTS_SCHEMA), texts=texts)  # type: ignore[arg-type]
