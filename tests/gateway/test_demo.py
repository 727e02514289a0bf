"""The demo's gateway step: campaign accounts the hunt acted on are refused, the rest served."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from distillguard.gateway.demo import replay_through_gateway
from distillguard.hunt import run_hunt
from tests.hunt.population import labelled_log


def test_the_hunts_decisions_are_enforced_and_ordinary_accounts_served(tmp_path: Path) -> None:
    log = labelled_log(tmp_path / "log", seed=3, casual=300, campaign=30)
    run_hunt([log], out=tmp_path / "hunt")
    console = Console(record=True, width=200)
    counts = replay_through_gateway(log, tmp_path / "hunt", console, accounts=20, per_account=2, sink=tmp_path / "sink")
    assert counts["allow"]["served"] == sum(counts["allow"].values()) > 0
    refused = {d: c for d, c in counts.items() if d in ("verify", "block")}
    assert refused and all(c["served"] == 0 and c[d] == sum(c.values()) for d, c in refused.items())
    out = console.export_text()
    assert "mock upstream" in out and "stand-in model" in out
