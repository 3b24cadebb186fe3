"""A file opened for reading that proves its bytes are its object's: `open_verified`.

The guarantee, for a file object returned by `open_verified(path, object_id, size)`:
every byte it serves comes from a buffer that was hashed after it was read, whatever the
order of the reads, and a byte that is not the object's is never served without an
IntegrityError, at the latest from `close()`:

- One hash of the whole file, from byte 0 to the end, in order (the "frontier"). Reads
  that continue at the frontier are hashed as they pass, once, from the very buffer
  handed to the reader. A read that ends the file (reaches byte `size` at the frontier)
  computes the digest before it returns: if it is not `object_id`, that read raises
  IntegrityError instead of returning the last bytes. A sequential reader (pickle.load,
  a plain `read()`) therefore never sees the end of a damaged file.
- At every `BLOCK` boundary the hash keeps a copy of its state and the digest of the
  bytes so far. Once the whole digest is `object_id`, these are the object's own, so
  block `i` read again can be checked alone: the state before it, updated with the
  block, must give the digest after it.
- Any other read (a seek forward or back, as torch.load does to read a zip file's
  central directory at the end; or any read after the end was reached) first hashes the
  rest of the file, from the frontier to the end, and raises there if the digest is
  wrong. Then it reads the whole block its position falls in, checks it as above and
  only then serves bytes of it: a file written in place after it was verified (even
  with its mtime set back) raises, it is not served.
- A reader that stops before the end (and never seeks) gets IntegrityError from
  `close()` at the latest (which hashes the rest first): use the file in a `with`
  block, and use nothing it read unless the block exits normally. `close()` also
  checks with `fstat` that a verified file was not written while open (size, mtime,
  inode; not the ctime: in copy mode a new view of the same object adds a hard link).
- A file of the wrong size is refused when opened.

Cost: one hash per byte for a sequential reader; one more per byte served out of order
(each block re-read is hashed again); about 2 KiB of memory per MiB of file for the
states (measured: docs/BENCHMARKS.md, bench/verified_loading.py).

Each failure raises once, names the file and leaves the object closed. The file object is
an `io.BufferedReader` over `VerifiedRaw` (readable, seekable, `readinto`, `peek`).
"""

from __future__ import annotations

import io
import os
from typing import Any, NoReturn

from mstore.core.hashing import new_hasher
from mstore.errors import Hint, IntegrityError

READ_AHEAD = 1 << 20  # the buffered reader's size
# The unit checked again when read out of order, and the most hashed in one piece (so
# that it is still in the CPU cache): the buffer's size, so buffered reads stay aligned.
BLOCK = READ_AHEAD


class VerifiedRaw(io.RawIOBase):
    """The raw file under the buffer: positions, the frontier, block states, verdict."""

    def __init__(self, path: str, object_id: str, size: int, name: str) -> None:
        super().__init__()
        self.label = name
        self._object_id = object_id
        self._size = size
        self._fd = os.open(path, os.O_RDONLY)
        try:
            st = os.fstat(self._fd)
            if st.st_size != size:
                raise IntegrityError(f"{name} has {st.st_size} bytes, not {size}; ", *_WAY_OUT)
        except BaseException:
            os.close(self._fd)
            raise
        self._stat = _identity(st)
        self._pos = 0
        self._frontier = 0
        self._hasher: Any = new_hasher()
        # Block i: the hash's state at its start and the digest at its end.
        self._states: list[Any] = [self._hasher.copy()]
        self._digests: list[bytes] = []
        self._verified = False
        self._scratch = bytearray(0)
        self._failure: tuple[str | Hint, ...] | None = None
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
        if not len(view) or self._pos >= self._size:
            return 0
        if not self._verified and self._pos == self._frontier:
            return self._read_frontier(view)
        if not self._verified:
            self._finish()  # an out-of-order read: verify the whole file first
        return self._read_block(view)

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
            raise IntegrityError(*self._failure)
        if self.closed:
            raise ValueError(f"I/O operation on closed file {self.label}")

    def _read_frontier(self, view: memoryview) -> int:
        """Read at the frontier, hashing piece by piece while each is in the CPU cache."""
        count = 0
        while count < len(view):
            piece = view[count : count + self._to_boundary()]
            got = os.preadv(self._fd, [piece], self._frontier)
            if not got:
                break
            self._hash(piece[:got])
            count += got
        if self._frontier >= self._size:
            self._finish()  # the last bytes: the verdict comes before they do
        self._pos += count
        return count

    def _read_block(self, view: memoryview) -> int:
        """Serve from the block the position falls in, once it checked against the
        verified states (see the module's docstring)."""
        index, offset = divmod(self._pos, BLOCK)
        start = index * BLOCK
        length = min(BLOCK, self._size - start)
        count = min(len(view), length - offset)
        whole = offset == 0 and count == length  # straight into the reader's buffer
        block = view[:length] if whole else self._scratch_view(length)
        done = 0
        while done < length:
            got = os.preadv(self._fd, [block[done:]], start + done)
            if not got:
                self._fail(f"ends at byte {start + done}, before its {self._size} bytes")
            done += got
        hasher = self._states[index].copy()
        hasher.update(block)
        if hasher.digest() != self._digests[index]:
            self._fail(f"changed after it was verified (bytes {start} to {start + length - 1})")
        if not whole:
            view[:count] = block[offset : offset + count]
        self._pos += count
        return count

    def _finish(self) -> None:
        """Hash from the frontier to the end, compare, and raise if anything is wrong."""
        while self._frontier < self._size:
            chunk = os.pread(self._fd, self._to_boundary(), self._frontier)
            if not chunk:
                self._fail(f"ends at byte {self._frontier}, before its {self._size} bytes")
            self._hash(chunk)
        if _identity(os.fstat(self._fd)) != self._stat:
            self._fail("was written while it was open")
        if self._hasher.hexdigest() != self._object_id:
            self._fail(f"does not hash to its object id {self._object_id[:12]}")
        self._verified = True

    def _to_boundary(self) -> int:
        """Bytes from the frontier to the end of its block (pieces never cross one)."""
        return min(BLOCK - self._frontier % BLOCK, self._size - self._frontier)

    def _hash(self, piece: Any) -> None:
        """Hash the next bytes at the frontier; at a block's end keep state and digest."""
        self._hasher.update(piece)
        self._frontier += len(piece)
        if self._frontier % BLOCK == 0 or self._frontier == self._size:
            self._digests.append(self._hasher.digest())
            if self._frontier < self._size:
                self._states.append(self._hasher.copy())

    def _scratch_view(self, length: int) -> memoryview:
        if len(self._scratch) < length:
            self._scratch = bytearray(BLOCK)
        return memoryview(self._scratch)[:length]

    def _fail(self, what: str) -> NoReturn:
        self._failure = (f"{self.label} {what}; ", *_WAY_OUT)
        raise IntegrityError(*self._failure)


_WAY_OUT = (
    "do not use what was read from it (run ",
    Hint(command="status"),
    " and ",
    Hint(command="restore"),
    ")",
)


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def open_verified(path: str, object_id: str, size: int, name: str) -> io.BufferedReader:
    """`path` for reading, checked against `object_id` as the module's docstring says."""
    return io.BufferedReader(VerifiedRaw(path, object_id, size, name), READ_AHEAD)
