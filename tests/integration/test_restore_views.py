"""restore never edits a view in place: a damaged view is replaced by a fresh build,
swapped in under its name, and the damaged directory is never linked again."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from typer.testing import CliRunner

from mstore.cli.app import app
from mstore.ops.commit import commit
from mstore.ops.restore import restore
from mstore.ops.status import status
from mstore.ops.verify import verify
from mstore.repo import Repo
from tests.helpers import assert_consistent, view_dir, write_version
from tests.helpers import two_version_store as store


def test_restore_swaps_in_a_fresh_view_and_leaves_the_damaged_one_untouched(
    tmp_path: Path,
) -> None:
    repo = store(tmp_path)
    view = view_dir(repo, "production")
    target = view / "model.pth"
    os.chmod(target, 0o644)
    with open(target, "r+b") as f:
        f.write(b"X")
    damaged = os.open(target, os.O_RDONLY)  # a reader still holding the damaged file
    directory = view.stat().st_ino

    result = restore(repo)

    assert result.replaced == ["production/model.pth"]
    assert view.stat().st_ino != directory, "the view was repaired in place"
    assert (view / "model.pth").read_bytes() == b"weights v4"
    assert os.pread(damaged, 10, 0).startswith(b"X"), "the damaged file was rewritten"
    os.close(damaged)
    assert list((repo.layout.views / ".trash").iterdir()) == []
    assert status(Repo(repo.root)).clean
    assert_consistent(repo)


def test_restore_finds_a_file_made_writable(tmp_path: Path) -> None:
    """Same bytes (no hash tells), but the record's mode is gone: status, verify and
    restore all see it."""
    repo = store(tmp_path)
    target = view_dir(repo, "staging") / "encoders.pkl"
    os.chmod(target, 0o666)
    assert not verify(Repo(repo.root)).ok
    staging = next(v for v in status(Repo(repo.root)).views if v.ref == "staging")
    assert staging.modified == ["encoders.pkl"]

    result = restore(repo)

    # One shared copy in copy mode: both views showed the writable file.
    assert sorted(result.replaced) == ["production/encoders.pkl", "staging/encoders.pkl"]
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o444
    assert stat.S_IMODE(os.stat(view_dir(repo, "production") / "encoders.pkl").st_mode) == 0o444
    assert verify(Repo(repo.root)).ok


def test_restore_rebuilds_a_missing_file_in_hardlink_mode(tmp_path: Path) -> None:
    repo = store(tmp_path, "hardlink")
    os.unlink(view_dir(repo, "production") / "model.pth")

    result = restore(repo)

    assert result.replaced == ["production/model.pth"]
    assert result.unrecoverable == []
    assert_consistent(repo)


def test_relinking_replaces_a_damaged_target_view(tmp_path: Path) -> None:
    """models/production points elsewhere, and its own view lost a file meanwhile."""
    repo = store(tmp_path)
    link = repo.layout.view_link("production")
    view = view_dir(repo, "production")
    os.unlink(view / "encoders.pkl")
    os.unlink(link)
    os.symlink(os.readlink(repo.layout.view_link("staging")), link)

    result = restore(repo)

    assert result.relinked == ["production"]
    assert (link / "encoders.pkl").read_bytes() == b"encoders-shared"
    assert_consistent(repo)


def test_restore_discards_a_damaged_released_view(tmp_path: Path) -> None:
    repo = store(tmp_path)
    commit(repo, write_version(tmp_path / "src" / "v6", "v6"), "staging")  # releases v5's
    released = [p for p in repo.layout.views.iterdir() if p.is_dir() and p.name != ".trash"]
    linked = {view_dir(repo, "production"), view_dir(repo, "staging")}
    [old] = [p for p in released if p not in linked]
    os.unlink(old / "model.pth")
    assert not verify(Repo(repo.root)).ok

    result = restore(repo)

    assert result.discarded == [old.name]
    assert not old.exists()
    assert verify(Repo(repo.root)).ok
    assert_consistent(repo)


def test_cli_restore_says_it_deleted_a_damaged_released_view(tmp_path: Path) -> None:
    repo = store(tmp_path)
    old = view_dir(repo, "staging")
    commit(repo, write_version(tmp_path / "src" / "v6", "v6"), "staging")
    (old / "notes.txt").write_bytes(b"dropped in by hand")

    done = CliRunner().invoke(app, ["--store", str(repo.root), "restore"])

    assert done.exit_code == 0, done.output
    assert f"delete damaged released view {old.name[:12]}" in done.output
    assert not old.exists()
