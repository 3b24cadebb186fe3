"""The web view in a real browser (headless Chromium): what a person sees and clicks.

Each test serves its own copy of the example store and drives the session's browser
(tests/ui/conftest.py). Attackers act as attackers do: a page on another origin
posting a form, a stale or missing token, markup planted in metadata, messages, file
and ref names. Screenshots of the main pages land in MSTORE_UI_SCREENSHOTS (the
README's come from `MSTORE_UI_SCREENSHOTS=docs/ui`), else in a temporary directory.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from typer.testing import CliRunner

from mstore.api import Store
from mstore.cli.app import app
from mstore.ops.signing_config import set_signing
from mstore.ops.trust_config import revoke_key
from mstore.repo import Repo
from tests.helpers import assert_consistent, store_digest
from tests.trust.ssh_keys import keygen, needs_openssh
from tests.ui.conftest import (
    PROJECT,
    Served,
    example_copy,
    promote_and_roll_back,
    serving,
    start_browser,
)

FIXTURES = PROJECT / "tests" / "fixtures" / "checkpoints"
WAIT_SECONDS = 20
runner = CliRunner()


def css(driver: Any, selector: str) -> list[Any]:
    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def attributes(driver: Any, selector: str, name: str) -> list[str]:
    return [element.get_attribute(name) for element in css(driver, selector)]


def cli_refs(repo: Repo) -> set[str]:
    result = runner.invoke(app, ["--store", str(repo.root), "list", "--json"])
    return {row["ref"] for row in json.loads(result.stdout)}


# -- reading --------------------------------------------------------------------------------


def test_the_board_shows_every_ref_of_the_example_store(
    example: Repo, served: Served, browser: Any
) -> None:
    browser.get(served.base + "/")

    shown = attributes(browser, "tr.ref", "data-ref")
    assert set(shown) == cli_refs(example)
    assert len(shown) == len(set(shown)) == 6  # the example store ships six refs
    assert attributes(browser, "tr.ref.active", "data-ref") == ["production"]
    assert browser.find_element(By.ID, "active").text == "production"
    assert browser.find_element(By.ID, "mode").text == "read-only"


@needs_openssh
def test_the_board_says_who_signed_each_ref(example: Repo, browser: Any, tmp_path: Path) -> None:
    """The "signed by" column: the principal of each ref's current statement (markup in
    it shown as text), its verdict when not good, "-" where no statement set the ref."""
    key = keygen(tmp_path, "release")
    set_signing(example, key, "<i>release</i>@team")
    Store(Repo(example.root)).promote("staging")

    def signed_by() -> dict[str, str]:
        browser.get(served.base + "/")
        headers = [h.text for h in css(browser, "table.refs tr th")]
        assert "signed by" in headers
        column = headers.index("signed by")
        return {
            row.get_attribute("data-ref"): row.find_elements(By.TAG_NAME, "td")[column].text
            for row in css(browser, "tr.ref")
        }

    with serving(example.root) as served:
        cells = signed_by()
        assert cells["production"] == "<i>release</i>@team"
        assert cells["staging"] == "-"  # imported before the store signed
        assert not css(browser, "tr.ref td i")  # the markup is text, not an element
        revoke_key(example, f"{key}.pub")
        assert signed_by()["production"] == "<i>release</i>@team (untrusted)"


def test_reading_works_with_javascript_off(example: Repo, served: Served) -> None:
    driver = start_browser(javascript=False)
    try:
        driver.get("data:text/html,<title>off</title><script>document.title='ran'</script>")
        assert driver.title == "off"  # scripts really are off
        driver.get(served.base + "/")
        assert set(attributes(driver, "tr.ref", "data-ref")) == cli_refs(example)
        driver.get(served.base + "/history?ref=production")
        assert attributes(driver, "tr.entry", "data-action") == ["import"]
        driver.get(served.base + "/compare")
        assert css(driver, "tr[data-path='model.pth'][data-status='changed']")
    finally:
        driver.quit()
        shutil.rmtree(driver.profile_directory, ignore_errors=True)


def test_the_history_marks_a_promote_and_a_rollback(
    example: Repo, served: Served, browser: Any
) -> None:
    promote_and_roll_back(example)

    browser.get(served.base + "/history?ref=production")

    assert attributes(browser, "tr.entry", "data-action") == ["rollback", "promote", "import"]
    assert attributes(browser, "tr.entry.marked", "data-action") == ["rollback", "promote"]
    revisions = [e.text for e in css(browser, "tr.entry td:first-child code")]
    assert revisions == ["production@{0}", "production@{1}", "production@{2}"]
    browser.find_element(By.LINK_TEXT, "production@{1}").click()
    assert browser.find_element(By.ID, "manifest-id").text == example.resolve("production@{1}")

    browser.get(served.base + "/history")
    actions = list(
        zip(
            attributes(browser, "tr.entry", "data-action"),
            attributes(browser, "tr.entry", "data-ref"),
            strict=True,
        )
    )
    assert actions[:3] == [
        ("rollback", "production"),
        ("promote", "production"),
        ("promote", actions[2][1]),
    ]
    assert actions[2][1].startswith("archive/")


def test_the_compare_page_names_the_changed_head_tensors(
    example: Repo, served: Served, browser: Any, tmp_path: Path
) -> None:
    store = Store(example)
    for ref, name in (("lab/base", "base"), ("lab/tuned", "tuned")):
        source = tmp_path / "src" / name
        source.mkdir(parents=True)
        shutil.copyfile(FIXTURES / f"{name}.pt", source / "model.pth")
        store.commit(source, ref, metadata={"version": name, "metrics": {"final_val_mae": 5.0}})

    browser.get(served.base + "/compare?old=lab/base&new=lab/tuned")

    section = "section.tensors[data-path='model.pth']"
    changed = attributes(browser, f"{section} tr[data-change='changed']", "data-tensor")
    added = attributes(browser, f"{section} tr[data-change='added']", "data-tensor")
    assert changed == ["head.weight", "head.bias"]
    assert added == ["head.temperature"]
    groups = {
        row.find_element(By.CSS_SELECTOR, "td code").text: row.text
        for row in css(browser, f"{section} table.groups tr")[1:]
    }
    assert groups["head.*"].split()[1] == "2"  # two changed
    assert "5 (" in groups["encoder.*"].split(" ", 1)[1]  # five unchanged
    assert css(browser, "tr[data-path='model.pth'][data-status='changed']")


def test_the_metric_chart_has_one_point_per_production_move(
    example: Repo, served: Served, browser: Any
) -> None:
    store = promote_and_roll_back(example)
    store.promote("archive/v3_2024-11-10")
    moves = store.history("production")
    points = store.metric("production", "final_val_mae").points

    browser.get(served.base + "/metrics?ref=production&metric=final_val_mae")

    drawn = attributes(browser, "#history-chart circle.point", "data-value")
    assert len(drawn) == len(moves) == 4
    assert [float(v) for v in drawn] == [p.value for p in points]
    assert attributes(browser, "#history-values tr[data-action]", "data-action") == [
        "import", "promote", "rollback", "promote",
    ]  # fmt: skip
    axis_titles = [e.text for e in css(browser, "#history-chart .axis-title")]
    assert axis_titles == ["moves of production, oldest first", "final_val_mae"]


# -- hostile strings render as text ----------------------------------------------------------

MARKUP = (
    '<script>window.__xss=1</script><img src=x id=xss-marker onerror="window.__xss=2;alert(2)">'
)
HUGE = '<i id=xss-marker onmouseover="alert(3)">' + "x" * 1_000_000


def assert_nothing_ran(driver: Any) -> None:
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 (reading it is the check)
    assert driver.execute_script("return window.__xss") is None
    assert css(driver, "#xss-marker") == []
    assert css(driver, "i[onmouseover], img[onerror], svg[onload]") == []
    hrefs = [a.get_dom_attribute("href") for a in css(driver, "a[href]")]
    assert hrefs and not [h for h in hrefs if not h.startswith("/")]  # no javascript: URL


def test_markup_in_metadata_messages_and_names_renders_as_text(
    example: Repo, served: Served, browser: Any, tmp_path: Path
) -> None:
    source = tmp_path / "hostile"
    source.mkdir()
    (source / '"><img src=x id=xss-marker onerror=alert(4)>.bin').write_bytes(b"weights")
    ref = "lab/<svg/id=xss-marker/onload=alert(5)>"
    metadata = {
        "version": "<b id=xss-marker>v6</b>",
        "description": MARKUP,
        "homepage": "javascript:window.__xss=6",
        "notes": HUGE,
        "metrics": {"<img src=x id=xss-marker onerror=alert(7)>": 1.5, "final_val_mae": 4.0},
    }
    store = Store(example)
    store.commit(
        source, ref, message="<img src=x id=xss-marker onerror=alert(8)>", metadata=metadata
    )
    store.commit(source, "staging", message="javascript:alert(9)", metadata=metadata)
    pages = [
        "/",
        "/history",
        f"/history?ref={quote(ref)}",
        f"/version?rev={quote(ref)}",
        f"/compare?old=production&new={quote(ref)}",
        "/metrics?metric=" + quote("<img src=x id=xss-marker onerror=alert(7)>"),
        "/metrics?metric=" + quote("<script>alert(10)</script>"),
        "/version?rev=" + quote("<script>alert(11)</script>"),  # a 400 page quoting it
        "/promote?source=" + quote(ref),
    ]
    for page in pages:
        browser.get(served.base + page)
        assert_nothing_ran(browser)

    browser.get(f"{served.base}/version?rev={quote(ref)}")
    description = browser.find_element(By.CSS_SELECTOR, "#description .text").text
    assert description == MARKUP
    notes = browser.find_element(By.CSS_SELECTOR, "tr[data-key='notes'] td:last-child").text
    assert notes.startswith('<i id=xss-marker onmouseover="alert(3)">xxx')
    assert "more characters (the JSON has them all)" in notes
    homepage = browser.find_element(By.CSS_SELECTOR, "tr[data-key='homepage'] td:last-child")
    assert homepage.text == "javascript:window.__xss=6"
    assert homepage.find_elements(By.TAG_NAME, "a") == []
    names = attributes(browser, "#files tr[data-path]", "data-path")
    assert '"><img src=x id=xss-marker onerror=alert(4)>.bin' in names
    assert "&lt;script&gt;" in browser.page_source


# -- writing ---------------------------------------------------------------------------------


def without_transaction_ids(repo: Repo) -> list[dict[str, object]]:
    return [{k: v for k, v in e.to_json().items() if k != "txn"} for e in Store(repo).history()]


def test_a_promote_through_the_page_moves_production_as_the_command_does(
    tmp_path: Path, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1732000000")
    by_command = Repo(example_copy(tmp_path / "by-command"))
    by_page = Repo(example_copy(tmp_path / "by-page"))
    result = runner.invoke(app, ["--store", str(by_command.root), "promote", "staging"])
    assert result.exit_code == 0, result.stderr

    with serving(by_page.root, allow_writes=True) as served:
        browser.get(f"{served.base}/?token={served.settings.token}")
        assert browser.current_url == served.base + "/"
        assert browser.find_element(By.ID, "mode").text == "writes on"
        browser.get(served.base + "/promote?source=staging")
        assert [e.text for e in css(browser, "#moves td:first-child")] == [
            "archive/v4_2024-11-15", "production",
        ]  # fmt: skip
        browser.find_element(By.ID, "submit").click()
        WebDriverWait(browser, WAIT_SECONDS).until(lambda d: css(d, "#done"))

    page_repo, command_repo = Repo(by_page.root), Repo(by_command.root)
    assert page_repo.refs.read_all() == command_repo.refs.read_all()
    assert without_transaction_ids(page_repo) == without_transaction_ids(command_repo)
    assert (by_page.root / ".env").read_bytes() == (by_command.root / ".env").read_bytes()
    assert_consistent(page_repo)


@pytest.fixture
def attacker_page() -> Iterator[dict[str, Any]]:
    """A page on another origin (another port of 127.0.0.1) that posts a form on load."""
    served: dict[str, Any] = {"html": b""}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(served["html"])

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    served["url"] = f"http://127.0.0.1:{server.server_address[1]}/"
    yield served
    server.shutdown()
    server.server_close()


def test_a_form_posted_from_another_origin_changes_nothing(
    example: Repo, writable: Served, browser: Any, attacker_page: dict[str, Any]
) -> None:
    fields = {
        "csrf": writable.csrf,  # even knowing the CSRF value: the origin is not ours
        "source": "staging",
        "target": "production",
        "candidate": example.resolve("staging"),
        "expect": example.resolve("production"),
    }
    inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
    attacker_page["html"] = (
        f'<html><body onload="document.forms[0].submit()"><form method="post" '
        f'action="{writable.base}/promote">{inputs}</form></body></html>'
    ).encode()
    browser.get(f"{writable.base}/?token={writable.settings.token}")  # the victim's session
    before = store_digest(example)

    browser.get(attacker_page["url"])
    WebDriverWait(browser, WAIT_SECONDS).until(lambda d: d.current_url.startswith(writable.base))

    assert "not from " + writable.base.lower() in browser.find_element(By.ID, "error").text
    assert store_digest(example) == before


def test_without_the_token_the_page_offers_no_write_and_a_post_is_refused(
    example: Repo, writable: Served, browser: Any
) -> None:
    before = store_digest(example)

    browser.get(writable.base + "/promote?source=staging")
    assert css(browser, "#confirm") == []
    assert "Writes need this run's token" in browser.find_element(By.ID, "no-token").text
    browser.get(f"{writable.base}/?token={'x' * 43}")
    assert "not this run's token" in browser.find_element(By.ID, "error").text
    assert browser.get_cookies() == []

    assert store_digest(example) == before


# -- screenshots ----------------------------------------------------------------------------


def test_screenshots_of_the_main_pages(
    example: Repo, served: Served, browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1732612800")  # 2024-11-26: the same pictures each run
    target = Path(os.environ.get("MSTORE_UI_SCREENSHOTS") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    promote_and_roll_back(example)
    pages = {
        "board": "/",
        "history": "/history?ref=production",
        "version": "/version?rev=staging",
        "compare": "/compare?old=production&new=staging",
        "metrics": "/metrics?ref=production&metric=final_val_mae",
    }
    for name, path in pages.items():
        browser.set_window_size(1280, 900)
        browser.get(served.base + path)
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1280, min(max(height, 600), 1800))
        browser.save_screenshot(str(target / f"{name}.png"))
    browser.set_window_size(390, 844)
    browser.get(served.base + "/")
    browser.save_screenshot(str(target / "board-phone.png"))
    browser.set_window_size(1280, 900)

    for name in [*pages, "board-phone"]:
        data = (target / f"{name}.png").read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000, name
