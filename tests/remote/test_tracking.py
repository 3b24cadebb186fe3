"""Remote-tracking values: a push moves a remote ref only from the value this store last
saw there, so nobody's promote or rollback is undone unseen (on every kind of remote)."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import pytest
from typer.testing import Result

from mstore.core import fsutil
from mstore.errors import RefMovedError
from mstore.remotes import open_remote
from mstore.remotes.base import Remote, RemoteRef
from mstore.remotes.tracking import RemoteTracking
from mstore.repo import Repo
from mstore.transfer.verbs import push
from tests.helpers import assert_consistent, write_version
from tests.remote.support import (
    Proxy,
    as_json,
    clone_cli,
    fails,
    mstore,
    new_store,
    ok,
    remote_state,
)


def _commit(repo: Repo, src: Path, version: str, ref: str = "production") -> str:
    ok(mstore(repo.root, "commit", write_version(src / version, version), "--to", ref))
    value = repo.refs.read(ref)
    assert value is not None
    return value


def _value(repo: Repo, ref: str = "production") -> str:
    value = Repo(repo.root).refs.read(ref)
    assert value is not None
    return value


def test_two_stores_follow_each_other_and_a_stale_promote_is_refused(
    remote_url: str, tmp_path: Path
) -> None:
    """The issue's scenario: push, clone, rollback + push (the clone follows), promote +
    push (it follows again), the clone rolls back and pushes; the first store's next
    promote + push has not seen that rollback: exit 5, the remote as the clone left it."""
    src = tmp_path / "src"
    a = new_store(tmp_path / "a")
    v1 = _commit(a, src, "v1")
    v2 = _commit(a, src, "v2")
    v3 = _commit(a, src, "v3", "staging")
    ok(mstore(a.root, "remote", "add", "origin", remote_url))
    ok(mstore(a.root, "push"))
    ok(clone_cli(remote_url, tmp_path / "b"))
    b = Repo(tmp_path / "b")

    ok(mstore(a.root, "rollback"))
    ok(mstore(a.root, "push", "production"))
    ok(mstore(b.root, "pull", "production", "--checkout"))
    assert _value(b) == v1
    assert b.active_environment() == "production"

    ok(mstore(a.root, "promote", "staging"))
    ok(mstore(a.root, "push"))
    ok(mstore(b.root, "pull", "production", "--checkout"))
    assert _value(b) == v3

    ok(mstore(b.root, "rollback"))
    assert _value(b) == v1
    ok(mstore(b.root, "push", "production"))
    left = remote_state(remote_url)

    _commit(a, src, "v4", "staging")
    ok(mstore(a.root, "promote", "staging"))
    result = mstore(a.root, "push")
    fails(result, 5, "production", v3[:12], v1[:12], "pull")
    assert remote_state(remote_url) == left
    assert left["production"] == v1
    # a's log did hold v1 (and v2): being in the log is not having seen it on the remote.
    assert {v1, v2} <= {e.new for e in Repo(a.root).history.newest_first("production")}
    assert_consistent(Repo(a.root))
    assert_consistent(Repo(b.root))


def test_rollback_from_another_host_is_not_undone(remote_url: str, tmp_path: Path) -> None:
    """Host b rolls production back to v2 and pushes; store a, which last saw v3 there,
    promotes v4: refused, naming both values and the way out; b's rollback stays."""
    src = tmp_path / "src"
    a = new_store(tmp_path / "a")
    _commit(a, src, "v1")
    v2 = _commit(a, src, "v2")
    v3 = _commit(a, src, "v3", "staging")
    ok(mstore(a.root, "promote", "staging"))  # archives v2: the remote gets it too
    ok(mstore(a.root, "push", remote_url))
    ok(clone_cli(remote_url, tmp_path / "b"))
    b = Repo(tmp_path / "b")
    assert _value(b) == v3
    ok(mstore(b.root, "rollback", "--to", v2[:12]))
    ok(mstore(b.root, "push", "production"))

    v4 = _commit(a, src, "v4")
    result = mstore(a.root, "push", remote_url, "production")

    fails(result, 5, f"last seen {v3[:12]}, now {v2[:12]}", "pull", "--force")
    assert remote_state(remote_url)["production"] == v2
    # The way out: pull (here --force: v4 was never pushed), look, then push.
    ok(mstore(a.root, "pull", remote_url, "production", "--force"))
    ok(mstore(a.root, "rollback", "--to", v4[:12]))
    ok(mstore(a.root, "push", remote_url, "production"))
    assert remote_state(remote_url)["production"] == v4


def test_a_remote_ref_never_seen_is_refused_unless_it_is_what_is_pushed(
    remote_url: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    a = new_store(tmp_path / "a")
    v1 = _commit(a, src, "v1")
    ok(mstore(a.root, "push", remote_url))
    other = new_store(tmp_path / "other")
    _commit(other, src, "v9")

    fails(mstore(other.root, "push", remote_url), 5, "never seen", v1[:12])
    assert remote_state(remote_url)["production"] == v1

    # A store holding the very value the remote has: up to date, and now seen.
    same = new_store(tmp_path / "same")
    _commit(same, src, "v1")
    assert _value(same) == v1
    pushed = as_json(mstore(same.root, "push", remote_url, "--json"))
    assert pushed["changed"] is False
    assert RemoteTracking(same.layout, open_remote(remote_url).url).read().seen == {
        "production": v1
    }


def test_push_pull_and_clone_record_what_they_saw(remote_url: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    a = new_store(tmp_path / "a")
    v1 = _commit(a, src, "v1")
    s1 = _commit(a, src, "s1", "staging")
    ok(mstore(a.root, "remote", "add", "origin", remote_url))
    ok(mstore(a.root, "push", "production"))
    shown = as_json(mstore(a.root, "remote", "show", "origin", "--json"))
    assert shown["seen"] == {"production": v1}
    assert shown["pushing"] == {}
    assert [(p["ref"], p["old"], p["new"], p["action"]) for p in shown["pushes"]] == [
        ("production", None, v1, "push")
    ]
    tracking_file = Path(shown["tracking_file"])
    assert tracking_file.parent.parent == a.layout.store / "remotes"
    assert json.loads(tracking_file.read_bytes())["seen"] == {"production": v1}

    ok(mstore(a.root, "push", "staging"))
    ok(clone_cli(remote_url, tmp_path / "b"))
    b_shown = as_json(mstore(tmp_path / "b", "remote", "show", "origin", "--json"))
    assert b_shown["seen"] == {"production": v1, "staging": s1}
    assert b_shown["pushes"] == []
    table = ok(mstore(tmp_path / "b", "remote", "show", "origin")).stdout
    assert "LAST SEEN" in table and v1[:12] in table

    v2 = _commit(a, src, "v2")
    ok(mstore(a.root, "push"))
    ok(mstore(tmp_path / "b", "pull", "--dry-run"))
    assert as_json(mstore(tmp_path / "b", "remote", "show", "origin", "--json"))["seen"] == {
        "production": v1,
        "staging": s1,
    }
    ok(mstore(tmp_path / "b", "pull", "production"))
    assert as_json(mstore(tmp_path / "b", "remote", "show", "origin", "--json"))["seen"] == {
        "production": v2,
        "staging": s1,
    }


def test_force_replaces_an_unseen_value_and_is_recorded(remote_url: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    a = new_store(tmp_path / "a")
    _commit(a, src, "v1")
    ok(mstore(a.root, "remote", "add", "origin", remote_url))
    ok(mstore(a.root, "push"))
    ok(clone_cli(remote_url, tmp_path / "b"))
    b = Repo(tmp_path / "b")
    vb = _commit(b, src, "vb")
    ok(mstore(b.root, "push"))
    va = _commit(a, src, "va")
    fails(mstore(a.root, "push"), 5, "production")

    forced = as_json(mstore(a.root, "push", "--force", "--json"))

    assert remote_state(remote_url)["production"] == va
    assert forced["refs"][0]["forced"] is True and forced["refs"][0]["old"] == vb
    newest = as_json(mstore(a.root, "remote", "show", "origin", "--json"))["pushes"][0]
    assert (newest["action"], newest["old"], newest["new"]) == ("push --force", vb, va)


class _CrashAfterSwap(Proxy):
    """The remote ref moves, then the pushing process dies before it records anything."""

    def swap_ref(
        self,
        name: str,
        expected: RemoteRef | None,
        manifest_id: str,
        statement: bytes | None = None,
    ) -> RemoteRef:
        self.inner.swap_ref(name, expected, manifest_id, statement)
        raise KeyboardInterrupt("killed after the swap")


@pytest.mark.parametrize("then", ["nothing", "commit"])
def test_a_crash_between_swap_and_record_is_recognized(
    remote_url: str, tmp_path: Path, then: str
) -> None:
    src = tmp_path / "src"
    a = new_store(tmp_path / "a")
    _commit(a, src, "v1")
    push(a, open_remote(remote_url))
    v2 = _commit(a, src, "v2")
    remote: Remote = _CrashAfterSwap(open_remote(remote_url))
    with pytest.raises(KeyboardInterrupt):
        push(a, remote)
    tracking = RemoteTracking(a.layout, open_remote(remote_url).url)
    assert remote_state(remote_url)["production"] == v2
    assert tracking.read().pushing == {"production": v2}  # the record of the attempt

    wanted = _commit(a, src, "v3") if then == "commit" else v2
    result = push(a, open_remote(remote_url))

    assert remote_state(remote_url)["production"] == wanted
    assert result.changed is (then == "commit")
    assert tracking.read().seen == {"production": wanted}
    assert tracking.read().pushing == {}


def test_a_lost_race_names_both_values(remote_url: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    a = new_store(tmp_path / "a")
    v1 = _commit(a, src, "v1")
    push(a, open_remote(remote_url))
    ok(clone_cli(remote_url, tmp_path / "b"))
    b = Repo(tmp_path / "b")
    vb = _commit(b, src, "vb")
    _commit(a, src, "va")
    racing = Proxy(open_remote(remote_url))
    racing.before_swap = lambda: push(b, open_remote(remote_url))

    with pytest.raises(RefMovedError) as caught:
        push(a, racing)

    message = str(caught.value)
    assert f"it held {v1[:12]} when read, it now holds {vb[:12]}" in message
    assert "expected" not in message
    assert remote_state(remote_url)["production"] == vb
    # Losing records nothing as seen: the next push is refused before sending anything.
    assert RemoteTracking(a.layout, racing.url).read().seen == {"production": v1}


def test_remote_show_names_and_urls(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = new_store(tmp_path / "a")
    v1 = _commit(a, tmp_path / "src", "v1")
    ok(mstore(a.root, "push", url))

    by_url = as_json(mstore(a.root, "remote", "show", url, "--json"))
    assert (by_url["name"], by_url["url"], by_url["seen"]) == (None, url, {"production": v1})
    fails(mstore(a.root, "remote", "show", "nosuch"), 4, "nosuch")
    ok(mstore(a.root, "remote", "add", "backup", url))
    assert as_json(mstore(a.root, "remote", "show", "backup", "--json"))["seen"] == by_url["seen"]
    assert "up to date" in ok(mstore(a.root, "push", url, "--dry-run")).stdout


def _delete_remote_ref(url: str, name: str) -> None:
    """Delete a remote ref behind mstore's back (nothing in mstore deletes one)."""
    remote = open_remote(url)
    if url.startswith("s3://"):
        from mstore.remotes.s3 import S3Remote

        assert isinstance(remote, S3Remote)
        remote.client.delete_object(Bucket=remote.bucket, Key=remote.ref_key(name))
    else:
        (Path(url) / "refs" / name).unlink()


def test_a_ref_deleted_during_a_push_is_a_lost_race(remote_url: str, tmp_path: Path) -> None:
    """If-Match on a missing key is 404 on moto and AWS, 412 on RGW: both are re-read
    and reported as what they are."""
    src = tmp_path / "src"
    a = new_store(tmp_path / "a")
    v1 = _commit(a, src, "v1")
    push(a, open_remote(remote_url))
    _commit(a, src, "v2")
    racing = Proxy(open_remote(remote_url))
    racing.before_swap = lambda: _delete_remote_ref(remote_url, "production")

    with pytest.raises(RefMovedError) as caught:
        push(a, racing)

    assert str(caught.value).startswith(
        f"ref production moved on the remote {racing.url} while this push ran: it held "
        f"{v1[:12]} when read, it now has no ref production"
    )
    assert "production" not in remote_state(remote_url)
    # The next push sees the deletion before sending anything.
    fails(mstore(a.root, "push", remote_url), 5, "deleted from the remote", v1[:12])


def _follower_with_hook(tmp_path: Path) -> tuple[Repo, Repo, str, Path]:
    """Store a pushed production (v1) to a directory remote; b pulled it (its active
    ref) and has a post-switch hook; a then moved production to v2 and pushed it.
    Returns (a, b, url, the file the hook appends to)."""
    url = str(tmp_path / "remote")
    a = new_store(tmp_path / "a")
    _commit(a, tmp_path / "src", "v1")
    ok(mstore(a.root, "commit", write_version(tmp_path / "src" / "s1", "s1"), "--to", "staging"))
    ok(mstore(a.root, "push", url))
    b = new_store(tmp_path / "b")
    ok(mstore(b.root, "pull", url))
    calls = tmp_path / "calls"
    hook = b.layout.hooks / "post-switch"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f'#!/bin/sh\necho "$MSTORE_REF $MSTORE_NEW" >> {calls}\n')
    hook.chmod(0o755)
    _commit(a, tmp_path / "src", "v2")
    ok(mstore(a.root, "push", url, "production"))
    return a, b, url, calls


@pytest.mark.parametrize("damage", ["not JSON", "symlink", "FIFO"])
def test_a_tracking_file_that_cannot_be_used_counts_as_absent(tmp_path: Path, damage: str) -> None:
    """Issue 17, item 17: a corrupt tracking file made pull apply the move, then fail
    (exit 3, no post-switch hook, every later pull failing the same way); a FIFO there
    hung it. Now: read before the move, ignored with a warning, replaced by the record."""
    a, b, url, calls = _follower_with_hook(tmp_path)
    tracking = RemoteTracking(b.layout, url)
    victim = tmp_path / "victim.json"
    victim.write_bytes(b'{"precious": true}')
    tracking.path.unlink()
    if damage == "symlink":
        tracking.path.symlink_to(victim)
    elif damage == "FIFO":
        os.mkfifo(tracking.path)
    else:
        tracking.path.write_bytes(b'{"format":1,"seen":')
    outcome: list[Result] = []
    worker = threading.Thread(
        target=lambda: outcome.append(mstore(b.root, "pull", url, "production")), daemon=True
    )

    worker.start()
    worker.join(60)

    assert outcome, "pull hung on the tracking file"
    ok(outcome[0])
    assert "warning" in outcome[0].stderr and str(tracking.path) in outcome[0].stderr
    assert _value(b) == _value(a)
    assert calls.read_text() == f"production {_value(a)}\n"
    assert victim.read_bytes() == b'{"precious": true}'
    assert tracking.path.is_file() and not tracking.path.is_symlink()
    # Treated as absent: only what this pull saw is recorded (staging must be pulled again
    # before b may push it).
    assert tracking.read().seen == {"production": _value(a)}
    ok(mstore(b.root, "pull", url))
    assert tracking.read().seen == {"production": _value(a), "staging": _value(a, "staging")}
    assert_consistent(Repo(b.root))


def test_a_failure_to_record_after_the_move_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 17, item 17: ENOSPC while recording the values seen failed the pull (exit 1)
    after it moved production, and the post-switch hook never ran."""
    a, b, url, calls = _follower_with_hook(tmp_path)
    tracking = RemoteTracking(b.layout, url)
    real_write = fsutil.atomic_write

    def full_disk(path: Path, data: bytes, mode: int = 0o644) -> None:
        if path == tracking.path:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, data, mode)

    monkeypatch.setattr(fsutil, "atomic_write", full_disk)
    result = ok(mstore(b.root, "pull", url, "production"))

    assert "warning" in result.stderr and "not recorded" in result.stderr
    assert "No space left on device" in result.stderr
    assert _value(b) == _value(a)
    assert calls.read_text() == f"production {_value(a)}\n"
    assert tracking.read().seen["production"] != _value(a)  # the old record stays
    monkeypatch.setattr(fsutil, "atomic_write", real_write)
    ok(mstore(b.root, "pull", url, "production"))  # the next pull records it
    assert tracking.read().seen["production"] == _value(a)
    assert_consistent(Repo(b.root))
