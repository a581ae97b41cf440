"""Browser tests: the session's real `creditgate serve` (tests/served.py), driven by headless
Chromium.

Chromium is Debian's (/usr/bin/chromium), driven by Python Playwright; `scripts/test` installs
both when missing. Without them the tests skip, except under CI=true where that is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.served import PORTAL_SECRET as SECRET
from tests.served import Served, Tenant

Server = Served  # the name the browser tests use
__all__ = ["SECRET", "Server", "Tenant"]

# What a page draws and does in the browser is the same whatever database the server keeps its
# books in, and the pages' queries are tried on both backends over HTTP
# (tests/http/test_portal_*.py, test_dashboard_*.py, test_portal_charts.py, ...). So most
# browser tests run on the embedded default, SQLite, marked with this; one test per page
# family (the live balance, the dashboard's charts, Stripe's checkout) runs on both.
ON_SQLITE = pytest.mark.parametrize("served", ["sqlite"], indirect=True)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the browser tests need it under CI=true: {reason}")
    pytest.skip(reason)


def playwright_api() -> Any:
    """playwright.sync_api, or the module is skipped (failed under CI=true) without it."""
    try:
        import playwright.sync_api
    except ImportError:
        reason = "Python Playwright is not installed (pip install -e '.[test]')"
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(reason, allow_module_level=True)
    return playwright.sync_api


# Module scope: Playwright's sync API runs an event loop on this thread while it is open,
# which would stop later async tests in the same worker from starting theirs.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_playwright = playwright_api().sync_playwright
    if not Path(CHROMIUM).exists():
        _missing(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(10_000)
    # Assertions wait as long as actions: on a loaded machine a page may take seconds to draw.
    from playwright.sync_api import expect

    expect.set_options(timeout=10_000)
    yield page
    context.close()


@pytest.fixture
def server(served: Served) -> Served:
    """The session's served creditgate on the test's backend (tests/served.py)."""
    return served


def screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    """The page as shown, into the ignored artifacts/screenshots folder."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def copy_for_readme(path: Path) -> None:
    """Copies a screenshot over the README's only when asked to (UPDATE_SCREENSHOTS=1):
    the suite writes nothing outside ignored folders, so the README's pictures change only
    when someone means them to."""
    if os.environ.get("UPDATE_SCREENSHOTS") != "1":
        return
    docs = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    docs.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, docs / path.name)
