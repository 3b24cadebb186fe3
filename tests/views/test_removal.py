"""gc's view removal: a view leaves views/ before its files go, so an error or a kill in
the middle never leaves a partial view under a final name; gc reports only what it
really removed."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import mstore.views.guard
import mstore.views.removal
from mstore.errors import MstoreError
from mstore.ops.commit import commit
from mstore.ops.gc import gc, plan_gc
from mstore.ops.ref_edits import delete_ref
from mstore.ops.verify import verify
from mstore.repo import Repo
from mstore.views.records import record_path
from tests.helpers import assert_consistent, write_version


@pytest.fixture
def repo(copy_repo: Repo) -> Repo:
    """Copy mode: these tests damage views and objects by hand to see them found and
    repaired, which the default mode's protection refuses (tests/integration/
    test_stored_once.py covers that mode)."""
    return copy_repo


def released_views(repo: Repo, tmp_path: Path, count: int = 2) -> list[str]:
    """`count` refs committed then deleted: their views are released (and unique)."""
    commit(repo, write_version(tmp_path / "src" / "keep", "keep"), "production")
    released = []
    for n in range(count):
        source = write_version(tmp_path / "src" / f"v{n}", f"v{n}", model=f"m{n}".encode() * 99)
        (source / "sub").mkdir()
        (source / "sub" / "tokenizer.json").write_bytes(f"tok {n}".encode())
        commit(repo, source, f"scratch/{n}")
        view = repo.views.current_view_id(f"scratch/{n}")
        assert view is not None
        released.append(view)
        delete_ref(repo, f"scratch/{n}")
    return released


def view_dirs(repo: Repo) -> set[str]:
    return {p.name for p in repo.layout.views.iterdir() if p.is_dir() and p.name != ".trash"}


def fail_nth_unlink(monkeypatch: pytest.MonkeyPatch, n: int) -> list[str]:
    """Make the Nth file deletion inside view_removal raise EIO."""
    real = os.unlink
    calls: list[str] = []

    def unlink(path: object, *args: object, **kwargs: object) -> None:
        calls.append(str(path))
        if len(calls) == n:
            raise OSError(errno.EIO, "injected", str(path))
        real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(mstore.views.removal.os, "unlink", unlink)
    return calls


def test_gc_removes_views_with_their_records(repo: Repo, tmp_path: Path) -> None:
    released = released_views(repo, tmp_path)

    done = gc(repo, now=True)

    assert sorted(done.views) == sorted(released)
    for view_id in released:
        assert not repo.layout.view_path(view_id).exists()
        assert not record_path(repo.layout, view_id).exists()
    assert list(repo.layout.trash.iterdir()) == []
    assert_consistent(repo)


@pytest.mark.parametrize("failing", [2, 3, 4])
def test_error_inside_a_view_delete_leaves_no_partial_view(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: int
) -> None:
    released = released_views(repo, tmp_path, count=1)
    calls = fail_nth_unlink(monkeypatch, failing)

    with pytest.raises(OSError):
        gc(repo, now=True)

    assert len(calls) == failing
    assert not repo.layout.view_path(released[0]).exists(), "a partial view kept its name"
    [leftover] = repo.layout.trash.iterdir()
    assert leftover.name.startswith(released[0])
    assert verify(Repo(repo.root)).ok
    monkeypatch.undo()

    done = gc(Repo(repo.root), now=True)

    assert done.unfinished == [leftover]
    assert done.views == []
    assert list(repo.layout.trash.iterdir()) == []
    assert_consistent(repo)


def test_gc_reports_what_it_removed_not_what_it_planned(repo: Repo, tmp_path: Path) -> None:
    released = released_views(repo, tmp_path)
    with repo.locked("gc"):
        plan = plan_gc(repo, now=True)
        assert sorted(plan.views) == sorted(released)
        # Gone before gc reached them (a user's rm): not gc's to report.
        gone_view = released[0]
        mstore.views.removal.remove_view(repo.layout, gone_view, repo.views.guard)
        gone_object = sorted(plan.objects)[0]
        os.unlink(repo.layout.object_path(gone_object))

        done = plan.execute(repo)

    assert done.views == [released[1]]
    assert gone_object not in done.objects
    assert set(done.objects) == set(plan.objects) - {gone_object}
    assert done.bytes == plan.bytes - plan.objects[gone_object]
    assert done.to_json()["views"] == 1


def test_failed_gc_names_the_file_and_a_retry_finishes(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    released_views(repo, tmp_path, count=1)
    plan = gc(repo, now=True, dry_run=True)
    real = os.unlink

    def unlink(path: object, *args: object, **kwargs: object) -> None:
        if str(path).startswith(str(repo.layout.objects)):
            raise OSError(errno.EACCES, "injected", str(path))
        real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("mstore.ops.gc.os.unlink", unlink)
    with pytest.raises(MstoreError, match="gc cannot delete"):
        gc(repo, now=True)
    monkeypatch.undo()

    done = gc(Repo(repo.root), now=True)

    assert done.views == []  # removed by the first run
    assert set(done.objects) == set(plan.objects)
    assert_consistent(repo)


def test_record_left_without_its_view_is_removed(repo: Repo, tmp_path: Path) -> None:
    released = released_views(repo, tmp_path, count=1)
    view = repo.layout.view_path(released[0])
    mstore.views.guard.delete_tree(view)  # as if killed between the two steps
    assert record_path(repo.layout, released[0]).exists()
    assert verify(Repo(repo.root)).ok

    done = gc(repo, now=True)

    assert done.records == [record_path(repo.layout, released[0])]
    assert not record_path(repo.layout, released[0]).exists()
    assert released[0] not in view_dirs(repo)
