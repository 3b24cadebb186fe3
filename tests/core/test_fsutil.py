"""Unit tests for mstore.core.fsutil: atomic writes, symlink swaps, the store lock, walking."""

from __future__ import annotations

import errno
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

from mstore.core import fsutil
from mstore.core.fsutil import StoreLock, atomic_write, is_special, replace_symlink, walk_files
from mstore.errors import LockedError, MstoreError

# -- atomic_write ------------------------------------------------------------------------


def test_atomic_write_creates_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    atomic_write(path, b"new bytes", mode=0o600)
    assert path.read_bytes() == b"new bytes"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 & ~current_umask()
    assert os.listdir(tmp_path) == ["file"]


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_write_replaces_content_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"old content that is longer")
    inode = path.stat().st_ino
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"
    assert path.stat().st_ino != inode
    assert os.listdir(tmp_path) == ["file"]


def test_atomic_write_of_large_data(tmp_path: Path) -> None:
    data = os.urandom(5 << 20)
    atomic_write(tmp_path / "big", data)
    assert (tmp_path / "big").read_bytes() == data


def test_failed_atomic_write_keeps_old_content_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"old content")

    def failing_fsync(fd: int) -> NoReturn:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError) as info:
        atomic_write(path, b"new content")
    monkeypatch.undo()
    assert info.value.errno == errno.EIO
    assert path.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["file"]


# -- replace_symlink ---------------------------------------------------------------------


def test_replace_symlink_swaps_target(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    link = tmp_path / "current"
    link.symlink_to("a")
    replace_symlink(link, "b")
    assert os.readlink(link) == "b"
    assert link.resolve() == (tmp_path / "b").resolve()
    assert sorted(os.listdir(tmp_path)) == ["a", "b", "current"]


def test_replace_symlink_creates_missing_link(tmp_path: Path) -> None:
    link = tmp_path / "current"
    replace_symlink(link, "../somewhere")
    assert os.readlink(link) == "../somewhere"
    assert os.listdir(tmp_path) == ["current"]


# -- StoreLock -----------------------------------------------------------------------------


def test_lock_records_holder_and_release_clears_it(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with StoreLock(path, "commit"):
        holder = fsutil.read_lock_holder(path)
        assert holder is not None
        assert (holder.pid, holder.host, holder.command) == (
            os.getpid(),
            socket.gethostname(),
            "commit",
        )
    assert fsutil.read_lock_holder(path) is None
    with StoreLock(path, "again", timeout=0.2):  # free again
        pass


def test_second_lock_in_same_process_is_refused_naming_holder(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with StoreLock(path, "first"):
        with pytest.raises(LockedError) as info:
            StoreLock(path, "second", timeout=0.2).acquire()
        assert f"pid {os.getpid()}" in str(info.value)
        assert info.value.exit_code == 11


CHILD = """
import sys, time
from pathlib import Path
from mstore.core.fsutil import StoreLock
StoreLock(Path(sys.argv[1]), "child", timeout=5).acquire()
print("locked", flush=True)
time.sleep(120)  # holds the lock until the test kills it; bounds an orphan's life
"""


def test_lock_held_by_killed_child_is_released_by_the_kernel(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "locked\n"
        with pytest.raises(LockedError) as info:
            StoreLock(path, "parent", timeout=0.2).acquire()
        assert f"pid {child.pid}" in str(info.value)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        lock = StoreLock(path, "parent", timeout=0)  # no waiting: it must be free at once
        lock.acquire()
        holder = fsutil.read_lock_holder(path)
        assert holder is not None and holder.pid == os.getpid()
        lock.release()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


# -- walk_files and is_special -----------------------------------------------------------


def test_walk_files_lists_nested_files_with_posix_paths(tmp_path: Path) -> None:
    for relative in ["b.txt", "a/x.bin", "a/deeper/y", "c/z", "metadata.json"]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(relative.encode())
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to("b.txt")
    found = dict(walk_files(tmp_path))
    assert sorted(found) == ["a/deeper/y", "a/x.bin", "b.txt", "c/z", "link", "metadata.json"]
    assert found["a/deeper/y"].st_size == len(b"a/deeper/y")
    assert stat.S_ISLNK(found["link"].st_mode)  # lstat: links are not followed
    assert stat.S_ISREG(found["c/z"].st_mode)


def test_walk_files_of_empty_directory_is_empty(tmp_path: Path) -> None:
    assert list(walk_files(tmp_path)) == []


def test_walk_files_of_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(MstoreError):
        list(walk_files(tmp_path / "missing"))


def test_is_special_on_fifo_socket_and_regular_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    regular = tmp_path / "file"
    regular.write_bytes(b"")
    monkeypatch.chdir(tmp_path)  # a relative socket name stays under the AF_UNIX length limit
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("sock")
        assert is_special(os.lstat(tmp_path / "sock").st_mode)
    assert is_special(os.lstat(fifo).st_mode)
    assert not is_special(os.lstat(regular).st_mode)
    assert not is_special(os.lstat(tmp_path).st_mode)
    assert is_special(os.stat("/dev/null").st_mode)


def test_walk_files_reports_fifo_as_special(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (found,) = walk_files(tmp_path)
    assert found[0] == "pipe"
    assert is_special(found[1].st_mode)
