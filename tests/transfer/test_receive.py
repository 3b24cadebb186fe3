"""mstore.transfer.receive: objects from a remote are all checked, then all installed, or
none is; no download is larger than its bound."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from mstore.core.manifests import FileEntry
from mstore.errors import IntegrityError
from mstore.remotes.base import MAX_FILE_BYTES
from mstore.repo import Repo
from mstore.transfer import receive
from mstore.transfer.receive import Receiver
from tests.transfer.conftest import LARGE, Published, new_store


def object_file(url: str, object_id: str) -> Path:
    path = Path(url) / "objects" / object_id[:2] / object_id[2:]
    path.chmod(0o644)
    return path


def stored(repo: Repo) -> set[str]:
    objects = repo.layout.objects
    return {f"{d.name}{f.name}" for d in objects.iterdir() for f in d.iterdir()}


@pytest.fixture
def empty(tmp_path: Path) -> Repo:
    return new_store(tmp_path / "b")


def test_the_manifests_and_every_object_they_name_arrive(published: Published, empty: Repo) -> None:
    receiver = Receiver(empty, published.remote(), 4, None)
    started: list[int] = []
    try:
        received, total = receiver.fetch([published.manifest], False, started.append)
    finally:
        receiver.discard()

    files = published.repo.manifest(published.manifest).files
    assert stored(empty) == {published.manifest, *(e.id for e in files.values())}
    assert received == len(files) + 1
    assert total == started[0] == sum(e.size for e in files.values())
    assert empty.objects.read_bytes(published.large) == (
        published.repo.objects.read_bytes(published.large)
    )
    assert os.listdir(empty.layout.tmp) == []


def test_what_the_store_holds_is_not_fetched_again(published: Published, empty: Repo) -> None:
    first = Receiver(empty, published.remote(), 2, None)
    first.fetch([published.manifest], False, None)
    first.discard()
    again = Receiver(empty, published.remote(), 2, None)
    assert again.fetch([published.manifest], False, None) == (0, 0)
    assert again.fetched == 0


def test_a_dry_run_installs_nothing(published: Published, empty: Repo) -> None:
    receiver = Receiver(empty, published.remote(), 2, None)
    received, total = receiver.fetch([published.manifest], True, None)
    receiver.discard()
    files = published.repo.manifest(published.manifest).files
    assert (received, total) == (len(files) + 1, sum(e.size for e in files.values()))
    assert stored(empty) == set() and os.listdir(empty.layout.tmp) == []


def test_one_damaged_object_means_none_is_installed(published: Published, empty: Repo) -> None:
    path = object_file(published.url, published.small)
    path.write_bytes(bytes(b ^ 1 for b in path.read_bytes()))  # same size, other bytes
    receiver = Receiver(empty, published.remote(), 2, None)

    with pytest.raises(IntegrityError) as info:
        receiver.fetch([published.manifest], False, None)
    receiver.discard()

    assert published.small in str(info.value) and published.url in str(info.value)
    assert stored(empty) == set()  # not the manifest, not the good objects
    assert os.listdir(empty.layout.tmp) == []


def test_an_object_longer_than_its_manifest_says_is_refused(
    published: Published, empty: Repo
) -> None:
    path = object_file(published.url, published.small)
    path.write_bytes(path.read_bytes() + b"appended")
    receiver = Receiver(empty, published.remote(), 2, None)
    with pytest.raises(IntegrityError):
        receiver.fetch([published.manifest], False, None)
    receiver.discard()
    assert stored(empty) == set()


def test_one_object_given_two_sizes_is_damage(published: Published) -> None:
    manifest = published.repo.manifest(published.manifest)
    files = dict(manifest.files)
    files["copy.pth"] = replace(files["model.pth"], size=files["model.pth"].size + 1)
    with pytest.raises(IntegrityError, match="a size other manifests do not"):
        receive._data_sizes({"m1": manifest, "m2": replace(manifest, files=files)})


def test_a_size_no_file_can_have_is_refused_before_any_download(published: Published) -> None:
    manifest = published.repo.manifest(published.manifest)
    files = {**manifest.files, "huge.bin": FileEntry("d" * 64, MAX_FILE_BYTES + 1)}
    with pytest.raises(IntegrityError, match="more than a file can hold"):
        receive._data_sizes({"m": replace(manifest, files=files)})
    sizes = receive._data_sizes({"m": manifest})
    assert sizes[published.large] == LARGE
