"""Filesystem primitives with the ordering mstore relies on.

- `atomic_write`: temp file in the target directory, write, fsync, `os.replace`, fsync the
  directory. A reader sees the old bytes or the new bytes, never a torn file.
- `replace_symlink`: make a fresh symlink beside the old one and `os.replace` it over the
  old one (never delete-then-create: a reader would see the name missing).
- `StoreLock`: an exclusive `flock` on `.mstore/lock`, released by the kernel when its
  holder dies, so a killed holder never leaves a stale lock behind; the holder writes
  its pid, host and start time into the file so a waiting process can say who holds it.
- `clone_or_copy`: reflink (FICLONE) where the filesystem supports it, else a copy.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mstore.errors import Hint, LockedError, MstoreError

TEMP_PREFIX = ".tmp-"
# A temporary name embeds at most this many bytes of its final name: with the prefix,
# a dot, 12 hex digits and a `.dir` an import may add, at most 86 bytes, far below any
# filesystem's NAME_MAX however long the final name (docs/FORMAT.md, "Refs").
TEMP_NAME_BYTES = 64
NAME_MAX = 255  # when the filesystem does not say (pathconf)
MAX_HOLDER_BYTES = 4096  # a lock's holder line: pid, host, time, command
FICLONE = 0x40049409  # _IOW(0x94, 9, int) from linux/fs.h


def random_suffix(nbytes: int) -> str:
    """Random hex for temporary names (os.urandom: no `secrets`/OpenSSL import cost)."""
    return os.urandom(nbytes).hex()


def temp_name(final: Path) -> Path:
    """A unique temporary name beside `final` (same directory, so rename is atomic):
    `.tmp-<the first 64 bytes of final's name>.<12 hex>`. Bounded, so that any name
    that fits the filesystem has temporary names that fit too."""
    return final.with_name(f"{temp_prefix(final.name)}{random_suffix(6)}")


def temp_prefix(name: str) -> str:
    """What every temporary name of final name `name` starts with."""
    encoded = os.fsencode(name)
    if len(encoded) > TEMP_NAME_BYTES:
        # Cut on a character boundary: a torn UTF-8 sequence is dropped, not kept.
        name = encoded[:TEMP_NAME_BYTES].decode("utf-8", errors="ignore")
    return f"{TEMP_PREFIX}{name}."


def name_max(directory: Path) -> int:
    """The longest file name, in bytes, the filesystem of `directory` (or of its
    nearest existing parent) takes."""
    current = directory
    while True:
        try:
            return os.pathconf(current, "PC_NAME_MAX")
        except FileNotFoundError:
            if current.parent == current:
                return NAME_MAX
            current = current.parent
        except (OSError, ValueError):
            return NAME_MAX


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write every byte of `data` to `fd` (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def fsync_dir(path: Path) -> None:
    """Make a rename, create or unlink inside `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | bytearray | memoryview, mode: int = 0o644) -> None:
    """Replace `path` with `data` so a reader or a crash sees old or new bytes, never a mix."""
    tmp = temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def replace_symlink(link: Path, target: str) -> None:
    """Point `link` at `target` in one atomic step (`os.replace` of a fresh symlink)."""
    tmp = temp_name(link)
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(link.parent)


def makedirs_durable(path: Path) -> None:
    """Create `path` and missing parents, fsyncing each parent whose listing changed."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir()
        fsync_dir(directory.parent)


def remove_empty_parents(path: Path, stop: Path) -> None:
    """Remove `path`'s parent directories up to (not including) `stop` while they are
    empty. Only "not empty" ends the walk quietly; any other error is raised, so that a
    transaction that must finish this stays pending and is retried."""
    parent = path.parent
    while parent != stop and parent.is_relative_to(stop):
        try:
            parent.rmdir()
        except FileNotFoundError:
            parent = parent.parent  # already gone (refs packed away): nothing to sync
            continue
        except OSError as err:
            if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return
            raise
        fsync_dir(parent.parent)
        parent = parent.parent


def is_special(mode: int) -> bool:
    """True for FIFOs, sockets and devices: files mstore refuses to read."""
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode)


def try_reflink(source: Path, dest: Path) -> bool:
    """Clone `source` to a new file `dest` sharing its blocks; False where unsupported."""
    src_fd = os.open(source, os.O_RDONLY)
    try:
        dst_fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.ioctl(dst_fd, FICLONE, src_fd)
        except OSError as err:
            os.close(dst_fd)
            os.unlink(dest)
            if err.errno in (
                errno.EOPNOTSUPP,
                errno.ENOTTY,
                errno.EXDEV,
                errno.EINVAL,
                errno.ENOSYS,
            ):
                return False
            raise
        os.fsync(dst_fd)
        os.close(dst_fd)
        return True
    finally:
        os.close(src_fd)


def copy_file(source: Path, dest: Path, chunk: int = 8 << 20) -> None:
    """Copy `source` to a new file `dest` (kernel copy where possible), fsynced."""
    with open(source, "rb") as src, open(dest, "xb") as dst:
        size = os.fstat(src.fileno()).st_size
        copied = 0
        try:
            while copied < size:
                n = os.copy_file_range(src.fileno(), dst.fileno(), min(chunk, size - copied))
                if n == 0:
                    break
                copied += n
        except OSError as err:
            if err.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            src.seek(copied)
            dst.seek(copied)
            while block := src.read(chunk):
                dst.write(block)
        dst.flush()
        os.fsync(dst.fileno())


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) the store lock, as written into the lock file."""

    pid: int
    host: str
    since: float
    command: str

    def describe(self) -> str:
        age = max(0.0, time.time() - self.since)
        return f"pid {self.pid} on {self.host}, {age:.0f}s ago ({self.command})"


def read_lock_holder(path: Path) -> LockHolder | None:
    """Parse the holder line of a lock file; None if absent or unreadable."""
    from mstore.core import untrusted

    try:
        data = untrusted.read_bounded(path, MAX_HOLDER_BYTES)
        pid, host, since, command = data.decode("utf-8", errors="replace").strip().split(" ", 3)
        return LockHolder(int(pid), host, float(since), command)
    except (OSError, ValueError, MstoreError):
        return None


class StoreLock:
    """Exclusive store lock: `flock` on a file, waiting at most `timeout` seconds.

    The kernel drops a `flock` when its holder exits or is killed, so no lock outlives
    its process. The holder's identity is written into the file only for messages.
    """

    def __init__(self, path: Path, command: str, timeout: float = 10.0) -> None:
        self.path = path
        self.command = command
        self.timeout = timeout
        self._fd: int | None = None
        # Set when the previous holder died holding the lock (its line was left behind).
        self.previous_holder: LockHolder | None = None

    def acquire(self) -> None:
        from mstore.core import untrusted

        # Never follow a planted symlink or truncate another file's hard link.
        fd = untrusted.open_lock_file(self.path)
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = read_lock_holder(self.path)
                    os.close(fd)
                    who = holder.describe() if holder else "another process"
                    raise LockedError(
                        f"store is locked by {who}; waited {self.timeout:g}s (retry later, or "
                        "raise ",
                        Hint("lock_timeout"),
                        ")",
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        self.previous_holder = read_lock_holder(self.path)
        line = f"{os.getpid()} {os.uname().nodename} {time.time():.3f} {self.command}\n"
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, line.encode(), 0)
        except BaseException:
            # Never keep a lock we failed to take fully: a library caller would find the
            # store locked by itself until the process exits.
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def walk_files(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Yield (relative POSIX path, lstat) for every entry below `root`, sorted, no dirs."""
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as err:
            raise MstoreError(f"cannot read directory {directory}: {err.strerror}") from err
        subdirs = []
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(Path(entry.path))
            else:
                yield Path(entry.path).relative_to(root).as_posix(), st
        stack.extend(reversed(subdirs))


RENAME_EXCHANGE = 2
AT_FDCWD = -100


def exchange(first: Path, second: Path) -> bool:
    """Swap two names atomically (renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE)
    if result == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(error, os.strerror(error), os.fspath(first))
