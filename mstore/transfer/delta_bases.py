"""Choosing and reading the base of a delta chunk when pushing (docs/REMOTES.md "Deltas").

    object O (file of version V) ──lineage──▶ parent version's file at the same path: P
    tensors of O and P with the same name, dtype, shape ──▶ pairs (O range -> P range)
    a new chunk of O inside a pair ──▶ base bytes: P's bytes at the same place in the
                                       tensor, read from this store, each of P's
                                       chunks hashed against P's recipe before use

A base is used only when the remote holds its recipe (or this push writes it), it is
at most deltas.MAX_DEPTH - 1 bases away from plain bytes, and O is not among its own
bases (no cycle): `Chains` knows each candidate's depth and the objects it needs,
from the recipes on the remote (fetched once each) and from those this push writes.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mstore.checkpoints.model import Checkpoint
from mstore.checkpoints.reading import read_checkpoint
from mstore.chunks.deltas import MAX_BASE_FACTOR, MAX_BASES, MAX_DEPTH
from mstore.core.hashing import hash_bytes
from mstore.core.manifests import Manifest
from mstore.errors import IntegrityError, InvalidInputError
from mstore.remotes.base import CHUNK_THRESHOLD, Remote
from mstore.remotes.packs import MAX_META_BYTES, Recipe, RemoteIndex, decode_recipe, recipe_name

if TYPE_CHECKING:
    from mstore.repo import Repo

CACHED_CHUNKS = 16


def parents(manifests: Iterable[tuple[Manifest, Manifest | None]]) -> dict[str, str]:
    """For each large object of a version, the object at the same path in the version
    it came from (its lineage parent, else the remote ref's value it replaces), when
    that differs and is large too: object id -> candidate base id."""
    found: dict[str, str] = {}
    for manifest, parent in manifests:
        if parent is None:
            continue
        for path, entry in manifest.files.items():
            before = parent.files.get(path)
            if (
                before is not None
                and before.id != entry.id
                and entry.size > CHUNK_THRESHOLD
                and before.size > CHUNK_THRESHOLD
            ):
                found.setdefault(entry.id, before.id)
    return found


def candidates(repo: Repo, moves: Iterable[tuple[str, str | None]]) -> dict[str, str]:
    """For the large objects of the versions pushed (`moves`: each ref's new value and
    the remote's old one), the object at the same path in the version each came from:
    its lineage parent, else the remote ref's old value (`parents`)."""
    pairs = []
    for new, old in moves:
        manifest = repo.manifest(new)
        for before in (manifest.lineage.parent, old):
            if before is not None and repo.objects.has(before):
                try:
                    pairs.append((manifest, repo.manifest(before)))
                except (IntegrityError, InvalidInputError):
                    continue  # a damaged parent is no base: plain chunks
    return parents(pairs)


def bases_first(ids: list[str], bases: dict[str, str]) -> list[str]:
    """`ids` in an order where each comes after the base it names among them."""
    wanted = set(ids)
    done: set[str] = set()
    order: list[str] = []
    for object_id in ids:
        chain = []
        at: str | None = object_id
        while at is not None and at in wanted and at not in done and at not in chain:
            chain.append(at)
            at = bases.get(at)
        for item in reversed(chain):
            done.add(item)
            order.append(item)
    return order


def tensor_pairs(new: Path, old: Path) -> list[tuple[int, int, int]]:
    """(begin, end, base begin): byte ranges of the file `new` holding a tensor that
    `old` holds too under the same name, dtype and shape, and where it is in `old`;
    sorted, never overlapping. Empty when either file is not a checkpoint mstore reads."""
    try:
        after, before = read_checkpoint(new), read_checkpoint(old)
    except (InvalidInputError, OSError):
        return []
    return _pairs(after, before)


def _pairs(after: Checkpoint, before: Checkpoint) -> list[tuple[int, int, int]]:
    old = before.by_name()
    pairs: list[tuple[int, int, int]] = []
    end = 0
    for tensor in sorted(after.tensors, key=lambda t: (t.begin, -t.end)):
        match = old.get(tensor.name)
        if (
            match is None
            or match.dtype != tensor.dtype
            or match.shape != tensor.shape
            or match.end - match.begin != tensor.end - tensor.begin
            or tensor.begin < end  # a view inside a storage already paired
            or tensor.end <= tensor.begin
        ):
            continue
        pairs.append((tensor.begin, tensor.end, match.begin))
        end = tensor.end
    return pairs


class BaseSource:
    """The bytes of a base object P as this store holds them, served only after each of
    P's chunks they come from hashed to its id in P's recipe (a damaged local copy is
    never used as a base: `read` answers None)."""

    def __init__(self, object_id: str, path: Path, layout: Sequence[tuple[int, int, str]]):
        self.object_id = object_id
        self.path = path
        self._starts = [offset for offset, _, _ in layout]
        self._layout = list(layout)
        self._lock = threading.Lock()
        self._cache: dict[int, bytes] = {}
        self._fd: int | None = None
        self.damaged = False

    def read(self, offset: int, length: int) -> bytes | None:
        """P's bytes [offset, offset + length), checked; None if they cannot be."""
        if self.damaged or not self._layout:
            return None
        end = offset + length
        last = self._layout[-1]
        if offset < 0 or end > last[0] + last[1]:
            return None
        at = bisect.bisect_right(self._starts, offset) - 1
        parts: list[bytes] = []
        while at < len(self._layout) and self._layout[at][0] < end:
            chunk = self._chunk(at)
            if chunk is None:
                return None
            start = self._layout[at][0]
            parts.append(chunk[max(0, offset - start) : end - start])
            at += 1
        return b"".join(parts)

    def _chunk(self, at: int) -> bytes | None:
        with self._lock:
            cached = self._cache.get(at)
            if cached is not None:
                return cached
            offset, length, chunk_id = self._layout[at]
            try:
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
                data = os.pread(self._fd, length, offset)
            except OSError:
                data = b""
            if len(data) != length or hash_bytes(data) != chunk_id:
                self.damaged = True
                return None
            if len(self._cache) >= CACHED_CHUNKS:
                self._cache.pop(next(iter(self._cache)))
            self._cache[at] = data
            return data

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._cache.clear()


def layout_of(entries: Iterable[tuple[str, int]]) -> list[tuple[int, int, str]]:
    """(offset, length, chunk id) of each chunk, from (chunk id, length) in file order."""
    layout = []
    at = 0
    for chunk_id, length in entries:
        layout.append((at, length, chunk_id))
        at += length
    return layout


@dataclass(frozen=True)
class Chain:
    """What reading an object needs: how many bases deep its deltas go (0: none), and
    every object its deltas need, directly or through their bases."""

    depth: int
    needs: frozenset[str]


@dataclass
class Needs:
    """What the object being sent needs so far: its direct bases, and every object
    those need in turn (the bounds of `Chains.usable` apply to the whole)."""

    object_id: str
    size: int
    bases: set[str] = field(default_factory=set)
    needs: set[str] = field(default_factory=set)


class Chains:
    """The delta chain of each object the remote holds or this push writes.

    A remote recipe counts only if the remote index holds it (unmarked by a prune, every
    chunk where its pack's index says): a base a prune may delete is never built on.
    """

    def __init__(self, remote: Remote, index: RemoteIndex) -> None:
        self.remote = remote
        self.index = index
        self.known: dict[str, Chain | None] = {}
        self.recipes: dict[str, Recipe | None] = {}
        self.sizes: dict[str, int] = {}

    def recipe(self, object_id: str) -> Recipe | None:
        """The remote's recipe of `object_id` if it is usable (None: none, not valid,
        marked by a prune, or not held by the remote index)."""
        if object_id not in self.recipes:
            found = None
            if object_id not in self.index.marked.recipes:
                try:
                    data = self.remote.get_blob(recipe_name(object_id), MAX_META_BYTES)
                    if data is not None:
                        found = decode_recipe(data, object_id, None, self.remote.url)
                except IntegrityError:
                    found = None
            if found is not None and not self.index.holds(found):
                found = None
            if found is not None:
                self.sizes[object_id] = found.size
            self.recipes[object_id] = found
        return self.recipes[object_id]

    def chain(self, object_id: str, visiting: frozenset[str] = frozenset()) -> Chain | None:
        """`object_id`'s chain; None if it has no usable recipe or its chain is too
        deep, cyclic or unreadable (it is then no usable base)."""
        if object_id in self.known:
            return self.known[object_id]
        if object_id in visiting or len(visiting) > MAX_DEPTH:
            return None
        recipe = self.recipe(object_id)
        found = None if recipe is None else self.chain_of(recipe.bases(), visiting | {object_id})
        self.known[object_id] = found
        return found

    def chain_of(
        self, bases: Iterable[str], visiting: frozenset[str] = frozenset()
    ) -> Chain | None:
        """The chain of an object whose deltas have these `bases`."""
        depth = 0
        needs: set[str] = set()
        for base in bases:
            chain = self.chain(base, visiting)
            if chain is None:
                return None
            depth = max(depth, chain.depth + 1)
            needs |= chain.needs | {base}
        if depth > MAX_DEPTH:
            return None
        return Chain(depth, frozenset(needs))

    def usable(self, base: str, current: Needs) -> bool:
        """True if the object `current` describes may hold deltas against `base`: the
        base is readable, not the object nor needing it, less than MAX_DEPTH deep, and
        with it the object stays within what a pull rebuilds for it at most (each base
        at most MAX_BASE_FACTOR times its size, all MAX_DEPTH times, MAX_BASES bases)."""
        if base == current.object_id:
            return False
        chain = self.chain(base)
        if chain is None or chain.depth >= MAX_DEPTH or current.object_id in chain.needs:
            return False
        if base in current.bases:
            return True
        needs = current.needs | chain.needs | {base}
        sizes = [self.sizes.get(n) for n in needs]
        return (
            len(current.bases) < MAX_BASES
            and all(n is not None and n <= MAX_BASE_FACTOR * current.size for n in sizes)
            and sum(n or 0 for n in sizes) <= MAX_DEPTH * current.size
        )

    def add(self, base: str, current: Needs) -> None:
        """Record that the object `current` describes needs `base` (usable for it)."""
        chain = self.chain(base)
        assert chain is not None
        current.bases.add(base)
        current.needs |= chain.needs | {base}

    def written(self, current: Needs) -> None:
        """Record the chain of an object this push writes (its bases all usable)."""
        self.sizes[current.object_id] = current.size
        self.known[current.object_id] = self.chain_of(current.bases)
