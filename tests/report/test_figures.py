"""Each figure's numbers, checked by hand on the tiny log (six bots, twenty people)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from distillguard.report import figures
from distillguard.report.aggregate import aggregate_log, read_hunt
from distillguard.report.figures import FIGURES, campaign_figures, overview
from tests.report.tiny import CAMPAIGN, PEOPLE, tiny_hunt, tiny_log


@pytest.fixture(scope="module")
def camp(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("tiny")
    log = tiny_log(root / "log")
    hunt = read_hunt(tiny_hunt(root / "hunt", log))
    (c,) = campaign_figures(hunt, aggregate_log(hunt, [log]))
    return c


def test_every_figure_once_in_order(camp: dict[str, Any]) -> None:
    assert tuple(camp["figures"]) == FIGURES and camp["id"] == "C001"


def test_creations_and_daily_volume(camp: dict[str, Any]) -> None:
    cr = camp["figures"]["creations"]
    assert sum(cr["campaign"]) == len(CAMPAIGN) and cr["campaign"][cr["days"].index("2026-04-20")] == 6
    # people signed up 100-119 days before: all before the 30 days shown
    assert sum(cr["benign"]) == 0 and cr["benign_earlier"] == len(PEOPLE)
    dv = camp["figures"]["daily_volume"]
    assert dv["campaign"]["median"] == [10.0] * 3 and dv["benign"]["median"] == [2.0] * 3
    assert dv["campaign"]["active_accounts"] == [6] * 3 and dv["benign"]["active_accounts"] == [20] * 3


def test_hours_rows_are_shares(camp: dict[str, Any]) -> None:
    h = camp["figures"]["hours"]
    rows = dict(zip(h["rows"], h["share"], strict=True))
    assert rows["campaign, UTC"][0] == 1.0 and rows["campaign, claimed local time"][9] == 1.0
    assert rows["not flagged, UTC"][8] == 0.5 and rows["not flagged, claimed local time"][11] == 0.5
    assert h["accounts_without_claim"] == 0


def test_templates_count_members_and_others(camp: dict[str, Any]) -> None:
    t = camp["figures"]["templates"]
    assert t["top"][0] == {"text": "you are asked to come up", "accounts": 5, "elsewhere": 0, "median_share": 1.0}
    assert t["top"][1]["text"] == "other opening" and len(t["top"]) == 2
    assert t["shared_templates"][0]["text"] == "you are asked to come up"
    assert (t["shared_templates"][0]["mean_rank"], t["shared_templates"][0]["test"]) == (0.97, "tail")


def test_output_length_histogram(camp: dict[str, Any]) -> None:
    o = camp["figures"]["output_length"]
    assert sum(o["campaign"]) == pytest.approx(1.0) and o["campaign_mean_tokens"] == 4000.0
    assert o["benign_mean_tokens"] == 100.0 and o["campaign_exchanges"] == 180
    peak = o["edges"][o["campaign"].index(1.0)]
    assert peak <= 4000 < peak * 2 ** (1 / 4) + 1


def test_infrastructure_links_bots_by_what_they_share(camp: dict[str, Any]) -> None:
    g = camp["figures"]["infrastructure"]
    arts = {(n["kind"], n["id"]): n for n in g["nodes"] if n["type"] == "artifact"}
    assert set(arts) == {("device_fp", "bot-sdk"), ("ip_prefix", "45.77.1.0/24"), ("email_domain", "bots.example"),
                         ("signup_prefix", "45.77.1.0/24 in the week of 2026-04-20")}  # fmt: skip
    assert all(n["in_campaign"] == 6 and n["carriers"] == 6 for n in arts.values())
    assert g["accounts_shown"] == 6 and len(g["edges"]) == 6 * 4
    assert all(0 <= n["x"] <= 1 and 0 <= n["y"] <= 1 for n in g["nodes"])


def test_timeline_and_accounts_table(camp: dict[str, Any]) -> None:
    tl = camp["figures"]["timeline"]
    assert tl["days"] == ["2026-04-20", "2026-04-22", "2026-04-23", "2026-04-24"]
    assert tl["exchanges"] == [0, 60, 60, 60] and tl["accounts_created"] == [6, 0, 0, 0]
    t = camp["figures"]["accounts"]
    risks = [r[1] for r in t["rows"]]
    assert risks == sorted(risks, reverse=True) and t["rows"][0][0] == "bot5"
    assert t["rows"][0][-1] == ["bot 5 own sentence"]  # campaign-wide sentences left out
    assert t["rows"][0][3] == 30 and t["rows"][0][7] == "JP"


def test_account_table_is_cut_to_the_riskiest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(figures, "MAX_TABLE_ROWS", 2)
    log = tiny_log(tmp_path / "log")
    hunt = read_hunt(tiny_hunt(tmp_path / "hunt", log))
    agg = aggregate_log(hunt, [log])
    t = campaign_figures(hunt, agg)[0]["figures"]["accounts"]
    assert [r[0] for r in t["rows"]] == ["bot5", "bot4"] and t["members"] == 6
    ov = overview(hunt, agg, [str(log)])
    assert ov["flagged"] == 6 and ov["decisions"] == {"allow": 20, "block": 6} and ov["window"] == ["2026-04-22", "2026-04-24"]
