"""The chunked layout of a remote (format 2): packs, pack indexes and recipes.

    packs/<pack id>       chunk bytes back to back; pack id = blake3 of the pack's bytes
    indexes/<pack id>     {"chunks":[[chunk, offset, length],...],"format":1,"pack":..,"size":..}
    recipes/<id[0:2]>/<id[2:]>
                        {"chunks":[[chunk, pack, offset, length],...],"format":1,"id":..,"size":..}
    prune/doomed          {"packs":[...],"recipes":[...],"since":<epoch s>[,"deleting":<epoch s>]}:
                          what a prune marked, and whether a run is deleting it now

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

from mstore.core import fsutil
from mstore.core.hashing import is_object_id
from mstore.core.parallel import parallel
from mstore.errors import Hint, IntegrityError
from mstore.remotes.base import BlobInfo, Remote

PACK_LIMIT = 64 << 20
MAX_META_BYTES = 64 << 20
DOOMED = "prune/doomed"


@dataclass(frozen=True)
class Entry:
    """A chunk of a recipe: its id, and where its bytes are (pack, offset, length)."""

    chunk: str
    pack: str
    offset: int
    length: int


@dataclass(frozen=True)
class Recipe:
    object_id: str
    size: int
    entries: tuple[Entry, ...]

    def packs(self) -> set[str]:
        return {e.pack for e in self.entries}


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
    chunks = [[e.chunk, e.pack, e.offset, e.length] for e in recipe.entries]
    document = {"chunks": chunks, "format": 1, "id": recipe.object_id, "size": recipe.size}
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS) + b"\n"


def decode_recipe(data: bytes, object_id: str, size: int | None, url: str) -> Recipe:
    """The recipe of `object_id`, checked: ids, offsets, and lengths adding up to `size`."""
    where = f"recipe of object {object_id} on {url}"
    raw = _load(data, where)
    try:
        if raw["format"] != 1 or raw["id"] != object_id:
            raise ValueError
        total = _count(raw["size"])
        entries = tuple(
            Entry(_hex(c), _hex(p), _count(o), _count(n, low=1)) for c, p, o, n in raw["chunks"]
        )
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


def encode_index(pack: str, size: int, chunks: Iterable[tuple[str, int, int]]) -> bytes:
    document = {"chunks": [list(c) for c in chunks], "format": 1, "pack": pack, "size": size}
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS) + b"\n"


def decode_index(data: bytes, pack: str, size: int, url: str) -> list[tuple[str, int, int]]:
    """A pack's index, checked against the pack's stored `size`: its entries lie back to
    back from byte 0 to the pack's end, as a pack is written (so no entry overlaps
    another, and none lies past the end)."""
    where = f"index of pack {pack} on {url}"
    raw = _load(data, where)
    try:
        if raw["format"] != 1 or raw["pack"] != pack or raw["size"] != size:
            raise ValueError
        chunks = [(_hex(c), _count(o), _count(n, low=1)) for c, o, n in raw["chunks"]]
    except (KeyError, TypeError, ValueError):
        raise IntegrityError(
            f"{where} is not a valid index of a {size}-byte pack; the remote is damaged (",
            Hint(command="remote verify"),
            ")",
        ) from None
    end = 0
    for chunk, offset, length in chunks:
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
    chunks: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    # A chunk stored in several packs: the locations after the first (rare).
    elsewhere: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)
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
            for chunk, offset, length in entries:
                if index.chunks.setdefault(chunk, (pack, offset, length)) != (pack, offset, length):
                    index.elsewhere.setdefault(chunk, []).append((pack, offset, length))
        return index

    def holds(self, recipe: Recipe) -> bool:
        """True if every chunk of `recipe` is exactly where a usable pack index says it
        is: the pack listed, unmarked, its index valid, and the same offset and length."""
        for entry in recipe.entries:
            place = (entry.pack, entry.offset, entry.length)
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


def _pack_index(
    remote: Remote, pack: str, size: int, cache: Path | None
) -> list[tuple[str, int, int]] | str:
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
