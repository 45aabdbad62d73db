"""Browser tests: Playwright for Python driving Debian's Chromium against pytest-django's live_server.

Playwright's sync API runs an event loop in this thread, which trips Django's async-unsafe guard on every
ORM call the tests make; the tests are single-threaded, so the guard is switched off here.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import PROJECT_ROOT

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = PROJECT_ROOT / "tests" / "screenshots"


def _unavailable_reason() -> str:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return ""


@pytest.fixture(scope="session")
def browser():
    reason = _unavailable_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"Browser tests must run in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 900},
                                  accept_downloads=True, timezone_id="Europe/Paris")
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def shot():
    """shot(page, name): a full-page screenshot in tests/screenshots/<name>.png (git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def workers(isolated_storage, redis_url, flush_queues):
    """Two real rqworker processes on the test database, as in tests/e2e."""
    from tests.helpers import database_url_for_subprocesses

    env = {
        **os.environ,
        "DEBUG": "1",
        "DATA_DIR": str(isolated_storage),
        "ARTIFACT_ROOT": str(isolated_storage / "artifacts"),
        "DATABASE_URL": database_url_for_subprocesses(),
        "REDIS_URL": redis_url,
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    processes = [
        subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "manage.py"), "rqworker", "batch", "training"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    yield processes
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=20)


@pytest.fixture
def writer(db):
    from tests import factories

    return factories.make_user("wendy", write=True, password="a long enough password")


def sign_in(page, username: str = "wendy", password: str = "a long enough password") -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dataset-groups/")


@pytest.fixture
def signed_in_writer(page, writer):
    """The test's page signed in as the writer."""
    sign_in(page)


def expect(*args, **kwargs):
    """Playwright's expect, imported when a test runs (collection must not need playwright)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(*args, **kwargs)
