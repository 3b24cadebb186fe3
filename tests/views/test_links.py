"""Link modes: how views show files, and what a write through models/ does in each."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mstore.core.hashing import hash_file
from mstore.errors import MstoreError
from mstore.ops.commit import commit
from mstore.ops.restore import restore
from mstore.ops.status import status
from mstore.ops.switch import checkout, promote, rollback
from mstore.ops.verify import verify
from mstore.repo import Repo
from tests.helpers import assert_consistent, write_version

MODES = ("copy", "hardlink", "symlink")
V4 = (b"weights v4 " * 100, b"encoders v4")
V5 = (b"weights v5 " * 100, b"encoders v5")
GARBAGE = b"overwritten in place by root"


def store_with(tmp_path: Path, mode: str) -> tuple[Repo, dict[str, str]]:
    """A store in `mode`: production = v4, staging = v5; their manifest ids."""
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root, link_mode=mode)
    assert repo.config.link_mode == mode
    ids: dict[str, str] = {}
    for label, ref, (model, encoders) in (("v4", "production", V4), ("v5", "staging", V5)):
        source = write_version(tmp_path / "src" / label, label, model=model, encoders=encoders)
        manifest = commit(repo, source, ref).manifest_id
        assert manifest is not None
        ids[label] = manifest
    return repo, ids


def shows(repo: Repo, ref: str) -> tuple[bytes, bytes]:
    view = repo.layout.view_link(ref)
    return (view / "model.pth").read_bytes(), (view / "encoders.pkl").read_bytes()


def object_of(repo: Repo, ref: str, path: str) -> Path:
    manifest = repo.manifest(repo.refs.read(ref) or "")
    return repo.layout.object_path(manifest.files[path].id)


def overwrite_in_place(path: Path, data: bytes) -> None:
    """What root's `cat > models/production/model.pth` or an in-place save does: open the
    existing path for writing (following links) and write over its bytes."""
    if os.geteuid() != 0:
        os.chmod(path.resolve(), 0o644)  # root ignores the read-only mode; emulate that
    with open(path, "r+b") as f:
        f.write(data)


@pytest.mark.parametrize("mode", MODES)
def test_workflow_in_every_link_mode(tmp_path: Path, mode: str) -> None:
    repo, ids = store_with(tmp_path, mode)
    assert shows(repo, "production") == V4
    assert shows(repo, "staging") == V5
    assert_consistent(repo)

    promote(repo, "staging")
    assert shows(repo, "production") == V5
    archive = next(n for n in repo.refs.names() if n.startswith("archive/"))
    assert shows(repo, archive) == V4
    assert (repo.refs.read("production"), repo.refs.read(archive)) == (ids["v5"], ids["v4"])
    assert_consistent(repo)

    rollback(repo)
    assert repo.refs.read("production") == ids["v4"]
    assert shows(repo, "production") == V4
    assert_consistent(repo)

    checkout(repo, "staging")
    assert repo.active_environment() == "staging"
    assert shows(repo, "staging") == V5
    assert_consistent(repo)
    assert verify(repo).ok


@pytest.mark.parametrize("mode", MODES)
def test_what_a_view_file_is(tmp_path: Path, mode: str) -> None:
    repo, _ = store_with(tmp_path, mode)
    view_file = repo.layout.view_link("production") / "model.pth"
    stored = object_of(repo, "production", "model.pth")

    if mode == "copy":
        assert not view_file.is_symlink()
        assert os.stat(view_file).st_ino != os.stat(stored).st_ino
        assert view_file.read_bytes() == stored.read_bytes()
    elif mode == "hardlink":
        assert not view_file.is_symlink()
        assert os.stat(view_file).st_ino == os.stat(stored).st_ino
    else:
        assert view_file.is_symlink()
        assert view_file.resolve() == stored.resolve()
    assert os.stat(view_file).st_mode & 0o222 == 0, "view files are read-only"


def test_write_through_models_in_copy_mode_is_caught_and_restored(tmp_path: Path) -> None:
    repo, _ = store_with(tmp_path, "copy")
    promote(repo, "staging")  # production and staging now show the same model object
    target = repo.layout.view_link("production") / "model.pth"
    stored = object_of(repo, "production", "model.pth")
    assert next(v for v in status(repo).views if v.ref == "production").clean

    overwrite_in_place(target, GARBAGE)

    assert stored.read_bytes() == V5[0], "the write reached the stored object"
    # No object is corrupt; the views showing the written copy (production's, staging's
    # and the released one staging showed before the promote) are damaged.
    assert [f.kind for f in verify(repo).faults] == ["view_damaged"] * 3
    report = status(repo)
    production = next(v for v in report.views if v.ref == "production")
    assert production.modified == ["model.pth"]
    assert not report.clean

    result = restore(repo)

    assert "production/model.pth" in result.replaced
    assert result.unrecoverable == []
    assert shows(repo, "production") == V5
    assert shows(repo, "staging") == V5
    assert status(repo).clean, status(repo).to_json()
    assert_consistent(repo)


@pytest.mark.parametrize("mode", ["hardlink", "symlink"])
def test_write_through_models_in_linking_modes_corrupts_the_object(
    tmp_path: Path, mode: str
) -> None:
    repo, _ = store_with(tmp_path, mode)
    target = repo.layout.view_link("production") / "model.pth"
    stored = object_of(repo, "production", "model.pth")
    object_id = stored.parent.name + stored.name

    overwrite_in_place(target, GARBAGE)

    assert stored.read_bytes().startswith(GARBAGE)
    report = verify(repo)
    assert not report.ok
    # The object is named, and the view showing it (its file's mtime left its record).
    view_id = repo.views.current_view_id("production")
    assert [(f.kind, f.subject) for f in report.faults] == [
        ("object_corrupt", object_id),
        ("view_damaged", view_id),
    ]
    production = next(v for v in status(repo).views if v.ref == "production")
    assert production.modified == ["model.pth"]

    result = restore(repo)

    assert result.unrecoverable == ["production/model.pth"]
    assert result.replaced == []


def test_reflink_works_or_is_refused_clearly(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    source = write_version(tmp_path / "src" / "v4", "v4", model=V4[0], encoders=V4[1])

    try:
        repo, _ = Repo.init(root, link_mode="reflink")
        commit(repo, source, "production")
    except MstoreError as err:
        assert "reflink" in str(err)
        if (root / ".mstore" / "config").exists():
            repo = Repo(root)
            assert repo.refs.read_all() == {}
            assert not repo.layout.view_link("production").is_symlink()
            assert not repo.layout.transaction.exists()
        return
    assert shows(repo, "production") == V4
    view_file = repo.layout.view_link("production") / "model.pth"
    assert not view_file.is_symlink()
    assert os.stat(view_file).st_ino != os.stat(object_of(repo, "production", "model.pth")).st_ino
    assert_consistent(repo)


XFS = os.environ.get("MSTORE_TEST_XFS")


@pytest.mark.skipif(
    not XFS, reason="runs on the XFS loop mount that scripts/test.sh makes (scripts/xfs_tmp.sh)"
)
def test_auto_is_reflink_on_xfs_and_a_write_through_a_view_stays_in_the_clone(
    tmp_path: Path,
) -> None:
    assert XFS is not None and tmp_path.is_relative_to(XFS)  # the suite runs on the mount
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root)
    assert (repo.config.link_mode, repo.config.link_reason) == (
        "reflink",
        "the filesystem clones files (reflink)",
    )
    source = tmp_path / "v1"
    source.mkdir()
    (source / "model.pth").write_bytes(b"weights" * 100_000)
    (source / "metadata.json").write_text('{"version": "v1"}')
    manifest = repo.manifest(commit(repo, source, "production").manifest_id or "")
    object_id = manifest.files["model.pth"].id
    view_file = repo.layout.view_link("production") / "model.pth"
    assert os.stat(view_file).st_ino != os.stat(repo.objects.path(object_id)).st_ino

    with open(view_file, "r+b") as f:  # a write lands in the clone, never in the object
        f.write(b"CHANGED")

    assert hash_file(repo.objects.path(object_id)) == object_id
    restore(repo)
    assert view_file.read_bytes() == b"weights" * 100_000
