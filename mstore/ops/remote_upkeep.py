"""Remote upkeep: `mstore remote upgrade`, `stats`, `verify` and `prune`.

    upgrade   format 1 -> 2: rewrites the marker only (whole objects stay readable)
    stats     logical bytes (every file of every version the refs name) vs stored bytes
    verify    every ref's manifest, object, recipe, pack and index, hashed
    prune     deletes packs and recipes no remote ref needs, in two runs a grace apart

Prune's protocol (docs/REMOTES.md, "Prune"): a first run marks what no ref needs and
is older than the grace period in `prune/doomed`; a run at least a grace period later
deletes what is still unneeded, keeping every pack a recipe stored since (the mark's
time minus the push window) names. A push never reuses a marked pack or recipe, and
moves its refs within the push window of reading the index (mstore.ops.chunk_present).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mstore.errors import IntegrityError, NotFoundError, RefusedError, UsageError
from mstore.hashing import hash_bytes
from mstore.ops import chunk_present
from mstore.ops.parallel import parallel
from mstore.ops.remote_walk import recipe_ids, walk
from mstore.remotes.base import MARKER_NAME, REMOTE_FORMAT, Remote, encode_marker, marker_format
from mstore.remotes.packs import (
    DOOMED,
    MAX_META_BYTES,
    Doomed,
    decode_index,
    decode_recipe,
    encode_doomed,
    read_doomed,
    recipe_name,
)

DEFAULT_GRACE = 24 * 3600.0


@dataclass(frozen=True)
class UpgradeResult:
    remote: str
    old_format: int
    new_format: int

    def to_json(self) -> dict[str, object]:
        return {"remote": self.remote, "old_format": self.old_format, "new_format": self.new_format}


def upgrade(remote: Remote) -> UpgradeResult:
    """Make a format-1 remote format 2 (the marker only); a format-2 one is left as is."""
    data = remote.read_marker()
    if data is None:
        raise NotFoundError(f"no mstore remote at {remote.url} ({MARKER_NAME} is missing)")
    old = marker_format(data, remote.url)
    if old > REMOTE_FORMAT:
        raise RefusedError(f"remote {remote.url} uses format {old}; upgrade mstore")
    if old < REMOTE_FORMAT:
        remote.put_blob(MARKER_NAME, encode_marker())
    remote.require()
    return UpgradeResult(remote.url, old, REMOTE_FORMAT)


@dataclass(frozen=True)
class RemoteStats:
    remote: str
    versions: int
    logical_bytes: int
    unique_bytes: int
    stored_bytes: int
    packs: int

    @property
    def ratio(self) -> float:
        return self.stored_bytes / self.logical_bytes if self.logical_bytes else 1.0

    def to_json(self) -> dict[str, object]:
        return {
            "remote": self.remote,
            "versions": self.versions,
            "logical_bytes": self.logical_bytes,
            "unique_bytes": self.unique_bytes,
            "stored_bytes": self.stored_bytes,
            "stored_ratio": round(self.ratio, 4),
            "dedup_ratio": round(1 / self.ratio, 3) if self.stored_bytes else None,
            "packs": self.packs,
        }


def stats(remote: Remote, jobs: int = 8) -> RemoteStats:
    """Logical bytes (every file of every version a ref names) against stored bytes."""
    remote.require()
    reach = walk(remote, jobs)
    packs = remote.list_blobs("packs")
    stored = sum(
        info.size
        for folder in ("objects", "packs", "indexes", "recipes")
        for info in (packs if folder == "packs" else remote.list_blobs(folder)).values()
    )
    return RemoteStats(
        remote.url,
        len(reach.manifests),
        reach.logical,
        sum(reach.data.values()),
        stored,
        len(packs),
    )


@dataclass(frozen=True)
class VerifyResult:
    remote: str
    objects: int
    packs: int
    chunks: int
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "remote": self.remote,
            "objects": self.objects,
            "packs": self.packs,
            "chunks": self.chunks,
            "problems": self.problems,
        }


def verify(remote: Remote, jobs: int = 8) -> VerifyResult:
    """Hash everything the refs need; IntegrityError (exit 3) naming what is damaged."""
    from mstore.ops.chunk_pull import fetch_object

    remote.require()
    reach = walk(remote, jobs)
    problems: list[str] = []
    listed = remote.list_blobs("packs")
    needed = sorted(reach.packs())
    chunks = 0

    def check_pack(pack: str) -> list[str]:
        if pack not in listed:
            return [f"pack {pack} is missing"]
        data = remote.get_range(f"packs/{pack}", 0, listed[pack].size)
        found = [] if hash_bytes(data) == pack else [f"pack {pack} does not hash to its name"]
        index = remote.get_blob(f"indexes/{pack}", MAX_META_BYTES)
        if index is None:
            return [*found, f"pack {pack} has no index"]
        for chunk, offset, length in decode_index(index, pack, len(data), remote.url):
            if hash_bytes(data[offset : offset + length]) != chunk:
                found.append(f"index of pack {pack}: bytes at {offset}+{length} are not {chunk}")
        for recipe in reach.recipes.values():
            for e in recipe.entries:
                if e.pack == pack and hash_bytes(data[e.offset : e.offset + e.length]) != e.chunk:
                    found.append(f"recipe of {recipe.object_id}: chunk {e.chunk} is not in {pack}")
        return found

    for found in parallel(check_pack, needed, jobs):
        problems += found
    chunks = sum(len(r.entries) for r in reach.recipes.values())

    import tempfile
    from pathlib import Path

    from mstore.hashing import hash_file

    with tempfile.TemporaryDirectory(prefix="mstore-verify-") as directory:
        for object_id in sorted(reach.whole):
            target = Path(directory) / object_id
            try:
                fetch_object(remote, object_id, target)
            except NotFoundError:
                problems.append(f"object {object_id} is missing")
                continue
            if hash_file(target, owned=False) != object_id:
                problems.append(f"object {object_id} does not hash to its id")
            target.unlink()
    result = VerifyResult(remote.url, len(reach.data), len(needed), chunks, problems)
    if problems:
        shown = "; ".join(problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise IntegrityError(
            f"remote {remote.url} is damaged: {shown}{more}; push the versions again from a "
            f"store that holds them"
        )
    return result


@dataclass(frozen=True)
class PruneResult:
    remote: str
    marked_packs: int
    marked_recipes: int
    deleted_packs: int
    deleted_recipes: int
    bytes_freed: int
    waiting: float | None  # seconds until the marked items may be deleted

    def to_json(self) -> dict[str, object]:
        return {
            "remote": self.remote,
            "marked_packs": self.marked_packs,
            "marked_recipes": self.marked_recipes,
            "deleted_packs": self.deleted_packs,
            "deleted_recipes": self.deleted_recipes,
            "bytes_freed": self.bytes_freed,
            "waiting": self.waiting,
        }


def prune(
    remote: Remote,
    grace: float = DEFAULT_GRACE,
    jobs: int = 8,
    clock: Callable[[], float] = time.time,
) -> PruneResult:
    """Delete packs and recipes no remote ref needs (two runs, a grace period apart).

    `clock` gives the time (epoch s) compared with the server's times of files."""
    window = chunk_present.PUSH_WINDOW
    if grace <= window:
        raise UsageError(
            f"the grace period ({grace:.0f} s) must be longer than the push window ({window:.0f} s)"
        )
    remote.require()
    marked = read_doomed(remote)
    deleted_packs = deleted_recipes = freed = 0
    now = clock()
    if marked.since is not None:
        if now - marked.since < grace:
            return PruneResult(remote.url, 0, 0, 0, 0, 0, waiting=grace - (now - marked.since))
        deleted_packs, deleted_recipes, freed = _delete(remote, marked, window, jobs)
    reach = walk(remote, jobs)
    live = reach.packs()
    packs = remote.list_blobs("packs")
    doomed_packs = {p for p, info in packs.items() if p not in live and now - info.mtime >= grace}
    recipes = recipe_ids(remote)
    doomed_recipes = {
        r for r, mtime in recipes.items() if r not in reach.recipes and now - mtime >= grace
    }
    if doomed_packs or doomed_recipes:
        # The mark's time is when it is written: pushes that read the index before then
        # have until then plus the push window to move their refs.
        mark = Doomed(frozenset(doomed_packs), frozenset(doomed_recipes), clock())
        remote.put_blob(DOOMED, encode_doomed(mark))
    waiting = grace if doomed_packs or doomed_recipes else None
    return PruneResult(
        remote.url,
        len(doomed_packs),
        len(doomed_recipes),
        deleted_packs,
        deleted_recipes,
        freed,
        waiting,
    )


def _delete(remote: Remote, marked: Doomed, window: float, jobs: int) -> tuple[int, int, int]:
    """The second run: delete what is marked and still unneeded; clear the mark."""
    assert marked.since is not None
    reach = walk(remote, jobs)
    live = reach.packs()
    recipes = recipe_ids(remote)
    fresh = [r for r, mtime in recipes.items() if mtime >= marked.since - window]
    for object_id in fresh:  # written by a push that may be about to move a ref
        data = remote.get_blob(recipe_name(object_id), MAX_META_BYTES)
        if data is not None:
            live |= decode_recipe(data, object_id, None, remote.url).packs()
    keep_recipes = set(reach.recipes) | set(fresh)
    packs = remote.list_blobs("packs")
    gone = sorted(marked.packs - live)
    for pack in gone:
        remote.delete_blob(f"indexes/{pack}")  # first: no push finds its chunks any more
        remote.delete_blob(f"packs/{pack}")
    dropped = sorted(marked.recipes - keep_recipes)
    for object_id in dropped:
        remote.delete_blob(recipe_name(object_id))
    remote.delete_blob(DOOMED)
    return len(gone), len(dropped), sum(packs[p].size for p in gone if p in packs)
