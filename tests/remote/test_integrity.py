"""A damaged or hostile remote: pull refuses what it serves and changes nothing here."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from mstore.core.hashing import hash_bytes
from mstore.errors import IntegrityError
from mstore.remotes import open_remote
from mstore.remotes.base import CHUNK_THRESHOLD
from mstore.repo import Repo
from mstore.transfer.verbs import push
from mstore.views import protection
from tests.helpers import assert_consistent, store_digest, write_version
from tests.remote.support import (
    edit_recipe,
    fails,
    mstore,
    new_store,
    ok,
    overwrite_object,
    put_raw_object,
    set_remote_ref,
)


@pytest.fixture
def published(remote_url: str, tmp_path: Path) -> Repo:
    """A store whose production (v1) and staging (v2) are on the remote."""
    a = new_store(tmp_path / "a")
    src = tmp_path / "src"
    ok(mstore(a.root, "commit", write_version(src / "v1", "v1"), "--to", "production"))
    ok(mstore(a.root, "commit", write_version(src / "v2", "v2"), "--to", "staging"))
    push(a, open_remote(remote_url))
    return a


@pytest.fixture
def follower(remote_url: str, published: Repo, tmp_path: Path) -> Repo:
    """A store that already pulled production (it has v1, not v2)."""
    b = new_store(tmp_path / "b")
    ok(mstore(b.root, "pull", remote_url, "production"))
    return b


def _assert_refused_unchanged(b: Repo, remote_url: str, code: int, *words: str) -> None:
    before = store_digest(b)
    fails(mstore(b.root, "pull", remote_url), code, *words)
    assert store_digest(b) == before
    assert list(b.layout.tmp.iterdir()) == []
    assert_consistent(b)


@pytest.mark.parametrize("same_size", [True, False], ids=["same-size", "other-size"])
def test_tampered_data_object_is_refused(
    remote_url: str, published: Repo, follower: Repo, same_size: bool
) -> None:
    staging = published.refs.read("staging")
    assert staging is not None
    model = published.manifest(staging).files["model.pth"]
    forged = b"x" * model.size if same_size else b"poisoned weights"
    overwrite_object(remote_url, model.id, forged)

    _assert_refused_unchanged(follower, remote_url, 3, model.id[:12])
    assert not follower.objects.has(model.id)


def test_tampered_manifest_is_refused(remote_url: str, published: Repo, follower: Repo) -> None:
    staging = published.refs.read("staging")
    assert staging is not None
    overwrite_object(
        remote_url, staging, published.objects.read_bytes(staging).replace(b"v2", b"v9")
    )

    _assert_refused_unchanged(follower, remote_url, 3, staging)


def test_hostile_manifest_paths_are_refused_before_use(
    remote_url: str, published: Repo, follower: Repo
) -> None:
    """A manifest that hashes to its name but names a path outside the view."""
    payload = put_raw_object(remote_url, b"payload")
    document = {
        "files": {"../../escape": {"id": payload, "mode": 420, "size": 7}},
        "format": 1,
        "kind": "mstore/manifest",
        "lineage": {"author": "x", "message": "", "parent": None, "time": "2024-11-15T00:00:00Z"},
        "metadata": None,
    }
    manifest = put_raw_object(remote_url, orjson.dumps(document, option=orjson.OPT_SORT_KEYS))
    set_remote_ref(remote_url, "staging", manifest)

    _assert_refused_unchanged(follower, remote_url, 6, "escape")
    assert not (follower.root.parent / "escape").exists()


def test_corrupt_remote_ref_is_refused(remote_url: str, published: Repo, follower: Repo) -> None:
    remote = open_remote(remote_url)
    if remote_url.startswith("s3://"):
        from mstore.remotes.s3 import S3Remote

        assert isinstance(remote, S3Remote)
        remote.client.put_object(
            Bucket=remote.bucket, Key=remote.ref_key("staging"), Body=b"not an id\n"
        )
    else:
        (Path(remote_url) / "refs" / "staging").write_bytes(b"not an id\n")

    _assert_refused_unchanged(follower, remote_url, 3, "staging")


def test_missing_object_on_the_remote_is_reported(
    remote_url: str, published: Repo, follower: Repo
) -> None:
    staging = published.refs.read("staging")
    assert staging is not None
    model = published.manifest(staging).files["model.pth"]
    remote = open_remote(remote_url)
    if remote_url.startswith("s3://"):
        from mstore.remotes.s3 import S3Remote

        assert isinstance(remote, S3Remote)
        remote.client.delete_object(Bucket=remote.bucket, Key=remote.object_key(model.id))
    else:
        (Path(remote_url) / "objects" / model.id[:2] / model.id[2:]).unlink()

    _assert_refused_unchanged(follower, remote_url, 4, model.id)


def test_corrupt_local_object_is_never_pushed(remote_url: str, tmp_path: Path) -> None:
    # In hardlink mode a write through a view reaches the object itself.
    (tmp_path / "a").mkdir()
    a, _ = Repo.init(tmp_path / "a", link_mode="hardlink")
    ok(mstore(a.root, "commit", write_version(tmp_path / "src" / "v1", "v1"), "--to", "production"))
    production = a.refs.read("production")
    assert production is not None
    model = a.manifest(production).files["model.pth"]
    path = a.objects.path(model.id)
    path.chmod(0o644)
    path.write_bytes(b"rotted")

    fails(mstore(a.root, "push", remote_url), 3, model.id, "mstore verify")

    remote = open_remote(remote_url)
    assert not remote.has_object(model.id)
    assert remote.read_refs(["production"]) == {}


def _pushed_staging(tmp_path: Path) -> tuple[Repo, str, str]:
    """A store whose staging (v1) is pushed to a directory remote: (store, URL, id)."""
    url = str(tmp_path / "remote")
    a = new_store(tmp_path / "a")
    ok(mstore(a.root, "commit", write_version(tmp_path / "src" / "v1", "v1"), "--to", "staging"))
    push(a, open_remote(url))
    staging = a.refs.read("staging")
    assert staging is not None
    return a, url, staging


@pytest.mark.parametrize("where", ["refs/staging", "objects", "packed-refs"])
def test_fifo_planted_in_a_directory_remote_does_not_hang(tmp_path: Path, where: str) -> None:
    a, url, staging = _pushed_staging(tmp_path)
    if where == "objects":
        model = a.manifest(staging).files["model.pth"].id
        target = Path(url) / "objects" / model[:2] / model[2:]
    else:
        target = Path(url) / where
    target.unlink(missing_ok=True)
    os.mkfifo(target)
    b = new_store(tmp_path / "b")
    outcome: list[int] = []
    named = ["production"] if where == "packed-refs" else []  # not loose: packed is read
    worker = threading.Thread(
        target=lambda: outcome.append(mstore(b.root, "pull", url, *named).exit_code),
        daemon=True,
    )

    worker.start()
    worker.join(20)

    assert outcome == [3]


def test_fifo_at_packed_refs_does_not_hang_push(tmp_path: Path) -> None:
    """Issue 17, item 13: RefStore read packed-refs with a blocking open()."""
    url = str(tmp_path / "remote")
    a = new_store(tmp_path / "a")
    ok(mstore(a.root, "commit", write_version(tmp_path / "src" / "v1", "v1"), "--to", "staging"))
    push(a, open_remote(url))
    os.mkfifo(Path(url) / "packed-refs")
    ok(mstore(a.root, "commit", write_version(tmp_path / "src" / "v1", "v1"), "--to", "production"))
    outcome: list[int] = []
    worker = threading.Thread(  # a new remote ref: its packed line is looked for
        target=lambda: outcome.append(mstore(a.root, "push", url, "production").exit_code),
        daemon=True,
    )

    worker.start()
    worker.join(20)

    assert outcome == [3]


def test_lock_planted_as_a_symlink_is_never_followed(tmp_path: Path) -> None:
    """Issue 17, item 12: a directory remote's `lock` symlinked to a victim's file was
    opened with O_CREAT and truncated by push."""
    url = str(tmp_path / "remote")
    a = new_store(tmp_path / "a")
    ok(mstore(a.root, "commit", write_version(tmp_path / "src" / "v1", "v1"), "--to", "staging"))
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    Path(url).mkdir()
    push(a, open_remote(url))
    (Path(url) / "lock").unlink(missing_ok=True)
    (Path(url) / "lock").symlink_to(victim)
    ok(mstore(a.root, "commit", write_version(tmp_path / "src" / "v2", "v2"), "--to", "staging"))

    fails(mstore(a.root, "push", url, "staging"), 3, "lock", "symlink")

    assert victim.read_bytes() == b"precious"


def test_lock_planted_as_a_hard_link_is_never_truncated(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = new_store(tmp_path / "a")
    ok(mstore(a.root, "commit", write_version(tmp_path / "src" / "v1", "v1"), "--to", "staging"))
    push(a, open_remote(url))
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    (Path(url) / "lock").unlink(missing_ok=True)
    os.link(victim, Path(url) / "lock")
    ok(mstore(a.root, "commit", write_version(tmp_path / "src" / "v2", "v2"), "--to", "staging"))

    fails(mstore(a.root, "push", url, "staging"), 3, "lock", "hard links")

    assert victim.read_bytes() == b"precious"


@pytest.mark.parametrize("names", [("Prod", "prod"), ("a", "a/b"), ("x/y", "X/y/z")])
def test_clashing_remote_ref_names_are_refused(
    bucket: str, tmp_path: Path, names: tuple[str, str]
) -> None:
    """An S3 remote can hold refs a store cannot (a file and a directory of one name)."""
    url = f"s3://{bucket}/models"
    a = new_store(tmp_path / "a")
    ok(mstore(a.root, "commit", write_version(tmp_path / "src" / "v1", "v1"), "--to", "staging"))
    push(a, open_remote(url))
    staging = a.refs.read("staging")
    assert staging is not None
    for name in names:
        set_remote_ref(url, name, staging)
    b = new_store(tmp_path / "b")

    _assert_refused_unchanged(b, url, 7, repr(names[0]), repr(names[1]))
    ok(mstore(b.root, "pull", url, names[1]))


def _counting_reads(monkeypatch: pytest.MonkeyPatch, planted: Path) -> list[int]:
    """Bytes read (one entry per read) from the file now at `planted`, by any os.read."""
    inode = planted.stat().st_ino
    real_read = os.read
    counted: list[int] = []

    def read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == inode:
                counted.append(len(data))
        return data

    monkeypatch.setattr(os, "read", read)
    return counted


@pytest.mark.parametrize("what", ["data object", "manifest"])
def test_an_oversized_object_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    """Issue 17, item 19: a 40 MiB object where 300 bytes were expected was copied in full
    (ENOSPC with no path, exit 1), and a manifest checked against 64 MiB only once read."""
    a, url, staging = _pushed_staging(tmp_path)
    entry = a.manifest(staging).files["metadata.json"]
    object_id, size = (entry.id, 40 << 20) if what == "data object" else (staging, 65 << 20)
    planted = Path(url) / "objects" / object_id[:2] / object_id[2:]
    planted.chmod(0o644)
    with open(planted, "r+b") as f:
        f.truncate(size)  # sparse: nothing is written, a reader gets zeros
    b = new_store(tmp_path / "b")
    before = store_digest(b)
    counted = _counting_reads(monkeypatch, planted)

    result = mstore(b.root, "pull", url)

    fails(result, 3, object_id, f"{size} bytes", "refused before reading")
    assert sum(counted) == 0
    assert store_digest(b) == before
    assert list(b.layout.tmp.iterdir()) == []


def test_an_s3_object_larger_than_its_bound_is_refused_unread(bucket: str, tmp_path: Path) -> None:
    """On S3 the length of the GET is checked before its body is read; a parallel download
    (above the part size) is bounded in its writes too, should the object grow between."""
    from mstore.remotes.s3 import S3Remote

    remote = S3Remote(bucket, "models", part_size=5 << 20)
    big = os.urandom(6 << 20)
    object_id = hash_bytes(big)
    remote.client.put_object(Bucket=bucket, Key=remote.object_key(object_id), Body=big)

    remote.get_object(object_id, tmp_path / "whole", limit=len(big))
    assert (tmp_path / "whole").read_bytes() == big
    with pytest.raises(IntegrityError, match="refused before reading"):
        remote.get_object(object_id, tmp_path / "short", limit=1000)
    assert (tmp_path / "short").stat().st_size == 0

    real_download = remote.client.download_fileobj

    def grown_meanwhile(*args: object, **kwargs: object) -> None:
        remote.client.put_object(Bucket=bucket, Key=remote.object_key(object_id), Body=big * 2)
        real_download(*args, **kwargs)

    remote.client.download_fileobj = grown_meanwhile
    with pytest.raises(IntegrityError, match=object_id):
        remote.get_object(object_id, tmp_path / "grown", limit=len(big))
    assert (tmp_path / "grown").stat().st_size <= len(big)


def _publish_chunked(url: str, tmp_path: Path) -> tuple[Repo, str]:
    """A store whose staging holds a 5 MiB model (stored as chunks), pushed to `url`;
    the store and the model's id."""
    a = new_store(tmp_path / "a")
    model = os.urandom(5 << 20)
    version = write_version(tmp_path / "src" / "v1", "v1", model)
    ok(mstore(a.root, "commit", version, "--to", "staging"))
    push(a, open_remote(url))
    return a, hash_bytes(model)


@pytest.fixture
def chunked(remote_url: str, tmp_path: Path) -> tuple[Repo, str]:
    return _publish_chunked(remote_url, tmp_path)


@pytest.mark.parametrize("offset", [1 << 63, (1 << 63) - 1, (1 << 63) - 2])
def test_a_recipe_offset_beyond_64_bits_is_damage(
    remote_url: str, chunked: tuple[Repo, str], tmp_path: Path, offset: int
) -> None:
    """Issue 17, item 20: on a directory remote, offset 2^63 was "internal error:
    OverflowError" and 2^63-1 "Invalid argument" (exit 1, "retry"); S3 said 3."""
    _, model = chunked

    def far(recipe: dict[str, Any]) -> None:
        recipe["chunks"][0][2] = offset

    edit_recipe(remote_url, model, far)
    b = new_store(tmp_path / "b")
    before = store_digest(b)

    fails(mstore(b.root, "pull", remote_url), 3, "the remote is damaged")
    assert store_digest(b) == before


def test_a_manifest_size_beyond_64_bits_is_damage(
    remote_url: str, chunked: tuple[Repo, str], tmp_path: Path
) -> None:
    """Issue 17, item 20: a manifest (and recipe) giving a file 2^63 bytes ended in
    "internal error: OverflowError" on a directory remote."""
    a, model = chunked
    huge = 1 << 63

    def claim(recipe: dict[str, Any]) -> None:
        recipe["size"] = huge
        recipe["chunks"] = [[recipe["chunks"][0][0], recipe["chunks"][0][1], 0, huge]]

    edit_recipe(remote_url, model, claim)
    staging = a.refs.read("staging")
    assert staging is not None
    document = orjson.loads(a.objects.read_bytes(staging))
    document["files"]["model.pth"]["size"] = huge
    forged = put_raw_object(remote_url, orjson.dumps(document, option=orjson.OPT_SORT_KEYS))
    set_remote_ref(remote_url, "staging", forged)
    b = new_store(tmp_path / "b")
    before = store_digest(b)

    fails(mstore(b.root, "pull", remote_url), 3, "the remote is damaged")
    assert store_digest(b) == before


def test_a_symlinked_pack_is_damage_not_followed(tmp_path: Path) -> None:
    """Issue 17, item 20: a pack replaced by a symlink (to a copy of its own bytes) was
    ELOOP, exit 1 ("retry"); it is damage, exit 3, whoever reads it (a directory
    remote's: an S3 key is never a link)."""
    url = str(tmp_path / "remote")
    _publish_chunked(url, tmp_path)
    pack = next(iter(open_remote(url).list_blobs("packs")))
    copy = tmp_path / "elsewhere"
    shutil.copyfile(Path(url) / "packs" / pack, copy)
    (Path(url) / "packs" / pack).unlink()
    (Path(url) / "packs" / pack).symlink_to(copy)
    b = new_store(tmp_path / "b")
    before = store_digest(b)

    fails(mstore(b.root, "pull", url), 3, pack, "symlink")
    assert store_digest(b) == before
    fails(mstore(b.root, "remote", "verify", url), 3, pack)


def test_the_local_chunk_index_never_blocks_on_or_follows_a_planted_object(
    tmp_path: Path,
) -> None:
    """A local object replaced by a FIFO hung the chunk index's read (a blocking open);
    one replaced by a symlink was followed. Both are skipped: the chunk is fetched."""
    from mstore.caches.chunk_index import LocalChunks
    from mstore.chunks.chunking import DEFAULT_PARAMS, chunk_file

    a = new_store(tmp_path / "a")
    model = os.urandom(5 << 20)
    ok(
        mstore(
            a.root, "commit", write_version(tmp_path / "src" / "v1", "v1", model), "--to", "staging"
        )
    )
    object_id = hash_bytes(model)
    chunk = next(iter(chunk_file(a.objects.path(object_id), DEFAULT_PARAMS)))
    index = LocalChunks(a.layout, a.objects, DEFAULT_PARAMS, CHUNK_THRESHOLD)
    index.update()
    assert index.read(chunk.id, chunk.length) is not None
    path = a.objects.path(object_id)
    protection.protect_tree(a.layout.store, on=False)
    found: list[bytes | None] = []
    for plant in (
        lambda: os.mkfifo(path),
        lambda: path.symlink_to(tmp_path / "src" / "v1" / "model.pth"),
    ):
        path.unlink()
        plant()
        worker = threading.Thread(
            target=lambda: found.append(index.read(chunk.id, chunk.length)), daemon=True
        )
        worker.start()
        worker.join(20)
    index.close()

    assert found == [None, None]
