"""commit --move: files are handed over (renamed into the store), not copied."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from blake3 import blake3

from mstore.errors import InvalidInputError
from mstore.ops.commit import CommitOptions, commit
from mstore.repo import Repo
from tests.helpers import assert_consistent, write_version


def test_move_renames_files_into_the_store(repo: Repo, tmp_path: Path) -> None:
    source = write_version(tmp_path / "out", "v1_moved", model=os.urandom(20 << 20))
    model_bytes = (source / "model.pth").read_bytes()
    inode = (source / "model.pth").stat().st_ino

    result = commit(repo, source, "staging", options=CommitOptions(move=True))

    assert sorted(os.listdir(source)) == []
    model = repo.manifest(repo.refs.read("staging") or "").files["model.pth"]
    assert model.id == blake3(model_bytes).hexdigest()
    stored = repo.layout.object_path(model.id)
    assert stored.stat().st_ino == inode  # renamed, not copied
    assert oct(stored.stat().st_mode & 0o777) == oct(0o444)
    assert result.new_objects == 3
    assert_consistent(repo)


def test_move_of_content_already_stored_keeps_one_object(repo: Repo, tmp_path: Path) -> None:
    first = write_version(tmp_path / "a", "v1", model=b"same weights")
    commit(repo, first, "staging")
    again = write_version(tmp_path / "b", "v1", model=b"same weights")
    objects_before = sorted(repo.objects.iter_ids())

    commit(repo, again, "staging", options=CommitOptions(move=True))

    assert sorted(repo.objects.iter_ids()) == objects_before
    assert os.listdir(again) == []
    assert not any(repo.layout.tmp.iterdir())
    assert_consistent(repo)


def test_dry_run_move_leaves_the_files(repo: Repo, tmp_path: Path) -> None:
    source = write_version(tmp_path / "out", "v1")
    commit(repo, source, "staging", options=CommitOptions(move=True, dry_run=True))
    assert sorted(os.listdir(source)) == ["encoders.pkl", "metadata.json", "model.pth"]
    assert repo.refs.read("staging") is None


def test_move_of_a_file_with_other_hard_links_copies_it(repo: Repo, tmp_path: Path) -> None:
    # Its inode stays writable through the other name, so it must not become an object.
    source = write_version(tmp_path / "out", "v1", model=os.urandom(1 << 20))
    other = tmp_path / "elsewhere.pth"
    os.link(source / "model.pth", other)

    commit(repo, source, "staging", options=CommitOptions(move=True))

    assert "model.pth" not in os.listdir(source)
    model = repo.manifest(repo.refs.read("staging") or "").files["model.pth"]
    assert repo.layout.object_path(model.id).stat().st_ino != other.stat().st_ino
    with open(other, "r+b") as f:  # a write through the other name changes no object
        f.write(b"changed")
    assert_consistent(repo)


def test_move_out_of_the_stores_own_view_is_refused(repo: Repo, tmp_path: Path) -> None:
    commit(repo, write_version(tmp_path / "out", "v1"), "staging")
    log_before = repo.layout.log.read_bytes()

    with pytest.raises(InvalidInputError, match=r"inside the store.*without `move=True`"):
        commit(repo, repo.layout.view_link("staging"), "exp", options=CommitOptions(move=True))

    assert repo.refs.read("exp") is None
    assert repo.layout.log.read_bytes() == log_before
    assert_consistent(repo)
