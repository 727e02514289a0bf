"""Real-browser tests: Debian's headless Chromium driven by Playwright, on loopback only.

``bash scripts/chromium.sh install`` installs the browser (``make test`` runs it); Playwright,
from the ``dev`` extra, is pointed at that binary (``DISTILLGUARD_CHROMIUM`` overrides it) and
never downloads one. Without Chromium the tests that need it skip, saying so, except in CI,
where a missing browser is a failure. A page may reach only 127.0.0.1 and local files: any other
request is refused and recorded, so a test can assert a page loads nothing from elsewhere (no CDN).

Use the ``browser`` or ``page`` fixture (import them into a ``conftest.py``).
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

__all__ = ["Loopback", "browser", "chromium_path", "image_spread", "launch_args", "page"]

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def chromium_path() -> str | None:
    """The Chromium binary the tests use, or None when it is not installed."""
    given = os.environ.get("DISTILLGUARD_CHROMIUM")
    if given:
        return given if shutil.which(given) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch_args() -> list[str]:
    """Chromium's switches: no name resolves but loopback's, no proxy, no background traffic."""
    args = [
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",  # no name resolves: loopback only
        "--no-proxy-server",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium's sandbox refuses to run as root (containers, CI)
    return args


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module (not per session: while Playwright's sync API is
    open, its event loop runs in the main thread and ``asyncio.run`` in later tests fails)."""
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):  # `make test` installs it: in CI a missing browser is a failure, not a skip
            pytest.fail("chromium is not installed; `bash scripts/chromium.sh install`")
        pytest.skip("chromium is not installed (Debian's chromium package: `bash scripts/chromium.sh install`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True, args=launch_args())
        try:
            yield b
        finally:
            b.close()


@dataclass
class Loopback:
    """A page whose requests may go to loopback only; what else it tried is in ``offsite``."""

    page: Any
    offsite: list[str] = field(default_factory=list)


@pytest.fixture
def page(browser: Any) -> Iterator[Loopback]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-GB", timezone_id="UTC")
    held = Loopback(context.new_page())

    def guard(route: Any) -> None:
        url = urllib.parse.urlsplit(route.request.url)
        if (url.hostname or "") in LOOPBACK or (url.scheme == "file" and not url.netloc):  # a local file (a report)
            route.continue_()
        else:
            held.offsite.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    held.page.set_default_timeout(10_000)
    try:
        yield held
    finally:
        context.close()


def image_spread(png: bytes) -> tuple[float, int]:
    """A screenshot's pixel standard deviation (grey levels) and number of distinct colours:
    a blank or single-colour page has 0 and 1."""
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    a = np.asarray(img, dtype=np.float64)
    colours = len(np.unique(a.reshape(-1, 3), axis=0))
    return float(a.mean(axis=2).std()), colours
