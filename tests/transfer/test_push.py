"""mstore.transfer.push: local refs and the objects they need go to a remote; each remote
ref moves by compare-and-swap, only from the value this store last saw there."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from mstore.errors import IntegrityError, MstoreError, NotFoundError, RefMovedError
from mstore.ops.commit import commit
from mstore.remotes import open_remote
from mstore.remotes.tracking import FORCED_PUSH, PUSH, RemoteTracking
from mstore.transfer import chunk_present
from mstore.transfer.push import RefPush, push
from tests.helpers import write_version
from tests.transfer.conftest import Published, new_store


def remote_refs(url: str) -> dict[str, str]:
    remote = open_remote(url)
    return {n: r.manifest_id for n, r in remote.read_refs(remote.ref_names()).items()}


def test_a_first_push_sends_every_object_and_records_what_it_saw(tmp_path: Path) -> None:
    repo = new_store(tmp_path / "a")
    v1 = commit(repo, write_version(tmp_path / "src" / "v1", "v1"), "production").manifest_id
    url = str(tmp_path / "remote")

    result = push(repo, open_remote(url))

    assert result.refs == [RefPush("production", None, v1 or "")]
    assert result.changed and result.objects_present == 0
    assert result.objects_sent == 4  # model, encoders, metadata, manifest
    assert result.bytes_sent == result.bytes_total
    assert remote_refs(url) == {"production": v1}
    tracking = RemoteTracking(repo.layout, url)
    assert tracking.read().seen == {"production": v1}
    assert [(e.ref, e.action) for e in tracking.pushes(10)] == [("production", PUSH)]


def test_a_second_push_sends_nothing(published: Published) -> None:
    again = push(published.repo, published.remote())
    assert not again.changed and again.objects_sent == again.bytes_sent == 0
    value = published.manifest
    assert again.refs == [RefPush("production", value, value, seen=value)]


def test_a_dry_run_sends_and_records_nothing(tmp_path: Path) -> None:
    repo = new_store(tmp_path / "a")
    commit(repo, write_version(tmp_path / "src" / "v1", "v1"), "production")
    url = tmp_path / "remote"

    result = push(repo, open_remote(str(url)), dry_run=True)

    assert result.dry_run and result.objects_sent == 4
    assert not url.exists()
    assert not RemoteTracking(repo.layout, str(url)).directory.exists()


def test_only_named_refs_are_pushed_and_an_unknown_one_is_named(
    published: Published, tmp_path: Path
) -> None:
    commit(published.repo, write_version(tmp_path / "src" / "v2", "v2"), "staging")
    commit(published.repo, write_version(tmp_path / "src" / "v3", "v3"), "candidate")
    push(published.repo, published.remote(), ["staging"])
    assert set(remote_refs(published.url)) == {"production", "staging"}
    with pytest.raises(NotFoundError, match="'nope' does not exist here"):
        push(published.repo, published.remote(), ["nope"])


def test_a_ref_another_store_moved_is_refused_unless_forced(
    published: Published, tmp_path: Path
) -> None:
    other = new_store(tmp_path / "b")
    theirs = commit(other, write_version(tmp_path / "src" / "b2", "b2"), "production").manifest_id
    push(other, published.remote(), force=True)  # their store never saw ours
    ours = commit(published.repo, write_version(tmp_path / "src" / "v2", "v2"), "production")

    with pytest.raises(RefMovedError) as info:
        push(published.repo, published.remote())
    assert "moved on the remote" in str(info.value) and "pull first" in str(info.value)
    assert remote_refs(published.url)["production"] == theirs

    result = push(published.repo, published.remote(), force=True)

    assert result.refs[0].forced and remote_refs(published.url)["production"] == ours.manifest_id
    log = RemoteTracking(published.repo.layout, published.url).pushes(10)
    assert log[0].action == FORCED_PUSH and log[0].old == theirs


def test_a_corrupt_local_object_is_never_published(published: Published, tmp_path: Path) -> None:
    v2 = write_version(tmp_path / "src" / "v2", "v2", model=b"new weights")
    manifest = commit(published.repo, v2, "staging").manifest_id or ""
    model = published.repo.manifest(manifest).files["model.pth"].id
    path = published.repo.objects.path(model)
    path.chmod(0o644)
    path.write_bytes(b"new weightz")  # copy mode: objects are plain files

    with pytest.raises(IntegrityError, match=f"object {model} is corrupt here"):
        push(published.repo, published.remote())

    assert not published.remote().has_object(model)
    assert "staging" not in remote_refs(published.url)


def test_a_corrupt_large_object_is_never_published_either(
    published: Published, tmp_path: Path
) -> None:
    """A chunked object is hashed whole while it is chunked: a corrupt one gets no
    recipe and no ref (its packs name no object; prune takes them)."""
    from mstore.remotes.packs import recipe_name

    big = os.urandom(6 << 20)
    v2 = write_version(tmp_path / "src" / "v2", "v2", model=big)
    manifest = commit(published.repo, v2, "staging").manifest_id or ""
    model = published.repo.manifest(manifest).files["model.pth"].id
    path = published.repo.objects.path(model)
    path.chmod(0o644)
    path.write_bytes(big[:-1] + bytes([big[-1] ^ 1]))

    with pytest.raises(IntegrityError, match=f"object {model} is corrupt here"):
        push(published.repo, published.remote())

    assert published.remote().get_blob(recipe_name(model), 1 << 20) is None
    assert "staging" not in remote_refs(published.url)


def test_a_push_that_outlives_its_window_moves_no_ref(published: Published, tmp_path: Path) -> None:
    commit(published.repo, write_version(tmp_path / "src" / "v2", "v2"), "staging")
    ticks = itertools.count(step=chunk_present.PUSH_WINDOW + 1)  # each reading a window later

    with pytest.raises(MstoreError, match="no ref was moved: push again"):
        push(published.repo, published.remote(), clock=lambda: next(ticks))

    assert "staging" not in remote_refs(published.url)
    push(published.repo, published.remote())  # the retry sends only what is missing
    assert "staging" in remote_refs(published.url)
