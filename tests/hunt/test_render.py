"""The hunt's terminal summary at 80 and 120 columns: no line wider than the console, one
line per campaign, evidence cut with a pointer to the report; ``--json`` for machines."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pytest
from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.hunt.render import print_verdicts, summary
from distillguard.verdicts import Verdicts
from tests.hunt.population import labelled_log

LONG = "120 accounts tied to each other by what they share: 1 device fingerprint (2 accounts), " * 4


def verdicts(n_campaigns: int = 12) -> Verdicts:
    ids = [f"acct_{i:020d}" for i in range(40)]
    camp = [f"C{1 + i % n_campaigns:03d}" if i < 30 else None for i in range(40)]
    accounts = pa.table(
        {
            "account_id": ids,
            "risk": [0.99 - i / 100 for i in range(40)],
            "flagged": [c is not None for c in camp],
            "campaign": camp,
            "evidence": [[f"member of campaign {c}", LONG, "peak daily volume 1,234 requests — “quoted” 日本語 text"] for c in camp],
            "decision": ["block" if c else "allow" for c in camp],
        }
    )
    campaigns = [
        {"id": f"C{k + 1:03d}", "size": 123_456, "exchanges": 28_800_000, "span": ["2026-04-22", "2027-01-05"],
         "risk": 0.9979, "evidence": [LONG]}
        for k in range(n_campaigns)
    ]  # fmt: skip
    return Verdicts(accounts, campaigns, unused_signals={"infrastructure": "no ip_prefix in the log " * 8})


@pytest.mark.parametrize("width", [80, 120])
def test_fits_the_width_and_one_line_per_campaign(width: int) -> None:
    v = verdicts()
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    print_verdicts(v, console, out=Path("hunt-out"))
    lines = console.export_text().splitlines()
    assert max(cell_len(line) for line in lines) <= width
    for c in v.campaigns:
        rows = [line for line in lines if line.startswith(f"│ {c['id']} ")]
        assert len(rows) == 1, (c["id"], rows)
        assert rows[0].rstrip().endswith("… │")  # evidence cut, not wrapped
        assert "2026-04-22..2027-01-05" in rows[0] and "28,800,000" in rows[0] and "123,456" in rows[0]
    text = "\n".join(lines)
    assert "  distillguard report hunt-out --out hunt-out/report.html" in lines
    # the account table shows each account's own evidence, not its campaign's sentences
    assert "acct_00000000000000000000" in text and "peak daily volume" in text


def test_summary_is_json_for_machines() -> None:
    doc = json.loads(json.dumps(summary(verdicts(3), Path("o"))))
    assert [c["id"] for c in doc["campaigns"]] == ["C001", "C002", "C003"]
    assert doc["flagged"] == 30 and doc["decisions"] == {"block": 30, "allow": 10}
    assert doc["top_accounts"][0]["evidence"].startswith("peak daily volume")
    assert doc["report"] == "distillguard report o --out o/report.html"


def test_cli_hunt_json_prints_json_instead_of_tables(tmp_path: Path) -> None:
    log = labelled_log(tmp_path / "log", seed=6, casual=80, campaign=12)
    res = CliRunner().invoke(app, ["hunt", str(log), "--out", str(tmp_path / "o"), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["outputs"]["campaigns.json"] == str(tmp_path / "o" / "campaigns.json")
    saved = json.loads((tmp_path / "o" / "campaigns.json").read_text())["campaigns"]
    assert [c["id"] for c in doc["campaigns"]] == [c["id"] for c in saved]
    assert "┃" not in res.stdout and "reading days" not in res.output  # no table; no bar when not a terminal


@pytest.mark.parametrize(("flag", "shown"), [([], False), (["--progress"], True), (["--no-progress"], False)])
def test_progress_bar_on_stderr_only_on_a_terminal_or_when_asked(flag: list[str], shown: bool, tmp_path: Path) -> None:
    log = labelled_log(tmp_path / "log", seed=6, casual=40, campaign=6)
    res = CliRunner().invoke(app, ["hunt", str(log), "--out", str(tmp_path / "o"), "--json", *flag])
    assert res.exit_code == 0, res.output
    assert ("hunt: reading days" in res.stderr) == shown
    assert "reading days" not in res.stdout and json.loads(res.stdout)["accounts"] > 0
