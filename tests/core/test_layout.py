"""mstore.core.layout: every path of a store, derived from its project root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mstore.core.layout import Layout
from mstore.ops.commit import commit
from mstore.ops.gc import gc
from mstore.ops.switch import promote
from mstore.repo import Repo
from tests.helpers import write_version

ID = "0123456789abcdef" * 4


def layout_paths(layout: Layout) -> set[Path]:
    """Every path a property of `layout` names."""
    return {
        value
        for name in dir(Layout)
        if isinstance(getattr(Layout, name), property)
        and isinstance(value := getattr(layout, name), Path)
    }


def test_the_store_lives_in_dot_mstore_beside_models_and_env(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    assert layout.store == tmp_path / ".mstore"
    assert layout.models == tmp_path / "models"
    assert layout.env_file == tmp_path / ".env"
    below_store = layout_paths(layout) - {layout.store, layout.models, layout.env_file}
    assert all(path.parent == layout.store for path in below_store)


def test_objects_and_copies_fan_out_on_the_first_two_digits(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    assert layout.object_path(ID) == layout.store / "objects" / "01" / ID[2:]
    assert layout.copy_path(ID) == layout.store / "copies" / "01" / ID[2:]


def test_a_ref_with_slashes_is_nested_directories(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    assert layout.ref_path("archive/v1_2024-10-15") == (
        layout.store / "refs" / "archive" / "v1_2024-10-15"
    )
    assert layout.view_link("team/a/b") == tmp_path / "models" / "team" / "a" / "b"


@pytest.mark.parametrize("ref", ["production", "archive/v1", "team/a/b"])
def test_a_view_link_target_is_relative_and_reaches_the_view(tmp_path: Path, ref: str) -> None:
    """The project can move: the link text climbs out of models/ and into the store."""
    layout = Layout(tmp_path / "project")
    layout.view_path(ID).mkdir(parents=True)
    link = layout.view_link(ref)
    link.parent.mkdir(parents=True, exist_ok=True)
    target = layout.view_link_target(ref, ID)
    os.symlink(target, link)

    assert not os.path.isabs(target)
    assert link.resolve() == layout.view_path(ID).resolve()
    moved = tmp_path / "moved"
    (tmp_path / "project").rename(moved)
    assert Layout(moved).view_link(ref).resolve() == Layout(moved).view_path(ID).resolve()


def test_per_remote_state_is_under_remotes(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    assert layout.remote_dir("k3y") == layout.store / "remotes" / "k3y"


def test_every_path_a_store_writes_is_named_by_the_layout(tmp_path: Path) -> None:
    """After init, commits, a promote and a gc, each entry of `.mstore/` is a layout path
    (or the journal and WAL files SQLite keeps beside a database)."""
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root)
    commit(repo, write_version(tmp_path / "src" / "v1", "v1"), "production")
    commit(repo, write_version(tmp_path / "src" / "v2", "v2"), "staging")
    promote(repo, "staging")
    gc(Repo(root), retention_days=0, grace_days=0)

    named = {path.name for path in layout_paths(repo.layout)}
    present = {entry.name for entry in os.scandir(repo.layout.store)}
    for suffix in ("-wal", "-shm", "-journal"):
        present = {name.removesuffix(suffix) for name in present}
    assert present - named == set()
    assert {"config", "lock", "log", "objects", "refs", "views"} <= present
