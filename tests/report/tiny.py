"""A hand-made log and hunt output small enough to check every number of a report by hand."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa

from distillguard.io import write_log
from distillguard.verdicts import Verdicts

T0 = dt.datetime(2026, 4, 22, tzinfo=dt.UTC)
CAMPAIGN = [f"bot{i}" for i in range(6)]  # billed in Japan (UTC+9), active at 00:30 UTC
PEOPLE = [f"person{i}" for i in range(20)]  # billed in Germany (UTC+1 or +2: the middle, +2)


def tiny_log(root: Path, fmt: str = "parquet") -> Path:
    """Six bots sharing a device and a /24 send 10 long replies a day for 3 days; twenty
    people send 2 short ones a day from their own networks."""
    ex: list[dict[str, Any]] = []
    for day in range(3):
        for i, a in enumerate(CAMPAIGN):
            for k in range(10):
                ex.append({"request_id": f"b{day}-{i}-{k}", "ts": T0 + dt.timedelta(days=day, minutes=30 + k),
                           "account_id": a, "input_tokens": 50, "output_tokens": 4000, "ip_prefix": "45.77.1.0/24",
                           "device_fp": "bot-sdk", "prompt": f"You are asked to come up with task {k}"})  # fmt: skip
        for i, a in enumerate(PEOPLE):
            for k in range(2):
                ex.append({"request_id": f"p{day}-{i}-{k}", "ts": T0 + dt.timedelta(days=day, hours=8 + k),
                           "account_id": a, "input_tokens": 20, "output_tokens": 100, "ip_prefix": f"73.0.{i}.0/24",
                           "device_fp": f"dev-{a}", "prompt": f"how do I cook rice {k}"})  # fmt: skip
    acc = [{"account_id": a, "created_at": T0 - dt.timedelta(days=2), "country": "JP", "email_domain": "bots.example",
            "signup_ip": "45.77.1.9"} for a in CAMPAIGN]  # fmt: skip
    acc += [{"account_id": a, "created_at": T0 - dt.timedelta(days=100 + i), "country": "DE",
             "email_domain": "gmail.com", "signup_ip": f"73.0.{i}.5"} for i, a in enumerate(PEOPLE)]  # fmt: skip
    labels = pa.table({"account_id": CAMPAIGN + PEOPLE, "campaign_id": ["c"] * 6 + [None] * 20})
    return write_log(root, pa.Table.from_pylist(ex), pa.Table.from_pylist(acc), labels, fmt=fmt)


def tiny_hunt(out: Path, log: Path | None) -> Path:
    """What a hunt of :func:`tiny_log` would say: the six bots are campaign C001."""
    ids = CAMPAIGN + PEOPLE
    accounts = pa.table(
        {
            "account_id": ids,
            "risk": [0.9 + i / 100 for i in range(6)] + [0.1] * 20,
            "flagged": [True] * 6 + [False] * 20,
            "campaign": ["C001"] * 6 + [None] * 20,
            "evidence": [
                ["member of campaign C001: 6 accounts", "campaign-wide sentence", f"bot {i} own sentence"]
                for i in range(6)
            ]
            + [[]] * 20,
            "decision": ["block"] * 6 + ["allow"] * 20,
        }
    )
    features = pa.table(
        {
            "account_id": ids,
            "template.top_head_text": ["you are asked to come up"] * 5 + ["other opening"] + ["how do i cook rice"] * 20,
            "template.top_share": [1.0] * 6 + [0.5] * 20,
        }
    )
    camp = {"id": "C001", "accounts": CAMPAIGN, "size": 6, "span": ["2026-04-22", "2026-04-24"], "exchanges": 180,
            "risk": 0.95, "evidence": ["campaign-wide sentence"],
            "shared_artifacts": [{"kind": "tpl_head", "label": "prompt template (same opening words)",
                                  "value": "you are asked to come up", "carriers": 5, "unusual_carriers": 5,
                                  "mean_rank": 0.97, "test": "tail"}]}  # fmt: skip
    meta = {"logs": [str(log)] if log is not None else [], "generated_at": "2026-04-25T00:00:00+00:00"}
    Verdicts(accounts, [camp], meta=meta, features=features).write(out)
    return out
