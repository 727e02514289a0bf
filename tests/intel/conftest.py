"""A small log and hunt output with two campaigns and bystanders, and an OpenTAXII 2.1 server."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from distillguard.intel.keyed import ConsortiumKey
from distillguard.io import LogWriter
from tests.intel.taxii_server import TaxiiServer

KEY = ConsortiumKey(hashlib.sha256(b"intel-test-key").digest(), epoch=7)
T0 = dt.datetime(2026, 4, 22, tzinfo=dt.UTC)
TEMPLATE = ("Below is an instruction that describes a task, paired with an input that provides further context. "
            "Write a response that appropriately completes the request about {topic} for case {n}.")  # fmt: skip
TOPICS = ["sorting algorithms", "binary trees", "graph search", "dynamic programming", "hash tables"]


def _build(root: Path) -> tuple[Path, Path]:
    """Campaign C001: 8 accounts on 82.44.7.0/24 with two devices and a private mail domain;
    C002: 5 accounts sharing a phone and a card. Bystanders share a NAT (82.44.9.1) with
    two C001 members and use gmail.com, so neither may leave."""
    rng = random.Random(5)
    log, hunt = root / "log", root / "hunt"
    accounts, rows = [], []
    c1 = [f"acct_c1_{i}" for i in range(8)]
    c2 = [f"acct_c2_{i}" for i in range(5)]
    benign = [f"acct_b_{i}" for i in range(12)]
    for a in c1 + c2 + benign:
        dom = "torol-labs.com" if a in c1 else "gmail.com"
        accounts.append({"account_id": a, "created_at": T0 - dt.timedelta(days=3), "email": f"{a}@{dom}", "email_domain": dom,
                         "phone_hash": "+44 20 7946 0958" if a in c2 else f"+1415555{rng.randrange(1000, 9999)}",
                         "payment_fp": "card_shared_77" if a in c2 else f"card_{a}", "plan": "free"})  # fmt: skip
    n = 0
    for a in c1 + c2 + benign:
        for j in range(20):
            if a in c1:
                ip, dev = f"82.44.7.{10 + (n % 6)}", ("t13d1516h2_aaa" if j % 2 else "t13d1516h2_bbb")
                if a in c1[:2] and j == 0:
                    ip = "82.44.9.1"
                prompt = TEMPLATE.format(topic=rng.choice(TOPICS), n=rng.randrange(1000))
            elif a in c2:
                ip, dev, prompt = f"2001:db8:5::{n % 3 + 1}", "sdk_x", f"Question {j}: what is {j} plus {j}?"
            else:
                ip, dev, prompt = "82.44.9.1" if j % 2 else f"82.{rng.randrange(100, 200)}.1.{rng.randrange(1, 250)}", "chrome", "hello, how are you today?"
            rows.append({"request_id": f"r{n}", "ts": T0 + dt.timedelta(minutes=7 * n), "account_id": a, "ip": ip,
                         "device_fp": dev, "prompt": prompt, "input_tokens": 50, "output_tokens": 200})  # fmt: skip
            n += 1
    with LogWriter(log, overwrite=True) as w:
        w.write_accounts(pa.Table.from_pylist(accounts))
        w.write_exchanges(pa.Table.from_pylist(rows))
    hunt.mkdir()
    camp = [
        {"id": "C001", "accounts": c1, "size": 8, "span": ["2026-04-22", "2026-04-23"], "exchanges": 160, "risk": 0.9,
         "shared_artifacts": [{"kind": "tpl_head", "label": "prompt template (same opening words)",
                               "value": "below is an instruction that describes", "id": "0", "carriers": 8}]},
        {"id": "C002", "accounts": c2, "size": 5, "span": ["2026-04-22", "2026-04-23"], "exchanges": 100, "risk": 0.7,
         "shared_artifacts": []},
    ]  # fmt: skip
    meta = {"generated_at": "2026-04-24T00:00:00+00:00", "logs": [str(log)]}
    (hunt / "campaigns.json").write_text(json.dumps({"campaigns": camp, "meta": meta}))
    return log, hunt


@pytest.fixture(scope="session")
def hunt_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(log, hunt_dir)``."""
    return _build(tmp_path_factory.mktemp("intel"))


@pytest.fixture()
def taxii() -> Iterator[TaxiiServer]:
    with TaxiiServer() as server:
        yield server
