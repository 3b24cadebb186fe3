"""mstore.views.build: a view is computed from a manifest, built once under its id, reused
only while intact against its record, rebuilt whole when not, and linked atomically.

The store is in copy mode, so that the tests can write through a view as a user would
(the default mode's protection refuses that; tests/integration/test_stored_once.py
covers it).
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from mstore.core.hashing import hash_bytes
from mstore.core.manifests import METADATA_FILE
from mstore.ops.commit import commit
from mstore.repo import Repo
from mstore.views.build import ViewSpec
from mstore.views.records import read_record, record_path
from tests.helpers import store_digest, write_version

OLD = 1_000_000_000  # 2001: a time no fresh stamp has


@pytest.fixture
def store(tmp_path: Path) -> Repo:
    """production = v1, in copy mode."""
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root, "copy")
    commit(repo, write_version(tmp_path / "src" / "v1", "v1"), "production")
    return Repo(root)


def spec_of(repo: Repo, shown_as: str = "production") -> ViewSpec:
    """The view of production's version as ref `shown_as` shows it."""
    value = repo.refs.read("production")
    assert value is not None
    return repo.view_spec(shown_as, value)


def files_of(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_a_spec_is_computed_without_writing_anything(store: Repo) -> None:
    before = store_digest(store)
    manifest = store.manifest(store.refs.read("production") or "")
    shown = b'{"status": "production"}\n'

    plain = store.views.spec(manifest)
    rendered = store.views.spec(manifest, shown)

    assert store_digest(store) == before
    assert plain.files == manifest.files and plain.rendered == {}
    assert rendered.files[METADATA_FILE].id == hash_bytes(shown)
    assert rendered.files[METADATA_FILE].size == len(shown)
    assert rendered.rendered == {hash_bytes(shown): shown}
    assert rendered.id != plain.id  # what a reader sees is part of the id
    assert {p: e for p, e in rendered.files.items() if p != METADATA_FILE} == {
        p: e for p, e in manifest.files.items() if p != METADATA_FILE
    }


def test_a_build_shows_the_files_and_stores_the_rendered_metadata(store: Repo) -> None:
    spec = spec_of(store, "staging")  # rendered for another ref: new metadata bytes
    (rendered_id,) = spec.rendered
    assert not store.objects.has(rendered_id)

    directory = store.views.build(spec)

    assert directory == store.layout.view_path(spec.id)
    assert store.objects.has(rendered_id)
    assert files_of(directory) == {
        path: store.objects.read_bytes(entry.id) for path, entry in spec.files.items()
    }
    assert orjson.loads(files_of(directory)[METADATA_FILE])["status"] == "staging"
    record = read_record(store.layout, spec.id)
    assert record is not None and set(record.files) == set(spec.files)
    assert os.listdir(store.layout.tmp) == []  # built in tmp/, renamed into views/


def test_an_intact_view_is_reused_not_rebuilt(store: Repo) -> None:
    spec = spec_of(store)
    directory = store.views.build(spec)
    inode = directory.stat().st_ino
    record = record_path(store.layout, spec.id).read_bytes()

    assert store.views.build(spec) == directory

    assert directory.stat().st_ino == inode
    assert record_path(store.layout, spec.id).read_bytes() == record


def test_a_view_written_through_is_rebuilt_whole_with_fresh_copies(store: Repo) -> None:
    spec = spec_of(store)
    directory = store.views.build(spec)
    inode = directory.stat().st_ino
    model = spec.files["model.pth"]
    (directory / "model.pth").write_bytes(b"written through models/")
    check = store.views.check(spec)
    assert not check.intact and "model.pth" in check.suspects

    rebuilt = store.views.build(spec)

    assert rebuilt == directory and rebuilt.stat().st_ino != inode  # a fresh build
    assert (rebuilt / "model.pth").read_bytes() == store.objects.read_bytes(model.id)
    assert store.objects.read_bytes(model.id) == b"weights v1"  # never reached
    assert store.views.check(spec).intact
    assert os.listdir(store.layout.tmp) == []


def test_a_view_with_a_file_beside_its_listing_is_replaced(store: Repo) -> None:
    spec = spec_of(store)
    directory = store.views.build(spec)
    os.chmod(directory, 0o755)
    (directory / "planted.pkl").write_bytes(b"not in the listing")
    assert store.views.check(spec).problems == ("planted.pkl: not in the listing",)

    store.views.build(spec)

    assert sorted(files_of(directory)) == sorted(spec.files)


def test_a_view_made_before_records_is_checked_then_recorded(store: Repo) -> None:
    spec = spec_of(store)
    directory = store.views.build(spec)
    inode = directory.stat().st_ino
    os.chmod(record_path(store.layout, spec.id), 0o644)
    record_path(store.layout, spec.id).unlink()
    assert not store.views.check(spec).recorded

    assert store.views.build(spec) == directory

    assert directory.stat().st_ino == inode  # reused: its files matched the listing
    assert read_record(store.layout, spec.id) is not None


def test_switch_links_the_ref_and_stamps_the_view_it_leaves(store: Repo, tmp_path: Path) -> None:
    first = spec_of(store)
    v2 = commit(store, write_version(tmp_path / "src" / "v2", "v2"), "staging").manifest_id
    assert v2 is not None
    second = store.view_spec("production", v2)
    store.views.build(second)
    os.utime(record_path(store.layout, first.id), (OLD, OLD))

    assert store.views.switch("production", second.id) is True
    assert store.views.switch("production", second.id) is False  # already there

    assert store.views.current_view_id("production") == second.id
    assert os.readlink(store.layout.view_link("production")) == (
        store.layout.view_link_target("production", second.id)
    )
    assert record_path(store.layout, first.id).stat().st_mtime > OLD  # released: gc waits
    assert store.layout.view_path(first.id).is_dir()  # readers of the old link keep it


def test_remove_takes_the_link_and_its_empty_directories_away(store: Repo) -> None:
    spec = spec_of(store, "team/a/b")
    store.views.build(spec)
    store.views.switch("team/a/b", spec.id)
    assert store.layout.view_link("team/a/b").is_symlink()

    store.views.remove("team/a/b")

    assert not (store.layout.models / "team").exists()
    assert store.layout.view_path(spec.id).is_dir()  # the view waits for gc
    store.views.remove("team/a/b")  # gone already: nothing to do
