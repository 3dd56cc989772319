"""Browser fixtures: Debian's chromium driven by Playwright's sync API against pytest-django's live server.

Every page a test visits is checked the same way: no console errors or uncaught exceptions, and no
horizontal overflow on a laptop (1366x768) or a tablet (768x1024). The browser is /usr/bin/chromium
from Debian's packages (never a downloaded one); without it the browser tests skip and say why.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"
LAPTOP = {"width": 1366, "height": 768}
TABLET = {"width": 768, "height": 1024}
SCREENSHOT_HEIGHT = 1000
REFLOW_MS = 3000
MSG_NO_CHROMIUM = (f"{CHROMIUM} is absent: the browser journeys use Debian's chromium "
                   "(apt-get install chromium; .ci/run installs it in CI)")
MSG_NO_PLAYWRIGHT = "playwright is not installed: pip install -r requirements-dev.txt"

# Plain text a browser console may print that says nothing about the page (none known yet).
IGNORED_CONSOLE: tuple[str, ...] = ()

# Is the focused element visibly marked? Bootstrap draws focus as an outline or a box-shadow ring.
FOCUS_VISIBLE_JS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return false;
  const style = getComputedStyle(el);
  const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
  return outline || (style.boxShadow && style.boxShadow !== "none");
}"""
OVERFLOW_JS = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless chromium for one test, started after its database is ready.

    Not shared between tests: while Playwright's sync API is running, Django's per-context connection
    handler hands out other connection objects, so a later test's serialized rollback would not see
    the contents to restore (the roles and the default policy would vanish).
    """
    if not CHROMIUM.exists():
        pytest.skip(MSG_NO_CHROMIUM)
    sync_api = pytest.importorskip("playwright.sync_api", reason=MSG_NO_PLAYWRIGHT)
    # Playwright's sync API keeps an event loop in this thread; Django would refuse ORM calls from the
    # test body without this (they are plain synchronous calls, so it is safe).
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_api.sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
            try:
                yield launched
            finally:
                launched.close()
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # the browser fixture skips with the reason
    PlaywrightTimeout = TimeoutError  # type: ignore[misc,assignment]


@dataclass
class Session:
    """One person's browser tab on the live server, recording what the console says."""

    page: Any
    base_url: str
    problems: list[str] = field(default_factory=list)
    visited: list[str] = field(default_factory=list)

    def listen(self) -> None:
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"{self.page.url}: uncaught {error}"))

    def _console(self, message: Any) -> None:
        if message.type == "error" and not any(text in message.text for text in IGNORED_CONSOLE):
            self.problems.append(f"{self.page.url}: console error: {message.text}")

    def sign_in(self, username: str, password: str) -> None:
        self.page.goto(f"{self.base_url}/accounts/login/")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(lambda url: "/accounts/login/" not in url)
        self.settle()

    def open(self, path: str) -> Any:
        response = self.page.goto(f"{self.base_url}{path}")
        assert response is not None and response.ok, f"{path}: HTTP {response.status if response else 'none'}"
        self.settle()
        return response

    def settle(self) -> None:
        """Wait until scripts and charts are done, then hold the page to the common checks."""
        self.page.wait_for_load_state("networkidle")
        self.visited.append(self.page.url)
        self.assert_no_console_errors()

    def assert_no_console_errors(self) -> None:
        assert not self.problems, "\n".join(self.problems)

    def assert_fits(self, *viewports: dict[str, int]) -> None:
        """No horizontal scrolling on each viewport (the page is reflowed for each); back to the laptop after."""
        for viewport in viewports or (LAPTOP, TABLET):
            self.page.set_viewport_size(viewport)
            with contextlib.suppress(PlaywrightTimeout):  # charts redraw shortly after the resize event
                self.page.wait_for_function(f"({OVERFLOW_JS})() <= 0", timeout=REFLOW_MS)
            overflow = self.page.evaluate(OVERFLOW_JS)
            assert overflow <= 0, f"{self.page.url}: {overflow}px wider than a {viewport['width']}px screen"
        self.page.set_viewport_size(LAPTOP)
        self.assert_no_console_errors()

    def tab_to(self, locator: Any, limit: int = 120) -> None:
        """Press Tab until `locator` has the keyboard focus (it must be reachable) and check the focus shows."""
        self.page.locator("body").focus()
        for _ in range(limit):
            self.page.keyboard.press("Tab")
            if locator.evaluate("el => el === document.activeElement"):
                assert self.page.evaluate(FOCUS_VISIBLE_JS), f"{self.page.url}: keyboard focus is invisible"
                return
        pytest.fail(f"{self.page.url}: {locator} not reachable with Tab within {limit} presses")

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        height = min(SCREENSHOT_HEIGHT, self.page.evaluate("() => document.documentElement.scrollHeight"))
        self.page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": LAPTOP["width"],
                                                                    "height": height})
        return path


@pytest.fixture
def browse(live_server: Any, browser: Any) -> Iterator[Callable[[], Session]]:
    """Open a fresh browser context (its own cookies) on the live server: `session = browse()`."""
    contexts: list[Any] = []
    sessions: list[Session] = []

    def open_session() -> Session:
        context = browser.new_context(viewport=LAPTOP, locale="en-GB", timezone_id="UTC")
        context.set_default_timeout(15_000)
        contexts.append(context)
        session = Session(context.new_page(), live_server.url)
        session.listen()
        sessions.append(session)
        return session

    try:
        yield open_session
        for session in sessions:
            session.assert_no_console_errors()
    finally:
        for context in contexts:
            context.close()
