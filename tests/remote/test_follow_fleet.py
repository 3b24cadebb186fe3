"""Three serving hosts follow production through a remote (directory, moto, RGW), each
a real `mstore follow` process: they switch to a pushed promote, one whose health check
fails goes back by itself, `mstore fleet` shows who runs what, and a pushed rollback
brings every host back. SIGTERM stops each between steps."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from mstore.ops.commit import commit
from mstore.ops.switch import rollback
from mstore.remotes import open_remote
from mstore.repo import Repo
from mstore.transfer.verbs import push
from tests.helpers import assert_consistent, write_version
from tests.remote.support import as_json, clone_cli, mstore, new_store, ok

MSTORE = Path(sys.executable).parent / "mstore"
DEADLINE = 120.0  # waiting for a condition, not a timing assertion


def wait_for(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {DEADLINE} s")
        time.sleep(0.2)


def hosts_by_name(publisher: Repo) -> dict[str, Any]:
    report = as_json(ok(mstore(publisher.root, "fleet", "--json")))
    return {h["host"]: h for h in report["hosts"]}


@pytest.fixture
def followers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_three_followers_switch_revert_report_and_follow_a_rollback(
    remote_url: str, tmp_path: Path, followers: list[subprocess.Popen[bytes]]
) -> None:
    publisher = new_store(tmp_path / "publisher")
    v1 = commit(publisher, write_version(tmp_path / "src" / "v1", "v1"), "production").manifest_id
    ok(mstore(publisher.root, "remote", "add", "origin", remote_url))
    ok(mstore(publisher.root, "push"))
    v2 = commit(publisher, write_version(tmp_path / "src" / "v2", "v2"), "production").manifest_id
    assert v1 and v2
    hosts = []
    for number in (1, 2, 3):
        root = tmp_path / f"host{number}"
        ok(clone_cli(remote_url, root, "--link-mode", "copy"))
        (root / ".env").write_text("MODEL_ENVIRONMENT=production\n")
        # host3's application does not come up with v2
        check = f'test "$MSTORE_NEW" != {v2}' if number == 3 else "true"
        log = (tmp_path / f"host{number}.log").open("wb")
        followers.append(
            subprocess.Popen(
                [
                    *(str(MSTORE), "--store", str(root), "follow", "--json"),
                    *("--interval", "0.2", "--health-cmd", check, "--host-name", f"host{number}"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        hosts.append(Repo(root))

    ok(mstore(publisher.root, "push"))  # the promote reaches the remote
    wait_for(
        "switched, or reverted on host3",
        lambda: (
            {name: (h["running"], h["state"]) for name, h in hosts_by_name(publisher).items()}
            == {
                "host1": (v2, "healthy"),
                "host2": (v2, "healthy"),
                "host3": (v1, "failed-and-reverted"),
            }
        ),
    )
    text = ok(mstore(publisher.root, "fleet")).stdout
    assert f"production: 2/3 on {v2[:12]}, 1 failed" in text

    rollback(publisher, "production")  # v2 is bad after all
    ok(mstore(publisher.root, "push"))
    wait_for(
        "back on v1 everywhere",
        lambda: all(
            h["running"] == v1 and h["state"] == "healthy"
            for h in hosts_by_name(publisher).values()
        ),
    )

    for process in followers:
        process.send_signal(signal.SIGTERM)
    assert [process.wait(timeout=60) for process in followers] == [0, 0, 0]
    for number, repo in enumerate(hosts, start=1):
        assert repo.refs.read("production") == v1
        assert_consistent(repo)
        lines = (tmp_path / f"host{number}.log").read_text().splitlines()
        last = orjson.loads(lines[-1])
        assert (last["event"], last["manifest"]) == ("stopped", v1)


def test_a_poll_of_an_unchanged_ref_is_a_conditional_get(
    remote_url: str, remote_kind: str, tmp_path: Path
) -> None:
    """On S3 the answer to an unchanged ref is a 304 without a body; a moved ref is read."""
    publisher = new_store(tmp_path / "publisher")
    commit(publisher, write_version(tmp_path / "src" / "v1", "v1"), "production")
    remote = open_remote(remote_url)
    push(publisher, remote)
    known = remote.read_ref("production")
    assert known is not None
    answers: list[str] = []
    if remote_kind != "directory":
        client = remote.client  # type: ignore[attr-defined]
        original = client.get_object

        def get_object(**kwargs: Any) -> Any:
            try:
                response = original(**kwargs)
            except Exception as err:
                answers.append(str(err.response["Error"]["Code"]))  # type: ignore[attr-defined]
                raise
            answers.append("200")
            return response

        client.get_object = get_object

    assert remote.poll_ref("production", known) == known
    commit(publisher, write_version(tmp_path / "src" / "v2", "v2"), "production")
    push(publisher, open_remote(remote_url))
    moved = remote.poll_ref("production", known)
    assert moved is not None and moved.manifest_id == publisher.refs.read("production")
    if remote_kind != "directory":
        assert answers == ["304", "200"]


def test_a_rollout_reaches_hosts_in_wariness_order_pause_holds_abort_brings_back(
    remote_url: str, tmp_path: Path, followers: list[subprocess.Popen[bytes]]
) -> None:
    """Three follower processes with wariness 0, 0.15 and 0.6 and a 20 s window: the
    first two switch in that order, a pause keeps the third on the old version past its
    turn, and an abort brings the two back."""
    publisher = new_store(tmp_path / "publisher")
    v1 = commit(publisher, write_version(tmp_path / "src" / "v1", "v1"), "production").manifest_id
    ok(mstore(publisher.root, "remote", "add", "origin", remote_url))
    ok(mstore(publisher.root, "push"))
    v2 = commit(publisher, write_version(tmp_path / "src" / "v2", "v2"), "production").manifest_id
    for number, wariness in enumerate(("0", "0.15", "0.6")):
        root = tmp_path / f"host{number}"
        ok(clone_cli(remote_url, root, "--link-mode", "copy"))
        followers.append(
            subprocess.Popen(
                [
                    *(str(MSTORE), "--store", str(root), "follow", "--interval", "0.2"),
                    *("--wariness", wariness, "--host-name", f"host{number}"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    ok(mstore(publisher.root, "push", "--rollout", "20s"))
    started = time.monotonic()
    switched: dict[str, float] = {}

    def running() -> dict[str, str | None]:
        hosts = hosts_by_name(publisher)
        for name, h in hosts.items():
            if h["running"] == v2 and name not in switched:
                switched[name] = time.monotonic() - started
        return {name: h["running"] for name, h in hosts.items()}

    wait_for(
        "host0 and host1 on v2", lambda: bool(running()) and {"host0", "host1"} <= set(switched)
    )
    ok(mstore(publisher.root, "rollout", "pause", "production"))
    assert "host2" not in switched, switched  # its turn (12 s) has not come
    assert switched["host0"] <= switched["host1"]
    status = as_json(ok(mstore(publisher.root, "rollout", "status", "production", "--json")))
    assert status["rollout"]["paused"] and status["manifest"] == v2

    while time.monotonic() - started < 16:  # past host2's turn: the pause holds it
        running()
        time.sleep(0.2)
    assert "host2" not in switched
    assert hosts_by_name(publisher)["host2"]["state"] == "pending"

    ok(mstore(publisher.root, "rollout", "abort", "production"))
    wait_for("every host back on v1", lambda: set(running().values()) == {v1})
    for process in followers:
        process.send_signal(signal.SIGTERM)
    assert [process.wait(timeout=60) for process in followers] == [0, 0, 0]
