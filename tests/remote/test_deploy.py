"""The issue's "done when": two stores that share only a remote. A commits and
promotes, B (a serving host) pulls and checks out production and serves A's bytes;
A rolls back, B pulls and follows."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mstore.repo import Repo
from mstore.settings import get_settings
from tests.helpers import assert_consistent, write_version
from tests.remote.support import as_json, fails, mstore, new_store, ok


def _served(b: Repo) -> dict[str, bytes]:
    """What B's application loads: the files of the active version."""
    version = get_settings(b.root).snapshot()
    return {p.name: p.read_bytes() for p in sorted(Path(version.directory).iterdir())}


def _files(repo: Repo, ref: str) -> dict[str, bytes]:
    view = repo.layout.view_link(ref)
    return {p.name: p.read_bytes() for p in sorted(view.iterdir())}


def test_serving_host_follows_promote_and_rollback(remote_url: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    a, b = new_store(tmp_path / "a"), new_store(tmp_path / "b")
    ok(mstore(a.root, "remote", "add", "origin", remote_url))
    ok(mstore(b.root, "remote", "add", "origin", remote_url))

    # A: v1 in production, v2 trained and promoted; then published.
    ok(mstore(a.root, "commit", write_version(src / "v1", "v1"), "--to", "production"))
    ok(mstore(a.root, "push"))
    ok(mstore(b.root, "pull", "production"))
    ok(mstore(b.root, "checkout", "production"))
    assert _served(b) == _files(a, "production")
    ok(mstore(a.root, "commit", write_version(src / "v2", "v2"), "--to", "staging"))
    ok(mstore(a.root, "promote", "staging"))
    ok(mstore(a.root, "push"))

    # B, the cron/deploy step: pull then checkout.
    ok(mstore(b.root, "pull", "production"))
    ok(mstore(b.root, "checkout", "production"))
    assert _served(b) == _files(a, "production")
    assert _served(b)["model.pth"] == b"weights v2"

    # A rolls production back and publishes; B follows with the same two commands.
    ok(mstore(a.root, "rollback"))
    ok(mstore(a.root, "push", "production"))
    ok(mstore(b.root, "pull", "production"))
    ok(mstore(b.root, "checkout", "production"))
    assert _served(b) == _files(a, "production")
    assert _served(b)["model.pth"] == b"weights v1"
    assert b.refs.read_all() == {"production": a.refs.read("production")}
    assert [e.action for e in b.history.newest_first("production")] == ["pull"] * 3
    assert_consistent(a)
    assert_consistent(b)


def test_pull_checkout_flag_makes_the_ref_active(remote_url: str, tmp_path: Path) -> None:
    a, b = new_store(tmp_path / "a"), new_store(tmp_path / "b")
    ok(mstore(a.root, "commit", write_version(tmp_path / "v1", "v1"), "--to", "staging"))
    ok(mstore(a.root, "push", remote_url))

    document = as_json(mstore(b.root, "pull", remote_url, "staging", "--checkout", "--json"))

    assert document["checkout"]["environment"] == "staging"
    assert b.active_environment() == "staging"
    assert _served(b) == _files(a, "staging")
    fails(mstore(b.root, "pull", remote_url, "--checkout"), 2, "exactly one REF")


@pytest.mark.parametrize("active", [True, False], ids=["active", "inactive"])
def test_post_switch_hook_runs_when_pull_moves_the_active_ref(
    remote_url: str, tmp_path: Path, active: bool
) -> None:
    a, b = new_store(tmp_path / "a"), new_store(tmp_path / "b")
    ok(mstore(a.root, "commit", write_version(tmp_path / "v1", "v1"), "--to", "production"))
    ok(mstore(a.root, "push", remote_url))
    ok(mstore(b.root, "pull", remote_url))
    if not active:
        ok(mstore(b.root, "commit", write_version(tmp_path / "vb", "vb"), "--to", "staging"))
        ok(mstore(b.root, "checkout", "staging"))
    calls = tmp_path / "calls"
    hook = b.layout.hooks / "post-switch"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f'#!/bin/sh\necho "$MSTORE_REF $MSTORE_ACTION" >> {calls}\n')
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    ok(mstore(a.root, "commit", write_version(tmp_path / "v2", "v2"), "--to", "production"))
    ok(mstore(a.root, "push", remote_url))

    ok(mstore(b.root, "pull", remote_url, "production"))

    expected = "production pull\n" if active else None
    assert (calls.read_text() if calls.exists() else None) == expected
