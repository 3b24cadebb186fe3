"""mstore.transfer.repair: send again, from a store, what a damaged remote lost; stop the
reuse of damaged packs. No ref moves."""

from __future__ import annotations

import os
from pathlib import Path

from mstore.ops.commit import commit
from mstore.remotes import open_remote
from mstore.remotes.packs import RemoteIndex
from mstore.transfer.chunk_bases import fetch_object
from mstore.transfer.remote_walk import Damage, walk
from mstore.transfer.repair import repair
from mstore.transfer.verbs import push
from tests.helpers import write_version
from tests.transfer.conftest import LARGE, Published, new_store

ABSENT = "f" * 64


def test_a_whole_object_is_deleted_then_sent_again(published: Published, tmp_path: Path) -> None:
    """A directory remote keeps an existing name, so the damaged copy goes first."""
    path = Path(published.url) / "objects" / published.small[:2] / published.small[2:]
    path.chmod(0o644)
    path.write_bytes(b"damaged")
    refs = published.remote().read_refs(["production"])

    done = repair(
        published.repo, published.remote(), [Damage("damaged", frozenset({published.small}))], 2
    )

    assert (done.sent, done.lacking, done.unreused) == ([published.small], [], [])
    assert path.read_bytes() == published.repo.objects.read_bytes(published.small)
    assert published.remote().read_refs(["production"]) == refs


def test_a_lost_pack_is_made_again_of_the_same_chunks(published: Published, tmp_path: Path) -> None:
    """The same chunks packed again make a pack of the same name: it is whole again, so
    its index stays."""
    remote = published.remote()
    (pack,) = remote.list_blobs("packs")
    (Path(published.url) / "packs" / pack).unlink()

    done = repair(
        published.repo,
        remote,
        [Damage("pack lost", frozenset({published.large}), frozenset({pack}))],
        2,
    )

    assert (done.sent, done.unreused) == ([published.large], [])
    index = RemoteIndex.read(remote, None, 2)
    assert pack in index.packs and index.damaged == {}
    fetch_object(remote, published.large, tmp_path / "large")
    assert (tmp_path / "large").read_bytes() == published.repo.objects.read_bytes(published.large)


def test_a_damaged_pack_shared_by_two_objects_is_never_reused(tmp_path: Path) -> None:
    """Only the damaged object is sent again, in a pack of its own chunks; the damaged
    pack's index goes, so no later push reuses any chunk of it."""
    repo = new_store(tmp_path / "a")
    source = write_version(tmp_path / "src" / "v1", "v1")
    (source / "first.bin").write_bytes(os.urandom(LARGE))
    (source / "second.bin").write_bytes(os.urandom(LARGE))
    files = repo.manifest(commit(repo, source, "production").manifest_id or "").files
    first, second = files["first.bin"].id, files["second.bin"].id
    remote = open_remote(str(tmp_path / "remote"))
    push(repo, remote)
    (pack,) = remote.list_blobs("packs")  # both objects' chunks

    done = repair(repo, remote, [Damage("damaged", frozenset({first}), frozenset({pack}))], 2)

    assert done.sent == [first] and done.unreused == [pack]
    assert pack not in remote.list_blobs("indexes")
    recipes = walk(remote, 2).recipes
    assert pack not in recipes[first].packs() and recipes[second].packs() == {pack}
    fetch_object(remote, first, tmp_path / "first")
    assert (tmp_path / "first").read_bytes() == repo.objects.read_bytes(first)


def test_what_the_store_does_not_hold_is_reported_not_sent(published: Published) -> None:
    done = repair(published.repo, published.remote(), [Damage("lost", frozenset({ABSENT}))], 2)
    assert (done.sent, done.lacking) == ([], [ABSENT])
    assert not published.remote().has_object(ABSENT)


def test_damaged_packs_no_large_object_needs_lose_their_index(published: Published) -> None:
    remote = published.remote()
    (pack,) = remote.list_blobs("packs")
    done = repair(published.repo, remote, [Damage("index damaged", packs=frozenset({pack}))], 2)
    assert done.unreused == [pack] and done.sent == []
    assert pack not in remote.list_blobs("indexes") and pack in remote.list_blobs("packs")
