"""Every command the README shows runs as written (placeholders filled in with a small log).

The commands are read from README.md itself, so a command added there without working here
fails this test. ``data fetch`` needs the network, which tests never use: it runs with
``--help``; ``make demo`` and ``make test`` are what CI runs.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distillguard.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _commands() -> list[str]:
    found = re.findall(r"`(distillguard [^`]+)`", README)
    out: list[str] = []
    for cmd in found:
        cmd = cmd.replace("\\|", "|")
        for part in cmd.split(" / "):  # "data where / data fetch"
            part = part.strip()
            if not part.startswith("distillguard"):
                part = "distillguard " + part
            if part not in out and not part.endswith("distillguard"):
                out.append(part)
    return out


COMMANDS = _commands()


def test_readme_shows_every_command() -> None:
    names = {c.split()[1] for c in COMMANDS}
    assert {"simulate", "hunt", "bench", "validate", "data"} <= names


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("readme") / "log"
    res = CliRunner().invoke(app, ["simulate", "--scenario", "smoke", "--seed", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def _fill(cmd: str, log: Path, tmp: Path) -> list[str]:
    cfg = tmp / "hunt.yaml"
    cfg.write_text("target_fpr: 0.001\n")
    words = []
    for w in shlex.split(cmd)[1:]:
        w = w.strip("[]")
        if "|" in w:  # a choice: the first one
            w = w.split("|")[0]
        words.append(w)
    subs = {"NAME": "smoke", "X": "0.5", "N": "3", "DIR": str(tmp / "out"), "LOG": str(log), "LOGS": str(log),
            "OUT": str(tmp / "out.json"), "FILE": str(cfg)}  # fmt: skip
    args = [subs.get(w, w) for w in words]
    if args[0] == "simulate":
        args = [a if a != str(log) else str(tmp / "sim") for a in args]
    if args[:2] == ["data", "fetch"]:
        args.append("--help")
    return args


@pytest.mark.parametrize("cmd", COMMANDS)
def test_readme_command_runs(cmd: str, log: Path, tmp_path: Path) -> None:
    args = _fill(cmd, log, tmp_path)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, f"{args}\n{res.output}"
