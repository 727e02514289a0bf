from __future__ import annotations

import datetime as dt
from typing import Any

from distillguard.signals.output_harvesting import OutputHarvestingSignal
from tests.signals.helpers import by_id, finding

T0 = dt.datetime(2026, 4, 22, tzinfo=dt.UTC)


def _rows(harvester: str, n: int) -> list[dict[str, Any]]:
    """``n`` replies of ``harvester`` capped at max_tokens, then ten users' 25 ordinary replies each."""
    rows = [{"request_id": f"h{k}", "ts": T0, "account_id": harvester, "input_tokens": 200, "output_tokens": 4096,
             "max_tokens": 4096, "stop_reason": "max_tokens"} for k in range(n)]  # fmt: skip
    for a in range(10):
        for k in range(25):
            rows.append({"request_id": f"u{a}-{k}", "ts": T0, "account_id": f"u{a}", "input_tokens": 300,
                         "output_tokens": 150 + k, "max_tokens": None, "stop_reason": "end_turn"})  # fmt: skip
    return rows


def test_capped_long_outputs_stand_out() -> None:
    f, idx = finding(OutputHarvestingSignal(), _rows("harvester", 40))
    r = by_id(f, idx)
    assert r["harvester"]["hit_share"] == 1.0 and r["u0"]["hit_share"] == 0.0
    assert r["harvester"]["ts_hit_share"] > 1.0 and r["u0"]["ts_hit_share"] == 0.0
    assert r["harvester"]["mt_top"] == 4096
    assert f.explain is not None
    lines = f.explain(r["harvester"])
    assert any(line.startswith("40 of 40 replies (100%) stopped at max_tokens") for line in lines)


def test_a_harvester_with_few_replies_ranks_before_it_has_twenty() -> None:
    f, idx = finding(OutputHarvestingSignal(), _rows("new", 8))
    r = by_id(f, idx)
    for ts in ("ts_mean_out", "ts_hit_share", "ts_out_in"):
        assert r["new"][ts] > max(r[f"u{a}"][ts] for a in range(10)), ts
