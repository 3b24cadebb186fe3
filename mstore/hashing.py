"""Content hashing: the only module that imports blake3.

An object id is the lowercase hex blake3 digest (32 bytes, 64 hex digits) of the
object's bytes, the same string `b3sum` prints.

Ingest (`copy_into`) reads the source once: small files are hashed while copied through
a buffer; large files are copied by the kernel (`copy_file_range`) into a temporary file
the store owns and hashed from there through 32 MiB memory-mapped windows (multi-threaded). Only
store-owned files are ever memory-mapped: a user file that shrinks while mapped would
kill the process with SIGBUS, and the bytes that count are the ones stored anyway.
"""

from __future__ import annotations

import errno
import mmap
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from blake3 import blake3

from mstore.errors import InvalidInputError

ID_LENGTH = 64
ID_PATTERN = re.compile(r"[0-9a-f]{64}")
BUFFER_SIZE = 1 << 20
# Below this size a plain read beats mmap and thread start-up; it also keeps tests that
# fake the filesystem (where mmap would read the real disk) on the plain path.
MMAP_THRESHOLD = 16 << 20
MMAP_WINDOW = 32 << 20  # a multiple of mmap.ALLOCATIONGRANULARITY
RANGE_BUFFER_SIZE = 8 << 20  # large enough for blake3's threads to pay off

Progress = Callable[[int], None]


def is_object_id(text: str) -> bool:
    """True for exactly 64 lowercase hex digits."""
    return len(text) == ID_LENGTH and ID_PATTERN.fullmatch(text) is not None


def hash_bytes(data: bytes | memoryview) -> str:
    """The object id of `data` (bytes, or a view of a buffer: no copy is made)."""
    return blake3(data).hexdigest()


def new_hasher() -> blake3:
    """An incremental hasher (`update`, `hexdigest`) whose digest is an object id."""
    return blake3(max_threads=blake3.AUTO)


def hash_file(path: Path, progress: Progress | None = None, owned: bool = True) -> str:
    """The object id of the file at `path`.

    `owned` files (inside the store) are memory-mapped when large; other files are read
    through a buffer so that a concurrent truncation cannot crash the process.
    """
    size = os.stat(path).st_size
    hasher = blake3(max_threads=blake3.AUTO)
    if owned and size >= MMAP_THRESHOLD:
        # Mapped in 32 MiB windows rather than with update_mmap: as fast within ~10%
        # (blake3 still spreads each window over its threads), and the process's resident
        # memory stays near one window instead of growing to the file's size.
        with open(path, "rb") as f:
            offset = 0
            while offset < size:
                length = min(MMAP_WINDOW, size - offset)
                with mmap.mmap(f.fileno(), length, offset=offset, access=mmap.ACCESS_READ) as w:
                    hasher.update(w)
                offset += length
                if progress:
                    progress(length)
        return hasher.hexdigest()
    with open(path, "rb", buffering=0) as f:
        buffer = bytearray(BUFFER_SIZE)
        view = memoryview(buffer)
        while n := f.readinto(buffer):
            hasher.update(view[:n])
            if progress:
                progress(n)
    return hasher.hexdigest()


def copy_into(source: Path, dest: Path, progress: Progress | None = None) -> tuple[str, int]:
    """Copy `source` into the new file `dest` (fsynced) and return (object id, size).

    The id is computed from the bytes written to `dest`, never from a second read of
    `source`, so a source changing during the copy cannot make the id lie.
    """
    src_fd = os.open(source, os.O_RDONLY)
    try:
        size = os.fstat(src_fd).st_size
        dst_fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            if size >= MMAP_THRESHOLD and _kernel_copy(src_fd, dst_fd):
                os.fsync(dst_fd)
                os.close(dst_fd)
                dst_fd = -1
                return hash_file(dest, progress, owned=True), os.stat(dest).st_size
            return _hash_while_copying(src_fd, dst_fd, progress)
        finally:
            if dst_fd >= 0:
                os.close(dst_fd)
    finally:
        os.close(src_fd)


def _kernel_copy(src_fd: int, dst_fd: int) -> bool:
    """Copy all of src to dst with copy_file_range; False (nothing written) if unsupported."""
    try:
        while os.copy_file_range(src_fd, dst_fd, 1 << 30):
            pass
    except OSError as err:
        if err.errno in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            os.lseek(src_fd, 0, os.SEEK_SET)
            os.lseek(dst_fd, 0, os.SEEK_SET)
            os.ftruncate(dst_fd, 0)
            return False
        raise
    return True


def _hash_while_copying(src_fd: int, dst_fd: int, progress: Progress | None) -> tuple[str, int]:
    hasher = blake3()
    total = 0
    # os.read (not readv): this path also serves tests on a faked filesystem.
    while data := os.read(src_fd, BUFFER_SIZE):
        hasher.update(data)
        chunk = memoryview(data)
        while chunk:
            chunk = chunk[os.write(dst_fd, chunk) :]
        total += len(data)
        if progress:
            progress(len(data))
    os.fsync(dst_fd)
    return hasher.hexdigest(), total


def hash_range(f: BinaryIO, offset: int, length: int) -> str:
    """The blake3 hex digest of `length` bytes of the open file `f` from `offset`.

    Reads through a bounded buffer with positional reads (the file's position is left
    alone); a file shorter than it claimed is an error, never a digest of fewer bytes.
    """
    hasher = blake3(max_threads=blake3.AUTO) if length >= MMAP_THRESHOLD else blake3()
    fd = f.fileno()
    buffer = bytearray(min(length, RANGE_BUFFER_SIZE))
    view = memoryview(buffer)
    done = 0
    while done < length:
        want = min(len(buffer), length - done)
        n = os.preadv(fd, [view[:want]], offset + done)
        if n == 0:
            name = getattr(f, "name", "the file")
            raise InvalidInputError(
                f"{name} ended at byte {offset + done}, before the {length} bytes from byte "
                f"{offset} it was read for (was it truncated while being read?)"
            )
        hasher.update(view[:n])
        done += n
    return str(hasher.hexdigest())
