"""Content-defined chunking: cut a file into chunks whose boundaries follow its content.

A chunk is a byte range (`offset`, `length`) of a file and its id, the lowercase hex
blake3 of its bytes (the same form as an object id). Two versions of a model share most
of their bytes; cut by content, they share most of their chunks too, so a remote needs
to receive only the chunks it does not hold yet.

    file    |--------------------------------- size ---------------------------------|
    cuts    0     c1          c2    t1 (tensor start)       t2 (tensor end)   c3    size
    chunks  [ a  ][    b     ][ c  ][ d        ][ e        ][ f  ][     g     ][ h  ]

Cut points come from FastCDC 2020 (the `pyfastcdc` package, a port of the fastcdc-rs
`v2020` module: gear hash, normalised chunking level 1, the gear table of the paper's
reference code, seed 0), with `min_size` <= every chunk <= `max_size`, except the last
chunk of each segment, which may be shorter. With `tensor_cuts`, the file is first split
into segments at its tensors' first and last bytes (see `mstore.chunks.tensor_cuts`) and each
segment is chunked on its own. `ChunkParams.name` spells all of this out; a remote format
records it, since other parameters or another library version would cut elsewhere and
give every chunk a new id. tests/chunks/test_chunking.py holds golden ids that fail if the
cut points ever move.

Files are streamed through one buffer of `BUFFER_SIZE` bytes, cut and hashed in turn,
never read whole. Only files the store owns may be memory-mapped instead (`owned`): a
user's file that shrinks while mapped kills the process. Hashing in a worker thread
while the next buffer is cut measured slower here than hashing in turn (GIL hand-offs;
docs/CHUNKING.md), so there is none. A file that changes size or modification time while
it is read raises IntegrityError rather than describing bytes that never existed
together.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import FileIO
from pathlib import Path
from typing import Protocol

from pyfastcdc import FastCDC

from mstore.chunks.tensor_cuts import CUTS_VERSION, tensor_cut_points
from mstore.core.hashing import hash_bytes
from mstore.errors import IntegrityError, RefusedError, UsageError

ALGORITHM = "fastcdc2020-nc1-seed0"
# pyfastcdc falls back to a pure-Python cutter (same cut points, about 0.5% of the speed)
# when its compiled extension cannot load; this says which one is in use.
ACCELERATED = FastCDC.__module__.startswith("pyfastcdc.cy")
BUFFER_SIZE = 16 << 20
# pyfastcdc's own bounds on each parameter.
_MIN_RANGE = (64, 1 << 20)
_AVG_RANGE = (256, 4 << 20)
_MAX_RANGE = (1024, 16 << 20)


@dataclass(frozen=True)
class ChunkParams:
    """The chunker's parameters; `name` is what a remote format records."""

    min_size: int = 64 << 10
    avg_size: int = 256 << 10
    max_size: int = 1 << 20
    tensor_cuts: bool = True

    def __post_init__(self) -> None:
        for value, (low, high), what in (
            (self.min_size, _MIN_RANGE, "min_size"),
            (self.avg_size, _AVG_RANGE, "avg_size"),
            (self.max_size, _MAX_RANGE, "max_size"),
        ):
            if not low <= value <= high:
                raise UsageError(f"chunk {what} {value} is outside [{low}, {high}]")
        if not self.min_size <= self.avg_size <= self.max_size:
            raise UsageError(
                f"chunk sizes must satisfy min <= avg <= max, not "
                f"{self.min_size} / {self.avg_size} / {self.max_size}"
            )
        # FastCDC derives its masks from log2(avg_size): other sizes would round silently.
        if self.avg_size & (self.avg_size - 1):
            raise UsageError(f"chunk avg_size {self.avg_size} must be a power of two")

    @property
    def name(self) -> str:
        """Canonical, e.g. `fastcdc2020-nc1-seed0/min=65536,avg=262144,max=1048576/tensor1`."""
        sizes = f"min={self.min_size},avg={self.avg_size},max={self.max_size}"
        return f"{ALGORITHM}/{sizes}/{CUTS_VERSION if self.tensor_cuts else 'plain'}"

    @classmethod
    def from_name(cls, name: str) -> ChunkParams:
        """The parameters a `name` spells (as a remote recorded it).

        RefusedError for a name this version of mstore cannot cut by (a newer format).
        """
        parts = name.split("/")
        try:
            if len(parts) != 3 or parts[0] != ALGORITHM or parts[2] not in (CUTS_VERSION, "plain"):
                raise ValueError
            sizes = dict(item.split("=", 1) for item in parts[1].split(","))
            if sorted(sizes) != ["avg", "max", "min"]:
                raise ValueError
            params = cls(
                int(sizes["min"]), int(sizes["avg"]), int(sizes["max"]), parts[2] == CUTS_VERSION
            )
        except (ValueError, UsageError):
            raise RefusedError(
                f"unknown chunking parameters {name!r}: this mstore cuts only by {ALGORITHM}"
                f" with tensor cuts {CUTS_VERSION!r} or 'plain'; upgrade mstore to read it"
            ) from None
        if params.name != name:
            raise RefusedError(f"chunking parameters {name!r} are not in canonical form")
        return params


DEFAULT_PARAMS = ChunkParams()


class Hasher(Protocol):
    """What `chunk_file` feeds the whole file to (a blake3 hasher)."""

    def update(self, data: bytes | memoryview) -> object: ...


@dataclass(frozen=True)
class Chunk:
    """Bytes [offset, offset + length) of a file; `id` is their lowercase hex blake3.
    `data`: those very bytes, as they were hashed, when the caller asked: a view of the
    mapped file for an owned file (no copy), else a copy."""

    offset: int
    length: int
    id: str
    data: bytes | memoryview | None = None


def chunk_bytes(
    data: bytes | bytearray | memoryview, params: ChunkParams = DEFAULT_PARAMS
) -> list[Chunk]:
    """The chunks of `data`, exactly as `chunk_file` gives them for a file holding it."""
    view = memoryview(data).cast("B")
    size = len(view)

    def read_at(offset: int, length: int) -> bytes:
        return bytes(view[offset : offset + length])

    cutter = _cutter(params)
    points = tensor_cut_points(read_at, size, params.min_size) if params.tensor_cuts else []
    spans, _ = _cut(cutter, view, 0, [*points, size], final=True)
    return [Chunk(o, n, hash_bytes(view[o : o + n])) for o, n in spans]


def chunk_file(
    path: Path | str,
    params: ChunkParams = DEFAULT_PARAMS,
    buffer_size: int = BUFFER_SIZE,
    owned: bool = False,
    whole: Hasher | None = None,
    with_data: Callable[[str], bool] | None = None,
) -> Iterator[Chunk]:
    """Stream the chunks of the file at `path`, in order; memory ~`buffer_size`.

    `whole`, a blake3 hasher, is fed every byte of the file in order (the object's
    hash in the same pass); a chunk whose id `with_data` accepts carries the bytes it
    was hashed from (`Chunk.data`: a view of the mapped window for an `owned` file,
    which stays mapped while any such view lives; else a copy), so a caller never reads
    them again.

    The file is read through one buffer of `buffer_size` bytes (at least 2 x max_size),
    which is cut and hashed in turn. `owned` files (the store's read-only objects) are
    memory-mapped in windows of `buffer_size` instead, which saves copying them: never
    pass it for a file that anyone may truncate, since reading a mapped page past a new
    end kills the process (SIGBUS).

    Raises IntegrityError if the file changes size or modification time while read.
    """
    buffer_size = max(buffer_size, 2 * params.max_size)
    cutter = _cutter(params)
    with open(path, "rb", buffering=0) as f:
        before = os.fstat(f.fileno())
        size = before.st_size

        def read_at(offset: int, length: int) -> bytes:
            return os.pread(f.fileno(), length, offset)

        points = tensor_cut_points(read_at, size, params.min_size) if params.tensor_cuts else []
        boundaries = [*points, size]
        if owned and size:
            yield from _mapped_chunks(
                f, path, before, cutter, boundaries, buffer_size, _chunker(whole, with_data, False)
            )
            return
        spans_to_chunks = _chunker(whole, with_data, True)
        buffer = bytearray(min(buffer_size, size))
        view = memoryview(buffer)
        base = fill = 0  # the file offset of buffer[0]; the bytes held in it
        while True:
            fill = _fill(f, view, fill, size - base)
            if fill < min(len(view), size - base):
                _raise_changed(path, before, os.fstat(f.fileno()))
            final = base + fill == size
            if final:
                _check_unchanged(f.fileno(), path, before)
            spans, used = _cut(cutter, view[:fill], base, boundaries, final)
            yield from spans_to_chunks(view, base, spans)
            if final:
                return
            # The unfinished chunk moves to the front; the next read appends to it.
            buffer[: fill - used] = bytes(view[used:fill])
            base, fill = base + used, fill - used


def _mapped_chunks(
    f: FileIO,
    path: Path | str,
    before: os.stat_result,
    cutter: FastCDC,
    boundaries: list[int],
    window_size: int,
    spans_to_chunks: SpansToChunks,
) -> Iterator[Chunk]:
    """The chunks of a store-owned file, cut and hashed from mapped windows of it.

    A window is unmapped once nothing refers to it: at once, unless chunks kept views
    of it as their data (then when the last of those is dropped)."""
    size = before.st_size
    granularity = mmap.ALLOCATIONGRANULARITY
    window_size += -window_size % granularity
    base = 0  # the next chunk's start
    while base < size:
        start = base - base % granularity
        length = min(window_size, size - start)
        window = mmap.mmap(f.fileno(), length, offset=start, access=mmap.ACCESS_READ)
        window.madvise(mmap.MADV_SEQUENTIAL)
        final = start + length == size
        if final:
            _check_unchanged(f.fileno(), path, before)
        with memoryview(window) as whole_view, whole_view[base - start :] as view:
            spans, used = _cut(cutter, view, base, boundaries, final)
            chunks = spans_to_chunks(view, base, spans)
        del window
        yield from chunks
        base += used


def _cutter(params: ChunkParams) -> FastCDC:
    return FastCDC(
        params.avg_size,
        min_size=params.min_size,
        max_size=params.max_size,
        normalized_chunking=1,
        seed=0,
    )


def _fill(f: FileIO, view: memoryview, fill: int, remaining: int) -> int:
    """Read into view[fill:] until it is full, or holds the `remaining` bytes the file had
    from view[0] on when opened (never past them: a file that grew must not look whole),
    or the file ends."""
    limit = min(len(view), remaining)
    while fill < limit:
        n = f.readinto(view[fill:limit])
        if not n:
            break
        fill += n
    return fill


def _check_unchanged(fd: int, path: Path | str, before: os.stat_result) -> None:
    """The file must end where it did when opened, with its size and mtime unchanged."""
    after = os.fstat(fd)
    grew = bool(os.pread(fd, 1, before.st_size))
    if grew or (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        _raise_changed(path, before, after)


def _raise_changed(path: Path | str, before: os.stat_result, after: os.stat_result) -> None:
    raise IntegrityError(
        f"{path} changed while it was being chunked ({before.st_size} bytes when opened, "
        f"{after.st_size} now): chunk it again once nothing writes to it"
    )


def _cut(
    cutter: FastCDC, view: memoryview, base: int, boundaries: list[int], final: bool
) -> tuple[list[tuple[int, int]], int]:
    """Chunk spans (offsets relative to `view`) and how many bytes of `view` they cover.

    `view` holds the file from offset `base`, the start of a chunk. A segment ends at each
    boundary (file offsets, ascending, the last being the file size). Unless the view
    reaches the end of the file (`final`), the chunk that meets the view's end without a
    boundary there is left for the next call: FastCDC looks up to `max_size` bytes past a
    chunk's start, so a cut decided on fewer bytes could differ from the whole file's.
    """
    spans: list[tuple[int, int]] = []
    end = len(view)
    start = 0  # the view offset where the current segment (and a chunk) starts
    for boundary in boundaries:
        stop = boundary - base
        if stop <= start:
            continue
        if stop > end and not final:  # the segment goes on past the view
            for chunk in cutter.cut_buf(view[start:end]):
                if end - start - chunk.offset < cutter.max_size:
                    break
                spans.append((start + chunk.offset, chunk.length))
            covered = spans[-1][0] + spans[-1][1] if spans else 0
            return spans, max(covered, start)
        stop = min(stop, end)
        spans.extend((start + c.offset, c.length) for c in cutter.cut_buf(view[start:stop]))
        start = stop
        if start >= end:
            break
    return spans, start


def _hash_spans(view: memoryview, base: int, spans: list[tuple[int, int]]) -> list[Chunk]:
    return [Chunk(base + o, n, hash_bytes(view[o : o + n])) for o, n in spans]


SpansToChunks = Callable[[memoryview, int, list[tuple[int, int]]], list[Chunk]]


def _chunker(
    whole: Hasher | None, with_data: Callable[[str], bool] | None, copy: bool
) -> SpansToChunks:
    """How spans of a view become chunks: hashed, and fed to `whole`, with their bytes
    kept for the chunk ids `with_data` accepts: copied out if `copy` (a buffer about to
    be reused), else as views of the (mapped, read-only) window."""
    if whole is None and with_data is None:
        return _hash_spans

    def chunks(view: memoryview, base: int, spans: list[tuple[int, int]]) -> list[Chunk]:
        found = []
        for o, n in spans:
            data = view[o : o + n]
            if whole is not None:
                whole.update(data)
            chunk_id = hash_bytes(data)
            kept = None
            if with_data is not None and with_data(chunk_id):
                kept = bytes(data) if copy else data
            found.append(Chunk(base + o, n, chunk_id, kept))
        return found

    return chunks
