"""The log spec page in the repository says what ``../shared/spec/exchange-log.md`` says."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "spec" / "exchange-log.md"


def _table_rows(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.startswith("|")]


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/spec is not next to this checkout")
def test_spec_page_keeps_the_shared_spec() -> None:
    ours = (ROOT / "docs" / "exchange-log.md").read_text()
    theirs = SHARED.read_text()
    assert ours.startswith(theirs.rstrip())  # the spec word for word, then our reading notes
    assert _table_rows(theirs) == _table_rows(ours)[: len(_table_rows(theirs))]


def test_every_spec_column_is_documented() -> None:
    from distillguard.schema import TABLES

    text = (ROOT / "docs" / "exchange-log.md").read_text()
    for table in TABLES.values():
        for name in table.names:
            assert f"| {name} |" in text, name
