"""The page is self-contained (nothing from the network) and has one element per figure
per campaign, with the ids and classes a browser test looks for."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from distillguard.report import build_report
from distillguard.report.figures import FIGURES
from distillguard.report.page import render_page
from tests.report.tiny import tiny_hunt, tiny_log


class Dom(HTMLParser):
    """Tags with their attributes, and the text of each <script> and <style>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.styles: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._in = tag
            if tag == "script":
                self.scripts.append((dict(attrs), ""))

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)
        elif self._in == "style":
            self.styles.append(data)


def parse(html: str) -> Dom:
    dom = Dom()
    dom.feed(html)
    return dom


def figures_in_dom(dom: Dom) -> set[tuple[str, str]]:
    return {(str(a["data-campaign"]), str(a["data-figure"])) for _, a in dom.tags if "data-figure" in a and "data-campaign" in a}


def assert_self_contained(dom: Dom) -> None:
    for tag, attrs in dom.tags:
        for name in ("src", "href", "data", "srcset", "action"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//")), f"<{tag} {name}={value}> loads from the network"
        assert not (tag == "link" and attrs.get("rel") == "stylesheet"), "a stylesheet outside the page"
    assert all(not a.get("src") for a, _ in dom.scripts), "a script outside the page"
    assert not any(re.search(r"@import|url\(\s*['\"]?(https?:)?//", s) for s in dom.styles)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("tiny")
    return build_report(tiny_hunt(root / "hunt", tiny_log(root / "log")))


def test_page_is_self_contained_with_plotly_inline(report: dict[str, Any]) -> None:
    html = render_page(report)
    dom = parse(html)
    assert_self_contained(dom)
    inline = [t for a, t in dom.scripts if not a.get("type")]
    assert any("Plotly" in t and len(t) > 1_000_000 for t in inline)  # plotly.js, once
    assert sum("Plotly" in t and len(t) > 1_000_000 for t in inline) == 1


def test_one_element_per_figure_per_campaign(report: dict[str, Any]) -> None:
    dom = parse(render_page(report))
    ids = [c["id"] for c in report["campaigns"]]
    assert figures_in_dom(dom) == {(c, f) for c in ids for f in FIGURES}
    charts = [a for t, a in dom.tags if "dg-chart" in (a.get("class") or "").split()]
    assert len(charts) == len(ids) * (len(FIGURES) - 1)
    assert all(a["id"] == f"{a['data-campaign']}-{a['data-figure']}" for a in charts)
    (specs,) = [t for a, t in dom.scripts if a.get("id") == "dg-specs"]
    assert set(json.loads(specs)) == {a["id"] for a in charts}
    tables = [a for t, a in dom.tags if t == "table" and a.get("data-figure") == "accounts"]
    assert len(tables) == len(ids) and all("dg-table" in (a.get("class") or "") for a in tables)


def test_text_is_escaped_and_script_cannot_be_closed_early(report: dict[str, Any]) -> None:
    report = json.loads(json.dumps(report))
    c = report["campaigns"][0]
    c["evidence"] = ["<script>alert(1)</script>"]
    c["figures"]["templates"]["top"][0]["text"] = "</script><b>x"
    html = render_page(report)
    assert "<script>alert(1)</script>" not in html and "</script><b>x" not in html
    assert_self_contained(parse(html))


def test_no_campaign_still_a_page(tmp_path: Path, report: dict[str, Any]) -> None:
    empty = dict(report, campaigns=[])
    dom = parse(render_page(empty))
    assert figures_in_dom(dom) == set()
    assert any(a.get("id") == "overview" for _, a in dom.tags)


def test_near_misses_are_a_table_with_the_accounts_to_watch(report: dict[str, Any]) -> None:
    report = json.loads(json.dumps(report))
    report["overview"]["near_miss_groups"] = [
        {"group": "shared artifact", "label": "IP prefix", "value": "10.0.0.0/24", "accounts": 3, "neglog10_p": 3.0, "why": "chance"},
        {"group": "identity web", "accounts": 10, "neglog10_p": 1.6, "why": "mean behaviour rank z = 2.0",
         "members": [f"acct_{i}" for i in range(9)] + ["<script>x</script>"]},
    ]  # fmt: skip
    html = render_page(report)
    dom = parse(html)
    assert any(t == "table" and a.get("id") == "overview-near-misses" for t, a in dom.tags)
    assert "acct_7" in html and "acct_8" not in html and "and 2 more" in html  # the first eight, then how many
    assert "IP prefix: 10.0.0.0/24" in html and "10^-3.0" in html and "<script>x" not in html
    assert html.index("IP prefix: 10.0.0.0/24") > html.index("acct_0")  # accounts to watch first
    assert "overview-near-misses" not in render_page(dict(report, overview=dict(report["overview"], near_miss_groups=[])))
