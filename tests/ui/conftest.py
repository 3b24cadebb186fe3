"""Fixtures for the web view: a copy of the example store, a server, a real browser.

The server runs in a thread of the test process (uvicorn on 127.0.0.1, a free port),
so a test can hold the store lock or monkeypatch the library while it serves. The
browser is Debian's Chromium driven by its ChromeDriver through selenium, headless
and offline (no sync, no component updates, no background networking, a fresh
profile). Without Chromium (`scripts/test.sh` installs it as root) the browser tests
skip and say why; under CI=true they fail instead.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mstore.api import Store
from mstore.repo import Repo
from mstore.ui.security import Binding, csrf_value
from mstore.ui.server import bind, server_for
from mstore.ui.view import UiSettings
from tests.helpers import LOCAL_STATE

PROJECT = Path(__file__).resolve().parents[2]
PROGRAMS = ("chromium", "chromedriver")  # Debian's chromium and chromium-driver
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
STARTUP_SECONDS = 10.0


def example_copy(directory: Path) -> Path:
    """A copy of the shipped example store (models/, .mstore/, .env) in `directory`."""
    directory.mkdir(parents=True)
    shutil.copy2(PROJECT / ".env", directory / ".env")
    shutil.copytree(PROJECT / "models", directory / "models", symlinks=True)
    shutil.copytree(
        PROJECT / ".mstore", directory / ".mstore", ignore=shutil.ignore_patterns(*LOCAL_STATE)
    )
    return directory


@pytest.fixture
def example(tmp_path: Path) -> Repo:
    return Repo(example_copy(tmp_path / "example"))


def promote_and_roll_back(repo: Repo) -> Store:
    """Production moved twice, as a team does: staging promoted, then rolled back."""
    store = Store(repo)
    store.promote("staging")
    store.rollback("production")
    return store


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class Served:
    """A running web view: its settings and plain HTTP requests to it."""

    settings: UiSettings
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return self.settings.binding.port

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_cookie(self) -> str:
        return f"{self.settings.cookie}={self.settings.token}"

    @property
    def csrf(self) -> str:
        return csrf_value(self.settings.token)

    def request(
        self,
        path: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """One request, as an attacker would send it: every header is the caller's."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in sent.items():
                connection.putheader(name, value)
            if body is not None:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return Reply(
                response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            )
        finally:
            connection.close()

    def post_as_owner(self, path: str, fields: dict[str, str]) -> Reply:
        """A form posted as this server's own page does it, from the browser holding the token."""
        return self.post_form(path, fields, Cookie=self.token_cookie, Origin=self.base)

    def post_form(self, path: str, fields: dict[str, str], **headers: str) -> Reply:
        from urllib.parse import urlencode

        sent = {"Content-Type": "application/x-www-form-urlencoded", **headers}
        return self.request(path, "POST", urlencode(fields).encode(), sent)


@contextlib.contextmanager
def serving(root: Path, allow_writes: bool = False, lock_timeout: float = 10.0) -> Iterator[Served]:
    """Serve the store at `root` on a free port of 127.0.0.1 until the block ends."""
    listening = bind("127.0.0.1", 0)
    binding = Binding("127.0.0.1", listening.getsockname()[1])
    settings = UiSettings(root, binding, allow_writes, lock_timeout=lock_timeout)
    server = server_for(settings)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the web view did not start")
        time.sleep(0.01)
    try:
        yield Served(settings)
    finally:
        server.should_exit = True
        thread.join(STARTUP_SECONDS)
        listening.close()


@pytest.fixture
def served(example: Repo) -> Iterator[Served]:
    """The example store's copy, served read-only."""
    with serving(example.root) as running:
        yield running


@pytest.fixture
def writable(example: Repo) -> Iterator[Served]:
    """The example store's copy, served with --allow-writes (lock timeout 0: a held lock
    answers at once)."""
    with serving(example.root, allow_writes=True, lock_timeout=0.0) as running:
        yield running


# -- the browser ---------------------------------------------------------------------------


def _browser_missing() -> str | None:
    for program in PROGRAMS:
        if shutil.which(program) is None:
            return (
                f"{program} is missing (Debian's chromium and chromium-driver; "
                f"scripts/test.sh installs them as root)"
            )
    return None


def start_browser(javascript: bool = True, width: int = 1280, height: int = 900) -> Any:
    """Headless Chromium with a fresh profile; skips (fails under CI=true) without it."""
    missing = _browser_missing()
    if missing is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{missing}; CI runs the browser tests")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which("chromium"))
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="mstore-ui-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    driver = webdriver.Chrome(options=options, service=Service(str(shutil.which("chromedriver"))))
    driver.profile_directory = profile
    return driver


@pytest.fixture(scope="session")
def session_browser() -> Iterator[Any]:
    driver = start_browser()
    yield driver
    driver.quit()
    shutil.rmtree(driver.profile_directory, ignore_errors=True)


@pytest.fixture
def browser(session_browser: Any) -> Iterator[Any]:
    """The session's browser, with no cookies and no page of a previous test."""
    session_browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    yield session_browser
    session_browser.get("about:blank")
