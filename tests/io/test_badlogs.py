"""The corpus of broken logs (``tests/io/badlogs.py``) through the readers and every command:
no traceback ever, every good row kept, and ``hunt`` never exits 0 after losing input."""

from __future__ import annotations

from pathlib import Path

import pytest

from distillguard.cli import main
from distillguard.io import LogReader, RequestIds

from .badlogs import FORMATS, Case, corpus

NAMES = ["clean", "truncated", "garbage", "header_typo", "invalid_utf8", "negative_tokens", "bad_type",
         "before_created_and_future", "unknown_account", "duplicate_ids", "optional_typo", "empty_file",
         "given_twice", "mapping_typo", "no_accounts"]  # fmt: skip
CASES = [(fmt, name) for fmt in FORMATS for name in NAMES]


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Case]:
    made = corpus(tmp_path_factory.mktemp("badlogs"))
    assert {(c.fmt, c.name) for c in made} == set(CASES)
    return {(c.fmt, c.name): c for c in made}


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    monkeypatch.setattr("sys.argv", ["distillguard", *argv])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(("fmt", "name"), CASES, ids=[f"{f}-{n}" for f, n in CASES])
def test_readers_keep_every_good_row(cases: dict[tuple[str, str], Case], fmt: str, name: str) -> None:
    case = cases[(fmt, name)]
    ids = RequestIds()
    kept = 0
    for root in case.logs:
        r = LogReader(root, mapping=case.mapping, request_ids=ids)
        kept += sum(b.num_rows for b in r.exchange_batches())
        for issue in r.issues.issues:
            assert issue.source.path and issue.message  # every issue says where and what
    assert kept == case.good_rows


@pytest.mark.parametrize(("fmt", "name"), CASES, ids=[f"{f}-{n}" for f, n in CASES])
def test_commands_never_print_a_traceback_and_hunt_never_hides_a_loss(
    cases: dict[tuple[str, str], Case], fmt: str, name: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    case = cases[(fmt, name)]
    mapping = ["--mapping", str(case.mapping)] if case.mapping else []
    code, err = _run(["hunt", *map(str, case.logs), "--out", str(tmp_path / "hunt"), *mapping], monkeypatch, capsys)
    assert "Traceback" not in err
    assert code == case.exit_code, err
    if code:
        assert "could not be read" in err and "results were written" in err
        assert (tmp_path / "hunt" / "accounts.parquet").exists()  # nothing accepted is lost
    code, err = _run(["validate", str(case.logs[0]), *mapping], monkeypatch, capsys)
    assert "Traceback" not in err and code in (0, 1)
    code, err = _run(["bench", str(case.logs[0]), "--replay-every", "24", *mapping], monkeypatch, capsys)
    assert "Traceback" not in err and code in (0, 1, 2), err
