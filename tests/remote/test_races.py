"""Two stores pushing different versions to one remote ref: one wins, the other gets
"ref moved on the remote" (exit 5), and no version is lost."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mstore.errors import MstoreError, RefMovedError
from mstore.remotes import open_remote
from mstore.remotes.tracking import RemoteTracking
from mstore.repo import Repo
from mstore.transfer.verbs import clone, pull, push
from tests.helpers import assert_consistent, write_version
from tests.remote.support import Proxy, fails, mstore, new_store, ok, remote_state


def _commit(repo: Repo, source: Path, version: str, ref: str = "production") -> str:
    ok(mstore(repo.root, "commit", write_version(source / version, version), "--to", ref))
    value = repo.refs.read(ref)
    assert value is not None
    return value


def _rivals(remote_url: str, tmp_path: Path, shared: bool) -> tuple[Repo, Repo, str, str]:
    """Stores a and c with different production versions; with `shared`, both started
    from a remote whose production they had cloned."""
    src = tmp_path / "src"
    if shared:
        origin = new_store(tmp_path / "origin")
        _commit(origin, src, "v1")
        push(origin, open_remote(remote_url))
        a, _ = clone(open_remote(remote_url), tmp_path / "a")
        c, _ = clone(open_remote(remote_url), tmp_path / "c")
    else:
        a, c = new_store(tmp_path / "a"), new_store(tmp_path / "c")
    return a, c, _commit(a, src, "v2"), _commit(c, src, "v3")


@pytest.mark.parametrize("shared", [False, True], ids=["create", "replace"])
def test_racing_pushes_one_wins_the_other_gets_ref_moved(
    remote_url: str, tmp_path: Path, shared: bool
) -> None:
    a, c, v2, v3 = _rivals(remote_url, tmp_path, shared)
    racing = Proxy(open_remote(remote_url))
    # a has read the remote ref and sent its objects; c pushes before a's swap lands.
    racing.before_swap = lambda: push(c, open_remote(remote_url))

    with pytest.raises(RefMovedError, match="ref production moved on the remote"):
        push(a, racing)

    # c's version won; a's objects reached the remote; a's store is untouched.
    assert remote_state(remote_url)["production"] == v3
    assert all(open_remote(remote_url).has_object(i) for i in (v2, v3))
    assert a.refs.read("production") == v2
    # Pushing again is refused before anything is sent (a never had v3), exit 5.
    fails(mstore(a.root, "push", remote_url, "production"), 5, "production", "pull")
    assert remote_state(remote_url)["production"] == v3
    assert_consistent(a)
    assert_consistent(c)


def test_loser_pulls_then_pushes(remote_url: str, tmp_path: Path) -> None:
    a, c, v2, v3 = _rivals(remote_url, tmp_path, shared=True)
    push(c, open_remote(remote_url))

    fails(mstore(a.root, "push", remote_url), 5, "production")
    fails(mstore(a.root, "pull", remote_url), 7, "production", "push it first")
    ok(mstore(a.root, "pull", remote_url, "--force"))
    ok(mstore(a.root, "rollback", "production", "--to", v2[:12]))
    ok(mstore(a.root, "push", remote_url, "production"))

    assert remote_state(remote_url)["production"] == v2
    # The version a replaced is still in a's log, and on the remote.
    assert a.resolve("production@{1}") == v3
    assert open_remote(remote_url).has_object(v3)


def test_force_replaces_a_version_never_seen(remote_url: str, tmp_path: Path) -> None:
    a, c, v2, _v3 = _rivals(remote_url, tmp_path, shared=True)
    push(c, open_remote(remote_url))

    ok(mstore(a.root, "push", remote_url, "production", "--force"))

    assert remote_state(remote_url)["production"] == v2


def test_concurrent_pushes_to_a_directory_remote(tmp_path: Path) -> None:
    """Real threads, no choreography: the directory remote's lock decides the order."""
    url = str(tmp_path / "remote")
    stores = [new_store(tmp_path / name) for name in ("a", "b", "c", "d")]
    values = [_commit(s, tmp_path / "src", f"v{n}") for n, s in enumerate(stores)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(stores))

    def attempt(repo: Repo) -> None:
        barrier.wait()
        try:
            push(repo, open_remote(url))
            outcomes.append("won")
        except MstoreError as err:
            assert err.exit_code == 5, err
            outcomes.append("moved")

    threads = [threading.Thread(target=attempt, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["moved", "moved", "moved", "won"]
    assert remote_state(url)["production"] in values
    assert all(open_remote(url).has_object(v) for v in values)


def test_pull_moves_refs_in_one_logged_transaction(remote_url: str, tmp_path: Path) -> None:
    origin = new_store(tmp_path / "origin")
    _commit(origin, tmp_path / "src", "v1", "production")
    _commit(origin, tmp_path / "src", "v2", "staging")
    push(origin, open_remote(remote_url))
    b = new_store(tmp_path / "b")

    pull(b, open_remote(remote_url))

    entries = list(b.history.newest_first())
    assert {e.ref for e in entries} == {"production", "staging"}
    assert len({e.txn for e in entries}) == 1
    assert {e.action for e in entries} == {"pull"}


def test_a_push_losing_to_a_push_of_the_same_value_succeeds(
    remote_url: str, tmp_path: Path
) -> None:
    """Two stores push the same version to a ref new on the remote; the one whose swap
    comes second finds the ref holding exactly its value: a success, recorded as seen."""
    origin = new_store(tmp_path / "origin")
    value = _commit(origin, tmp_path / "src", "v1")
    side = str(tmp_path / "side")
    push(origin, open_remote(side))
    a, _ = clone(open_remote(side), tmp_path / "a")
    c, _ = clone(open_remote(side), tmp_path / "c")
    racing = Proxy(open_remote(remote_url))
    racing.before_swap = lambda: push(c, open_remote(remote_url))

    result = push(a, racing)

    assert remote_state(remote_url)["production"] == value
    assert not result.changed and "already held" in result.notes[0]
    # Recorded as seen, not as a move of a's: a's next push moves the ref from it.
    tracking = RemoteTracking(a.layout, remote_url)
    assert tracking.read().seen["production"] == value and tracking.pushes(10) == []
    v2 = _commit(a, tmp_path / "src", "v2")
    ok(mstore(a.root, "push", remote_url, "production"))
    assert remote_state(remote_url)["production"] == v2
