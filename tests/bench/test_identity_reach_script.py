"""benchmarks/identity_reach.py: which accounts any identity link could reach, on hand-made values."""

from __future__ import annotations

from types import ModuleType

import polars as pl
import pytest
from bench_fixtures import benchmark_script


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return benchmark_script("identity_reach")


def test_a_chain_of_cards_is_one_piece_a_pair_is_small_and_webmail_links_nobody(script: ModuleType) -> None:
    rows = [(f"a{i}", "payment_fp", f"card{i // 2}") for i in range(6)]  # a0-a1, a2-a3, a4-a5 share cards
    rows += [("a1", "device", "d1"), ("a2", "device", "d1"), ("a3", "device", "d2"), ("a4", "device", "d2")]  # chain them
    rows += [("a6", "phone_hash", "p"), ("a7", "phone_hash", "p")]  # a pair cut off from the rest
    rows += [(f"a{i}", "email_domain", "gmail.com") for i in range(10)]  # everyone's webmail: links nothing
    values = pl.DataFrame(rows, schema=["account_id", "kind", "value"], orient="row")
    out = script.reach(values, n_accounts=10, max_share=0.5)
    size = dict(out.select("account_id", "piece_size").iter_rows())
    assert {a: size[a] for a in ("a0", "a5", "a6")} == {"a0": 6, "a5": 6, "a6": 2}
    assert "a8" not in size and "a9" not in size  # alone: only the webmail domain
