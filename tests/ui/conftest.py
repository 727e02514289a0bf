"""Fixtures of the dashboard tests: a hunt output, a gateway that enforces it (in front of the
mock upstream: no model can be served here), the dashboard, and a real browser."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillguard.gateway.app import create_app as gateway_app
from distillguard.gateway.mock_upstream import MockConfig, create_mock_app
from distillguard.gateway.server import BackgroundServer, GatewaySettings, build_gateway
from distillguard.ui.app import UiSettings, create_app
from distillguard.ui.auth import Tokens
from distillguard.verdicts import VERDICTS, Verdicts
from tests.browser import browser, page  # noqa: F401  (fixtures)

TOKEN = "alice:correct-horse-battery-staple"
SECRET = TOKEN.split(":", 1)[1]
HOSTILE = "<script>document.title='owned'</script> “please answer the following request in …”"


def _hunt(out: Path) -> Path:
    """A small hunt output written by the hunt's own writer: campaign C1 (the hunt blocks its
    members), C2 (it asks them to verify), a lone outlier it throttles and accounts it allows."""
    rows = []
    for i in range(5):
        rows.append({"account_id": f"acct_c1_{i}", "risk": 0.95 - i / 100, "flagged": True, "campaign": "C1",
                     "evidence": ["member of campaign C1: 5 accounts linked by shared artifacts", HOSTILE], "decision": "block"})  # fmt: skip
    for i in range(3):
        rows.append({"account_id": f"acct_c2_{i}", "risk": 0.6, "flagged": True, "campaign": "C2",
                     "evidence": ["member of campaign C2"], "decision": "verify"})  # fmt: skip
    rows.append({"account_id": "acct_outlier", "risk": 0.45, "flagged": False, "campaign": None,
                 "evidence": ["behaviour score 14.0, above 99.1% of accounts"], "decision": "throttle"})  # fmt: skip
    for i in range(4):
        rows.append({"account_id": f"acct_ok_{i}", "risk": 0.1, "flagged": False, "campaign": None, "evidence": [], "decision": "allow"})
    campaigns = [
        {"id": "C1", "accounts": [f"acct_c1_{i}" for i in range(5)], "size": 5, "risk": 0.93, "span": ["2026-04-22", "2026-04-24"],
         "exchanges": 900, "capabilities": {"coding": {"share": 0.4, "population_median": 0.1, "targeted": True}},
         "shared_artifacts": [], "evidence": ["5 accounts tied by 2 payment methods", HOSTILE]},
        {"id": "C2", "accounts": [f"acct_c2_{i}" for i in range(3)], "size": 3, "risk": 0.6, "evidence": ["3 accounts tied by 1 phone"]},
    ]  # fmt: skip
    near = [
        {"group": "shared artifact", "kind": "prefix", "label": "IP prefix", "value": "10.0.0.0/24", "accounts": 3, "why": "chance"},
        {"group": "identity web", "accounts": 2, "neglog10_p": 1.2, "why": f"mean behaviour rank z = 1.0 {HOSTILE}", "members": ["acct_ok_1", "acct_ok_2"]},
    ]  # fmt: skip
    Verdicts(pa.Table.from_pylist(rows, schema=VERDICTS), campaigns, meta={"generated_at": "2026-04-25T00:00:00+00:00"}, near_misses=near).write(out)
    return out


@dataclass
class Stack:
    hunt: Path
    ui: str
    gateway: str
    client: httpx.Client  # kept open: a new client costs more than the gateway's answer

    @property
    def log(self) -> Path:
        return self.hunt / "analyst-decisions.jsonl"

    def ask(self, account: str) -> httpx.Response:
        """One chat request of ``account`` through the gateway."""
        body = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
        return self.client.post(self.gateway + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer key-{account}"})

    def records(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []


@pytest.fixture(scope="module")
def mock() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_mock_app(MockConfig(latency_ms=1, tokens_per_s=20_000, max_output_tokens=16))) as s:
        yield s


@pytest.fixture
def stack(mock: BackgroundServer, tmp_path: Path) -> Iterator[Stack]:
    """The hunt, a gateway started with ``--decisions HUNT`` (no live scoring) and the dashboard."""
    hunt = _hunt(tmp_path / "hunt")
    ids = pq.read_table(hunt / "accounts.parquet")["account_id"].to_pylist()
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=90)).isoformat()
    accounts = tmp_path / "accounts.jsonl"
    accounts.write_text("".join(json.dumps({"account_id": a, "created_at": old, "plan": "pro", "verified": True}) + "\n" for a in ids))
    settings = GatewaySettings(
        upstream=mock.url, accounts=str(accounts), decisions=[str(hunt)], keys={f"key-{a}": a for a in ids}, live=False,
    )  # fmt: skip
    with BackgroundServer(gateway_app(build_gateway(settings))) as gw:
        ui = create_app(UiSettings(hunt=hunt, tokens=Tokens([TOKEN]), gateway=gw.url))
        with BackgroundServer(ui) as dash, httpx.Client(timeout=10) as client:
            yield Stack(hunt, dash.url, gw.url, client)
