"""Sending large objects as chunks: only the chunks a remote lacks travel, in packs.

    object ──chunk_file──▶ chunks ──(known to RemoteIndex? reuse)──▶ recipe
                                  └─(new)──▶ compressor pool ──(in order)──▶ pack builder
                                             ──≤ 64 MiB──▶ packs/<id>, indexes/<id>

Each new chunk is encoded (mstore.chunks.codecs: none, zstd or byte-grouped zstd,
whichever is smallest; or, inside a tensor its parent version holds too, as a delta
against the parent's bytes when that is smaller still: mstore.chunks.deltas,
mstore.transfer.delta_bases) by a pool of one thread per CPU (zstandard releases the GIL);
the pack builder takes the results in chunk order, so the same chunks give the same
pack. At most `AHEAD` chunks per thread wait for the builder, which bounds memory.
A new chunk's bytes are a view of the mapped object (no copy) until its pack is
joined. Packs are sealed at `PACK_LIMIT` bytes and handed to a sending thread (at most
`jobs` in flight), which joins the pack's chunks into the buffer of a pack already
stored (a new buffer's first touch costs a page fault per 4 KiB), names it by the
blake3 of its bytes, writes it in one request, then its index, while the chunking
thread goes on with the next. Recipes are written only after every pack and index they
name is stored, so a remote recipe never names a missing pack; manifests and refs come
after the recipes (mstore.transfer.push keeps that order).
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from blake3 import blake3

from mstore.chunks import deltas
from mstore.chunks.chunking import ChunkParams, chunk_file
from mstore.core.hashing import Progress, hash_bytes
from mstore.errors import Hint, IntegrityError
from mstore.remotes.base import Remote
from mstore.remotes.packs import (
    PACK_LIMIT,
    Entry,
    IndexEntry,
    Place,
    Recipe,
    RemoteIndex,
    encode_index,
    encode_recipe,
    recipe_name,
)
from mstore.transfer.delta_bases import BaseSource, Chains, Needs, layout_of

AHEAD = 4


def compressor_threads() -> int:
    """One compressing thread per CPU this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Parent:
    """Where a new object's changed tensors may find their delta base: the object
    `source` serves and the pairs of ranges (begin, end, base begin) of
    delta_bases.tensor_pairs."""

    source: BaseSource
    pairs: list[tuple[int, int, int]]

    def base_offset(self, offset: int, length: int) -> int | None:
        at = bisect.bisect_right(self.pairs, (offset, float("inf"), 0)) - 1
        if at < 0:
            return None
        begin, end, base = self.pairs[at]
        if offset + length > end:
            return None
        return base + offset - begin


Encoded = tuple[str, "bytes | memoryview", "str | None", int]
"""A chunk's codec, stored bytes, and the base object and offset of a delta (or None)."""


def _encode(data: bytes | memoryview, source: BaseSource | None, offset: int) -> Encoded:
    base = source.read(offset, len(data)) if source is not None else None
    codec, stored, delta = deltas.encode(data, base)
    if delta:
        assert source is not None
        return codec, stored, source.object_id, offset
    return codec, stored, None, 0


@dataclass
class ChunkStats:
    chunks: int = 0
    chunks_sent: int = 0
    deltas: int = 0  # chunks sent as deltas
    bytes_sent: int = 0
    packs: list[str] = field(default_factory=list)  # the ids of the packs sent
    recipes: list[Recipe] = field(default_factory=list)


class ChunkSender:
    """Chunks objects, packs the chunks `index` lacks, sends packs, then recipes."""

    def __init__(
        self,
        remote: Remote,
        index: RemoteIndex,
        params: ChunkParams,
        jobs: int,
        progress: Progress | None,
    ) -> None:
        self.remote = remote
        self.index = index
        self.params = params
        self.progress = progress
        self.stats = ChunkStats()
        self.chains = Chains(remote, index)
        # Only usable packs are in the index: stored, unmarked, their index valid.
        self._where: dict[str, Place] = dict(index.chunks)
        # Chunks queued for compression, in order: (chunk id, raw length, its encoding).
        self._queue: deque[tuple[str, int, Future[Encoded]]] = deque()
        # chunk ids queued or in the pack being filled -> the base its delta may have
        self._queued: dict[str, str | None] = {}
        # the chunks of each object this push sends, in order: (chunk id, length)
        self._chunks_of: dict[str, list[tuple[str, int]]] = {}
        threads = compressor_threads()
        self._compressors = ThreadPoolExecutor(max_workers=threads)
        self._ahead = AHEAD * threads
        # the pack being filled: its stored chunks, in order, and their index entries
        self._pieces: list[bytes | memoryview] = []
        self._pending: list[IndexEntry] = []
        self._fill = 0
        self._pool = ThreadPoolExecutor(max_workers=max(1, jobs))
        self._slots = threading.BoundedSemaphore(max(1, jobs))
        # Packs sealed and being sent, in order: their id and size once stored, and
        # their entries (whose chunks stay in `_queued` until then).
        self._sealed: deque[tuple[Future[tuple[str, int]], list[IndexEntry]]] = deque()
        self._spares: list[bytearray] = []  # buffers of packs stored, to fill again
        self._recipes: list[tuple[str, int, list[str]]] = []

    def add(self, object_id: str, path: Path, parent: Parent | None = None) -> None:
        """Chunk the object at `path` (already checked to hash to `object_id`); new
        chunks inside a tensor `parent` pairs may be sent as deltas against it."""
        current = Needs(object_id, os.stat(path).st_size)
        if parent is not None and not self.chains.usable(parent.source.object_id, current):
            parent = None
        order: list[tuple[str, int]] = []
        size = 0
        whole = blake3(max_threads=1)
        with open(path, "rb", buffering=0) as f:
            # One pass: the object's hash, each chunk's, and the bytes of those this
            # push may send, copied as they were hashed (never read twice).
            for chunk in chunk_file(
                path, self.params, owned=True, whole=whole, with_data=self._maybe_new
            ):
                order.append((chunk.id, chunk.length))
                size += chunk.length
                self.stats.chunks += 1
                if self.progress:
                    self.progress(chunk.length)  # the bar counts the object's bytes handled
                if self._reuse(chunk.id, current):
                    continue
                data = chunk.data
                if data is None:  # judged present when hashed, and yet not reusable
                    data = os.pread(f.fileno(), chunk.length, chunk.offset)
                    if hash_bytes(data) != chunk.id:
                        raise IntegrityError(
                            f"object {object_id} changed while it was sent (bytes at "
                            f"{chunk.offset} no longer match); run ",
                            Hint(command="verify"),
                        )
                # A chunk stored or queued as a delta this object may not need is sent
                # again plain: every recipe naming it then names the plain copy.
                again = chunk.id in self._queued or chunk.id in self._where
                offset = (
                    parent.base_offset(chunk.offset, chunk.length)
                    if parent is not None and not again
                    else None
                )
                source = parent.source if parent is not None and offset is not None else None
                if source is not None and not self.chains.usable(source.object_id, current):
                    source = None  # it would take the object past a bound
                self._queued[chunk.id] = source.object_id if source is not None else None
                if source is not None:
                    self.chains.add(source.object_id, current)
                encoding = self._compressors.submit(_encode, data, source, offset or 0)
                self._queue.append((chunk.id, len(data), encoding))
                self.stats.chunks_sent += 1
                while len(self._queue) > self._ahead:
                    self._pack_next()
        if whole.hexdigest() != object_id:
            # Before its recipe: packs sent so far name no object, and prune takes them.
            raise IntegrityError(
                f"object {object_id} is corrupt here (its bytes do not hash to its name); "
                "not sent (run ",
                Hint(command="verify"),
                ")",
            )
        self._chunks_of[object_id] = order
        self.chains.written(current)
        self._recipes.append((object_id, size, [c for c, _ in order]))

    def _maybe_new(self, chunk: str) -> bool:
        return chunk not in self._where and chunk not in self._queued

    def base_source(self, object_id: str, path: Path) -> BaseSource | None:
        """The object `object_id` at `path` as a delta base, its bytes checked against
        the chunks this push sent of it or its recipe on the remote; None if neither."""
        order = self._chunks_of.get(object_id)
        if order is None:
            recipe = self.chains.recipe(object_id)
            if recipe is None:
                return None
            order = [(e.chunk, e.length) for e in recipe.entries]
        return BaseSource(object_id, path, layout_of(order))

    def _reuse(self, chunk: str, current: Needs) -> bool:
        """Whether the object `current` describes may name the stored or queued
        `chunk` in its recipe (not if absent, or a delta whose base it may not need);
        if so, what the chunk needs is recorded as the object's."""
        if chunk in self._queued:
            base = self._queued[chunk]
        elif chunk in self._where:
            base = self._where[chunk][5]
        else:
            return False
        if base is None:
            return True
        if not self.chains.usable(base, current):
            return False
        self.chains.add(base, current)
        return True

    def _pack_next(self) -> None:
        """Put the oldest queued chunk, once encoded, into the pack being filled."""
        chunk, length, encoding = self._queue.popleft()
        codec, stored, base, base_offset = encoding.result()
        if self._fill + len(stored) > PACK_LIMIT:
            self._seal()
        if base is not None:
            self.stats.deltas += 1
        self._pending.append(
            IndexEntry(chunk, self._fill, len(stored), codec, length, base, base_offset)
        )
        self._pieces.append(stored)
        self._fill += len(stored)

    def finish(self) -> list[Recipe]:
        """Send the last pack, wait for every pack, then write the recipes."""
        while self._queue:
            self._pack_next()
        self._compressors.shutdown(wait=True)
        self._seal()
        try:
            self._settle(wait=True)
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        recipes = []
        for object_id, size, order in self._recipes:
            entries = tuple(Entry(c, *self._where[c]) for c in order)
            recipe = Recipe(object_id, size, entries)
            self.remote.put_blob(recipe_name(object_id), encode_recipe(recipe))
            recipes.append(recipe)
        self.stats.recipes = recipes
        return recipes

    def abort(self) -> None:
        """After a failure: wait for the packs in flight, send nothing more."""
        self._compressors.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _seal(self) -> None:
        """Hand the pack being filled to a sending thread (at most `jobs` in flight)."""
        if not self._fill:
            return
        pieces, listing = self._pieces, self._pending
        self._pieces, self._pending, self._fill = [], [], 0
        self._slots.acquire()
        self._sealed.append((self._pool.submit(self._send, pieces, listing), listing))
        self._settle(wait=False)

    def _settle(self, wait: bool) -> None:
        """Record the packs stored so far, in the order they were sealed (all of them if
        `wait`): where each of their chunks now is. A failed send raises here."""
        while self._sealed and (wait or self._sealed[0][0].done()):
            future, listing = self._sealed.popleft()
            pack, size = future.result()
            for e in listing:
                self._where[e.chunk] = (
                    pack,
                    e.offset,
                    e.stored,
                    e.codec,
                    e.length,
                    e.base,
                    e.base_offset,
                )
                self._queued.pop(e.chunk, None)
            self.stats.packs.append(pack)
            self.stats.bytes_sent += size

    def _send(self, pieces: list[bytes | memoryview], listing: list[IndexEntry]) -> tuple[str, int]:
        """Join, name and store one pack, then its index; the pack's id and size.

        Off the chunking thread, which cuts and hashes the next pack meanwhile."""
        try:
            data = self._joined(pieces)
            pieces.clear()
            pack = hash_bytes(data)
            self.remote.put_blob(f"packs/{pack}", data)
            self.remote.put_blob(f"indexes/{pack}", encode_index(pack, len(data), listing))
            self._spares.append(data)  # stored: the next pack may fill it
            return pack, len(data)
        finally:
            self._slots.release()

    def _joined(self, pieces: list[bytes | memoryview]) -> bytearray:
        """The pieces, in order, in one buffer: a stored pack's buffer again when there
        is one (its pages already mapped: a new 64 MiB buffer costs 16,384 page faults,
        0.45 s of kernel time per GiB sent), else a new one."""
        if not self._spares:
            return bytearray().join(pieces)  # copied without the GIL
        buffer = self._spares.pop()
        size = sum(len(p) for p in pieces)
        if len(buffer) < size:
            buffer.extend(bytes(size - len(buffer)))
        else:
            del buffer[size:]  # less than half: the allocation stays
        at = 0
        with memoryview(buffer) as view:
            for piece in pieces:
                view[at : at + len(piece)] = piece
                at += len(piece)
        return buffer
