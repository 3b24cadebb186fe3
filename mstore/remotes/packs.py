"""The chunked layout of a remote (format 2): packs, pack indexes and recipes.

    packs/<pack id>       chunk bytes back to back; pack id = blake3 of the pack's bytes
    indexes/<pack id>     {"chunks":[[chunk, offset, length],...],"format":1,"pack":..,"size":..}
    recipes/<id[0:2]>/<id[2:]>
                        {"chunks":[[chunk, pack, offset, length],...],"format":1,"id":..,"size":..}
    prune/doomed          {"packs":[...],"recipes":[...],"since":<epoch s>}: what a prune deletes

Every file is validated here before any of its names or offsets is used; bytes are
hashed by the callers (each chunk before use, each rebuilt object before install).
`RemoteIndex` is what a push consults to know which chunks a remote holds: one listing
of packs/ and indexes/, and each pack's index fetched once and cached in the store
(`.mstore/remotes/<key>/indexes/`, a cache: deleting it only costs a re-fetch).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from mstore import fsutil
from mstore.errors import IntegrityError
from mstore.hashing import is_object_id
from mstore.ops.parallel import parallel
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
        raise IntegrityError(f"{where} is not a valid recipe; the remote is damaged") from None
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
    """A pack's index, checked against the pack's stored `size`: every entry inside it."""
    where = f"index of pack {pack} on {url}"
    raw = _load(data, where)
    try:
        if raw["format"] != 1 or raw["pack"] != pack or raw["size"] != size:
            raise ValueError
        chunks = [(_hex(c), _count(o), _count(n, low=1)) for c, o, n in raw["chunks"]]
    except (KeyError, TypeError, ValueError):
        raise IntegrityError(
            f"{where} is not a valid index of a {size}-byte pack; the remote is damaged "
            f"(`mstore remote verify`)"
        ) from None
    for chunk, offset, length in chunks:
        if offset + length > size:
            raise IntegrityError(
                f"{where} places chunk {chunk[:12]} at {offset}+{length}, past the pack's "
                f"end ({size}); the remote is damaged"
            )
    return chunks


@dataclass(frozen=True)
class Doomed:
    """What a prune marked for deletion (packs, recipes), and when (epoch s)."""

    packs: frozenset[str] = frozenset()
    recipes: frozenset[str] = frozenset()
    since: float | None = None


def encode_doomed(doomed: Doomed) -> bytes:
    document = {
        "packs": sorted(doomed.packs),
        "recipes": sorted(doomed.recipes),
        "since": doomed.since,
    }
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS) + b"\n"


def read_doomed(remote: Remote) -> Doomed:
    """What a prune has marked for deletion, and when it marked it."""
    data = remote.get_blob(DOOMED, MAX_META_BYTES)
    if data is None:
        return Doomed()
    raw = _load(data, f"{remote.url}/{DOOMED}")
    try:
        packs = frozenset(_hex(p) for p in raw["packs"])
        recipes = frozenset(_hex(p) for p in raw["recipes"])
        return Doomed(packs, recipes, float(raw["since"]))
    except (KeyError, TypeError, ValueError):
        raise IntegrityError(
            f"{remote.url}/{DOOMED} is not valid; run `mstore remote prune` again"
        ) from None


class RemoteIndex:
    """Which chunks a remote holds, and where: chunk id -> (pack, offset, length)."""

    def __init__(self, remote: Remote, cache: Path | None, jobs: int) -> None:
        self.remote = remote
        self.packs: dict[str, BlobInfo] = remote.list_blobs("packs")
        marked = read_doomed(remote)
        self.doomed, self.doomed_recipes = marked.packs, marked.recipes
        self.chunks: dict[str, tuple[str, int, int]] = {}
        indexed = remote.list_blobs("indexes")
        usable = sorted(
            p for p in indexed if p in self.packs and p not in self.doomed and is_object_id(p)
        )
        for pack, entries in zip(
            usable, parallel(lambda p: self._index(p, cache), usable, jobs), strict=True
        ):
            for chunk, offset, length in entries:
                self.chunks.setdefault(chunk, (pack, offset, length))

    def _index(self, pack: str, cache: Path | None) -> list[tuple[str, int, int]]:
        size = self.packs[pack].size
        cached = cache / pack if cache is not None else None
        data = None
        if cached is not None:
            with contextlib.suppress(OSError):
                data = cached.read_bytes()
        if data is not None and cached is not None:
            try:
                return decode_index(data, pack, size, self.remote.url)
            except IntegrityError:
                cached.unlink(missing_ok=True)  # a stale cache entry: fetch it again
        data = self.remote.get_blob(f"indexes/{pack}", MAX_META_BYTES)
        if data is None:
            return []
        entries = decode_index(data, pack, size, self.remote.url)
        if cached is not None:
            with contextlib.suppress(OSError):
                fsutil.makedirs_durable(cached.parent)
                tmp = cached.with_name(f".{pack}.{os.getpid()}.tmp")
                fsutil.atomic_write(tmp, data)
                os.replace(tmp, cached)
        return entries

    def usable(self, recipe: Recipe) -> bool:
        """True if every pack `recipe` names is stored and not marked for deletion."""
        return all(p in self.packs and p not in self.doomed for p in recipe.packs())


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


def _count(value: object, low: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError
    return value
