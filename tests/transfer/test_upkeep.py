"""mstore.transfer.upkeep: upgrade, stats, verify and prune of a remote, called directly on
a directory remote with an injected clock (tests/remote/test_upkeep.py runs them through
the CLI on every kind of remote, and prune against concurrent pushes)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mstore.chunks.chunking import DEFAULT_PARAMS
from mstore.errors import IntegrityError, NotFoundError, RefusedError, UsageError
from mstore.ops.commit import commit
from mstore.remotes import open_remote
from mstore.remotes.base import MARKER_NAME, REMOTE_FORMAT, BlobInfo, encode_marker
from mstore.remotes.packs import DOOMED, read_doomed, recipe_name
from mstore.transfer import chunk_present
from mstore.transfer.upkeep import DEFAULT_GRACE, prune, stats, strays, upgrade, verify
from mstore.transfer.verbs import push
from tests.helpers import write_version
from tests.transfer.conftest import LARGE, Published

DAY = 24 * 3600.0
REPOSITORY = "7" * 32
CHUNKING = DEFAULT_PARAMS.name


def later(seconds: float) -> float:
    """A clock reading `seconds` from now: what the test stored looks that old."""
    return time.time() + seconds


def orphan_the_large_object(published: Published, tmp_path: Path) -> None:
    """Move production to a version without the large object and push it."""
    commit(published.repo, write_version(tmp_path / "src" / "v0", "v0"), "production")
    push(published.repo, published.remote())


def test_upgrade_rewrites_a_format_1_marker_only(published: Published) -> None:
    remote = published.remote()
    remote.put_blob(MARKER_NAME, b'{"format":1}\n')
    before = {folder: remote.list_blobs(folder) for folder in ("objects", "packs", "recipes")}

    result = upgrade(remote, REPOSITORY)

    assert (result.old_format, result.new_format) == (1, REMOTE_FORMAT)
    assert remote.read_marker() == encode_marker(REPOSITORY)
    assert remote.repository() == REPOSITORY
    assert {folder: remote.list_blobs(folder) for folder in before} == before
    assert upgrade(remote, "1" * 32).old_format == REMOTE_FORMAT  # a second run changes nothing
    assert remote.repository() == REPOSITORY


def test_upgrade_gives_a_format_2_remote_the_repository_and_keeps_its_refs(
    published: Published,
) -> None:
    remote = published.remote()
    remote.put_blob(MARKER_NAME, b'{"chunking":"%s","format":2}\n' % CHUNKING.encode())
    refs = remote.read_refs(remote.ref_names())
    with pytest.raises(RefusedError, match=r"format 2.*mstore remote upgrade"):
        remote.require()

    assert upgrade(remote, REPOSITORY).old_format == 2

    remote.require()
    assert remote.repository() == REPOSITORY
    assert remote.read_refs(remote.ref_names()) == refs  # a ref file without statement


def test_upgrade_refuses_a_newer_format_and_a_missing_marker(
    published: Published, tmp_path: Path
) -> None:
    remote = published.remote()
    remote.put_blob(MARKER_NAME, b'{"format":%d}\n' % (REMOTE_FORMAT + 1))
    with pytest.raises(RefusedError, match="upgrade mstore"):
        upgrade(remote, REPOSITORY)
    with pytest.raises(NotFoundError, match=MARKER_NAME):
        upgrade(open_remote(str(tmp_path / "nothing")), REPOSITORY)


def test_strays_are_names_mstore_never_writes() -> None:
    info = BlobInfo(size=1, mtime=0.0)
    listings = {
        "packs": {"a" * 64: info, "notes.txt": info},
        "recipes": {"ab/" + "c" * 62: info, "ab/short": info},
        "objects": {},
        "indexes": {"A" * 64: info},
    }
    assert strays(listings) == ["indexes/" + "A" * 64, "packs/notes.txt", "recipes/ab/short"]


def test_stats_count_logical_unique_and_stored_bytes(published: Published) -> None:
    remote = published.remote()
    remote.put_blob("packs/notes.txt", b"left by hand")
    files = published.repo.manifest(published.manifest).files

    report = stats(remote, jobs=2)

    assert report.versions == 1 and report.packs == 1
    assert report.logical_bytes == report.unique_bytes == sum(e.size for e in files.values())
    listed = [remote.list_blobs(f) for f in ("objects", "recipes", "packs", "indexes")]
    assert report.stored_bytes == sum(i.size for listing in listed for i in listing.values())
    assert report.stored_bytes > LARGE
    assert report.strays == ["packs/notes.txt"]
    assert report.to_json()["stored_ratio"] == round(report.ratio, 4)


def test_verify_passes_a_whole_remote_and_names_each_damage(published: Published) -> None:
    remote = published.remote()
    result = verify(remote, jobs=2)
    assert result.objects == len(published.repo.manifest(published.manifest).files)
    assert result.packs == 1 and result.chunks > 1 and result.repaired == []

    remote.delete_blob(f"objects/{published.small[:2]}/{published.small[2:]}")
    with pytest.raises(IntegrityError) as info:
        verify(remote, jobs=2)
    assert f"object {published.small} is missing" in str(info.value)
    assert "--repair" in str(info.value)


def test_verify_with_a_store_repairs_what_it_holds(published: Published) -> None:
    remote = published.remote()
    remote.delete_blob(f"objects/{published.small[:2]}/{published.small[2:]}")
    remote.delete_blob(recipe_name(published.large))
    (pack,) = remote.list_blobs("packs")
    remote.delete_blob(f"packs/{pack}")

    result = verify(remote, jobs=2, repair_from=published.repo)

    assert published.small in result.repaired
    assert verify(remote, jobs=2).repaired == []  # whole again


def test_the_grace_period_must_be_longer_than_the_push_window(published: Published) -> None:
    with pytest.raises(UsageError, match="push window"):
        prune(published.remote(), grace=chunk_present.PUSH_WINDOW)


def test_prune_marks_then_deletes_a_grace_period_later(
    published: Published, tmp_path: Path
) -> None:
    orphan_the_large_object(published, tmp_path)
    remote = published.remote()
    assert prune(remote, clock=lambda: later(0)).marked_packs == 0  # too recent to mark

    marked = prune(remote, clock=lambda: later(DAY + 60))
    assert (marked.marked_packs, marked.marked_recipes) == (1, 1)
    assert marked.waiting == DEFAULT_GRACE and read_doomed(remote).since is not None
    waiting = prune(remote, clock=lambda: later(DAY + 3600))
    assert waiting.deleted_packs == 0 and 0 < (waiting.waiting or 0) < DAY

    deleted = prune(remote, clock=lambda: later(2 * DAY + 120))

    assert (deleted.deleted_packs, deleted.deleted_recipes) == (1, 1)
    assert deleted.bytes_freed >= LARGE and deleted.waiting is None
    assert remote.list_blobs("packs") == {} and remote.list_blobs("indexes") == {}
    assert remote.get_blob(DOOMED, 1 << 20) is None
    verify(remote, jobs=2)  # what production needs is all there


def test_prune_keeps_everything_a_ref_needs(published: Published) -> None:
    remote = published.remote()
    result = prune(remote, clock=lambda: later(10 * DAY))
    assert (result.marked_packs, result.marked_recipes, result.waiting) == (0, 0, None)
    assert remote.get_blob(DOOMED, 1 << 20) is None  # nothing to mark: no mark written


def test_a_damaged_mark_marks_nothing_and_the_next_run_removes_it(published: Published) -> None:
    remote = published.remote()
    remote.put_blob(DOOMED, b"{not json")
    assert read_doomed(remote).damaged
    result = prune(remote, clock=lambda: later(10 * DAY))
    assert result.deleted_packs == 0 and remote.list_blobs("packs")
    assert remote.get_blob(DOOMED, 1 << 20) is None
