"""A hunt's output as the dashboard reads it."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from distillguard.errors import ConfigError
from distillguard.review import ReviewFollower, ReviewLog
from distillguard.ui.hunt import HuntSource, standing_of
from distillguard.verdicts import VERDICTS, Verdicts


def _write(out: Path, risk: float) -> None:
    rows = [{"account_id": f"a{i}", "risk": risk, "flagged": True, "campaign": "C1", "evidence": ["e"], "decision": "verify"} for i in range(3)]
    rows.append({"account_id": "b", "risk": 0.1, "flagged": False, "campaign": None, "evidence": None, "decision": "allow"})
    campaign = {"id": "C1", "accounts": ["a0", "a1", "a2"], "risk": risk, "evidence": ["x"], "capabilities": {"coding": {"targeted": True}}}
    Verdicts(pa.Table.from_pylist(rows, schema=VERDICTS), [campaign]).write(out)


def test_a_hunt_is_read_again_when_it_changes(tmp_path: Path) -> None:
    _write(tmp_path, 0.6)
    src = HuntSource(tmp_path)
    h = src.get()
    assert [r.account_id for r in h.acted()] == ["a0", "a1", "a2"] and h.campaigns["C1"].targeted == ["coding"]
    assert h.accounts["b"].evidence == () and [r.account_id for r in h.members("C1")] == ["a0", "a1", "a2"]
    _write(tmp_path, 0.9)
    st = (tmp_path / "accounts.parquet").stat()
    os.utime(tmp_path / "accounts.parquet", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # coarse clocks
    assert src.get().campaigns["C1"].risk == 0.9


def test_a_folder_without_a_hunt_says_which_command_makes_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="distillguard hunt"):
        HuntSource(tmp_path)


def test_the_analysts_latest_decision_stands_over_the_hunts(tmp_path: Path) -> None:
    _write(tmp_path, 0.6)
    row = HuntSource(tmp_path).get().accounts["a0"]
    assert standing_of(row, None) == {"decision": "verify", "source": "hunt", "id": None}
    log = ReviewLog(tmp_path / "d.jsonl")
    d = log.append(by="a", reason="r", action="allow", scope="account", target="a0", accounts=["a0"])
    log.append(by="a", reason="r", action="appeal", scope="account", target="a0", accounts=["a0"])
    assert standing_of(row, ReviewFollower([log.path]).get("a0")) == {"decision": "allow", "source": "analyst", "id": d.id}
