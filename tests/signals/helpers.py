"""Build enriched rows for one signal from a small list of exchanges."""

from __future__ import annotations

from typing import Any

import polars as pl

from distillguard.signals.base import Finding, Signal
from distillguard.signals.prepare import account_index, prepare


def finding(sig: Signal, rows: list[dict[str, Any]]) -> tuple[Finding, pl.DataFrame]:
    batch = pl.DataFrame(rows, infer_schema_length=None).sort("ts")
    index = account_index(batch["account_id"])
    df = prepare(batch, index)
    state = sig.update(sig.empty(), pl.concat([df, sig.enrich(df)], how="horizontal"))
    return sig.finalize(state, index.height), index


def by_id(f: Finding, index: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {r["account_id"]: r for r in f.features.join(index, on="account").to_dicts()}
