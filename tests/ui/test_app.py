"""The web view over HTTP: the JSON is the CLI's, bad requests are pages with their
status (never a traceback), and a write is refused unless every check passes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from typer.testing import CliRunner

from mstore.api import Store
from mstore.cli.app import app
from mstore.errors import UsageError
from mstore.repo import Repo
from mstore.ui.server import bind
from tests.helpers import assert_consistent, store_digest
from tests.ui.conftest import Served, promote_and_roll_back

runner = CliRunner()


def cli_json(repo: Repo, *args: str) -> Any:
    result = runner.invoke(app, ["--store", str(repo.root), *args, "--json"])
    assert result.stdout, (result.exit_code, result.stderr)
    return json.loads(result.stdout)


def api_json(served: Served, path: str) -> Any:
    reply = served.request(path)
    assert reply.status == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    return json.loads(reply.body)


# -- the JSON under every page is the CLI's ------------------------------------------------


@pytest.mark.parametrize(
    ("command", "path"),
    [
        (["list"], "/api/refs"),
        (["log"], "/api/log"),
        (["log", "production", "-n", "1"], "/api/log?ref=production&n=1"),
        (["info", "staging"], "/api/info?rev=staging"),
        (["info", "archive/v3_2024-11-10"], "/api/info?rev=archive%2Fv3_2024-11-10"),
        (["diff", "production", "staging"], "/api/diff?old=production&new=staging"),
        (
            ["diff", "production", "staging", "--tensors"],
            "/api/diff?old=production&new=staging&tensors=1",
        ),
        (
            ["diff", "archive/v1_2024-10-15", "staging", "--tensors", "--group-depth", "2"],
            "/api/diff?old=archive/v1_2024-10-15&new=staging&tensors=1&group_depth=2",
        ),
        (
            ["log", "production", "--metric", "final_val_mae"],
            "/api/metric?ref=production&metric=final_val_mae",
        ),
        (["promote", "staging", "--dry-run"], "/api/promote?source=staging"),
        (
            ["promote", "archive/v4_2024-11-12", "--to", "staging", "--dry-run"],
            "/api/promote?source=archive/v4_2024-11-12&target=staging",
        ),
        (["checkout", "staging", "--dry-run"], "/api/checkout?ref=staging"),
    ],
)
def test_the_json_is_the_cli_s(
    example: Repo, served: Served, command: list[str], path: str
) -> None:
    assert api_json(served, path) == cli_json(example, *command)


def test_after_moves_the_log_and_the_rollback_plan_are_the_cli_s(
    example: Repo, served: Served
) -> None:
    promote_and_roll_back(example)

    assert api_json(served, "/api/log?ref=production") == cli_json(example, "log", "production")
    assert api_json(served, "/api/rollback?ref=production") == cli_json(
        example, "rollback", "--dry-run"
    )
    assert api_json(served, "/api/info?rev=production%40%7B2%7D") == cli_json(
        example, "info", "production@{2}"
    )


def test_a_refused_promote_plan_is_the_cli_s(example: Repo, served: Served) -> None:
    # a kept gate that staging fails (its final_val_mae is 5.41)
    runner.invoke(
        app, ["--store", str(example.root), "gate", "add", "production", "final_val_mae<=1"]
    )

    document = api_json(served, "/api/promote?source=staging")

    assert document == cli_json(example, "promote", "staging", "--dry-run")
    assert document["refused"] is True
    assert document["gates"]["verdicts"][0]["passed"] is False


def test_every_page_answers(served: Served) -> None:
    for path in (
        "/",
        "/history",
        "/history?ref=production",
        "/version?rev=staging",
        "/compare",
        "/metrics",
        "/metrics?metric=final_val_mae&ref=staging",
        "/storage",
        "/fleet",
        "/promote",
        "/checkout?ref=staging",
    ):
        reply = served.request(path)
        assert reply.status == 200, (path, reply.text)
        assert reply.headers["content-type"].startswith("text/html")
        assert "script-src" not in reply.headers["content-security-policy"]
        assert reply.headers["content-security-policy"].startswith("default-src 'none'")


def test_the_fleet_says_when_no_host_reports(example: Repo, served: Served, tmp_path: Path) -> None:
    assert "no remote is configured" in served.request("/fleet").text
    runner.invoke(app, ["--store", str(example.root), "remote", "add", "origin", str(tmp_path)])
    # tmp_path holds the example store: not a remote; the page says so, for that remote
    assert "is not an mstore remote" in served.request("/fleet").text
    empty = tmp_path / "remote"
    runner.invoke(app, ["--store", str(example.root), "remote", "add", "empty", str(empty)])

    assert "no serving host reports to empty" in served.request("/fleet?remote=empty").text
    (document,) = api_json(served, "/api/fleet?remote=empty")
    assert (document["remote"], document["recorded"], document["hosts"]) == ("empty", False, [])
    assert document["notes"] == [f"{empty} holds no remote yet"]


def test_the_fleet_shows_what_each_host_runs(example: Repo, served: Served, tmp_path: Path) -> None:
    from mstore.remotes import open_remote
    from mstore.transfer.fleet import HostStatus, write_status
    from mstore.transfer.verbs import push

    location = str(tmp_path / "remote")
    runner.invoke(app, ["--store", str(example.root), "remote", "add", "origin", location])
    remote = open_remote(location)
    push(example, remote, ["production"])
    production = example.refs.read("production")
    write_status(
        remote,
        HostStatus(
            "web-<b>1</b>", "0123456789abcdef", "production", production, production,
            "healthy", None, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), 300,
        ),
    )  # fmt: skip

    page = served.request("/fleet").text
    assert "web-&lt;b&gt;1&lt;/b&gt;" in page and "healthy" in page
    assert f"production: 1/1 on {production[:12]}" in page


def test_storage_counts_the_example_store(example: Repo, served: Served) -> None:
    document = api_json(served, "/api/storage")

    local = document["local"]
    assert document["remote"] is None
    assert local["versions"] == 6
    sizes = [
        f["size"]
        for ref in ("production", "staging")
        for f in cli_json(example, "info", ref)["files"]
    ]
    assert local["logical_bytes"] >= sum(sizes)
    assert local["unique_bytes"] <= local["logical_bytes"] <= local["stored_bytes"] * 2


def test_a_remote_is_measured_only_when_asked(
    example: Repo, served: Served, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    for args in (["remote", "add", "origin", str(remote)], ["push"]):
        result = runner.invoke(app, ["--store", str(example.root), *args])
        assert result.exit_code == 0, result.stderr

    assert api_json(served, "/api/storage")["remote"] is None
    document = api_json(served, "/api/storage?remote=origin")

    assert document["remote"] == cli_json(example, "remote", "stats", "origin")
    assert document["remote"]["versions"] == 6
    page = served.request("/storage?remote=origin").text
    assert "Measure (contacts the remote)" in page and 'id="remote-storage"' in page


# -- bad requests: pages with their status, never a traceback ------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/version?rev=nope", 404),
        ("/version?rev=production%40%7B9%7D", 404),
        ("/history?ref=nope", 404),
        ("/history?page=9", 404),
        ("/compare?old=production&new=nope", 404),
        ("/metrics?ref=nope&metric=final_val_mae", 404),
        ("/checkout?ref=nope", 404),
        ("/api/info?rev=0123456789ab", 404),
        ("/version", 400),
        ("/version?rev=a%00b", 400),
        ("/version?rev=..%2Fescape", 400),
        ("/history?page=0", 400),
        ("/history?page=abc", 400),
        ("/history?page=1&page=2", 400),
        ("/api/log?n=-1", 400),
        ("/api/diff?old=production", 400),
        ("/compare?group_depth=0", 400),
        ("/api/diff?old=production&new=staging&tensors=maybe", 400),
        ("/rollback", 400),  # production has no previous value yet
        ("/nowhere", 404),
        ("/fleet?remote=nope", 404),
        ("/storage?remote=nope", 404),
    ],
)
def test_bad_requests_are_pages_with_their_status(served: Served, path: str, status: int) -> None:
    reply = served.request(path)

    assert reply.status == status, reply.text
    assert "Traceback" not in reply.text
    if path.startswith("/api/info"):
        assert json.loads(reply.body)["status"] == status


def test_an_unexpected_failure_is_a_page_without_a_traceback(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("mstore.ui.history.entries", broken)

    reply = served.request("/history")

    assert reply.status == 500
    assert "internal error: RuntimeError: boom; rerun with --debug" in reply.text
    assert "Traceback" not in reply.text
    assert "RuntimeError: boom" in capsys.readouterr().err


def test_a_locked_store_is_read_and_a_write_is_asked_to_retry(
    example: Repo, writable: Served
) -> None:
    with example.locked("commit"):  # a long commit holds the lock
        before = store_digest(example)
        board = writable.request("/")
        write = writable.post_as_owner("/promote", promote_form(example, writable))

    assert board.status == 200
    assert write.status == 503
    assert write.headers["retry-after"] == "5"
    assert "store is locked by" in write.text and "submit the form again" in write.text
    assert store_digest(example) == before


# -- who may write --------------------------------------------------------------------------


def promote_form(repo: Repo, served: Served) -> dict[str, str]:
    """What the confirmation page of `promote staging` posts."""
    return {
        "csrf": served.csrf,
        "source": "staging",
        "target": "production",
        "candidate": repo.resolve("staging"),
        "expect": repo.resolve("production"),
        "message": "",
    }


def test_the_printed_url_sets_the_token_cookie_and_drops_the_token(writable: Served) -> None:
    reply = writable.request(f"/history?ref=production&token={writable.settings.token}")

    assert reply.status == 303
    assert reply.headers["location"] == "/history?ref=production"
    cookie = reply.headers["set-cookie"]
    assert cookie.startswith(writable.token_cookie + ";")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert writable.request("/?token=wrong").status == 403


def test_a_promote_with_every_check_passing_moves_production(
    example: Repo, writable: Served
) -> None:
    candidate = example.resolve("staging")

    reply = writable.post_as_owner("/promote", promote_form(example, writable))

    assert reply.status == 200, reply.text
    assert Repo(example.root).resolve("production") == candidate
    assert_consistent(example)


@pytest.mark.parametrize(
    ("case", "change"),
    [
        ("no token cookie", {"Cookie": None}),
        ("wrong token", {"Cookie": "WRONG"}),
        ("no CSRF value", {"csrf": None}),
        ("wrong CSRF value", {"csrf": "0" * 64}),
        ("the token as the CSRF value", {"csrf": "TOKEN"}),
        ("another origin", {"Origin": "http://127.0.0.1:1"}),
        ("a null origin", {"Origin": "null"}),
        ("no origin or referer", {"Origin": None}),
        ("a referer elsewhere", {"Origin": None, "Referer": "http://evil.example/"}),
        ("a rebinding host", {"Host": "evil.example"}),
        ("a JSON body", {"Content-Type": "application/json"}),
    ],
)
def test_a_write_missing_any_check_changes_nothing(
    example: Repo, writable: Served, case: str, change: dict[str, str | None]
) -> None:
    before = store_digest(example)
    form: dict[str, str | None] = dict(promote_form(example, writable))
    headers: dict[str, str | None] = {
        "Cookie": writable.token_cookie,
        "Origin": writable.base,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    for name, value in change.items():
        target = form if name in form else headers
        if value == "WRONG":
            value = f"{writable.settings.cookie}={'x' * 43}"
        elif value == "TOKEN":
            value = writable.settings.token
        elif name == "Host" and value is not None:
            value = f"{value}:{writable.port}"
        target[name] = value
    body = urlencode({k: v for k, v in form.items() if v is not None}).encode()
    sent = {k: v for k, v in headers.items() if v is not None}

    reply = writable.request("/promote", "POST", body, sent)

    expected = 400 if case == "a JSON body" else 403
    assert reply.status == expected, (case, reply.text)
    assert store_digest(example) == before


def test_a_read_only_server_refuses_every_write(example: Repo, served: Served) -> None:
    before = store_digest(example)

    for path, form in (
        ("/promote", promote_form(example, served)),
        (
            "/rollback",
            {
                "csrf": served.csrf,
                "ref": "production",
                "to": example.resolve("staging"),
                "expect": example.resolve("production"),
            },
        ),
        ("/checkout", {"csrf": served.csrf, "ref": "staging"}),
    ):
        reply = served.post_as_owner(path, form)
        assert reply.status == 403, reply.text
        assert "--allow-writes" in reply.text
    assert store_digest(example) == before


def test_a_write_is_refused_when_what_it_confirmed_has_moved(
    example: Repo, writable: Served
) -> None:
    form = promote_form(example, writable)
    Store(example).promote("staging")  # production moved after the page was shown
    before = store_digest(example)

    reply = writable.post_as_owner("/promote", form)

    assert reply.status == 409, reply.text
    assert "not" in reply.text and "expected" in reply.text
    assert store_digest(example) == before


def test_a_write_is_refused_when_the_source_names_another_version(
    example: Repo, writable: Served
) -> None:
    form = {
        **promote_form(example, writable),
        "candidate": example.resolve("archive/v1_2024-10-15"),
    }
    before = store_digest(example)

    reply = writable.post_as_owner("/promote", form)

    assert reply.status == 409, reply.text
    assert "review the new plan" in reply.text
    assert store_digest(example) == before


def test_a_rebinding_host_reads_nothing(served: Served) -> None:
    for host in ("evil.example", f"evil.example:{served.port}", f"127.0.0.1:{served.port + 1}"):
        reply = served.request("/api/refs", headers={"Host": host})
        assert reply.status == 403
        assert b"production" not in reply.body
    assert served.request("/api/refs", headers={"Host": f"localhost:{served.port}"}).status == 200


def test_the_server_times_each_request(served: Served) -> None:
    timing = served.request("/").headers["server-timing"]

    assert timing.startswith("app;dur=")
    assert float(timing.removeprefix("app;dur=")) > 0


def test_serving_on_a_busy_port_says_so(served: Served) -> None:
    with pytest.raises(UsageError, match="choose another --port"):
        bind("127.0.0.1", served.port)
