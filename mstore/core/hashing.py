"""Content hashing: the only module that imports blake3.

An object id is the lowercase hex blake3 digest (32 bytes, 64 hex digits) of the
object's bytes, the same string `b3sum` prints.

Ingest (`copy_into`) reads the source once: small files are hashed while copied through
a buffer; large files are copied by the kernel (`copy_file_range`, 16 MiB at a time)
into a temporary file the store owns, and a second thread hashes each copied step from
that file through memory-mapped windows while the kernel copies the next one (and the
disk starts writing it), so the hash costs almost nothing on top of the copy. Only
store-owned files are ever memory-mapped: a user file that shrinks while mapped would
kill the process with SIGBUS, and the bytes that count are the ones stored anyway.
"""

from __future__ import annotations

import errno
import mmap
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from blake3 import blake3

# Ids are checked without blake3 (core/ids.py); `is_object_id` stays importable here.
from mstore.core.ids import is_object_id as is_object_id
from mstore.errors import InvalidInputError

BUFFER_SIZE = 1 << 20
# Below this size a plain read beats mmap and thread start-up; it also keeps tests that
# fake the filesystem (where mmap would read the real disk) on the plain path.
MMAP_THRESHOLD = 16 << 20
MMAP_WINDOW = 32 << 20  # a multiple of mmap.ALLOCATIONGRANULARITY
# Kernel copy per call; each step is hashed behind the next (16 MiB: a short tail after
# the last step; 8 MiB measured slower). The disk's write-back is left to the kernel
# until the final fsync: starting it per step (sync_file_range) measured 1.31-1.36 x
# `cp -r` + `sync` against 1.17-1.29 x without (docs/BENCHMARKS.md).
COPY_STEP = 16 << 20
RANGE_BUFFER_SIZE = 8 << 20  # large enough for blake3's threads to pay off

Progress = Callable[[int], None]


def hash_bytes(data: bytes | bytearray | memoryview) -> str:
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
        with open(path, "rb") as f:
            _hash_mapped(f.fileno(), hasher, 0, size, progress)
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
            if size >= MMAP_THRESHOLD:
                first = _first_kernel_copy(src_fd, dst_fd)
                if first is not None:
                    return _hash_behind_kernel_copy(src_fd, dst_fd, dest, first, progress)
            return _hash_while_copying(src_fd, dst_fd, progress)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)


def _first_kernel_copy(src_fd: int, dst_fd: int) -> int | None:
    """The first step of a kernel copy: bytes copied, or None (nothing written) if the
    kernel cannot copy between these files."""
    try:
        return os.copy_file_range(src_fd, dst_fd, COPY_STEP)
    except OSError as err:
        if err.errno in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            os.lseek(src_fd, 0, os.SEEK_SET)
            os.lseek(dst_fd, 0, os.SEEK_SET)
            os.ftruncate(dst_fd, 0)
            return None
        raise


def _hash_behind_kernel_copy(
    src_fd: int, dst_fd: int, dest: Path, step: int, progress: Progress | None
) -> tuple[str, int]:
    """Finish the kernel copy while a thread hashes, from `dest`, each step already copied.

    The hashing thread reads only bytes the kernel has finished writing (the ranges
    handed over through the queue), from the store's own file, so the id is that of
    the stored bytes. The file is fsynced after the last step.
    """
    import queue
    import threading

    # One hashing thread (3.5 GB/s, above any disk here): blake3's own threads would
    # take the second core from the kernel's copy (measured 1.15x cp against 1.08x).
    hasher = blake3()
    steps: queue.SimpleQueue[int | None] = queue.SimpleQueue()  # end offsets; None stops
    failed: list[BaseException] = []
    read_fd = os.open(dest, os.O_RDONLY)

    def hash_steps() -> None:
        start = 0
        try:
            while (end := steps.get()) is not None:
                _hash_mapped(read_fd, hasher, start, end, None)
                start = end
        except BaseException as err:  # handed to the copying thread, which raises it
            failed.append(err)

    worker = threading.Thread(target=hash_steps, name="mstore-hash", daemon=True)
    worker.start()
    try:
        copied = 0
        while step and not failed:
            copied += step
            steps.put(copied)
            if progress:
                progress(step)
            step = os.copy_file_range(src_fd, dst_fd, COPY_STEP)
    finally:
        steps.put(None)
        worker.join()
        os.close(read_fd)
    if failed:
        raise failed[0]
    os.fsync(dst_fd)
    return hasher.hexdigest(), copied


def _hash_mapped(fd: int, hasher: blake3, start: int, end: int, progress: Progress | None) -> None:
    """Hash bytes [start, end) of a store-owned file through memory-mapped windows.

    Windows rather than `update_mmap`: as fast within ~10% (blake3 still spreads each
    window over its threads), and resident memory stays near one window instead of
    growing to the file's size. A window starts at a multiple of mmap's allocation
    granularity; bytes before `start` in the first one are mapped but not hashed (the
    kernel may copy a step that ends off a page boundary).
    """
    offset = start
    while offset < end:
        skip = offset % mmap.ALLOCATIONGRANULARITY
        length = min(MMAP_WINDOW, end - offset)
        mapped = mmap.mmap(fd, skip + length, offset=offset - skip, access=mmap.ACCESS_READ)
        with mapped, memoryview(mapped) as view, view[skip:] as part:
            hasher.update(part)
        offset += length
        if progress:
            progress(length)


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
