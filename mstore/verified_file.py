"""A file opened for reading that proves its bytes are its object's: `open_verified`.

The guarantee, for a file object returned by `open_verified(path, object_id, size)`:

- Every byte of the file is hashed exactly once, whatever the reader does. Reads that
  continue where the hashing stopped (the "frontier", from byte 0 on) are hashed as they
  pass, from the very buffer handed to the reader.
- A read that ends the file (reaches byte `size` at the frontier) computes the digest
  before it returns: if it is not `object_id`, that read raises IntegrityError instead of
  returning the last bytes. A sequential reader (pickle.load, a plain `read()`) therefore
  never sees the end of a damaged file.
- The first read anywhere else (a seek forward or back, as torch.load does to read a zip
  file's central directory at the end) first hashes the rest of the file, from the
  frontier to the end, and raises IntegrityError there if the digest is wrong, before
  returning any byte from the new position. torch.load reads the four magic bytes at 0,
  seeks back and reads again: so it gets the error on its second read.
- After the file is verified, reads are plain; `close()` checks with `fstat` that the
  file was not written while open (size, mtime, inode) and raises if it was. (Not the
  ctime: in copy mode a new view of the same object adds a hard link, which changes it.)
- A reader that stops before the end (and never seeks) gets IntegrityError from
  `close()` at the latest (which hashes the rest first): use the file in a `with`
  block, and use nothing it read unless the block exits normally.
- A file of the wrong size is refused when opened.

Each failure raises once, names the file and leaves the object closed. The file object is
an `io.BufferedReader` over `VerifiedRaw` (readable, seekable, `readinto`, `peek`).
"""

from __future__ import annotations

import io
import os
from typing import Any

from mstore.errors import IntegrityError
from mstore.hashing import new_hasher

READ_AHEAD = 1 << 20  # the buffered reader's size
CATCH_UP = 1 << 20  # chunk size when hashing the rest of the file
HASH_SLICE = 1 << 20  # a large read is read and hashed in slices that stay in the cache


class VerifiedRaw(io.RawIOBase):
    """The raw file under the buffer: positions, the hashing frontier and the verdict."""

    def __init__(self, path: str, object_id: str, size: int, name: str) -> None:
        super().__init__()
        self.label = name
        self._object_id = object_id
        self._size = size
        self._fd = os.open(path, os.O_RDONLY)
        try:
            st = os.fstat(self._fd)
            if st.st_size != size:
                raise IntegrityError(f"{name} has {st.st_size} bytes, not {size}; {_WAY_OUT}")
        except BaseException:
            os.close(self._fd)
            raise
        self._stat = _identity(st)
        self._pos = 0
        self._frontier = 0
        self._hasher: Any = new_hasher()
        self._verified = False
        self._failure: str | None = None
        if size == 0:
            self._finish()

    @property
    def verified(self) -> bool:
        """True once every byte has been hashed and matched the object id."""
        return self._verified

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError(f"negative seek position {base + offset} in {self.label}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        self._check_open()
        view = memoryview(buffer).cast("B")
        if not self._verified and self._pos != self._frontier:
            self._finish()  # an out-of-order read: verify the whole file first
        if self._verified:
            count = os.preadv(self._fd, [view], self._pos) if len(view) else 0
            self._pos += count
            return count
        count = 0
        while count < len(view):  # slice by slice, each hashed while still in the CPU cache
            piece = view[count : count + HASH_SLICE]
            got = os.preadv(self._fd, [piece], self._pos + count)
            if not got:
                break
            self._hasher.update(piece[:got])
            self._frontier += got
            count += got
        if self._frontier >= self._size:
            self._finish()  # the last bytes: the verdict comes before they do
        self._pos += count
        return count

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._failure is None:
                if not self._verified:
                    self._finish()
                elif _identity(os.fstat(self._fd)) != self._stat:
                    self._fail("was written while it was open")
        finally:
            os.close(self._fd)
            super().close()

    def _check_open(self) -> None:
        if self._failure is not None:
            raise IntegrityError(self._failure)
        if self.closed:
            raise ValueError(f"I/O operation on closed file {self.label}")

    def _finish(self) -> None:
        """Hash from the frontier to the end, compare, and raise if anything is wrong."""
        while self._frontier < self._size:
            chunk = os.pread(self._fd, min(CATCH_UP, self._size - self._frontier), self._frontier)
            if not chunk:
                self._fail(f"ends at byte {self._frontier}, before its {self._size} bytes")
            self._hasher.update(chunk)
            self._frontier += len(chunk)
        if _identity(os.fstat(self._fd)) != self._stat:
            self._fail("was written while it was open")
        if self._hasher.hexdigest() != self._object_id:
            self._fail(f"does not hash to its object id {self._object_id[:12]}")
        self._verified = True

    def _fail(self, what: str) -> None:
        self._failure = f"{self.label} {what}; {_WAY_OUT}"
        raise IntegrityError(self._failure)


_WAY_OUT = "do not use what was read from it (run `mstore status` and `mstore restore`)"


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def open_verified(path: str, object_id: str, size: int, name: str) -> io.BufferedReader:
    """`path` for reading, checked against `object_id` as the module's docstring says."""
    return io.BufferedReader(VerifiedRaw(path, object_id, size, name), READ_AHEAD)
