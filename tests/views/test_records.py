"""Views are complete or absent: a view is reused only after it checked intact against
its record, and every damaged one is replaced by a fresh build, never linked again."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner, Result

from mstore.cli.app import app
from mstore.core.manifests import METADATA_FILE
from mstore.core.record_rules import STABLE_TIMES
from mstore.ops.commit import commit
from mstore.ops.ref_edits import delete_ref
from mstore.ops.switch import checkout
from mstore.repo import Repo
from mstore.views.records import read_record, record_path
from tests.helpers import assert_consistent, write_version


@pytest.fixture
def repo(copy_repo: Repo) -> Repo:
    """Copy mode: these tests damage views and objects by hand to see them found and
    repaired, which the default mode's protection refuses (tests/integration/
    test_stored_once.py covers that mode)."""
    return copy_repo


runner = CliRunner()


def mstore(root: Path, *args: object) -> Result:
    return runner.invoke(app, ["--store", str(root), *map(str, args)])


def view_of(repo: Repo, ref: str) -> Path:
    view_id = repo.views.current_view_id(ref)
    assert view_id is not None
    return repo.layout.view_path(view_id)


def assert_shows_manifest(repo: Repo, ref: str) -> None:
    """models/<ref> lists exactly its spec's files, each byte-identical to its object."""
    fresh = Repo(repo.root)
    manifest_id = fresh.refs.read(ref)
    assert manifest_id is not None
    spec = fresh.view_spec(ref, manifest_id)
    link = fresh.layout.view_link(ref)
    shown = {p.relative_to(link).as_posix() for p in link.rglob("*") if p.is_file()}
    assert shown == set(spec.files)
    for path, entry in spec.files.items():
        assert (link / path).read_bytes() == fresh.objects.read_bytes(entry.id), path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_version(tmp_path / "src" / "v1", "v1", model=b"weights one " * 50)


# -- the reproduction --------------------------------------------------------------------


def test_released_view_that_lost_a_file_is_named_and_never_reused(repo: Repo, source: Path) -> None:
    """What a gc killed inside its recursive delete used to leave under the final name."""
    commit(repo, source, "exp1")
    view = view_of(repo, "exp1")
    delete_ref(repo, "exp1")
    os.unlink(view / "model.pth")

    done = mstore(repo.root, "verify")

    assert done.exit_code == 3, done.output
    assert f"view_incomplete: {view.name}" in done.output
    assert "released" in done.output and "model.pth: missing" in done.output

    commit(repo, source, "exp2")

    assert view_of(repo, "exp2") == view  # the same view id, rebuilt complete
    assert (repo.layout.view_link("exp2") / "model.pth").read_bytes() == b"weights one " * 50
    assert_shows_manifest(repo, "exp2")
    assert mstore(repo.root, "verify").exit_code == 0
    assert_consistent(repo)


def test_linked_view_that_lost_a_file_is_named_with_its_ref(repo: Repo, source: Path) -> None:
    commit(repo, source, "exp1")
    os.unlink(view_of(repo, "exp1") / "encoders.pkl")

    done = mstore(repo.root, "verify", "--json")

    assert done.exit_code == 3
    [fault] = orjson.loads(done.stdout)["faults"]
    assert fault["kind"] == "view_incomplete"
    assert fault["subject"] == view_of(repo, "exp1").name
    assert "models/exp1" in fault["detail"] and "encoders.pkl: missing" in fault["detail"]
    checkout(repo, "exp1")  # any build of the view replaces it
    assert_consistent(repo)


# -- what counts as damaged --------------------------------------------------------------


def _make_writable(path: Path) -> None:
    os.chmod(path, 0o644)


def _truncate(path: Path) -> None:
    os.chmod(path, 0o644)
    os.truncate(path, 3)


def _replace_same_bytes(path: Path) -> None:
    """A new inode with the same bytes and mode (e.g. a restore from a backup)."""
    data = path.read_bytes()
    mode = stat.S_IMODE(path.stat().st_mode)
    os.unlink(path)
    path.write_bytes(data)
    os.chmod(path, mode)


def _add_extra(path: Path) -> None:
    (path.parent / "notes.txt").write_bytes(b"dropped in by hand")


def _rewrite_in_place(path: Path) -> None:
    """Root writing over a read-only copy-mode file: same inode and size, new mtime."""
    os.chmod(path, 0o644)
    data = path.read_bytes()
    with open(path, "r+b") as f:
        f.write(bytes([data[0] ^ 0xFF]))
    os.chmod(path, 0o444)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "missing": os.unlink,
    "writable": _make_writable,
    "truncated": _truncate,
    "other inode": _replace_same_bytes,
    "extra file": _add_extra,
    "written in place": _rewrite_in_place,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_view_is_rebuilt_by_the_next_build(repo: Repo, source: Path, damage: str) -> None:
    commit(repo, source, "exp1")
    view = view_of(repo, "exp1")
    directory = view.stat().st_ino
    DAMAGE[damage](view / "model.pth")
    fresh = Repo(repo.root)
    assert not fresh.views.check(fresh.view_spec("exp1", fresh.refs.read("exp1") or "")).intact

    checkout(repo, "exp1")

    assert_shows_manifest(repo, "exp1")
    st = os.stat(view / "model.pth")
    assert stat.S_IMODE(st.st_mode) == 0o444
    assert not (view / "notes.txt").exists()
    assert view.stat().st_ino != directory  # never repaired in place
    assert_consistent(repo)


def test_corrupt_record_means_a_fresh_build(repo: Repo, source: Path) -> None:
    commit(repo, source, "exp1")
    view = view_of(repo, "exp1")
    path = record_path(repo.layout, view.name)
    os.chmod(path, 0o644)
    path.write_bytes(b"{not json")
    before = view.stat().st_ino

    checkout(repo, "exp1")

    assert read_record(repo.layout, view.name) is not None
    assert view.stat().st_ino != before  # a fresh directory, swapped in
    assert_consistent(repo)


def test_intact_view_is_reused_as_it_is(repo: Repo, source: Path) -> None:
    commit(repo, source, "exp1")
    view = view_of(repo, "exp1")
    inodes = {p.name: p.stat().st_ino for p in view.iterdir()}
    directory = view.stat().st_ino
    record = record_path(repo.layout, view.name).read_bytes()

    commit(repo, source, "exp2")  # the same files: the same view

    assert view_of(repo, "exp2") == view
    assert {p.name: p.stat().st_ino for p in view.iterdir()} == inodes
    assert view.stat().st_ino == directory
    assert record_path(repo.layout, view.name).read_bytes() == record


# -- the record --------------------------------------------------------------------------


def test_record_sits_beside_the_view_and_holds_what_it_was_built_with(
    repo: Repo, source: Path
) -> None:
    commit(repo, source, "exp1")
    view = view_of(repo, "exp1")
    path = record_path(repo.layout, view.name)
    assert path == view.with_name(view.name + ".json")
    assert sorted(p.name for p in view.iterdir()) == ["encoders.pkl", METADATA_FILE, "model.pth"]
    record = read_record(repo.layout, view.name)
    assert record is not None and record.link_mode == repo.config.link_mode
    spec = repo.view_spec("exp1", repo.refs.read("exp1") or "")
    assert {p: f.id for p, f in record.files.items()} == {p: e.id for p, e in spec.files.items()}
    for name, entry in record.files.items():
        st = os.stat(view / name)
        assert (entry.size, entry.mode, entry.ino) == (st.st_size, st.st_mode, st.st_ino)
        assert (entry.mtime_ns, entry.ctime_ns) == (st.st_mtime_ns, st.st_ctime_ns)
    assert STABLE_TIMES["copy"] == ("mtime_ns",)  # ctime moves with every new hard link


def test_view_without_a_record_is_checked_by_stat_then_recorded(repo: Repo, source: Path) -> None:
    """A store made before records existed: its intact views keep working as they are."""
    commit(repo, source, "exp1")
    view = view_of(repo, "exp1")
    os.unlink(record_path(repo.layout, view.name))
    directory = view.stat().st_ino
    assert mstore(repo.root, "verify").exit_code == 0

    checkout(repo, "exp1")

    assert view.stat().st_ino == directory  # not rebuilt
    assert read_record(repo.layout, view.name) is not None
    assert_consistent(repo)


def test_view_without_a_record_missing_a_file_is_rebuilt(repo: Repo, source: Path) -> None:
    commit(repo, source, "exp1")
    view = view_of(repo, "exp1")
    os.unlink(record_path(repo.layout, view.name))
    os.unlink(view / "model.pth")
    assert mstore(repo.root, "verify").exit_code == 3

    checkout(repo, "exp1")

    assert_shows_manifest(repo, "exp1")
    assert_consistent(repo)
