"""Rebuilding a large object from its recipe: local chunks first, then byte ranges.

    recipe ──▶ chunks this host holds (LocalChunks, hashed)  ─┐
           └─▶ the rest: byte ranges of packs, adjacent ones  ├─▶ tmp file ──▶ caller hashes
               coalesced (<= RANGE_LIMIT each), hashed        ┘    the whole against its id

Every offset and length of the recipe is checked before use (inside int64, a range at
most a pack long: `check_range`); every chunk is decoded (mstore.chunks.codecs: its
output bounded by the raw length the recipe gives) and hashed before it is written; a
range the server cuts short, stored bytes that do not decode to exactly that length,
or bytes that do not hash to their chunk id, fail the pull with IntegrityError (exit 3)
before anything is installed. The caller then hashes the
rebuilt file against the object id.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mstore.caches.chunk_index import LocalChunks
from mstore.chunks.codecs import decode
from mstore.chunks.deltas import MAX_BASES, xor
from mstore.core.hashing import Progress, hash_bytes
from mstore.core.ids import short
from mstore.core.parallel import parallel
from mstore.errors import Hint, IntegrityError
from mstore.remotes.base import MAX_FILE_BYTES, Remote, check_range
from mstore.remotes.packs import MAX_CHUNK_BYTES, Entry, Recipe


class Bases(Protocol):
    """Where a rebuild finds the file of each base its deltas need
    (mstore.transfer.chunk_bases.Bases)."""

    def path(self, base: str, chain: tuple[str, ...], root_size: int) -> Path: ...


RANGE_LIMIT = 16 << 20


@dataclass(frozen=True)
class Span:
    """One byte-range GET: bytes [start, end) of `pack`, and the chunks stored in it,
    each with the position its raw bytes go to in the rebuilt file."""

    pack: str
    start: int
    end: int
    parts: tuple[tuple[Entry, int], ...]


def rebuild(
    remote: Remote,
    recipe: Recipe,
    dest: os.PathLike[str] | str,
    local: LocalChunks | None,
    jobs: int,
    progress: Progress | None,
    bases: Bases | None = None,
    chain: tuple[str, ...] = (),
    root_size: int | None = None,
) -> int:
    """Write the object `recipe` describes into the new file `dest`; bytes fetched.
    Delta chunks are XORed with their base's bytes, which `bases` finds or rebuilds
    (`chain`: the objects whose deltas led to this one, when it is itself a base, and
    `root_size` the size of the object pulled, which bounds what its bases may cost:
    mstore.transfer.chunk_bases)."""
    check_recipe(recipe, remote.url)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    base_fds: dict[str, int] = {}
    try:
        wanted: list[tuple[Entry, int]] = []
        position = 0
        for entry in recipe.entries:
            data = local.read(entry.chunk, entry.length) if local is not None else None
            if data is None:
                wanted.append((entry, position))
            else:
                os.pwrite(fd, data, position)
                if progress:
                    progress(len(data))
            position += entry.length
        needed = sorted({e.base for e, _ in wanted if e.base is not None})
        if len(needed) > MAX_BASES:
            raise IntegrityError(
                f"recipe of object {recipe.object_id} on {remote.url} names {len(needed)} "
                f"bases, more than the {MAX_BASES} a recipe may; the remote is damaged, "
                "nothing installed (",
                Hint(command="remote verify"),
                ")",
            )
        for base in needed:
            if bases is None:
                raise IntegrityError(
                    f"recipe of object {recipe.object_id} on {remote.url} holds deltas, which "
                    "this reader cannot resolve"
                )
            size = root_size if root_size is not None else recipe.size
            path = bases.path(base, (*chain, recipe.object_id), size)
            base_fds[base] = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)

        def fetch(span: Span) -> int:
            data = remote.get_range(f"packs/{span.pack}", span.start, span.end - span.start)
            raw_bytes = 0
            for entry, at in span.parts:
                stored = memoryview(data)[entry.offset - span.start :][: entry.stored]
                where = (
                    f"pack {span.pack} on {remote.url}, chunk {entry.chunk[:12]} at "
                    f"{entry.offset}+{entry.stored}"
                )
                try:
                    piece = decode(stored, entry.codec, entry.length, where)
                except IntegrityError as err:
                    raise IntegrityError(
                        f"{err}; the remote is damaged, nothing installed (",
                        Hint(command="remote verify"),
                        ")",
                    ) from None
                if entry.base is not None:
                    piece = xor(piece, _base_bytes(base_fds[entry.base], entry, where))
                if hash_bytes(piece) != entry.chunk:
                    raise IntegrityError(
                        f"pack {span.pack} on {remote.url}: the bytes at {entry.offset}+"
                        f"{entry.length} do not hash to chunk {entry.chunk[:12]} of object "
                        f"{recipe.object_id[:12]}; the remote is damaged, nothing installed (",
                        Hint(command="remote verify"),
                        ")",
                    )
                os.pwrite(fd, piece, at)
                raw_bytes += entry.length
            if progress:
                progress(raw_bytes)  # the bar counts the object's bytes
            return len(data)

        fetched = sum(parallel(fetch, spans_of(wanted), jobs))
        os.fsync(fd)
    finally:
        os.close(fd)
        for base_fd in base_fds.values():
            os.close(base_fd)
    return fetched


def _base_bytes(fd: int, entry: Entry, where: str) -> bytes:
    """The `entry.length` bytes of its base at `entry.base_offset`; IntegrityError if
    the base is shorter (a delta against an object of another size)."""
    data = os.pread(fd, entry.length, entry.base_offset)
    if len(data) != entry.length:
        raise IntegrityError(
            f"{where}: its base {short(entry.base or '')} has no {entry.length} bytes at "
            f"{entry.base_offset} (an object of another size); the remote is damaged, "
            "nothing installed (",
            Hint(command="remote verify"),
            ")",
        )
    return data


def check_recipe(recipe: Recipe, url: str) -> None:
    """Refuse a recipe whose size or ranges no file can have (IntegrityError), before any
    of them reaches the local chunk index, a range request or a write."""
    if recipe.size > MAX_FILE_BYTES:
        raise IntegrityError(
            f"recipe of object {recipe.object_id} on {url} gives {recipe.size} bytes, more "
            f"than a file can hold; the remote is damaged"
        )
    for entry in recipe.entries:
        check_range(f"packs/{entry.pack}", entry.offset, entry.stored, url)
        if entry.length > MAX_CHUNK_BYTES:
            raise IntegrityError(
                f"recipe of object {recipe.object_id} on {url} gives chunk {entry.chunk[:12]} "
                f"{entry.length} bytes, more than any chunk has; the remote is damaged"
            )


def spans_of(wanted: list[tuple[Entry, int]]) -> list[Span]:
    """The range GETs for `wanted`: per pack, adjacent or overlapping stored chunks
    coalesced."""
    by_pack: dict[str, list[tuple[Entry, int]]] = {}
    for entry, at in wanted:
        by_pack.setdefault(entry.pack, []).append((entry, at))
    spans: list[Span] = []
    for pack, parts in sorted(by_pack.items()):
        parts.sort(key=lambda p: p[0].offset)
        group: list[tuple[Entry, int]] = []
        start = end = 0
        for entry, at in parts:
            stop = entry.offset + entry.stored
            if group and entry.offset <= end and max(end, stop) - start <= RANGE_LIMIT:
                group.append((entry, at))
                end = max(end, stop)
                continue
            if group:
                spans.append(Span(pack, start, end, tuple(group)))
            group, start, end = [(entry, at)], entry.offset, stop
        if group:
            spans.append(Span(pack, start, end, tuple(group)))
    return spans
