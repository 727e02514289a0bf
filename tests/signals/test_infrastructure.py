from __future__ import annotations

import datetime as dt

import polars as pl

from distillguard.signals.infrastructure import InfrastructureSignal
from tests.signals.helpers import by_id, finding

T0 = dt.datetime(2026, 4, 22, tzinfo=dt.UTC)


def test_prefix_from_ip_datacenter_share_and_artifacts() -> None:
    rows = []
    for a in range(4):
        for k in range(10):
            rows.append({"request_id": f"d{a}{k}", "ts": T0, "account_id": f"dc{a}", "ip": f"45.77.1.{k}",
                         "asn": 20473, "device_fp": f"rot-{a}-{k}", "input_tokens": 1, "output_tokens": 1})  # fmt: skip
    for k in range(10):
        rows.append({"request_id": f"h{k}", "ts": T0, "account_id": "home", "ip": "73.1.2.3", "asn": 7922,
                     "device_fp": "laptop", "input_tokens": 1, "output_tokens": 1})  # fmt: skip
    f, idx = finding(InfrastructureSignal(), rows)
    r = by_id(f, idx)
    assert r["dc0"]["dc_share"] == 1.0 and r["home"]["dc_share"] == 0.0
    assert f.artifacts is not None
    prefixes = f.artifacts.filter(pl.col("kind") == "prefix")
    shared = prefixes.group_by("value").len().sort("len", descending=True)
    assert shared["len"][0] == 4  # the four datacenter accounts share 45.77.1.0/24
    assert f.texts is not None and "45.77.1.0/24" in f.texts["text"].to_list()
