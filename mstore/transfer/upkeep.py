"""Remote upkeep: `mstore remote upgrade`, `stats`, `verify` and `prune`.

    upgrade   format 1, 2, 3 or 4 -> 5: rewrites the marker only (objects, refs,
              packs, indexes and recipes stay readable)
    stats     logical bytes (every file of every version the refs name) vs stored bytes
    verify    every ref's manifest, object, recipe, pack and index, hashed; every index;
              with a store to repair from, sends again what is damaged
              (mstore.transfer.repair)
    prune     deletes packs and recipes no remote ref needs, in two runs a grace apart

Names mstore never writes under objects/, packs/, indexes/ or recipes/ are strays:
stats and verify list them, nothing uses or deletes them.

Prune's protocol (docs/REMOTES.md, "Prune"): a first run marks what no ref needs and
is older than the grace period in `prune/doomed`; a run at least a grace period later
first records in the mark that it is deleting, then lists what the refs need, then
deletes what is still unneeded, keeping every pack a recipe stored since (the mark's
time minus the push window) names. A push never reuses a marked pack or recipe, moves
its refs within the push window of reading the index, and moves none after writing a
marked name unless the mark was unchanged and not being deleted once it had
(mstore.transfer.chunk_present).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mstore.chunks.codecs import decode
from mstore.core.hashing import hash_bytes, hash_file
from mstore.core.parallel import parallel
from mstore.errors import Hint, IntegrityError, NotFoundError, RefusedError, UsageError
from mstore.remotes.base import (
    MARKER_NAME,
    REMOTE_FORMAT,
    BlobInfo,
    Remote,
    encode_marker,
    marker_format,
    marker_repository,
)
from mstore.remotes.packs import (
    DOOMED,
    MAX_META_BYTES,
    Doomed,
    decode_index,
    decode_recipe,
    encode_doomed,
    named,
    pack_name,
    read_doomed,
    recipe_name,
    recipe_object,
)
from mstore.transfer import chunk_present
from mstore.transfer.remote_walk import Damage, Reach, recipe_ids, walk

if TYPE_CHECKING:
    from mstore.repo import Repo

DEFAULT_GRACE = 24 * 3600.0
# The folders of the layout whose files mstore names by id, and how it names them.
FOLDERS: dict[str, Callable[[str], str | None]] = {
    "objects": recipe_object,
    "recipes": recipe_object,
    "packs": pack_name,
    "indexes": pack_name,
}
REPAIR_ROUNDS = 3  # a repaired manifest may reveal damage in what it names


@dataclass(frozen=True)
class UpgradeResult:
    remote: str
    old_format: int
    new_format: int

    def to_json(self) -> dict[str, object]:
        return {"remote": self.remote, "old_format": self.old_format, "new_format": self.new_format}


def upgrade(remote: Remote, repository: str) -> UpgradeResult:
    """Make a remote of an older format format 5 (the marker only, which carries the
    `repository` id: the remote's own from format 3 on, else the upgrading store's,
    mstore.transfer.repository); a format-5 one is left as is. Format 2 read objects as
    format 1 wrote them, format 3 reads a ref file without a statement as format 2 wrote
    it, format 4 reads format-1 indexes and recipes (uncompressed chunks) as format 3
    wrote them, and format 5 reads format-2 ones (no deltas) as format 4 wrote them:
    nothing else is rewritten."""
    data = remote.read_marker()
    if data is None:
        raise NotFoundError(f"no mstore remote at {remote.url} ({MARKER_NAME} is missing)")
    old = marker_format(data, remote.url)
    if old > REMOTE_FORMAT:
        raise RefusedError(f"remote {remote.url} uses format {old}; upgrade mstore")
    if old < REMOTE_FORMAT:
        # A format-3 remote already names its repository: its statements are signed for it.
        remote.put_blob(
            MARKER_NAME, encode_marker(marker_repository(data, remote.url) or repository)
        )
    remote.require()
    return UpgradeResult(remote.url, old, REMOTE_FORMAT)


def strays(listings: dict[str, dict[str, BlobInfo]]) -> list[str]:
    """Every listed name mstore never writes (`folder/name`): reported, never touched."""
    return [
        f"{folder}/{name}"
        for folder, listing in sorted(listings.items())
        for name in named(listing, FOLDERS[folder])[1]
    ]


@dataclass(frozen=True)
class RemoteStats:
    remote: str
    versions: int
    logical_bytes: int
    unique_bytes: int
    stored_bytes: int
    packs: int
    strays: list[str] = field(default_factory=list)

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
            "strays": self.strays,
        }


def stats(remote: Remote, jobs: int = 8) -> RemoteStats:
    """Logical bytes (every file of every version a ref names) against stored bytes."""
    remote.require()
    reach = walk(remote, jobs)
    listings = {folder: remote.list_blobs(folder) for folder in FOLDERS}
    stored = sum(info.size for listing in listings.values() for info in listing.values())
    return RemoteStats(
        remote.url,
        len(reach.manifests),
        reach.logical,
        sum(reach.data.values()),
        stored,
        len(named(listings["packs"], pack_name)[0]),
        strays(listings),
    )


@dataclass(frozen=True)
class VerifyResult:
    remote: str
    objects: int
    packs: int
    chunks: int
    problems: list[str] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)  # objects sent again by --repair

    def to_json(self) -> dict[str, object]:
        return {
            "remote": self.remote,
            "objects": self.objects,
            "packs": self.packs,
            "chunks": self.chunks,
            "problems": self.problems,
            "strays": self.strays,
            "repaired": self.repaired,
        }


@dataclass
class Findings:
    """One pass of `verify`: what the refs need, and what is wrong."""

    reach: Reach
    damage: list[Damage]
    strays: list[str]
    packs: int


def verify(remote: Remote, jobs: int = 8, repair_from: Repo | None = None) -> VerifyResult:
    """Hash everything the refs need and read every index; IntegrityError (exit 3)
    naming what is damaged. With `repair_from`, first send again from that store what
    the damage lost (mstore.transfer.repair), then check again."""
    from mstore.transfer.repair import repair

    remote.require()
    found = _inspect(remote, jobs)
    repaired: list[str] = []
    lacking: list[str] = []
    unreused: set[str] = set()
    for _round in range(REPAIR_ROUNDS if repair_from is not None else 0):
        if not found.damage:
            break
        assert repair_from is not None
        done = repair(repair_from, remote, found.damage, jobs)
        repaired += done.sent
        lacking = done.lacking
        if not done.sent and unreused.issuperset(done.unreused):
            break  # nothing more this store can do
        unreused.update(done.unreused)
        found = _inspect(remote, jobs)
    if found.damage:
        raise IntegrityError(*_damaged(remote.url, found.damage, repair_from is not None, lacking))
    reach = found.reach
    return VerifyResult(
        remote.url,
        len(reach.data),
        found.packs,
        sum(len(r.entries) for r in reach.recipes.values()),
        [],
        found.strays,
        sorted(set(repaired)),
    )


def _damaged(
    url: str, damage: list[Damage], repairing: bool, lacking: list[str]
) -> tuple[str | Hint, ...]:
    problems = [d.problem for d in damage]
    shown = "; ".join(problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    repair = Hint("repair", True, "remote verify", (url,))
    way_out: tuple[str | Hint, ...]
    if not repairing:
        way_out = (
            "repair it from a store that holds these versions: ",
            repair,
            " (a push sends nothing: the refs already name them)",
        )
    elif lacking:
        way_out = (
            f"this store lacks {len(lacking)} of the objects to send again "
            f"({', '.join(i[:12] for i in lacking[:3])}): run ",
            repair,
            " from a store that holds them",
        )
    else:
        way_out = ("what this store could send again did not repair it",)
    return (f"remote {url} is damaged: {shown}{more}; ", *way_out)


def _inspect(remote: Remote, jobs: int) -> Findings:
    damage: list[Damage] = []
    reach = walk(remote, jobs, damage)
    listings = {folder: remote.list_blobs(folder) for folder in FOLDERS}
    packs = named(listings["packs"], pack_name)[0]
    indexed = named(listings["indexes"], pack_name)[0]
    needed = reach.packs()
    for pack in sorted(needed - packs.keys()):
        damage.append(Damage(f"pack {pack} is missing", reach.naming(pack), frozenset({pack})))
    present = sorted(needed & packs.keys())
    for found in parallel(lambda p: _check_pack(remote, p, packs[p].size, reach), present, jobs):
        damage += found
    # Indexes of packs no ref needs: only read (a damaged one blocks nothing, but its
    # chunks are no longer reused: reported, and --repair deletes it).
    unneeded = sorted(p for p in indexed if p in packs and p not in needed)
    for found in parallel(lambda p: _check_index(remote, p, packs[p].size), unneeded, jobs):
        damage += found
    damage += _check_whole(remote, {i: reach.data[i] for i in sorted(reach.whole)})
    if not damage:  # deltas rebuild from packs checked whole above
        damage += _check_deltas(remote, reach)
    listed_strays = strays(listings)
    if read_doomed(remote).damaged:
        listed_strays.append(f"{DOOMED} (not valid: it marks nothing; the next prune replaces it)")
    return Findings(reach, damage, listed_strays, len(needed))


def _check_pack(remote: Remote, pack: str, size: int, reach: Reach) -> list[Damage]:
    """A pack the refs need: its bytes against its name, its index (every entry decoded,
    bounded by its raw length, and hashed against its chunk id), and every recipe entry
    in it against that index and its chunk id."""
    users = reach.naming(pack)
    try:
        data = remote.get_range(f"packs/{pack}", 0, size)
    except (IntegrityError, NotFoundError) as err:
        return [Damage(str(err), users, frozenset({pack}))]
    problems = [] if hash_bytes(data) == pack else [f"pack {pack} does not hash to its name"]
    checked: dict[tuple[str, int, int, str, int, bool], bool] = {}

    def holds(chunk: str, offset: int, stored: int, codec: str, length: int, delta: bool) -> bool:
        # A delta's decoded bytes are not its chunk's: they are hashed when the objects
        # holding deltas are rebuilt (_check_deltas); here they must decode whole.
        key = (chunk, offset, stored, codec, length, delta)
        if key not in checked:
            where = f"pack {pack} at {offset}+{stored}"
            try:
                raw = decode(memoryview(data)[offset : offset + stored], codec, length, where)
                checked[key] = offset + stored <= size and (delta or hash_bytes(raw) == chunk)
            except IntegrityError:
                checked[key] = False
        return checked[key]

    try:
        index = remote.get_blob(f"indexes/{pack}", MAX_META_BYTES)
        if index is None:
            problems.append(f"pack {pack} has no index")
        else:
            entries = decode_index(index, pack, size, remote.url)
            wrong = [
                e
                for e in entries
                if not holds(e.chunk, e.offset, e.stored, e.codec, e.length, e.base is not None)
            ]
            if wrong:
                problems.append(
                    f"index of pack {pack}: {len(wrong)} chunks are not what it says (the "
                    f"first at {wrong[0].offset}+{wrong[0].stored}, {wrong[0].codec})"
                )
    except IntegrityError as err:
        problems.append(str(err))
    found = [Damage(p, users, frozenset({pack})) for p in problems]
    for object_id in sorted(users):
        for e in reach.recipes[object_id].entries:
            if e.pack == pack and not holds(
                e.chunk, e.offset, e.stored, e.codec, e.length, e.base is not None
            ):
                found.append(
                    Damage(
                        f"recipe of {object_id}: chunk {e.chunk} is not at {e.offset}+"
                        f"{e.stored} ({e.codec}, {e.length} bytes) in pack {pack}",
                        frozenset({object_id}),
                    )
                )
                break
    return found


def _check_index(remote: Remote, pack: str, size: int) -> list[Damage]:
    try:
        data = remote.get_blob(f"indexes/{pack}", MAX_META_BYTES)
        if data is not None:
            decode_index(data, pack, size, remote.url)
    except IntegrityError as err:
        return [Damage(str(err), frozenset(), frozenset({pack}))]
    return []


def _check_deltas(remote: Remote, reach: Reach) -> list[Damage]:
    """Every object of the refs' versions whose recipe holds deltas, rebuilt the way a
    pull rebuilds it (its bases rebuilt from the remote, within the bounds a pull keeps:
    mstore.transfer.chunk_bases; a base is checked as it is rebuilt) and hashed; each
    no larger than its manifest says."""
    from mstore.transfer.chunk_bases import fetch_object

    found: list[Damage] = []
    with tempfile.TemporaryDirectory(prefix="mstore-verify-") as directory:
        for object_id, recipe in sorted(reach.recipes.items()):
            if not recipe.bases() or object_id not in reach.data:
                continue
            target = Path(directory) / object_id
            try:
                fetch_object(remote, object_id, target, limit=reach.data[object_id])
                if hash_file(target, owned=False) != object_id:
                    raise IntegrityError(f"object {object_id} does not rebuild to its id")
            except (IntegrityError, NotFoundError) as err:
                found.append(Damage(str(err), frozenset({object_id, *recipe.bases()})))
            target.unlink(missing_ok=True)
    return found


def _check_whole(remote: Remote, sizes: dict[str, int]) -> list[Damage]:
    """Every object stored whole, fetched (no more than its manifest's size) and hashed
    against its id."""
    from mstore.transfer.chunk_bases import fetch_object

    found: list[Damage] = []
    with tempfile.TemporaryDirectory(prefix="mstore-verify-") as directory:
        for object_id, size in sizes.items():
            target = Path(directory) / object_id
            try:
                fetch_object(remote, object_id, target, limit=size)
            except NotFoundError:
                found.append(Damage(f"object {object_id} is missing", frozenset({object_id})))
                continue
            except IntegrityError as err:
                found.append(Damage(str(err), frozenset({object_id})))
                continue
            if hash_file(target, owned=False) != object_id:
                found.append(
                    Damage(f"object {object_id} does not hash to its id", frozenset({object_id}))
                )
            target.unlink()
    return found


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
        deleted_packs, deleted_recipes, freed = _delete(remote, marked, window, jobs, now)
    reach = walk(remote, jobs)
    live = reach.packs()
    packs = named(remote.list_blobs("packs"), pack_name)[0]
    doomed_packs = {p for p, info in packs.items() if p not in live and now - info.mtime >= grace}
    doomed_recipes = {
        r
        for r, info in recipe_ids(remote).items()
        if r not in reach.recipes and now - info.mtime >= grace
    }
    if doomed_packs or doomed_recipes:
        # The mark's time is when it is written: pushes that read the index before then
        # have until then plus the push window to move their refs.
        mark = Doomed(frozenset(doomed_packs), frozenset(doomed_recipes), clock())
        remote.put_blob(DOOMED, encode_doomed(mark))
    elif marked.damaged:
        remote.delete_blob(DOOMED)  # it marked nothing; now nobody needs to read it
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


def _delete(
    remote: Remote, marked: Doomed, window: float, jobs: int, now: float
) -> tuple[int, int, int]:
    """The second run: delete what is marked and still unneeded; clear the mark."""
    assert marked.since is not None
    # First say so in the mark, before listing anything: a push that reads it from now
    # on writes no marked name, and one that wrote a marked name earlier moves no ref
    # unless it checked the mark before this write, so what it wrote is listed below.
    remote.put_blob(DOOMED, encode_doomed(replace(marked, deleting=now)))
    reach = walk(remote, jobs)
    live = reach.packs()
    fresh = [r for r, info in recipe_ids(remote).items() if info.mtime >= marked.since - window]
    for object_id in fresh:  # written by a push that may be about to move a ref
        data = remote.get_blob(recipe_name(object_id), MAX_META_BYTES)
        if data is None:
            continue
        try:
            live |= decode_recipe(data, object_id, None, remote.url).packs()
        except IntegrityError:
            continue  # a damaged recipe serves no pull: no pack is kept for it
    keep_recipes = set(reach.recipes) | set(fresh)
    packs = named(remote.list_blobs("packs"), pack_name)[0]
    gone = sorted(marked.packs - live)
    for pack in gone:
        remote.delete_blob(f"indexes/{pack}")  # first: no push finds its chunks any more
        remote.delete_blob(f"packs/{pack}")
    dropped = sorted(marked.recipes - keep_recipes)
    for object_id in dropped:
        remote.delete_blob(recipe_name(object_id))
    remote.delete_blob(DOOMED)
    return len(gone), len(dropped), sum(packs[p].size for p in gone if p in packs)
