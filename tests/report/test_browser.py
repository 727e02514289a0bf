"""The report in a real browser (headless Chromium, opened offline from a file:// URL): every
chart drawn, one per figure of ``report.json``, nothing fetched from anywhere, no script error,
each chart visibly not blank, and the account tables sort on a click of a column header."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from distillguard.hunt import run_hunt
from distillguard.report import write_report
from distillguard.report.charts import NO_TEMPLATES
from distillguard.sim import simulate
from tests.browser import Loopback, image_spread

# the drawn marks of a chart: bars, markers, lines and filled areas, heatmap images; plotly draws an
# empty bar as "M0,0Z", so a path counts only when it has more to it than that
_MARKS = """el => Array.from(el.querySelectorAll(
    'svg.main-svg .trace.bars .point path, svg.main-svg .trace path.point, svg.main-svg .trace path.js-line,'
    + 'svg.main-svg .trace path.js-fill, svg.main-svg .heatmaplayer .hm image'))
  .filter(m => m.tagName === 'image' ? (m.getAttribute('href') || '').length > 100 : (m.getAttribute('d') || '').length > 6).length"""


@dataclass
class Opened:
    """The report open in a page, its ``report.json`` and what the page said on its console."""

    page: Any
    doc: dict[str, Any]
    offsite: list[str]
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the ``smoke`` scenario's hunt: a few campaigns, every figure."""
    root = tmp_path_factory.mktemp("browser")
    simulate("smoke", scale=1.0, seed=3, out=root / "log")
    run_hunt([root / "log"], out=root / "hunt", progress=False)
    out = root / "report" / "report.html"
    write_report(root / "hunt", out)
    return out


@pytest.fixture
def opened(page: Loopback, report: Path) -> Opened:
    held = Opened(page.page, json.loads(report.with_name("report.json").read_text()), page.offsite)
    page.page.on("console", lambda m: held.errors.append(m.text) if m.type == "error" else None)
    page.page.on("pageerror", lambda e: held.errors.append(str(e)))
    page.page.goto(report.as_uri())
    page.page.wait_for_function("window.dgReady === true", timeout=60_000)
    return held


def test_every_chart_of_report_json_is_drawn(opened: Opened) -> None:
    doc, p = opened.doc, opened.page
    assert len(doc["campaigns"]) >= 2
    assert all(list(c["figures"]) == doc["figures"] for c in doc["campaigns"])
    charts = p.eval_on_selector_all(
        ".dg-chart",
        f"els => els.map(el => [el.dataset.campaign, el.dataset.figure, el.dataset.rendered, "
        f"el.querySelectorAll('svg.main-svg').length, ({_MARKS})(el), "
        f"Array.from(el.querySelectorAll('.annotation-text')).map(a => a.textContent).join(' ')])",
    )
    expected = [(c["id"], f) for c in doc["campaigns"] for f in doc["figures"] if f != "accounts"]
    assert [(c, f) for c, f, *_ in charts] == expected  # one per figure, in the order of report.json
    # A campaign none of whose members repeats a prompt opening has no template bars: its chart says so.
    no_templates = {c["id"] for c in doc["campaigns"] if not c["figures"]["templates"]["top"]}
    said = {c for c, f, _, _, _, notes in charts if f == "templates" and NO_TEMPLATES in notes}
    assert said == no_templates
    undrawn = [
        (c, f, r, svgs, marks)
        for c, f, r, svgs, marks, _ in charts
        if r != "1" or svgs == 0 or (marks == 0 and not (f == "templates" and c in said))
    ]
    assert undrawn == []
    tables = p.eval_on_selector_all("table.dg-table[data-figure=accounts]", "els => els.map(t => [t.dataset.campaign, t.tBodies[0].rows.length])")
    assert [c for c, _ in tables] == [c["id"] for c in doc["campaigns"]] and all(n > 0 for _, n in tables)
    assert opened.offsite == []  # nothing asked of the network: plotly and the data are in the file
    assert opened.errors == []


def test_every_chart_on_screen_is_not_blank(opened: Opened) -> None:
    shots: dict[str, bytes] = {}
    for el in opened.page.locator(".dg-chart").all():
        el.scroll_into_view_if_needed()
        shots[str(el.get_attribute("id"))] = el.screenshot()
    assert len(shots) == len(opened.doc["campaigns"]) * (len(opened.doc["figures"]) - 1)
    spreads = {k: image_spread(png) for k, png in shots.items()}
    blank = {k: s for k, s in spreads.items() if s[0] < 8 or s[1] < 20}
    assert blank == {}, blank  # a white box has spread 0 and 1 colour
    assert len(set(shots.values())) == len(shots)  # no two charts the same picture


def _column(p: Any, table: str, i: int) -> list[Any]:
    """The cells of column ``i``, top to bottom: the sort key a cell carries (``data-v``) or its text."""
    return list(p.eval_on_selector(table, f"t => Array.from(t.tBodies[0].rows).map(r => r.cells[{i}].dataset.v !== undefined ? parseFloat(r.cells[{i}].dataset.v) : r.cells[{i}].textContent)"))


def test_a_click_on_a_column_header_sorts_the_accounts_table(opened: Opened) -> None:
    p = opened.page
    cid = opened.doc["campaigns"][0]["id"]
    table = f"table.dg-table[data-figure=accounts][data-campaign='{cid}']"
    heads = p.eval_on_selector_all(f"{table} thead th", "ths => ths.map(th => th.textContent)")
    rows = sorted(p.eval_on_selector(table, "t => Array.from(t.tBodies[0].rows).map(r => r.innerText)"))
    for column in ("risk", "account", "exchanges"):  # by the number a cell carries, by its text
        i = heads.index(column)
        before = _column(p, table, i)
        assert len(set(before)) > 1, f"{column}: all alike, nothing to sort"
        header = p.locator(f"{table} thead th").nth(i)
        header.click()
        assert header.get_attribute("data-dir") == "desc" and _column(p, table, i) == sorted(before, reverse=True), column
        header.click()
        assert header.get_attribute("data-dir") == "asc" and _column(p, table, i) == sorted(before), column
    assert sorted(p.eval_on_selector(table, "t => Array.from(t.tBodies[0].rows).map(r => r.innerText)")) == rows  # rows moved whole
    assert opened.errors == []
