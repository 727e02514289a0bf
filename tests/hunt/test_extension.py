"""A new signal is one module plus one registration: a toy signal defined only here reaches
the features, the links and the evidence sentences with no edit under ``hunt/``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import polars as pl
import pytest

from distillguard.checks import yield_checks
from distillguard.errors import ConfigError
from distillguard.hunt.detector import HuntDetector
from distillguard.signals import SIGNALS, register, unregister
from distillguard.signals.base import (
    ARTIFACTS_SCHEMA,
    TEXT_SPEC_DTYPES,
    ArtifactKind,
    Finding,
    Signal,
    State,
    TableSpec,
    grouped,
    tail_score,
    texts_seen,
)
from tests.hunt.population import population


class ClientHandshakeSignal(Signal):
    """Toy: the HTTP client an account speaks through, and how much of its traffic is scripted."""

    name: ClassVar[str] = "handshake"
    requires: ClassVar[tuple[str, ...]] = ("user_agent",)
    tables: ClassVar[dict[str, TableSpec]] = {
        "ua": TableSpec(("account", "value"), {"n": "sum"}, {"account": pl.UInt32, "value": pl.UInt64}),
        "text": TableSpec(("value",), {"text": "min"}, TEXT_SPEC_DTYPES),
    }
    artifact_kinds: ClassVar[dict[str, ArtifactKind]] = {"client_handshake": ArtifactKind("client handshake")}
    features: ClassVar[tuple[str, ...]] = ("requests", "clients", "ts_one_client")

    def update(self, state: State, rows: pl.DataFrame) -> State:
        r = rows.drop_nulls("user_agent").select("account", value=pl.col("user_agent").hash(77))
        spec = self.tables["ua"]
        names = texts_seen(pl.col("user_agent").hash(77), pl.col("user_agent"), rows, min_count=1)
        return {
            "ua": spec.compact([state["ua"], grouped(r, spec, {"n": pl.len()})]),
            "text": self.tables["text"].compact([state["text"], names]),
        }

    def finalize(self, state: State, n_accounts: int) -> Finding:
        ua = state["ua"]
        per = ua.group_by("account").agg(requests=pl.col("n").sum(), clients=pl.len())
        feats = per.with_columns(ts_one_client=tail_score(pl.col("requests") / pl.col("clients")))
        arts = ua.filter(pl.col("n") >= 5).select("account", kind=pl.lit("client_handshake"), value="value", share=pl.lit(1.0))
        return Finding(feats, arts.cast(ARTIFACTS_SCHEMA), _explain, texts=state["text"])  # type: ignore[arg-type]


def _explain(r: dict[str, Any]) -> list[str]:
    if (r.get("ts_one_client") or 0) >= 1.0:
        return [f"toy: {r['requests']:,} requests through {r['clients']} client(s)"]
    return []


@pytest.fixture
def registered() -> Iterator[type[Signal]]:
    register(ClientHandshakeSignal)
    try:
        yield ClientHandshakeSignal
    finally:
        unregister("handshake")


def test_toy_signal_reaches_features_links_and_evidence(registered: type[Signal]) -> None:
    ex, acc, _ = population(seed=1)
    det = HuntDetector()
    assert "handshake" in {s.name for s in det.state.signals}
    det.observe_accounts(acc.to_arrow())
    det.observe(ex.to_arrow())
    v = det.verdicts()
    assert v.features is not None
    feats = pl.from_arrow(v.features)
    assert isinstance(feats, pl.DataFrame)
    assert {"handshake.requests", "handshake.ts_one_client"} <= set(feats.columns)
    # Links: the campaign's shared client is a significant artifact, named by its declared label.
    camp = next(c for c in v.campaigns if c["size"] >= 20)
    assert "client_handshake" in {a["kind"] for a in camp["shared_artifacts"]}
    assert any("client handshake \u201cpython-requests/2.31\u201d" in line for line in camp["evidence"])
    # Evidence: the toy's own sentence reaches flagged accounts.
    acct = pl.from_arrow(v.accounts)
    assert isinstance(acct, pl.DataFrame)
    lines = [x for ev in acct.filter("flagged")["evidence"].to_list() for x in ev]
    assert any(line.startswith("toy: ") for line in lines)


def test_toy_signal_gets_the_conformance_checks(registered: type[Signal]) -> None:
    sig = ClientHandshakeSignal()
    for check in yield_checks(sig):
        check(sig)


def test_registration_refuses_clashes(registered: type[Signal]) -> None:
    class Clash(ClientHandshakeSignal):
        name: ClassVar[str] = "handshake2"

    with pytest.raises(ConfigError, match="artifact kind 'client_handshake', already declared by 'handshake'"):
        register(Clash)

    class Taken(Signal):
        name: ClassVar[str] = "temporal"

        def update(self, state: State, rows: pl.DataFrame) -> State:
            return state

        def finalize(self, state: State, n_accounts: int) -> Finding:
            return Finding(pl.DataFrame())

    with pytest.raises(ConfigError, match="signal name 'temporal' is taken"):
        register(Taken)
    assert "handshake2" not in SIGNALS
