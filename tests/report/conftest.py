"""Fixtures of the report tests: a real browser for ``test_browser.py``."""

from tests.browser import browser, page  # noqa: F401  (fixtures)
