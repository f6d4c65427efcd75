"""A real headless Chromium for end-to-end tests: Debian's chromium driven by Playwright (PyPI).

Playwright's own browser download is not used (its host is unreachable from CI): the
browser is the system one, installed by `scripts/ensure-chromium.sh` (`make test` runs it).
Every page a test opens is screenshotted when the test ends, pass or fail, into
`test-artifacts/screenshots/` (git-ignored): `<test name>.png` when the test used one page,
`<test name>-<user>.png` per page when it used several.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, ViewportSize, expect, sync_playwright

from benefitflow_dev.instance import PROJECT_ROOT, Instance

CHROMIUM = os.environ.get("BENEFITFLOW_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# No sandbox: CI runs as root, where Chromium refuses its sandbox. The rest keeps a headless
# browser from calling home (updates, sync, field trials) on machines without internet.
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic"]
SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
VIEWPORT: ViewportSize = {"width": 1600, "height": 1000}
# A two-core machine running PostgreSQL, four Airflow services and Superset answers slowly at times:
# waits are generous but bounded, so a broken page fails the test instead of hanging it.
ACTION_TIMEOUT_MS = 60_000
NAVIGATION_TIMEOUT_MS = 120_000

OpenPage = Callable[[str], Page]
expect.set_options(timeout=ACTION_TIMEOUT_MS)


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/ensure-chromium.sh (as root it installs Debian's "
                    "chromium package), or point BENEFITFLOW_CHROMIUM at a Chromium binary", pytrace=False)
    browser = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
    yield browser
    browser.close()


@pytest.fixture
def pages(browser: Browser, request: pytest.FixtureRequest) -> Iterator[OpenPage]:
    """`pages(user)` opens a page in a browser context of its own (own cookies: one signed-in user each)."""
    opened: dict[str, Page] = {}

    def open_page(user: str) -> Page:
        assert user not in opened, f"a page for {user} is already open in this test"
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
        opened[user] = context.new_page()
        return opened[user]

    yield open_page
    for user, page in opened.items():
        name = request.node.name if len(opened) == 1 else f"{request.node.name}-{user}"
        screenshot(page, name)
        page.context.close()


def screenshot(page: Page, name: str) -> Path | None:
    """A full-page PNG under test-artifacts/screenshots; a page that cannot be drawn must not hide the test's result."""
    path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        page.evaluate("() => window.scrollTo(0, 0)")  # sticky headers are drawn where the page was scrolled to
        page.screenshot(path=str(path), full_page=True, timeout=30_000)
    except Exception as error:  # noqa: BLE001 - reported, never raised over the test's own outcome
        warnings.warn(f"no screenshot {path.name}: {error}", stacklevel=2)
        return None
    return path


def sign_in_to_airflow(page: Page, instance: Instance, username: str) -> None:
    """The FAB auth manager's login form, as a person uses it; lands on the Airflow UI's home page."""
    page.goto(f"{instance.airflow_url}/auth/login/")
    page.fill("#username", username)
    page.fill("#password", instance.user_password(username))
    page.click("input[type=submit]")
    page.wait_for_url(f"{instance.airflow_url}/")


def sign_in_to_superset(page: Page, instance: Instance, username: str) -> None:
    page.goto(f"{instance.superset_url}/login/")
    page.fill("#username", username)
    page.fill("#password", instance.user_password(username))
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/superset/welcome/?$"))


def open_pending_request(page: Page, instance: Instance, run_id: str) -> None:
    """Browse → Required Actions (pending ones), then this run's request: its task's Required Action tab."""
    page.goto(f"{instance.airflow_url}/required_actions?response_received=false")
    row = page.get_by_role("row").filter(has_text=run_id)
    expect(row).to_have_count(1)
    row.locator('a[href$="/tasks/approve/required_actions"]').first.click()
    page.wait_for_url(re.compile(r".*/tasks/approve/required_actions$"))
