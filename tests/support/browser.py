"""Debian's Chromium driven by Playwright, for tests of what a person sees.

Under ``CI=true`` a missing browser fails the run (CI must run these tests); elsewhere the
tests skip with the reason. Screenshots go to ``tests/artifacts/`` (not committed), named by
the test that took them, so a reviewer can open them after a run.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@contextmanager
def launch_browser(*extra_args: str) -> Iterator[object]:
    if CHROMIUM is None:
        if IN_CI:
            pytest.fail("CI=true but Debian's chromium is not installed (make test installs it)")
        pytest.skip("no chromium on this machine: `make test` installs Debian's package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: object, name: str) -> Path:
    """Save a full-page screenshot as ``tests/artifacts/<name>.png`` and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + ".png")
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path


@contextmanager
def another_browser(browser: object, *extra_args: str) -> Iterator[object]:
    """A second Chromium with more flags (e.g. ``--force-dark-mode``), started by the same
    Playwright as the session's ``browser`` (Playwright's sync API runs one at a time)."""
    other = browser.browser_type.launch(  # type: ignore[attr-defined]
        executable_path=CHROMIUM, args=[*ARGS, *extra_args])
    try:
        yield other
    finally:
        other.close()
