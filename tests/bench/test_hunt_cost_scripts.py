"""benchmarks/bench_update_per_row.py and bench_checkpoint_writes.py: where a hunt's time goes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from distillguard.sim import simulate

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_update_per_row.py"


@pytest.fixture(scope="module")
def smoke_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("per-row-smoke")
    simulate("smoke", seed=3, out=out, progress=False, responses=False)
    return out


def test_times_the_chosen_signals_on_the_pieces_asked_for(smoke_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "per-row.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--log", str(smoke_log), "--skip", "1", "--pieces", "2",
         "--signal", "temporal", "--signal", "template", "--json", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    got = json.loads(out.read_text())
    assert got["pieces"] == 2 and got["exchanges"] > 0
    assert set(got["us_per_exchange"]) == {"temporal", "template"}
    assert all(v["enrich"] >= 0 and v["aggregate"] > 0 for v in got["us_per_exchange"].values())


@pytest.mark.parametrize("mode", [[], ["--foreground"]], ids=["writer-thread", "foreground"])
def test_checkpoint_writes_are_timed_after_each_day(smoke_log: Path, tmp_path: Path, mode: list[str]) -> None:
    """benchmarks/bench_checkpoint_writes.py: with a checkpoint after every day, one write per
    day but the last (the hunt removes its checkpoint when it ends), each timed and sized, with
    how long the hunt waited for it."""
    out = tmp_path / "writes.json"
    script = SCRIPT.with_name("bench_checkpoint_writes.py")
    run = subprocess.run([sys.executable, str(script), "--log", str(smoke_log), "--every", "0", *mode, "--json", str(out)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    got = json.loads(out.read_text())
    assert got["background"] is (not mode)
    days = [w["after_day"] for w in got["writes"]]
    assert days and days == sorted(days) and days[0] == 1
    assert all(w["on_disk_mib"] >= w["written_mib"] > 0 and w["write_s"] >= 0 and w["held_s"] >= 0 for w in got["writes"])
    if mode:  # in the hunt's thread, the hunt waits for all of each write
        assert all(w["held_s"] >= w["write_s"] for w in got["writes"])
