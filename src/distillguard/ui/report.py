"""The hunt's plots: served from the report module (``distillguard report``), never drawn here.

When :mod:`distillguard.report` is importable the report is generated on demand with its own
command, ``distillguard report HUNT_DIR --out FILE`` (the one interface it promises), in a
child process so plotting's memory leaves with it, and kept until the hunt changes. Otherwise
a ``report.html`` already in the hunt folder is served, else nothing (the page says which
command makes one). Campaigns link to the report's element whose ``id`` names them.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

__all__ = ["ReportSource", "anchor_for"]

_ID = re.compile(r"""\bid\s*=\s*["']([^"']+)["']""")


def available() -> bool:
    """Whether this build has the report module."""
    try:
        return importlib.util.find_spec("distillguard.report") is not None
    except (ImportError, ValueError):
        return False


def anchor_for(html: str, campaign: str) -> str | None:
    """The shortest element id in the report that names ``campaign`` (its section), if any.

    >>> anchor_for('<div id="overview"></div><section id="campaign-C001"><div id="C001-chart">', "C001")
    'C001-chart'
    >>> anchor_for('<section id="campaign-C10">', "C1") is None
    True
    """
    names = re.compile(rf"(?<![A-Za-z0-9]){re.escape(campaign)}(?![A-Za-z0-9])", re.IGNORECASE)  # C1, not C10
    ids = [i for i in _ID.findall(html) if names.search(i)]
    return min(ids, key=lambda i: (len(i), i)) if ids else None


class ReportSource:
    """The report of one hunt folder, generated at most once per version of the hunt."""

    def __init__(self, hunt: Path, *, timeout_s: float = 300.0) -> None:
        self.hunt = hunt
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._cached: tuple[tuple[float, ...], str] | None = None
        self.error: str | None = None

    def _version(self) -> tuple[float, ...]:
        return tuple((self.hunt / f).stat().st_mtime for f in ("accounts.parquet", "campaigns.json"))

    def html(self) -> str | None:
        """The report's HTML, or None when this build cannot make one (see :attr:`error`)."""
        with self._lock:  # one generation at a time; the others wait for its result
            version = self._version()
            if self._cached is not None and self._cached[0] == version:
                return self._cached[1]
            text = self._generate() if available() else self._existing(version)
            if text is not None:
                self._cached = (version, text)
            return text

    def _existing(self, version: tuple[float, ...]) -> str | None:
        f = self.hunt / "report.html"
        if f.is_file() and f.stat().st_mtime >= max(version):
            return f.read_text()
        self.error = None
        return None

    def _generate(self) -> str | None:
        with tempfile.TemporaryDirectory(prefix="distillguard-ui-report-") as folder:  # none left behind
            return self._generate_in(Path(folder) / "report.html")

    def _generate_in(self, out: Path) -> str | None:
        cmd = [sys.executable, "-m", "distillguard.cli", "report", str(self.hunt), "--out", str(out)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            self.error = f"`distillguard report` took more than {self.timeout_s:.0f} s"
            return None
        if done.returncode != 0 or not out.is_file():
            self.error = (done.stderr or done.stdout).strip()[-2000:] or f"`distillguard report` exited {done.returncode}"
            return None
        self.error = None
        return out.read_text()
