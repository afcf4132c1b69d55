"""The web UI end to end: a real server, Debian's Chromium driven by Playwright for Python.

Chromium is the system's (/usr/bin/chromium, from Debian's chromium package), never a browser
a test tool downloads; each run starts it headless with a fresh profile.  Where it or the
playwright package is missing the tests are skipped with the reason; ``make ui-test`` installs
both.  Screenshots go to $WARREN_UI_SCREENSHOTS (``make ui-test``: docs/ui), else to a
temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.management.conftest import Api, free_port
from tests.server import ServerProcess

CHROMIUM = "/usr/bin/chromium"
# As this machine's notes say: no sandbox (root), no GPU, and nothing that reaches out.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1360, "height": 860}

try:
    from playwright.sync_api import Browser, Page, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

# Why the browser tests cannot run here ("": they can); the test modules skip with it.
if not os.path.exists(CHROMIUM):
    SKIP_REASON = f"Chromium is not installed ({CHROMIUM}); `make ui-test` installs it"
elif sync_playwright is None:
    SKIP_REASON = "the playwright package is not installed; `make ui-test` installs it"
else:
    SKIP_REASON = ""


@pytest.fixture(scope="session")
def ui_server() -> Iterator[ServerProcess]:
    proc = ServerProcess(None, "--management-port", str(free_port()), "--management-host", "127.0.0.1").start()
    assert proc.management_port, proc.log
    yield proc
    assert proc.stop() == 0, proc.log
    assert "Traceback" not in proc.log, proc.log


@pytest.fixture(scope="session")
def ui_api(ui_server: ServerProcess) -> Api:
    return Api(ui_server.management_port)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("WARREN_UI_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("ui-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class UI:
    """A browser tab on the UI, with what the tests do to it."""

    def __init__(self, page: Page, base: str, shots: Path) -> None:
        self.page = page
        self.base = base
        self.shots = shots
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def open(self, route: str = "/") -> None:
        self.page.goto(f"{self.base}#{route}")

    def login(self, user: str = "guest", password: str = "guest", refused: bool = False) -> None:
        """Log in and wait for the first page (``refused``: for the login to be refused)."""
        self.page.goto(self.base)
        self.page.fill("#login-user", user)
        self.page.fill("#login-pass", password)
        self.page.click("#login button[type=submit]")
        if not refused:
            self.page.wait_for_selector(".page")

    def screenshot(self, name: str) -> Path:
        """The whole page as docs/ui/<name>.png, scrolled to the top, toasts gone."""
        self.page.evaluate("window.scrollTo(0, 0); document.getElementById('toasts').replaceChildren()")
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)

    def wait_text(self, selector: str, text: str, timeout: float = 10_000) -> None:
        self.page.wait_for_function(
            "([s, t]) => { const e = document.querySelector(s); return e && e.textContent.includes(t); }",
            arg=[selector, text],
            timeout=timeout,
        )


@pytest.fixture
def ui(browser: Browser, ui_server: ServerProcess, shots: Path) -> Iterator[UI]:
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)  # type: ignore[arg-type]
    page = context.new_page()
    page.set_default_timeout(15_000)
    tab = UI(page, f"http://127.0.0.1:{ui_server.management_port}/", shots)
    yield tab
    context.close()
    assert not tab.errors, tab.errors
