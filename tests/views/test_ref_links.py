"""mstore.views.ref_links: the links `models/<ref>` readers resolve, where one may be
written, and what happens to the view a link leaves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mstore.core.layout import Layout
from mstore.errors import RefusedError
from mstore.views.records import record_path
from mstore.views.ref_links import check_location, current_view_id, mark_released, remove_adopted

VIEW = "c" * 64
OLD = 1_000_000_000  # 2001: a time no fresh stamp has


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    layout = Layout(tmp_path / "project")
    layout.models.mkdir(parents=True)
    layout.views.mkdir(parents=True)
    return layout


def link(layout: Layout, ref: str, target: str) -> Path:
    path = layout.view_link(ref)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)
    return path


@pytest.mark.parametrize("ref", ["production", "archive/v1_2024-10-15"])
def test_the_view_a_link_shows_is_read_from_its_text(layout: Layout, ref: str) -> None:
    link(layout, ref, layout.view_link_target(ref, VIEW))
    assert current_view_id(layout, ref) == VIEW  # the view need not exist


def test_a_link_that_is_not_mstores_shows_no_view(layout: Layout) -> None:
    assert current_view_id(layout, "missing") is None
    link(layout, "elsewhere", "/srv/models/production")
    assert current_view_id(layout, "elsewhere") is None
    link(layout, "nested/ref", layout.view_link_target("ref", VIEW))  # wrong depth
    assert current_view_id(layout, "nested/ref") is None
    (layout.models / "plain").mkdir()
    assert current_view_id(layout, "plain") is None


def test_a_links_place_may_be_new_or_an_old_link(layout: Layout) -> None:
    assert check_location(layout, "team/a/b") == layout.models / "team" / "a" / "b"
    link(layout, "production", "anything")
    assert check_location(layout, "production") == layout.models / "production"


def test_a_symlinked_models_directory_is_never_written_through(
    layout: Layout, tmp_path: Path
) -> None:
    (tmp_path / "elsewhere").mkdir()
    layout.models.rmdir()
    layout.models.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RefusedError, match="is a symlink"):
        check_location(layout, "production")


def test_a_file_in_the_way_of_a_nested_ref_is_refused(layout: Layout) -> None:
    (layout.models / "team").write_bytes(b"notes")
    with pytest.raises(RefusedError, match="in the way of view models/team/a"):
        check_location(layout, "team/a")
    (layout.models / "other").symlink_to(layout.models)  # a link to a directory too
    with pytest.raises(RefusedError, match="in the way"):
        check_location(layout, "other/a")


def test_a_real_directory_or_file_at_the_links_place_is_refused(layout: Layout) -> None:
    (layout.models / "production").mkdir()
    (layout.models / "staging").write_bytes(b"weights")
    with pytest.raises(RefusedError, match="real directory that mstore does not manage"):
        check_location(layout, "production")
    with pytest.raises(RefusedError, match="real file"):
        check_location(layout, "staging")


def test_import_may_adopt_a_real_directory_but_not_a_file(layout: Layout) -> None:
    (layout.models / "production").mkdir()
    (layout.models / "staging").write_bytes(b"weights")
    assert check_location(layout, "production", adopt=True) == layout.models / "production"
    with pytest.raises(RefusedError):
        check_location(layout, "staging", adopt=True)


def test_releasing_a_view_stamps_its_record(layout: Layout) -> None:
    """gc spares a view for its grace period after the last link left it."""
    view = layout.view_path(VIEW)
    view.mkdir()
    record = record_path(layout, VIEW)
    record.write_bytes(b"{}")
    for path in (view, record):
        os.utime(path, (OLD, OLD))

    mark_released(layout, VIEW)

    assert record.stat().st_mtime > OLD
    assert view.stat().st_mtime == OLD


def test_a_view_without_a_record_is_stamped_on_its_directory(layout: Layout) -> None:
    view = layout.view_path(VIEW)
    view.mkdir()
    os.utime(view, (OLD, OLD))
    mark_released(layout, VIEW)
    assert view.stat().st_mtime > OLD
    mark_released(layout, "d" * 64)  # gone already: nothing to stamp, no error
    mark_released(layout, None)


def test_what_an_import_exchanged_away_is_removed_and_nothing_else(layout: Layout) -> None:
    from mstore.core.fsutil import temp_prefix

    target = layout.models / "production"
    prefix = temp_prefix(target.name)
    (layout.models / f"{prefix}abc.dir" / "sub").mkdir(parents=True)
    (layout.models / f"{prefix}abc.dir" / "sub" / "model.pth").write_bytes(b"w")
    (layout.models / f"{prefix}def").write_bytes(b"left by a crash")
    (layout.models / "staging").mkdir()
    (layout.models / "production-notes").write_bytes(b"mine")

    remove_adopted(target)

    assert sorted(os.listdir(layout.models)) == ["production-notes", "staging"]
