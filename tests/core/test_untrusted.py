"""mstore/core/untrusted.py: the one way to open files mstore did not write itself."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from mstore.core import untrusted
from mstore.core.untrusted import UntrustedFileError
from mstore.errors import IntegrityError


def test_read_bounded_reads_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)

    assert untrusted.read_bounded(path, 10) == b"x" * 10


def test_read_bounded_refuses_one_byte_too_many(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 11)

    with pytest.raises(UntrustedFileError, match="larger than 10 bytes"):
        untrusted.read_bounded(path, 10)


def test_a_symlink_is_refused_not_followed(tmp_path: Path) -> None:
    (tmp_path / "target").write_bytes(b"secret")
    (tmp_path / "link").symlink_to(tmp_path / "target")

    with pytest.raises(UntrustedFileError, match="symlink"):
        untrusted.read_bounded(tmp_path / "link", 100)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")

    with pytest.raises(UntrustedFileError, match="FIFO"):
        untrusted.read_bounded(tmp_path / "fifo", 100)


def test_a_socket_and_a_directory_are_refused(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock"))
        with pytest.raises(UntrustedFileError):
            untrusted.read_bounded(tmp_path / "sock", 100)
    (tmp_path / "dir").mkdir()
    with pytest.raises((UntrustedFileError, IsADirectoryError)):
        untrusted.read_bounded(tmp_path / "dir", 100)


def test_a_missing_file_is_the_callers_to_decide(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        untrusted.read_bounded(tmp_path / "absent", 100)


def test_refusals_are_integrity_errors(tmp_path: Path) -> None:
    assert issubclass(UntrustedFileError, IntegrityError)
    assert UntrustedFileError("x").exit_code == 3


def test_lock_file_is_created_with_one_link(tmp_path: Path) -> None:
    fd = untrusted.open_lock_file(tmp_path / "lock")
    os.close(fd)

    assert (tmp_path / "lock").stat().st_nlink == 1
    assert (tmp_path / "lock").stat().st_mode & 0o777 == 0o644 & ~_umask()


def test_lock_file_refuses_a_symlink_even_a_dangling_one(tmp_path: Path) -> None:
    (tmp_path / "lock").symlink_to(tmp_path / "victim")

    with pytest.raises(UntrustedFileError, match="symlink"):
        untrusted.open_lock_file(tmp_path / "lock")
    assert not (tmp_path / "victim").exists()


def test_lock_file_refuses_a_hard_link_to_another_file(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    os.link(victim, tmp_path / "lock")

    with pytest.raises(UntrustedFileError, match="hard links"):
        untrusted.open_lock_file(tmp_path / "lock")
    assert victim.read_bytes() == b"precious"


def test_walk_never_follows_a_symlinked_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f").write_bytes(b"f")
    (root / "link").symlink_to(outside)

    found = {path: entry.is_symlink() for path, entry in untrusted.walk(root, 8)}

    assert found == {"a/f": False, "link": True}


def test_walk_of_a_deep_tree_neither_recurses_nor_descends_past_its_bound(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    made = make_deep_tree(root, 1200)  # deeper than the recursion limit lets a recursive walk go
    (root / "d" / "f").write_bytes(b"f")
    try:
        found = [path for path, _ in untrusted.walk(root, 2)]
        everything = sum(1 for _ in untrusted.walk(root, 2000))
    finally:
        (root / "d" / "f").unlink()
        remove_deep_tree(made)

    assert found == ["d/f"]
    assert everything == 1


def make_deep_tree(root: Path, depth: int) -> list[str]:
    """`root/d/d/.../d`, made one mkdir at a time (os.makedirs recurses)."""
    made = [os.fspath(root)]
    os.mkdir(root)
    for _ in range(depth):
        made.append(made[-1] + "/d")
        os.mkdir(made[-1])
    return made


def remove_deep_tree(made: list[str]) -> None:
    """Deepest first: shutil.rmtree (and pytest's cleanup of tmp_path) recurses too."""
    for directory in reversed(made):
        os.rmdir(directory)


def test_walk_of_a_missing_root_yields_nothing(tmp_path: Path) -> None:
    assert list(untrusted.walk(tmp_path / "absent", 4)) == []


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
