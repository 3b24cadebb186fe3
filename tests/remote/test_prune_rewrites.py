"""A push that writes again what a prune marked (a version pushed again after its refs
had moved away: same chunks, so a pack of the same name, and its recipe) against the
prune run deleting it, at each point of that run; on every kind of remote.

Each interleaving is set up by a hook at the exact moment (no sleeps, no timing): the
prune's clock is moved forward instead of waiting for the grace period.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mstore.errors import MstoreError
from mstore.remotes import open_remote
from mstore.remotes.base import BlobInfo, Remote
from mstore.repo import Repo
from mstore.transfer import chunk_present
from mstore.transfer.upkeep import prune
from mstore.transfer.verbs import push
from tests.helpers import assert_consistent, write_version
from tests.remote.support import Proxy, mstore, new_store, ok, remote_state
from tests.remote.tamper import hours_later

SIZE = 6 << 20


class BeforeFirstDelete(Proxy):
    """A remote on which prune runs `meanwhile` just before its first delete: after it
    recorded that it is deleting and listed what the refs need."""

    def __init__(self, inner: Remote, meanwhile: Callable[[], object]) -> None:
        super().__init__(inner)
        self.meanwhile: Callable[[], object] | None = meanwhile
        self.deleted: list[str] = []

    def delete_blob(self, name: str) -> None:
        if self.meanwhile is not None:
            act, self.meanwhile = self.meanwhile, None
            act()
        self.deleted.append(name)
        self.inner.delete_blob(name)


class PausedAfterTheIndex(Proxy):
    """A remote whose push stops right after reading the remote index and the mark,
    until released (it runs in its own thread)."""

    def __init__(self, inner: Remote) -> None:
        super().__init__(inner)
        self.read_index = threading.Event()
        self.release = threading.Event()

    def list_blobs(self, prefix: str) -> dict[str, BlobInfo]:
        found = self.inner.list_blobs(prefix)
        if prefix == "indexes" and not self.read_index.is_set():
            self.read_index.set()
            assert self.release.wait(60)
        return found


def _commit(repo: Repo, src: Path, name: str, model: bytes) -> str:
    ok(mstore(repo.root, "commit", write_version(src / name, name, model), "--to", "production"))
    value = repo.refs.read("production")
    assert value is not None
    return value


@pytest.fixture
def rolled_back(remote_url: str, tmp_path: Path) -> tuple[Repo, str, str]:
    """v1 (large) pushed, then v0 (small); prune marked v1's pack and recipe; then the
    store rolled production back to v1, which its next push sends again."""
    a = new_store(tmp_path / "a")
    v1 = _commit(a, tmp_path / "src", "v1", os.urandom(SIZE))
    push(a, open_remote(remote_url))
    v0 = _commit(a, tmp_path / "src", "v0", b"small")
    push(a, open_remote(remote_url))
    marked = prune(open_remote(remote_url), clock=hours_later(25))
    assert marked.marked_packs >= 1 and marked.marked_recipes == 1
    ok(mstore(a.root, "rollback", "production", "--to", v1[:12]))
    return a, v1, v0


def _intact(remote_url: str, source: Repo, tmp_path: Path) -> None:
    """The remote passes verify, and a new store pulls exactly the source's refs."""
    ok(mstore(source.root, "remote", "verify", remote_url))
    c = new_store(tmp_path / "c")
    ok(mstore(c.root, "pull", remote_url))
    assert c.refs.read_all() == source.refs.read_all()
    assert_consistent(c)


def test_a_push_while_prune_deletes_writes_no_marked_name(
    remote_url: str, rolled_back: tuple[Repo, str, str], tmp_path: Path
) -> None:
    """The push reads the mark while the run deletes by it: it would have to write v1's
    recipe (marked), so it stops before sending anything; pushed again after the run,
    it completes."""
    a, v1, v0 = rolled_back
    pushed = []
    remote = BeforeFirstDelete(
        open_remote(remote_url),
        lambda: pushed.append(mstore(a.root, "push", remote_url, "production")),
    )

    deleted = prune(remote, clock=hours_later(50))

    assert deleted.deleted_packs >= 1 and deleted.deleted_recipes == 1
    assert pushed[0].exit_code == 1, pushed[0].stderr
    assert "is deleting what it marked" in pushed[0].stderr
    assert "nothing was sent" in pushed[0].stderr
    assert remote_state(remote_url)["production"] == v0
    ok(mstore(a.root, "push", remote_url, "production"))
    assert remote_state(remote_url)["production"] == v1
    _intact(remote_url, a, tmp_path)


def test_a_push_that_read_the_mark_before_the_run_moves_no_ref(
    remote_url: str, rolled_back: tuple[Repo, str, str], tmp_path: Path
) -> None:
    """The push reads the mark before the run starts deleting, then writes v1's pack (same
    name as the marked one) and recipe after the run listed what the refs need: its check
    of the mark finds the run deleting, so it moves no ref."""
    a, v1, v0 = rolled_back
    pusher = PausedAfterTheIndex(open_remote(remote_url))
    failures: list[BaseException] = []

    def run() -> None:
        try:
            push(a, pusher, ["production"])
        except MstoreError as err:
            failures.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    assert pusher.read_index.wait(60)

    def finish_the_push() -> None:
        pusher.release.set()
        thread.join(60)

    deleted = prune(
        BeforeFirstDelete(open_remote(remote_url), finish_the_push), clock=hours_later(50)
    )

    assert not thread.is_alive()
    assert deleted.deleted_packs >= 1 and deleted.deleted_recipes == 1
    assert failures and "started deleting what it marked" in str(failures[0])
    assert any(name.startswith("packs/") for name in pusher.puts)  # it did write them
    assert remote_state(remote_url)["production"] == v0
    push(a, open_remote(remote_url), ["production"])
    assert remote_state(remote_url)["production"] == v1
    _intact(remote_url, a, tmp_path)


GRACE = 2.001  # just above the push window below: what the push writes is fresh


def test_what_a_push_wrote_before_the_run_is_kept_until_its_ref_moves(
    remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The push writes v1's pack and recipe again (both marked), finds the mark unchanged,
    and the whole deleting run happens before its ref moves: the run lists the recipe as
    written since the mark, so it keeps both, and the ref the push then moves is whole."""
    monkeypatch.setattr(chunk_present, "PUSH_WINDOW", 2.0)
    a = new_store(tmp_path / "a")
    v1 = _commit(a, tmp_path / "src", "v1", os.urandom(SIZE))
    push(a, open_remote(remote_url))
    _commit(a, tmp_path / "src", "v0", b"small")
    push(a, open_remote(remote_url))
    marked = prune(open_remote(remote_url), GRACE, clock=lambda: time.time() + GRACE)
    assert marked.marked_packs >= 1 and marked.marked_recipes == 1
    if remote_url.startswith("s3://"):
        # S3 stamps a file to the second: the recipe written again must get a later
        # stamp than the first, or it cannot look written since the mark.
        time.sleep(1.01 - time.time() % 1)
    ok(mstore(a.root, "rollback", "production", "--to", v1[:12]))
    runs = []
    remote = Proxy(open_remote(remote_url))
    remote.before_swap = lambda: runs.append(
        prune(open_remote(remote_url), GRACE, clock=lambda: time.time() + 3 * GRACE)
    )

    push(a, remote, ["production"], clock=lambda: 0.0)

    assert runs[0].deleted_packs == 0 and runs[0].deleted_recipes == 0
    assert any(name.startswith("packs/") for name in remote.puts)
    assert remote_state(remote_url)["production"] == v1
    _intact(remote_url, a, tmp_path)
