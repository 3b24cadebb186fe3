"""One safe way to open what mstore did not write itself.

Refs, `packed-refs`, `.env`, lock files, tracking files and everything under a
directory remote can be replaced by whoever else can write there: by a symlink to a
file of the victim's (a truncating open would empty it), a FIFO (a blocking open would
hang for ever), a huge file (an unbounded read would exhaust memory) or a tree nested
deeper than any path mstore writes (a recursive walk would overflow the stack). Every
such read goes through this module:

- `open_regular(path)`: `O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC`, then `fstat`: a symlink
  or anything but a regular file is refused (`UntrustedFileError`, exit 3);
- `read_bounded(path, limit)`: at most `limit` bytes (reads `limit + 1` to tell a
  file that is too big from one that fits);
- `open_lock_file(path)`: the same checks for a file mstore will truncate and write
  (a lock's holder line), plus "one link only": a hardlink to another file is refused;
- `walk(root, max_depth)`: every entry below `root`, iteratively, never following a
  symlink and never descending deeper than `max_depth` directories;
- `clear_for_cache(path)`: before SQLite opens a cache (which it would do through a
  symlink, writing into its target), delete whatever at the cache's paths is not a
  plain file of one link: caches are deletable by design.

Missing files raise `FileNotFoundError` (and a file where a directory is expected
`NotADirectoryError`), so callers keep deciding what "absent" means for them.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from mstore.errors import IntegrityError

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_READ_BLOCK = 1 << 20


class UntrustedFileError(IntegrityError):
    """A file mstore reads is a symlink, a special file, too big or nested too deep."""


def open_regular(path: Path | str, flags: int = _READ_FLAGS, mode: int = 0o644) -> int:
    """An open descriptor of the regular file `path`, never following a final symlink
    and never blocking on a FIFO; UntrustedFileError for anything but a regular file."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UntrustedFileError(f"{path} is a symlink; refusing to follow it") from None
        if err.errno == errno.ENXIO:  # a socket, or a FIFO opened for writing
            raise UntrustedFileError(f"{path} is not a regular file") from None
        raise
    try:
        kind = os.fstat(fd).st_mode
        if not stat.S_ISREG(kind):
            raise UntrustedFileError(f"{path} is not a regular file ({_kind(kind)})")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bounded(path: Path | str, limit: int) -> bytes:
    """Every byte of the regular file `path`; UntrustedFileError if it holds more than
    `limit` bytes (never reads more than `limit + 1`)."""
    fd = open_regular(path)
    try:
        if os.fstat(fd).st_size > limit:  # refused before reading a byte
            raise UntrustedFileError(f"{path} is larger than {limit} bytes")
        data = read_fd_bounded(fd, limit)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise UntrustedFileError(f"{path} is larger than {limit} bytes")
    return data


def read_fd_bounded(fd: int, limit: int) -> bytes:
    """At most `limit + 1` bytes from `fd` (one more than allowed, to see an excess)."""
    parts: list[bytes] = []
    remaining = limit + 1
    while remaining > 0:
        block = os.read(fd, min(remaining, _READ_BLOCK))
        if not block:
            break
        parts.append(block)
        remaining -= len(block)
    return b"".join(parts)


def open_lock_file(path: Path | str) -> int:
    """A read-write descriptor of the lock file `path`, created if absent. A symlink, a
    special file or a file with other hard links is refused: the caller truncates it."""
    try:
        fd = open_regular(path, os.O_RDWR | os.O_CREAT)
    except IsADirectoryError:
        raise UntrustedFileError(f"{path} is a directory, not a lock file") from None
    try:
        links = os.fstat(fd).st_nlink
        if links != 1:
            raise UntrustedFileError(
                f"{path} has {links} hard links; a lock file must have one (another file's "
                f"bytes would be overwritten): remove it"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


SQLITE_SIDE_FILES = ("", "-journal", "-wal", "-shm")


def clear_for_cache(path: Path | str) -> bool:
    """Delete a symlink, special file or hard link at the SQLite database `path` or its
    side files (never what a link points at); False if one is a directory (then the
    cache is not to be used)."""
    for suffix in SQLITE_SIDE_FILES:
        name = f"{os.fspath(path)}{suffix}"
        try:
            st = os.lstat(name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISDIR(st.st_mode):
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.unlink(name)
    return True


def is_plain_cache(path: Path | str) -> bool:
    """True if the SQLite database `path` is a plain file of one link and each side file
    is absent or one too: what a reader (holding no lock, deleting nothing) may open."""
    for suffix in SQLITE_SIDE_FILES:
        try:
            st = os.lstat(f"{os.fspath(path)}{suffix}")
        except (FileNotFoundError, NotADirectoryError):
            if suffix:
                continue
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            return False
    return True


def walk(root: Path | str, max_depth: int) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(relative POSIX path, entry) of every non-directory below `root`, depth first.

    Iterative, so no nesting overflows the stack; symlinks are yielded, never followed;
    directories more than `max_depth` levels below `root` are not entered (their
    contents cannot be anything mstore wrote). A missing or vanished directory yields
    nothing.
    """
    stack: list[tuple[str, str, int]] = [("", os.fspath(root), 0)]
    while stack:
        prefix, directory, depth = stack.pop()
        try:
            with os.scandir(directory) as iterator:
                entries = list(iterator)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if depth < max_depth:
                    stack.append((f"{prefix}{entry.name}/", entry.path, depth + 1))
            else:
                yield f"{prefix}{entry.name}", entry


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"
