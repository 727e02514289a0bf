"""Every chart is a plain plotly spec that needs nothing from the network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distillguard.report.aggregate import aggregate_log, read_hunt
from distillguard.report.charts import CHARTS, chart
from distillguard.report.figures import FIGURES, campaign_figures
from tests.report.tiny import tiny_hunt, tiny_log


def test_a_chart_for_every_figure_but_the_table() -> None:
    assert set(CHARTS) == set(FIGURES) - {"accounts"}


@pytest.mark.parametrize("name", sorted(CHARTS))
def test_chart_specs_are_plain_json(name: str, tmp_path: Path) -> None:
    log = tiny_log(tmp_path / "log")
    hunt = read_hunt(tiny_hunt(tmp_path / "hunt", log))
    data = campaign_figures(hunt, aggregate_log(hunt, [log]))[0]["figures"][name]
    spec = chart(name, data)
    assert set(spec) == {"data", "layout"} and spec["data"]
    assert "template" not in spec["layout"] and spec["layout"]["title"]["text"]
    text = json.dumps(spec)
    assert "http://" not in text and "https://" not in text
