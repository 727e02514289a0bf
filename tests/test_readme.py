"""Every command the README shows runs as written (placeholders filled in with a small log).

The commands are read from README.md itself, so a command added there without working here
fails this test. ``data fetch`` needs the network and ``watermark suspect`` a model behind an
API, which tests never use here: they run with ``--help`` (``tests/watermark`` drives the
suspect test against a fake endpoint); ``serve``, ``mock-upstream`` and ``ui`` run until stopped, so
they run with ``--help`` too (``tests/gateway`` and ``tests/ui`` drive them); ``make demo`` and ``make test``
are what CI runs.
"""

from __future__ import annotations

import re
import secrets
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
    assert {"simulate", "hunt", "bench", "validate", "data", "report"} <= names


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
            "OUT": str(tmp / "out.json"), "FILE": str(cfg), "HUNT": str(tmp / "hunt")}  # fmt: skip
    if words[0] == "watermark":
        text = tmp / "reply.txt"
        text.write_text("the quick answer is that you should sort the list first and then search it\n")
        subs.update({"FILE": str(text), "FILE...": str(text), "KEYS.json": str(tmp / "keys.json"), "R": "0.9",
                     "C": "c1", "tokenizer.json": str(_tokenizer(tmp))})  # fmt: skip
        if words[1:3] != ["keys", "init"]:
            assert CliRunner().invoke(app, ["watermark", "keys", "init", "--store", str(tmp / "keys.json")]).exit_code == 0
    if words[0] in ("report", "intel") and "HUNT" in words:  # reads a hunt's output: hunt the log first
        assert CliRunner().invoke(app, ["hunt", str(log), "--out", str(tmp / "hunt")]).exit_code == 0
        subs.update({"HUNT": str(tmp / "hunt"), "FILE.html": str(tmp / "report.html"), "report.html": str(tmp / "report.html"),
                     "bundle.json": str(tmp / "bundle.json")})  # fmt: skip
    args = [subs.get(w, w) for w in words]
    if args[0] == "simulate":
        args = [a if a != str(log) else str(tmp / "sim") for a in args]
    if args[:2] in (["data", "fetch"], ["watermark", "suspect"]):
        args = [*args[:2], "--help"]
    if args[0] in ("serve", "mock-upstream", "ui"):  # servers run until stopped: tests/gateway and tests/ui drive them
        args = [args[0], "--help"]
    return args


def _tokenizer(tmp: Path) -> Path:
    """A small word-level tokenizer file, as ``tokenizers`` writes one."""
    import tokenizers as tk

    words = ["the", "quick", "answer", "is", "that", "you", "should", "sort", "list", "first", "and", "then", "search", "it"]
    tok = tk.Tokenizer(tk.models.WordLevel({w: i for i, w in enumerate(["[UNK]", *words])}, unk_token="[UNK]"))
    tok.pre_tokenizer = tk.pre_tokenizers.Whitespace()
    path = tmp / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.mark.parametrize("cmd", COMMANDS)
def test_readme_command_runs(cmd: str, log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = _fill(cmd, log, tmp_path)
    monkeypatch.setenv("DISTILLGUARD_INTEL_KEY", secrets.token_hex(32))  # `intel export`: as the README says, set
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, f"{args}\n{res.output}"
