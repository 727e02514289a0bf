"""The dashboard's report source: it makes the hunt's report and leaves nothing behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from distillguard.ui import report as report_mod
from distillguard.ui.report import ReportSource
from tests.report.tiny import tiny_hunt, tiny_log


@pytest.mark.skipif(not report_mod.available(), reason="the report extra is not installed")
def test_the_report_is_made_in_a_folder_that_is_removed_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    source = ReportSource(tiny_hunt(tmp_path / "hunt", tiny_log(tmp_path / "log")))
    html = source.html()
    assert html is not None and "C001" in html, source.error
    assert list(scratch.iterdir()) == []  # each server start used to leave a folder in /tmp
    assert source.html() is html  # cached until the hunt changes
