"""mstore/views/git_project.py: a store in a git work tree is stored once, ignored by
git, and skipped by `git clean -fdx` (with real git)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mstore.ops.commit import commit
from mstore.ops.relink import relink
from mstore.ops.restore import restore
from mstore.repo import Repo
from mstore.views.git_project import git_work_tree, keep_out_of_git
from tests.helpers import assert_consistent, write_version

GIT = shutil.which("git")
# CI installs git with the Debian packages; there a missing git fails instead.
needs_git = pytest.mark.skipif(
    GIT is None and os.environ.get("CI", "").lower() != "true", reason="git is not installed"
)


def git(top: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert GIT is not None
    return subprocess.run([GIT, *args], cwd=top, capture_output=True, text=True, check=False)


def work_tree(tmp_path: Path) -> Path:
    top = tmp_path / "work"
    top.mkdir()
    assert git(top, "init", "-q").returncode == 0
    (top / "train.py").write_text("print('train')\n")
    return top


def test_the_git_work_tree_is_the_nearest_directory_holding_git(tmp_path: Path) -> None:
    inner = tmp_path / "outer" / "inner" / "project"
    inner.mkdir(parents=True)
    assert git_work_tree(inner) is None
    (tmp_path / "outer" / ".git").mkdir()
    assert git_work_tree(inner) == tmp_path / "outer"
    (tmp_path / "outer" / "inner" / ".git").symlink_to("nowhere")  # even a dangling one
    assert git_work_tree(inner) == tmp_path / "outer" / "inner"


def test_outside_a_work_tree_nothing_is_written(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root)
    assert keep_out_of_git(repo.layout) == []
    assert not repo.layout.repository_marker.exists()


@needs_git
@pytest.mark.parametrize("subdirectory", ["", "services/recommender"])
def test_a_store_in_a_work_tree_is_stored_once_and_git_never_sees_it(
    tmp_path: Path, subdirectory: str
) -> None:
    top = work_tree(tmp_path)
    root = top / subdirectory if subdirectory else top
    root.mkdir(parents=True, exist_ok=True)
    repo, _ = Repo.init(root)
    commit(repo, write_version(tmp_path / "v1", "v1"), "production")

    assert repo.config.link_mode in ("hardlink", "reflink")  # stored once
    assert any("git ignores" in note for note in repo.notices)
    status = git(top, "status", "--porcelain", "--untracked-files=all").stdout
    assert status.splitlines() == ["?? train.py"]  # neither .mstore/ nor models/
    assert git(top, "add", "-A").returncode == 0
    assert git(top, "diff", "--cached", "--name-only").stdout.split() == ["train.py"]
    # idempotent: a second pass adds no line
    exclude = Path(git(root, "rev-parse", "--path-format=absolute", "--git-path",
                       "info/exclude").stdout.strip())  # fmt: skip
    before = exclude.read_text()
    assert keep_out_of_git(repo.layout) == []
    assert exclude.read_text() == before


@needs_git
def test_git_clean_fdx_skips_the_store_and_restore_brings_the_views_back(
    tmp_path: Path,
) -> None:
    top = work_tree(tmp_path)
    repo, _ = Repo.init(top)
    commit(repo, write_version(tmp_path / "v1", "v1"), "production")
    commit(repo, write_version(tmp_path / "v2", "v2"), "staging")

    done = git(top, "clean", "-fdx")

    assert done.returncode == 0, done.stderr
    assert not (top / "train.py").exists()  # git clean did its job elsewhere
    assert ".mstore" not in done.stdout and repo.layout.config.is_file()
    repo = Repo(top)
    restore(repo)
    assert_consistent(repo)  # verify passes, every view whole


@needs_git
def test_git_clean_ffdx_cannot_take_sealed_objects_and_destroy_can(tmp_path: Path) -> None:
    top = work_tree(tmp_path)
    repo, _ = Repo.init(top)
    if repo.config.protection is None:  # reflink (the XFS run), or root without the flag
        pytest.skip(f"auto chose {repo.config.link_mode} here: no object is sealed")
    commit(repo, write_version(tmp_path / "v1", "v1"), "production")

    done = git(top, "clean", "-ffdx")

    assert done.returncode == 1
    assert "Operation not permitted" in done.stderr or "Permission denied" in done.stderr
    assert any(repo.layout.objects.rglob("*"))  # the sealed objects survive
    from mstore.ops.destroy import destroy

    destroy(repo)
    assert not repo.layout.store.exists()


@needs_git
def test_relink_moves_a_copy_store_in_a_work_tree_to_the_sealed_mode(tmp_path: Path) -> None:
    top = work_tree(tmp_path)
    repo, _ = Repo.init(top, "copy")
    commit(repo, write_version(tmp_path / "v1", "v1"), "production")
    assert repo.layout.copies.is_dir()
    # as an earlier mstore left it: no marker, nothing excluded
    shutil.rmtree(repo.layout.repository_marker)
    (top / ".git" / "info" / "exclude").write_text("")

    result = relink(repo, "auto")

    assert result.link_mode in ("hardlink", "reflink", "copy")
    if result.link_mode != "copy":
        assert result.removed_copies > 0 and not repo.layout.copies.exists()
    assert any("git" in note for note in result.notes)
    assert git(top, "status", "--porcelain").stdout.splitlines() == ["?? train.py"]
    assert_consistent(Repo(top))
