"""Browser tests: the app on a real port, driven by Debian's headless Chromium."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from app.extensions import db
from app.services import passwords, users

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
PASSWORD = "correct horse battery"
NETWORK = "Failed to load resource: the server responded with a status of"
SCREENSHOTS = Path(__file__).parent.parent.parent / "docs" / "screenshots"

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"the browser tests need Chromium at {CHROMIUM}")
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)

from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright  # noqa: E402


@pytest.fixture(scope="session")
def live_server(app: Flask) -> Iterator[str]:
    """The test app on a free local port, in a thread, for the whole session."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, live_server: str) -> Iterator[Page]:
    """A fresh browser context; any script error or CSP refusal fails the test."""
    context = browser.new_context(
        base_url=live_server, viewport={"width": 1360, "height": 900}
    )
    context.set_default_timeout(10_000)
    tab = context.new_page()
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        # A 4xx page is often the point of a test; scripts and CSP are not.
        if message.type == "error" and not message.text.startswith(NETWORK):
            problems.append(message.text)

    tab.on("console", console)
    tab.on("pageerror", lambda error: problems.append(str(error)))
    yield tab
    context.close()
    assert not problems, problems


@pytest.fixture
def web_user(app: Flask) -> Callable[..., str]:
    """Make a user with a password and the roles; returns the name."""

    def make(name: str, *roles: str) -> str:
        with app.app_context():
            user = users.create_user(name, list(roles))
            passwords.set_password(user, PASSWORD)
            db.session.commit()
        return name

    return make


def sign_in(page: Page, name: str, password: str = PASSWORD) -> None:
    page.goto("/sign-in")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def screenshot(page: Page, name: str, full_page: bool = False) -> None:
    """Keep a picture of the page for the README, when asked (SCREENSHOTS=1)."""
    if os.environ.get("SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)
