"""A transfer cut off midway (the S3 server stops during a multipart upload) leaves
the remote consistent, and the retried push completes it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mstore.errors import MstoreError
from mstore.remotes import open_remote
from mstore.remotes.s3 import S3Remote
from mstore.transfer.verbs import clone, push
from tests.helpers import assert_consistent, weights, write_version
from tests.remote.conftest import S3Server
from tests.remote.support import mstore, new_store, ok, remote_state, view_bytes

PART = 5 << 20  # S3's smallest part size


def _large_version(tmp_path: Path) -> Path:
    # A third float32 weights (chunks stored compressed), the rest random (stored raw).
    model = weights(PART, seed=2) + os.urandom(2 * PART + 12345)
    return write_version(tmp_path / "src" / "v1", "v1", model=model)


def test_push_interrupted_by_a_server_stop_is_retried(
    s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    a = new_store(tmp_path / "a")
    ok(mstore(a.root, "commit", _large_version(tmp_path), "--to", "production"))
    url = f"s3://{bucket}/models"
    remote = S3Remote(bucket, "models", part_size=PART)
    sent = 0

    def stop_midway(n: int) -> None:
        nonlocal sent
        sent += n
        if sent > PART and s3_server.server is not None:
            s3_server.stop()

    with pytest.raises(MstoreError, match=r"S3 transfer failed|S3 error"):
        push(a, remote, progress=stop_midway)

    s3_server.start()
    s3_server.create_bucket(bucket)  # in case the new server starts empty
    assert remote_state(url) == {}  # no ref names a missing object

    result = push(a, S3Remote(bucket, "models", part_size=PART))

    assert result.changed
    assert remote_state(url) == a.refs.read_all()
    b, _ = clone(open_remote(url), tmp_path / "b")
    assert view_bytes(b) == view_bytes(a)
    assert_consistent(b)


def test_push_interrupted_by_a_crash_is_retried(remote_url: str, tmp_path: Path) -> None:
    """The pusher dies (here: an exception from its progress callback) mid-transfer."""
    a = new_store(tmp_path / "a")
    ok(mstore(a.root, "commit", _large_version(tmp_path), "--to", "production"))
    sent = 0

    class Crash(Exception):
        pass

    def crash_midway(n: int) -> None:
        nonlocal sent
        sent += n
        if sent > PART:
            raise Crash

    remote = open_remote(remote_url)
    if isinstance(remote, S3Remote):
        remote = S3Remote(remote.bucket, remote.prefix, part_size=PART)
    with pytest.raises(Crash):
        push(a, remote, progress=crash_midway)
    assert remote_state(remote_url) == {}

    push(a, open_remote(remote_url))

    assert remote_state(remote_url) == a.refs.read_all()


def test_pull_interrupted_leaves_the_store_unchanged(remote_url: str, tmp_path: Path) -> None:
    from tests.helpers import store_digest

    a = new_store(tmp_path / "a")
    ok(mstore(a.root, "commit", _large_version(tmp_path), "--to", "production"))
    push(a, open_remote(remote_url))
    b = new_store(tmp_path / "b")
    before = store_digest(b)

    class Crash(Exception):
        pass

    def crash(n: int) -> None:
        raise Crash

    with pytest.raises(Crash):
        from mstore.transfer.verbs import pull

        pull(b, open_remote(remote_url), progress=crash)

    assert store_digest(b) == before
    assert list(b.layout.tmp.iterdir()) == []
    ok(mstore(b.root, "pull", remote_url))
    assert view_bytes(b) == view_bytes(a)


@pytest.mark.parametrize("at", ["packs/", "indexes/", "recipes/"])
def test_chunked_push_crashing_at_each_write_is_retried(
    remote_url: str, tmp_path: Path, at: str
) -> None:
    """The pusher dies as it writes its first pack, index or recipe: the retry ends
    exactly where an uninterrupted push ends (same refs, same bytes pulled), and sends
    again only what the remote lacks."""
    from tests.remote.support import Proxy

    a = new_store(tmp_path / "a")
    ok(mstore(a.root, "commit", _large_version(tmp_path), "--to", "production"))

    class Crash(Exception):
        pass

    class Crashing(Proxy):
        def put_blob(self, name: str, data: bytes) -> None:
            if name.startswith(at):
                raise Crash
            super().put_blob(name, data)

    with pytest.raises(Crash):
        push(a, Crashing(open_remote(remote_url)))
    assert remote_state(remote_url) == {}

    retried = push(a, open_remote(remote_url))

    assert retried.changed
    assert remote_state(remote_url) == a.refs.read_all()
    b, _ = clone(open_remote(remote_url), tmp_path / "b")
    assert view_bytes(b) == view_bytes(a)
    assert_consistent(b)
    assert push(a, open_remote(remote_url)).objects_sent == 0


def test_pull_crashing_mid_rebuild_leaves_the_store_unchanged(
    remote_url: str, tmp_path: Path
) -> None:
    """A pull that dies while it rebuilds a large object from ranges installs nothing;
    the retried pull ends where an uninterrupted one ends."""
    from mstore.transfer.verbs import pull
    from tests.helpers import store_digest
    from tests.remote.support import Proxy

    a = new_store(tmp_path / "a")
    ok(mstore(a.root, "commit", _large_version(tmp_path), "--to", "production"))
    push(a, open_remote(remote_url))
    b = new_store(tmp_path / "b")
    before = store_digest(b)

    class Crash(Exception):
        pass

    class Crashing(Proxy):
        def get_range(self, name: str, start: int, length: int) -> bytes:
            raise Crash

    with pytest.raises(Crash):
        pull(b, Crashing(open_remote(remote_url)))

    assert store_digest(b) == before
    assert list(b.layout.tmp.iterdir()) == []
    pull(b, open_remote(remote_url))
    assert b.refs.read_all() == a.refs.read_all()
    assert_consistent(b)
