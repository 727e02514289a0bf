"""Regenerate the screenshots in docs/screenshots/ (the README shows them) in headless Chromium.

    PYTHONPATH=src python scripts/screenshots.py                 # both
    PYTHONPATH=src python scripts/screenshots.py report --hunt H # the report of an existing hunt

``report.png``: the report of the ``demo`` scenario at its default scale, made by the commands a
reader would run (``distillguard simulate --scenario demo``, ``hunt``, ``report``), from the top
of the page to the end of the first campaign. ``dashboard.png``: written by the dashboard's own
browser test (tests/ui/test_app.py) when ``DISTILLGUARD_SCREENSHOTS=1``, so it shows the page that
test has just checked. Needs Chromium (``bash scripts/chromium.sh install``) and Playwright (``dev``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "docs" / "screenshots"
WIDTH = 1400  # px: the report's content is 1200 px wide, plus margins
sys.path.insert(0, str(ROOT))

from tests.browser import chromium_path, image_spread, launch_args  # noqa: E402


def distillguard(*args: str) -> None:
    """Run the CLI as a reader would (the package this Python imports)."""
    subprocess.run([sys.executable, "-c", "from distillguard.cli import main; main()", *args], check=True, stdout=subprocess.DEVNULL)


def report_png(hunt: Path | None, work: Path) -> bytes:
    if hunt is None:
        hunt = work / "hunt"
        distillguard("simulate", "--scenario", "demo", "--out", str(work / "log"))
        distillguard("hunt", str(work / "log"), "--out", str(hunt))
    page_file = work / "report.html"
    distillguard("report", str(hunt), "--out", str(page_file))
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        sys.exit("chromium is not installed: bash scripts/chromium.sh install")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, headless=True, args=launch_args())
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 900}, locale="en-GB", timezone_id="UTC")
            page.goto(page_file.as_uri())
            page.wait_for_function("window.dgReady === true", timeout=120_000)
            bottom = page.eval_on_selector("section.dg-campaign", "s => s.getBoundingClientRect().bottom + window.scrollY")
            return bytes(page.screenshot(full_page=True, clip={"x": 0, "y": 0, "width": WIDTH, "height": bottom + 12}))
        finally:
            browser.close()


def dashboard_png() -> None:
    test = "tests/ui/test_app.py::test_a_block_clicked_in_the_browser_reaches_the_gateway_within_a_second"
    env = dict(os.environ, DISTILLGUARD_SCREENSHOTS="1")
    subprocess.run([sys.executable, "-m", "pytest", test, "-q", "-p", "no:cacheprovider"], cwd=ROOT, env=env, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("which", nargs="*", help="report, dashboard (default: both)")
    ap.add_argument("--hunt", type=Path, help="a hunt output folder to report on instead of simulating demo")
    a = ap.parse_args()
    a.which = a.which or ["report", "dashboard"]
    if set(a.which) - {"report", "dashboard"}:
        ap.error(f"unknown: {sorted(set(a.which) - {'report', 'dashboard'})}")
    SHOTS.mkdir(parents=True, exist_ok=True)
    if "report" in a.which:
        with tempfile.TemporaryDirectory() as tmp:
            png = report_png(a.hunt, Path(tmp))
        spread, colours = image_spread(png)
        if spread < 10 or colours < 50:
            sys.exit(f"the report screenshot looks blank (spread {spread:.1f}, {colours} colours): not written")
        (SHOTS / "report.png").write_bytes(png)
        print(f"{SHOTS / 'report.png'}: {len(png) / 1e6:.2f} MB")
    if "dashboard" in a.which:
        dashboard_png()
        print(SHOTS / "dashboard.png")


if __name__ == "__main__":
    main()
