"""``distillguard report`` on a simulated scenario's hunt: both files written, the page and
``report.json`` carry the same figures, the path is printed; wrong input is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.hunt import run_hunt
from distillguard.report import FIGURES, write_report
from distillguard.sim import simulate
from tests.report.test_page import assert_self_contained, figures_in_dom, parse


@pytest.fixture(scope="module")
def hunted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("smoke")
    simulate("smoke", scale=1.0, seed=3, out=root / "log")
    run_hunt([root / "log"], out=root / "hunt", progress=False)
    return root / "log", root / "hunt"


def test_cli_writes_page_and_json_with_the_same_figures(hunted: tuple[Path, Path], tmp_path: Path) -> None:
    _, hunt = hunted
    out = tmp_path / "r" / "report.html"
    res = CliRunner().invoke(app, ["report", str(hunt), "--out", str(out)])  # the log: from campaigns.json
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines()[-1] == str(out)
    doc = json.loads((out.parent / "report.json").read_text())
    campaigns = json.loads((hunt / "campaigns.json").read_text())["campaigns"]
    assert [c["id"] for c in doc["campaigns"]] == [c["id"] for c in campaigns] and campaigns
    in_json = {(c["id"], f) for c in doc["campaigns"] for f in c["figures"]}
    dom = parse(out.read_text())
    assert in_json == figures_in_dom(dom) == {(c["id"], f) for c in campaigns for f in FIGURES}
    assert_self_contained(dom)
    assert doc["overview"]["flagged"] == sum(c["size"] for c in campaigns)


def test_write_report_with_log_given(hunted: tuple[Path, Path], tmp_path: Path) -> None:
    log, hunt = hunted
    res = write_report(hunt, tmp_path / "page.html", [log])
    assert res["html_bytes"] < 20e6 and Path(res["json"]).name == "report.json"
    assert json.loads(Path(res["json"]).read_text())["overview"]["logs"] == [str(log)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "NOHUNT"], "not a hunt output folder"),
        (["report", "HUNT", "--out", "DIR"], "is a folder"),
        (["report", "HUNT", "--log", "NOLOG"], "does not exist"),
    ],
)
def test_errors_are_one_line_and_exit_2(
    hunted: tuple[Path, Path], tmp_path: Path, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from distillguard.cli import main

    subs = {"NOHUNT": str(tmp_path), "HUNT": str(hunted[1]), "DIR": str(tmp_path), "NOLOG": str(tmp_path / "nope")}
    monkeypatch.setattr("sys.argv", ["distillguard", *[subs.get(a, a) for a in args]])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) <= 2


@pytest.mark.parametrize(("flag", "shown"), [([], False), (["--progress"], True)])
def test_progress_only_on_a_terminal_or_when_asked(hunted: tuple[Path, Path], tmp_path: Path, flag: list[str], shown: bool) -> None:
    res = CliRunner().invoke(app, ["report", str(hunted[1]), "--out", str(tmp_path / "r.html"), *flag])
    assert res.exit_code == 0, res.output
    assert ("report: reading the log" in res.stderr) == shown and res.stdout.strip() == str(tmp_path / "r.html")
