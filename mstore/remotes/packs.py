"""The chunked layout of a remote (format 4): packs, pack indexes and recipes.

    packs/<pack id>       stored chunks back to back; pack id = blake3 of the pack's bytes
    indexes/<pack id>     {"chunks":[[chunk, offset, stored, codec, length],...],"format":2,
                           "pack":..,"size":..}
    recipes/<id[0:2]>/<id[2:]>
                          {"chunks":[[chunk, pack, offset, stored, codec, length],...],
                           "format":2,"id":..,"size":..}
    prune/doomed          {"packs":[...],"recipes":[...],"since":<epoch s>[,"deleting":<epoch s>]}:
                          what a prune marked, and whether a run is deleting it now

A chunk rests in its pack as `stored` bytes at `offset`, encoded with `codec`
(mstore.chunks.codecs); `length` is its raw length, the bound its decompression may
not exceed. A recipe entry is its pack's index entry with the pack's id: it locates
the stored bytes by itself (pull reads no index), and push reuses it only if the
pack's index holds exactly that entry. Format-1 indexes and recipes (format-3 remotes:
[chunk, offset, length], [chunk, pack, offset, length]) stay readable: codec `none`,
stored length = length.

Every file is validated here before any of its names or offsets is used; bytes are
hashed by the callers (each chunk before use, each rebuilt object before install).
Only names mstore writes count: anything else under packs/, indexes/ or recipes/ (an
NFS `.nfs...` file, an S3 console's empty "folder" key) is a stray, never a pack or a
recipe (`pack_name`, `recipe_object`).
`RemoteIndex` is what a push consults to know which chunks a remote holds: one listing
of packs/ and indexes/, and each pack's index fetched once and cached in the store
(`.mstore/remotes/<key>/indexes/`, a cache: deleting it only costs a re-fetch). A pack
whose index is damaged is left out (its chunks count as absent: they are sent again),
and a recipe counts only if every entry is where its pack's index says.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from mstore.chunks.codecs import CODECS, NONE
from mstore.core import fsutil
from mstore.core.hashing import is_object_id
from mstore.core.parallel import parallel
from mstore.errors import Hint, IntegrityError
from mstore.remotes.base import MAX_FILE_BYTES, BlobInfo, Remote

PACK_LIMIT = 64 << 20
MAX_META_BYTES = 64 << 20
DOOMED = "prune/doomed"


# Far above any chunk a chunker cuts (pyfastcdc's max_size bound is 16 MiB): a larger
# raw length in an index or a recipe is damage, refused before anything is allocated.
MAX_CHUNK_BYTES = 16 << 20


@dataclass(frozen=True)
class Entry:
    """A chunk of a recipe: its id, where its stored bytes are (pack, offset, stored),
    how they are encoded (codec), its raw length, and for a delta the bytes it is XORed
    with: `length` bytes of object `base` from `base_offset` (None: not a delta)."""

    chunk: str
    pack: str
    offset: int
    stored: int
    codec: str
    length: int
    base: str | None = None
    base_offset: int = 0

    def place(self) -> Place:
        return (
            self.pack,
            self.offset,
            self.stored,
            self.codec,
            self.length,
            self.base,
            self.base_offset,
        )


# Where a chunk is: (pack, offset, stored length, codec, raw length, base, base offset).
Place = tuple[str, int, int, str, int, str | None, int]


@dataclass(frozen=True)
class IndexEntry:
    """A chunk of a pack's index: id, offset, stored length, codec, raw length, and
    for a delta its base object and the offset there (see Entry)."""

    chunk: str
    offset: int
    stored: int
    codec: str
    length: int
    base: str | None = None
    base_offset: int = 0


@dataclass(frozen=True)
class Recipe:
    object_id: str
    size: int
    entries: tuple[Entry, ...]

    def packs(self) -> set[str]:
        return {e.pack for e in self.entries}

    def bases(self) -> set[str]:
        """The objects this recipe's deltas are XORed with (docs/REMOTES.md "Deltas")."""
        return {e.base for e in self.entries if e.base is not None}


def recipe_name(object_id: str) -> str:
    return f"recipes/{object_id[:2]}/{object_id[2:]}"


def pack_name(name: str) -> str | None:
    """The pack id a name listed under packs/ or indexes/ stands for (None: a stray)."""
    return name if is_object_id(name) else None


def recipe_object(name: str) -> str | None:
    """The object id a name listed under recipes/ or objects/ ("ab/cdef...") stands
    for (None: a stray)."""
    head, slash, tail = name.partition("/")
    object_id = head + tail
    return object_id if slash and len(head) == 2 and is_object_id(object_id) else None


def named(
    listing: dict[str, BlobInfo], name_of: Callable[[str], str | None]
) -> tuple[dict[str, BlobInfo], list[str]]:
    """A folder's listing split into mstore's own files (by the id each name stands
    for) and strays (names mstore never writes there), which nothing deletes or uses."""
    found: dict[str, BlobInfo] = {}
    strays: list[str] = []
    for name, info in listing.items():
        key = name_of(name)
        if key is None:
            strays.append(name)
        else:
            found[key] = info
    return found, sorted(strays)


def encode_recipe(recipe: Recipe) -> bytes:
    chunks = [
        [e.chunk, e.pack, e.offset, e.stored, e.codec, e.length, *_delta(e)] for e in recipe.entries
    ]
    document = {
        "chunks": chunks,
        "format": _format(recipe.entries),
        "id": recipe.object_id,
        "size": recipe.size,
    }
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS) + b"\n"


def _delta(entry: Entry | IndexEntry) -> list[str | int]:
    return [] if entry.base is None else [entry.base, entry.base_offset]


def _format(entries: Iterable[Entry | IndexEntry]) -> int:
    """Format 3 for a file with a delta entry; 2 (which format-4 remotes wrote) else."""
    return 3 if any(e.base is not None for e in entries) else 2


def decode_recipe(data: bytes, object_id: str, size: int | None, url: str) -> Recipe:
    """The recipe of `object_id`, checked: ids, offsets, and lengths adding up to `size`."""
    where = f"recipe of object {object_id} on {url}"
    raw = _load(data, where)
    try:
        if raw["format"] not in (1, 2, 3) or raw["id"] != object_id:
            raise ValueError
        total = _count(raw["size"])
        entries = tuple(_recipe_entry(item, raw["format"]) for item in raw["chunks"])
        if any(e.base == object_id for e in entries):
            raise ValueError  # an object cannot be the base of its own deltas
    except (KeyError, TypeError, ValueError):
        raise IntegrityError(
            f"{where} is not a valid recipe; the remote is damaged (",
            Hint(command="remote verify"),
            ")",
        ) from None
    if size is not None and total != size:
        raise IntegrityError(f"{where} gives {total} bytes, the manifest says {size}")
    if sum(e.length for e in entries) != total:
        raise IntegrityError(
            f"{where}: its chunk lengths add up to {sum(e.length for e in entries)} bytes, "
            f"not the object's {total}; the remote is damaged"
        )
    return Recipe(object_id, total, entries)


def encode_index(pack: str, size: int, chunks: Iterable[IndexEntry]) -> bytes:
    entries = list(chunks)
    listing = [[c.chunk, c.offset, c.stored, c.codec, c.length, *_delta(c)] for c in entries]
    document = {"chunks": listing, "format": _format(entries), "pack": pack, "size": size}
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS) + b"\n"


def decode_index(data: bytes, pack: str, size: int, url: str) -> list[IndexEntry]:
    """A pack's index, checked against the pack's stored `size`: its entries' stored
    bytes lie back to back from byte 0 to the pack's end, as a pack is written (so no
    entry overlaps another, and none lies past the end); every codec is one this mstore
    decodes, every raw length at most MAX_CHUNK_BYTES."""
    where = f"index of pack {pack} on {url}"
    raw = _load(data, where)
    try:
        if raw["format"] not in (1, 2, 3) or raw["pack"] != pack or raw["size"] != size:
            raise ValueError
        chunks = [_index_entry(item, raw["format"]) for item in raw["chunks"]]
    except (KeyError, TypeError, ValueError):
        raise IntegrityError(
            f"{where} is not a valid index of a {size}-byte pack; the remote is damaged (",
            Hint(command="remote verify"),
            ")",
        ) from None
    end = 0
    for entry in chunks:
        chunk, offset, length = entry.chunk, entry.offset, entry.stored
        if offset + length > size:
            raise IntegrityError(
                f"{where} places chunk {chunk[:12]} at {offset}+{length}, past the pack's "
                f"end ({size}); the remote is damaged (",
                Hint(command="remote verify"),
                ")",
            )
        if offset != end:
            raise IntegrityError(
                f"{where} places chunk {chunk[:12]} at {offset}, not at {end} where the "
                "chunk before it ends; the remote is damaged (",
                Hint(command="remote verify"),
                ")",
            )
        end = offset + length
    if end != size:
        raise IntegrityError(
            f"{where} accounts for {end} of the pack's {size} bytes; the remote is damaged (",
            Hint(command="remote verify"),
            ")",
        )
    return chunks


@dataclass(frozen=True)
class Doomed:
    """What a prune marked for deletion (packs, recipes) and when (`since`, epoch s);
    `deleting`: when a later run started deleting it (pushes then write no marked name).
    `damaged`: the file was there but not valid (it then marks nothing; prune replaces it).
    """

    packs: frozenset[str] = frozenset()
    recipes: frozenset[str] = frozenset()
    since: float | None = None
    deleting: float | None = None
    damaged: bool = False


def encode_doomed(doomed: Doomed) -> bytes:
    document: dict[str, object] = {
        "packs": sorted(doomed.packs),
        "recipes": sorted(doomed.recipes),
        "since": doomed.since,
    }
    if doomed.deleting is not None:
        document["deleting"] = doomed.deleting
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS) + b"\n"


def read_doomed(remote: Remote) -> Doomed:
    """What a prune has marked for deletion, and when it marked it.

    A mark that is not valid (only damage or a hostile writer makes one: prune writes
    it in one request) marks nothing: no prune deletes by it, and the next prune run
    replaces it, so reusing what it would have named is as safe as before any mark.
    """
    try:
        data = remote.get_blob(DOOMED, MAX_META_BYTES)
    except IntegrityError:  # too large, or (on a directory) not a regular file
        return Doomed(damaged=True)
    if data is None:
        return Doomed()
    try:
        raw = _load(data, f"{remote.url}/{DOOMED}")
        packs = frozenset(_hex(p) for p in raw["packs"])
        recipes = frozenset(_hex(p) for p in raw["recipes"])
        deleting = raw.get("deleting")
        return Doomed(
            packs, recipes, _time(raw["since"]), None if deleting is None else _time(deleting)
        )
    except (IntegrityError, KeyError, TypeError, ValueError):
        return Doomed(damaged=True)


@dataclass
class RemoteIndex:
    """Which chunks a remote holds, and where: chunk id -> (pack, offset, length).

    Built from one listing of packs/ and indexes/ and the mark (`marked`), read
    together: packs that are marked, listed in `exclude`, or whose index is damaged
    (`damaged`: pack -> why) are left out, so none of their chunks is reused.
    """

    packs: dict[str, BlobInfo]
    marked: Doomed
    chunks: dict[str, Place] = field(default_factory=dict)
    # A chunk stored in several packs: the locations after the first (rare).
    elsewhere: dict[str, list[Place]] = field(default_factory=dict)
    damaged: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(
        cls,
        remote: Remote,
        cache: Path | None,
        jobs: int,
        exclude: frozenset[str] = frozenset(),
    ) -> RemoteIndex:
        packs, _strays = named(remote.list_blobs("packs"), pack_name)
        index = cls(packs, read_doomed(remote))
        indexed, _strays = named(remote.list_blobs("indexes"), pack_name)
        usable = sorted(
            p for p in indexed if p in packs and p not in index.marked.packs and p not in exclude
        )
        fetched = parallel(lambda p: _pack_index(remote, p, packs[p].size, cache), usable, jobs)
        for pack, entries in zip(usable, fetched, strict=True):
            if isinstance(entries, str):
                index.damaged[pack] = entries
                continue
            for entry in entries:
                place = (
                    pack,
                    entry.offset,
                    entry.stored,
                    entry.codec,
                    entry.length,
                    entry.base,
                    entry.base_offset,
                )
                if index.chunks.setdefault(entry.chunk, place) != place:
                    index.elsewhere.setdefault(entry.chunk, []).append(place)
        return index

    def holds(self, recipe: Recipe) -> bool:
        """True if every chunk of `recipe` is exactly where a usable pack index says it
        is: the pack listed, unmarked, its index valid, and the same offset, stored
        length, codec and raw length."""
        for entry in recipe.entries:
            place = entry.place()
            if self.chunks.get(entry.chunk) != place and place not in self.elsewhere.get(
                entry.chunk, ()
            ):
                return False
        return True

    def notes(self) -> list[str]:
        return [
            f"the chunks of pack {pack[:12]} are not reused: {why}"
            for pack, why in sorted(self.damaged.items())
        ]


def _pack_index(remote: Remote, pack: str, size: int, cache: Path | None) -> list[IndexEntry] | str:
    """The entries of `pack`'s index (from the cache, else fetched and cached), or why
    the index cannot be used (damaged: the pack's chunks then count as absent)."""
    cached = cache / pack if cache is not None else None
    if cached is not None:
        data = None
        with contextlib.suppress(OSError):
            data = cached.read_bytes()
        if data is not None:
            try:
                return decode_index(data, pack, size, remote.url)
            except IntegrityError:
                cached.unlink(missing_ok=True)  # a stale cache entry: fetch it again
    try:
        data = remote.get_blob(f"indexes/{pack}", MAX_META_BYTES)
        if data is None:
            return []  # deleted since the listing: nothing of the pack is reused
        entries = decode_index(data, pack, size, remote.url)
    except IntegrityError as err:
        return str(err)
    if cached is not None:
        with contextlib.suppress(OSError):
            fsutil.makedirs_durable(cached.parent)
            tmp = cached.with_name(f".{pack}.{os.getpid()}.tmp")
            fsutil.atomic_write(tmp, data)
            os.replace(tmp, cached)
    return entries


def _index_entry(item: object, version: int) -> IndexEntry:
    """One entry of a format-1 ([chunk, offset, length]), format-2 or format-3 index
    (format 3: a delta entry adds its base object and offset)."""
    if not isinstance(item, list):
        raise ValueError
    if version == 1:
        chunk, offset, length = item
        return IndexEntry(_hex(chunk), _count(offset), _chunk_length(length), NONE, length)
    chunk, offset, stored, codec, length = item[:5]
    entry = IndexEntry(
        _hex(chunk),
        _count(offset),
        _count(stored, low=1),
        _codec(codec),
        _chunk_length(length),
        *_base(item[5:], version, length),
    )
    if entry.codec == NONE and entry.stored != entry.length:
        raise ValueError
    return entry


def _recipe_entry(item: object, version: int) -> Entry:
    """One entry of a recipe: its pack's index entry (`_index_entry`, any format) with
    the pack's id in second place."""
    if not isinstance(item, list) or len(item) < 2:
        raise ValueError
    e = _index_entry([item[0], *item[2:]], version)
    pack = _hex(item[1])
    return Entry(e.chunk, pack, e.offset, e.stored, e.codec, e.length, e.base, e.base_offset)


def _base(rest: list[object], version: int, length: int) -> tuple[str | None, int]:
    """The base of a delta entry: nothing (not a delta), or in format 3 its base
    object and an offset there at which `length` bytes fit in a file."""
    if not rest:
        return None, 0
    if version < 3 or len(rest) != 2:
        raise ValueError
    base, offset = _hex(rest[0]), _count(rest[1])
    if offset + length > MAX_FILE_BYTES:
        raise ValueError
    return base, offset


def _codec(value: object) -> str:
    if value not in CODECS:
        raise ValueError  # a codec this mstore cannot decode: the file is refused
    return str(value)


def _chunk_length(value: object) -> int:
    length = _count(value, low=1)
    if length > MAX_CHUNK_BYTES:
        raise ValueError
    return length


def _load(data: bytes, where: str) -> dict[str, Any]:
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise IntegrityError(f"{where} is not valid JSON; the remote is damaged") from None
    if not isinstance(raw, dict):
        raise IntegrityError(f"{where} is not a JSON object; the remote is damaged")
    return raw


def _hex(value: object) -> str:
    if not isinstance(value, str) or not is_object_id(value):
        raise ValueError
    return value


def _time(value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError
    return float(value)


def _count(value: object, low: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError
    return value
