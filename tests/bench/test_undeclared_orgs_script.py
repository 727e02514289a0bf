"""benchmarks/undeclared_orgs.py: the log again with every ``org_id`` emptied, hunted and scored."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
from bench_fixtures import benchmark_script

from distillguard.io import LogReader, write_log

T0 = dt.datetime(2026, 4, 22, tzinfo=dt.UTC)


def _log(root: Path) -> Path:
    """Six colleagues of one declared organisation (its card and domain, registered a year
    apart) and twenty people, each sending two requests a day for three days."""
    staff, people = [f"staff{i}" for i in range(6)], [f"person{i}" for i in range(20)]
    ex: list[dict[str, Any]] = [
        {"request_id": f"{a}-{d}-{k}", "ts": T0 + dt.timedelta(days=d, hours=9 + k), "account_id": a,
         "input_tokens": 30, "output_tokens": 200, "ip_prefix": f"73.0.{i}.0/24", "prompt": f"question {k} of {a}"}
        for i, a in enumerate(staff + people) for d in range(3) for k in range(2)
    ]  # fmt: skip
    acc = [{"account_id": a, "created_at": T0 - dt.timedelta(days=60 * (i + 1)), "email_domain": "firm.example",
            "payment_fp": "pm_firm", "org_id": "org_firm", "country": "DE"} for i, a in enumerate(staff)]  # fmt: skip
    acc += [{"account_id": a, "created_at": T0 - dt.timedelta(days=30 + i), "email_domain": "gmail.com",
             "payment_fp": None, "org_id": None, "country": "DE"} for i, a in enumerate(people)]  # fmt: skip
    labels = pa.table({"account_id": staff + people, "campaign_id": pa.nulls(26, pa.string()),
                       "archetype": ["org_member"] * 6 + ["casual"] * 20})  # fmt: skip
    return write_log(root, pa.Table.from_pylist(ex), pa.Table.from_pylist(acc), labels)


def test_the_copy_declares_no_organisation_and_keeps_every_other_table(tmp_path: Path) -> None:
    log = _log(tmp_path / "log")
    got = benchmark_script("undeclared_orgs").main([str(log), "--out", str(tmp_path / "out"), "--json", str(tmp_path / "r.json")])
    copy = LogReader(tmp_path / "out" / "log")
    accounts = pl.from_arrow(copy.accounts())
    assert isinstance(accounts, pl.DataFrame)
    assert accounts.height == 26 and accounts["org_id"].null_count() == 26 and accounts["payment_fp"].null_count() == 20
    original = pl.from_arrow(LogReader(log).accounts())
    assert isinstance(original, pl.DataFrame) and original["org_id"].null_count() == 20  # the log itself is untouched
    assert sum(b.num_rows for b in copy.exchange_batches()) == 26 * 6
    assert (tmp_path / "out" / "hunt" / "accounts.parquet").exists()
    assert got["org_id"] == "emptied" and got["log"] == str(log) and got["benign_accounts"] == 26
    assert set(got["benign_flagged_share"]) == {"org_member", "casual"}
    assert (tmp_path / "r.json").read_text().startswith("{")
