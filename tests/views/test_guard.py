"""mstore.views.guard: sealing what views share with objects, and unsealing it for a
moment without a crash leaving anything unsealed (the intent, `.mstore/unprotecting`).

`modes` (0555 directories) works for any user; the tests of the immutable flag need root
with CAP_LINUX_IMMUTABLE and skip without it, except in CI, where they fail instead.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import orjson
import pytest

from mstore.core.layout import Layout
from mstore.views import protection
from mstore.views.guard import DIRECTORY_MODE, Guard

FLAG_TESTS_NEED = "setting the immutable flag needs root with CAP_LINUX_IMMUTABLE"


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    layout = Layout(tmp_path / "project")
    for directory in (layout.views, layout.objects / "ab", layout.tmp):
        directory.mkdir(parents=True)
    return layout


@pytest.fixture
def flag(layout: Layout) -> None:
    result = protection.probe(layout.tmp)
    if not result.immutable:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{FLAG_TESTS_NEED}: {result.reason}")
        pytest.skip(f"{FLAG_TESTS_NEED}: {result.reason}")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def view(layout: Layout, name: str = "v" * 64) -> Path:
    """A view directory with a subdirectory and a file, writable."""
    path = layout.view_path(name)
    (path / "sub").mkdir(parents=True)
    (path / "sub" / "model.pth").write_bytes(b"weights")
    return path


def intent(layout: Layout) -> dict[str, list[object]] | None:
    try:
        document: dict[str, list[object]] = orjson.loads(layout.unprotecting.read_bytes())
    except FileNotFoundError:
        return None
    return document


def test_without_protection_nothing_is_sealed_or_noted(layout: Layout) -> None:
    guard = Guard(layout, None)
    directory = view(layout)
    guard.seal_tree(directory)
    assert mode(directory) == 0o755
    assert guard.is_sealed(directory, directory=True)  # nothing to check
    with guard.unprotecting([directory]):
        assert intent(layout) is None


def test_modes_seal_view_directories_read_only(layout: Layout) -> None:
    guard = Guard(layout, "modes")
    directory = view(layout)
    assert not guard.is_sealed(directory, directory=True)

    guard.seal_tree(directory)

    assert mode(directory) == mode(directory / "sub") == DIRECTORY_MODE
    assert guard.is_sealed(directory, directory=True)
    guard.open_directory(directory)
    assert mode(directory) == 0o755 and mode(directory / "sub") == DIRECTORY_MODE


def test_the_intent_names_what_is_unsealed_while_it_is(layout: Layout) -> None:
    guard = Guard(layout, "modes")
    directory = view(layout)
    guard.seal_tree(directory)

    with guard.unprotecting([directory], inodes=[42]):
        assert intent(layout) == {"format": 1, "inodes": [42], "paths": ["views/" + "v" * 64]}
        guard.open_directory(directory)
        (directory / "added").write_bytes(b"x")

    assert intent(layout) is None
    assert mode(directory) == DIRECTORY_MODE  # sealed again on the way out


def test_nested_unprotections_keep_the_outer_ones_names(layout: Layout) -> None:
    guard = Guard(layout, "modes")
    first, second = view(layout, "1" * 64), view(layout, "2" * 64)
    with guard.unprotecting([first]):
        with guard.unprotecting([second]):
            assert len(intent(layout)["paths"]) == 2  # type: ignore[index]
        assert intent(layout)["paths"] == ["views/" + "1" * 64]  # type: ignore[index]
    assert intent(layout) is None


def test_a_failing_body_still_seals_what_it_named(layout: Layout) -> None:
    guard = Guard(layout, "modes")
    directory = view(layout)
    with pytest.raises(RuntimeError), guard.unprotecting([directory]):
        guard.open_directory(directory)
        raise RuntimeError("disk full")
    assert mode(directory) == DIRECTORY_MODE
    assert intent(layout) is None  # everything it named is sealed again


def test_after_a_crash_recover_seals_what_the_intent_names(layout: Layout) -> None:
    directory = view(layout)
    crashed = Guard(layout, "modes").unprotecting([directory])
    crashed.__enter__()  # the process dies inside the body: no exit ever runs
    Guard(layout, "modes").open_directory(directory)

    assert Guard(layout, "modes").recover() is True

    assert mode(directory) == DIRECTORY_MODE
    assert intent(layout) is None
    assert Guard(layout, "modes").recover() is False  # nothing left to recover


@pytest.mark.parametrize("paths", [["../outside"], ["/etc"], ["views/../../outside"], [5], [""]])
def test_an_intent_naming_anything_outside_the_store_seals_every_view_instead(
    layout: Layout, paths: object
) -> None:
    outside = layout.root / "outside"
    outside.mkdir()
    directory = view(layout)
    layout.unprotecting.write_bytes(orjson.dumps({"format": 1, "paths": paths}))

    assert Guard(layout, "modes").recover() is True

    assert mode(outside) == 0o755  # never touched
    assert mode(directory) == DIRECTORY_MODE  # every view sealed instead
    assert not layout.unprotecting.exists()


def test_an_intent_that_is_not_a_regular_file_is_not_read(layout: Layout) -> None:
    os.mkfifo(layout.unprotecting)
    directory = view(layout)
    assert Guard(layout, "modes").recover() is True  # a FIFO is never opened blocking
    assert mode(directory) == DIRECTORY_MODE


def test_remove_tree_deletes_a_sealed_view(layout: Layout) -> None:
    guard = Guard(layout, "modes")
    directory = view(layout)
    guard.seal_tree(directory)
    guard.remove_tree(directory)
    assert not directory.exists()


def test_unlink_of_a_view_file_leaves_the_objects_flag_set(layout: Layout, flag: None) -> None:
    """The flag is on the inode: a view file and its object are two names of one."""
    guard = Guard(layout, "immutable")
    obj = layout.objects / "ab" / ("c" * 62)
    obj.write_bytes(b"weights")
    directory = layout.view_path("v" * 64)
    directory.mkdir()
    os.link(obj, directory / "model.pth")
    guard.seal_file(obj)
    try:
        assert guard.unlink(directory / "model.pth") is True
        assert not (directory / "model.pth").exists()
        assert protection.is_immutable(obj)
        assert guard.unlink(directory / "model.pth") is False
        assert intent(layout) is None
    finally:
        protection.set_immutable(obj, False)


def test_remove_tree_of_a_flagged_view_keeps_its_objects_flagged(
    layout: Layout, flag: None
) -> None:
    guard = Guard(layout, "immutable")
    obj = layout.objects / "ab" / ("c" * 62)
    obj.write_bytes(b"weights")
    directory = layout.view_path("v" * 64)
    (directory / "sub").mkdir(parents=True)
    os.link(obj, directory / "sub" / "model.pth")
    guard.seal_tree(directory)
    assert protection.is_immutable(directory) and protection.is_immutable(obj)
    try:
        guard.remove_tree(directory)
        assert not directory.exists()
        assert protection.is_immutable(obj) and obj.read_bytes() == b"weights"
    finally:
        protection.set_immutable(obj, False)


def test_recover_finds_objects_by_inode_and_flags_them_again(layout: Layout, flag: None) -> None:
    """An object known only by the name being deleted is named by its inode number."""
    obj = layout.objects / "ab" / ("c" * 62)
    obj.write_bytes(b"weights")
    crashed = Guard(layout, "immutable").unprotecting(inodes=[obj.stat().st_ino])
    crashed.__enter__()
    assert not protection.is_immutable(obj)
    try:
        assert Guard(layout, "immutable").recover() is True
        assert protection.is_immutable(obj)
    finally:
        protection.set_immutable(obj, False)
