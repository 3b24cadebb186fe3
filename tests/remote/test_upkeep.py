"""Remote upkeep on every kind of remote: upgrade from format 1, stats, verify, prune
(and its race with a concurrent push)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from mstore.errors import MstoreError
from mstore.remotes import open_remote
from mstore.remotes.base import MARKER_NAME, REMOTE_FORMAT, BlobInfo
from mstore.repo import Repo
from mstore.transfer import chunk_present
from mstore.transfer.upkeep import PruneResult, prune
from mstore.transfer.verbs import push
from tests.helpers import assert_consistent, write_version
from tests.remote.support import (
    Proxy,
    as_json,
    fails,
    mstore,
    new_store,
    ok,
    remote_state,
    view_bytes,
)
from tests.remote.tamper import hours_later

SIZE = 6 << 20


def _commit(repo: Repo, src: Path, name: str, model: bytes, ref: str) -> None:
    ok(mstore(repo.root, "commit", write_version(src / name, name, model), "--to", ref))


def test_a_format_1_remote_is_refused_until_upgraded(
    remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = new_store(tmp_path / "a")
    model = os.urandom(SIZE)
    _commit(a, tmp_path / "src", "v1", model, "production")
    # A remote as format 1 wrote it: every object whole, the old marker.
    with monkeypatch.context() as patched:
        patched.setattr("mstore.transfer.push.CHUNK_THRESHOLD", 1 << 40)
        push(a, open_remote(remote_url))
    open_remote(remote_url).put_blob(MARKER_NAME, b'{"format":1}\n')
    b = new_store(tmp_path / "b")

    fails(mstore(b.root, "pull", remote_url), 7, "format 1", "mstore remote upgrade")
    _commit(a, tmp_path / "src", "v2", model[:-10] + b"0123456789", "staging")
    fails(mstore(a.root, "push", remote_url), 7, "mstore remote upgrade")

    assert as_json(mstore(a.root, "remote", "upgrade", remote_url, "--json"))["old_format"] == 1
    ok(mstore(b.root, "pull", remote_url))  # the whole objects stay readable
    ok(mstore(a.root, "push", remote_url))  # new large objects go as chunks
    c = new_store(tmp_path / "c")
    ok(mstore(c.root, "pull", remote_url))
    assert c.refs.read_all() == a.refs.read_all()
    assert {k: v for k, v in view_bytes(c).items() if k.endswith(".pth")} == {
        k: v for k, v in view_bytes(a).items() if k.endswith(".pth")
    }
    assert_consistent(c)
    assert (
        f"already uses format {REMOTE_FORMAT}"
        in ok(mstore(a.root, "remote", "upgrade", remote_url)).stdout
    )


def test_stats_report_logical_and_stored_bytes(remote_url: str, tmp_path: Path) -> None:
    a = new_store(tmp_path / "a")
    model = os.urandom(SIZE)
    _commit(a, tmp_path / "src", "v1", model, "production")
    _commit(a, tmp_path / "src", "v2", model[: SIZE // 2] + b"x" + model[SIZE // 2 :], "staging")
    push(a, open_remote(remote_url))

    report = as_json(mstore(a.root, "remote", "stats", remote_url, "--json"))

    assert report["versions"] == 2
    assert report["logical_bytes"] > 2 * SIZE
    # Two versions sharing all but a few chunks: a little over one model is stored.
    assert SIZE < report["stored_bytes"] < 1.5 * SIZE
    assert report["stored_ratio"] < 0.75 and report["dedup_ratio"] > 1.3
    assert "of logical" in ok(mstore(a.root, "remote", "stats", remote_url)).stdout


def test_verify_finds_a_damaged_pack(remote_url: str, tmp_path: Path) -> None:
    a = new_store(tmp_path / "a")
    _commit(a, tmp_path / "src", "v1", os.urandom(SIZE), "production")
    push(a, open_remote(remote_url))
    ok(mstore(a.root, "remote", "verify", remote_url))

    remote = open_remote(remote_url)
    pack, info = next(iter(remote.list_blobs("packs").items()))
    data = bytearray(remote.get_range(f"packs/{pack}", 0, info.size))
    data[info.size // 2] ^= 1
    remote.put_blob(f"packs/{pack}", bytes(data))

    fails(mstore(a.root, "remote", "verify", remote_url), 3, "damaged", pack[:12])


class Pausing(Proxy):
    """A remote whose push runs `meanwhile` right after reading the remote index (the
    packs, the mark and the index listing), before it reads any index or sends anything."""

    def __init__(self, inner: object, meanwhile: Callable[[], object]) -> None:
        super().__init__(inner)  # type: ignore[arg-type]
        self.meanwhile: Callable[[], object] | None = meanwhile

    def list_blobs(self, prefix: str) -> dict[str, BlobInfo]:
        found = self.inner.list_blobs(prefix)
        if prefix == "indexes" and self.meanwhile is not None:
            act, self.meanwhile = self.meanwhile, None
            act()
        return found


# Prune runs with a clock this far ahead, so what the test stored looks that old (the
# default grace period is 24 h, the push window 30 min: nothing is waited for).
MARK = hours_later(25)
DELETE = hours_later(50)


@pytest.fixture
def orphaned(remote_url: str, tmp_path: Path) -> Repo:
    """v1 (large) pushed, then production moved to a small v0: v1's packs are unneeded."""
    a = new_store(tmp_path / "a")
    model = os.urandom(SIZE)
    (tmp_path / "model").write_bytes(model)
    _commit(a, tmp_path / "src", "v1", model, "production")
    push(a, open_remote(remote_url))
    _commit(a, tmp_path / "src", "v0", b"small", "production")
    push(a, open_remote(remote_url))
    return a


def _pull_all(remote_url: str, directory: Path, source: Repo) -> None:
    c = new_store(directory)
    ok(mstore(c.root, "pull", remote_url))
    assert c.refs.read_all() == source.refs.read_all()
    assert_consistent(c)


def test_prune_never_deletes_a_pack_a_concurrent_push_reuses(
    remote_url: str, orphaned: Repo, tmp_path: Path
) -> None:
    """The push reads the index (v1's packs unmarked), prune marks them, the push reuses
    them and moves its ref; the deleting run, a grace period later, keeps them."""
    model = (tmp_path / "model").read_bytes()
    _commit(orphaned, tmp_path / "src", "v2", model + b"tail", "staging")
    marked: list[PruneResult] = []
    remote = Pausing(
        open_remote(remote_url), lambda: marked.append(prune(open_remote(remote_url), clock=MARK))
    )

    sent = push(orphaned, remote, ["staging"])

    assert marked[0].marked_packs >= 1
    assert sent.bytes_sent < SIZE // 2  # v1's packs were reused
    assert remote_state(remote_url)["staging"] == orphaned.refs.read("staging")

    deleted = prune(open_remote(remote_url), clock=DELETE)

    assert deleted.deleted_packs == 0 and open_remote(remote_url).list_blobs("packs")
    _pull_all(remote_url, tmp_path / "c", orphaned)
    ok(mstore(orphaned.root, "remote", "verify", remote_url))


def test_a_push_after_the_mark_sends_the_chunks_again(
    remote_url: str, orphaned: Repo, tmp_path: Path
) -> None:
    """Marked packs are not reused: the push re-sends their chunks, and prune's second
    run deletes the old packs without breaking the new version."""
    marked = prune(open_remote(remote_url), clock=MARK)
    assert marked.marked_packs >= 1
    assert "waiting" in prune(open_remote(remote_url), clock=hours_later(26)).to_json()
    model = (tmp_path / "model").read_bytes()
    _commit(orphaned, tmp_path / "src", "v2", model + b"tail", "staging")
    sent = push(orphaned, open_remote(remote_url), ["staging"])
    assert sent.bytes_sent >= SIZE

    deleted = prune(open_remote(remote_url), clock=DELETE)

    assert deleted.deleted_packs == marked.marked_packs and deleted.bytes_freed >= SIZE
    _pull_all(remote_url, tmp_path / "c", orphaned)
    ok(mstore(orphaned.root, "remote", "verify", remote_url))


def test_prune_waits_a_grace_period_between_marking_and_deleting(
    remote_url: str, orphaned: Repo
) -> None:
    marked = prune(open_remote(remote_url), clock=MARK)
    too_soon = prune(open_remote(remote_url), clock=hours_later(48))

    assert marked.marked_packs >= 1 and marked.waiting == 24 * 3600
    assert too_soon.deleted_packs == 0 and too_soon.waiting is not None
    assert 0 < too_soon.waiting <= 3600 + 60
    assert prune(open_remote(remote_url), clock=DELETE).deleted_packs == marked.marked_packs


def test_a_push_slower_than_its_window_moves_no_ref(
    remote_url: str, orphaned: Repo, tmp_path: Path
) -> None:
    model = (tmp_path / "model").read_bytes()
    _commit(orphaned, tmp_path / "src", "v2", model + b"tail", "staging")
    now = [0.0]

    def outlive_the_window() -> None:
        now[0] += chunk_present.PUSH_WINDOW + 1

    remote = Pausing(open_remote(remote_url), outlive_the_window)

    with pytest.raises(MstoreError, match="push again"):
        push(orphaned, remote, ["staging"], clock=lambda: now[0])

    assert "staging" not in remote_state(remote_url)
    push(orphaned, open_remote(remote_url), ["staging"])  # the retry completes
    _pull_all(remote_url, tmp_path / "c", orphaned)
