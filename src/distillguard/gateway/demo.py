"""The demo's gateway step: a slice of the simulated traffic replayed through the gateway with
the official SDKs, against the mock upstream (a stand-in model: no model can be served here),
with the batch hunt's decisions loaded at the door.

Both servers run in this process on loopback and stop at the end; nothing to start by hand.
"""

from __future__ import annotations

import collections
from pathlib import Path

import anthropic
import openai
import polars as pl
from rich.console import Console
from rich.table import Table

from distillguard.gateway.app import create_app
from distillguard.gateway.mock_upstream import MockConfig, create_mock_app
from distillguard.gateway.server import BackgroundServer, GatewaySettings, build_gateway
from distillguard.io import LogReader

__all__ = ["replay_through_gateway"]

OUTCOMES = ("served", "rate_limited", "verify", "block", "other_error")


def replay_through_gateway(
    log: Path, hunt_out: Path, console: Console | None = None, *, accounts: int = 40, per_account: int = 3, sink: Path | None = None
) -> dict[str, dict[str, int]]:
    """Send ``per_account`` of each chosen account's own prompts through the gateway (half of
    the accounts the hunt acted on, half it let be); returns outcome counts by the hunt's decision."""
    console = console or Console()
    verdicts = pl.read_parquet(hunt_out / "accounts.parquet", columns=["account_id", "decision"])
    acted = verdicts.filter(pl.col("decision") != "allow").sort("account_id").head(accounts // 2)
    others = verdicts.filter(pl.col("decision") == "allow").sort("account_id").head(accounts - acted.height)
    chosen = pl.concat([acted, others])
    ids = set(chosen["account_id"].to_list())
    prompts: dict[str, list[str]] = collections.defaultdict(list)
    for batch in LogReader(log).exchange_batches(columns=["account_id", "prompt"]):
        for aid, prompt in zip(batch.column("account_id").to_pylist(), batch.column("prompt").to_pylist(), strict=True):
            if aid in ids and prompt and len(prompts[aid]) < per_account:
                prompts[aid].append(prompt[:2000])
        if all(len(prompts[a]) >= per_account for a in ids):
            break
    keys = {f"demo-{i:04d}": aid for i, aid in enumerate(sorted(ids))}
    by_account = {aid: key for key, aid in keys.items()}
    counts: dict[str, dict[str, int]] = collections.defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
    mock_app = create_mock_app(MockConfig(latency_ms=2, tokens_per_s=20_000, max_output_tokens=64))
    with BackgroundServer(mock_app) as mock:
        settings = GatewaySettings(upstream=mock.url, accounts=str(log), decisions=[str(hunt_out)], keys=keys, live=False,
                                   sink=str(sink) if sink else None)  # fmt: skip
        with BackgroundServer(create_app(build_gateway(settings))) as gw:
            oa = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
            an = anthropic.Anthropic(base_url=gw.url, api_key="unused", max_retries=0)
            for i, row in enumerate(chosen.iter_rows(named=True)):
                aid, decision = row["account_id"], row["decision"]
                key = by_account[aid]
                for prompt in prompts.get(aid, []):
                    counts[decision][_send(oa, an, key, prompt, use_openai=i % 2 == 0)] += 1
    table = Table(title="the batch hunt's decisions at the gateway's door (requests)")
    table.add_column("hunt decision")
    for o in OUTCOMES:
        table.add_column(o.replace("_", " "), justify="right")
    for decision in sorted(counts, key=lambda d: ("allow", "throttle", "verify", "block").index(d) if d in ("allow", "throttle", "verify", "block") else 9):
        table.add_row(decision, *(f"{counts[decision][o]:,}" for o in OUTCOMES))
    console.print(table)
    console.print(
        f"{sum(len(p) for p in prompts.values()):,} requests from {len(ids)} accounts, half of them ones the hunt acted on, "
        "through the gateway with the openai and anthropic SDKs to the mock upstream (a stand-in model: none can be served here)"
    )
    return {k: dict(v) for k, v in counts.items()}


def _send(oa: openai.OpenAI, an: anthropic.Anthropic, key: str, prompt: str, *, use_openai: bool) -> str:
    try:
        if use_openai:
            oa.with_options(api_key=key).chat.completions.create(model="atlas-3", max_tokens=64, messages=[{"role": "user", "content": prompt}])
        else:
            an.with_options(api_key=key).messages.create(model="atlas-3", max_tokens=64, messages=[{"role": "user", "content": prompt}])
    except (openai.RateLimitError, anthropic.RateLimitError):
        return "rate_limited"
    except (openai.PermissionDeniedError, anthropic.PermissionDeniedError) as e:
        return "block" if "block" in str(e) else "verify"
    except (openai.APIError, anthropic.APIError):
        return "other_error"
    return "served"
