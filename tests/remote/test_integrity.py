"""A damaged or hostile remote: pull refuses what it serves and changes nothing here."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import orjson
import pytest

from mstore.ops.transfer import push
from mstore.remotes import open_remote
from mstore.repo import Repo
from tests.helpers import assert_consistent, store_digest, write_version
from tests.remote.support import (
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


@pytest.mark.parametrize("where", ["refs/staging", "objects", "packed-refs"])
def test_fifo_planted_in_a_directory_remote_does_not_hang(tmp_path: Path, where: str) -> None:
    url = str(tmp_path / "remote")
    a = new_store(tmp_path / "a")
    ok(mstore(a.root, "commit", write_version(tmp_path / "src" / "v1", "v1"), "--to", "staging"))
    push(a, open_remote(url))
    staging = a.refs.read("staging")
    assert staging is not None
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
