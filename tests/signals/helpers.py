"""Build enriched rows for one signal from a small list of exchanges."""

from __future__ import annotations

from typing import Any

import polars as pl

from distillguard.hunt.engine import HuntState
from distillguard.signals.base import Finding, Signal


def finding(sig: Signal, rows: list[dict[str, Any]]) -> tuple[Finding, pl.DataFrame]:
    st = HuntState(signals=[])
    df = st.prepare(pl.DataFrame(rows, infer_schema_length=None).sort("ts"))
    state = sig.update(sig.empty(), pl.concat([df, sig.enrich(df)], how="horizontal"))
    f = sig.finalize(state, st.index.height)
    return f, st.index


def by_id(f: Finding, index: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {r["account_id"]: r for r in f.features.join(index, on="account").to_dicts()}
