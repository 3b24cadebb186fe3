"""What a remote's refs need: their manifests, data objects, recipes and packs.

Shared by `remote stats`, `remote verify` and `remote prune`. Manifests are fetched,
hashed and validated like pull does; recipes are validated against the manifests'
sizes. Nothing is written.

Prune and stats must know exactly what the refs need, so anything unreadable stops
them (IntegrityError, exit 3, pointing at `mstore remote verify`). Verify walks with a
`damage` list instead: what it cannot read is recorded there as `Damage` (with what
repairs it) and the walk goes on.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mstore.chunks.deltas import MAX_DEPTH
from mstore.core.hashing import hash_file
from mstore.core.manifests import decode_manifest
from mstore.core.parallel import parallel
from mstore.core.refs import check_ref_name
from mstore.errors import Hint, IntegrityError, InvalidInputError, NotFoundError
from mstore.remotes.base import CHUNK_THRESHOLD, MAX_MANIFEST_BYTES, BlobInfo, Remote
from mstore.remotes.packs import (
    MAX_META_BYTES,
    Recipe,
    decode_recipe,
    named,
    recipe_name,
    recipe_object,
)


@dataclass(frozen=True)
class Damage:
    """One thing wrong on a remote, and what repairs it: the `objects` a store holding
    them sends again (mstore.transfer.repair), and the `packs` whose chunks must not
    be reused any more (their indexes are deleted; prune then removes the packs)."""

    problem: str
    objects: frozenset[str] = frozenset()
    packs: frozenset[str] = frozenset()


@dataclass
class Reach:
    """Everything the remote refs need."""

    refs: dict[str, str] = field(default_factory=dict)
    manifests: set[str] = field(default_factory=set)
    data: dict[str, int] = field(default_factory=dict)
    logical: int = 0  # the bytes of every file of every version the refs name
    recipes: dict[str, Recipe] = field(default_factory=dict)
    whole: set[str] = field(default_factory=set)
    # objects no ref's version holds whose recipes are needed: bases of deltas
    bases: set[str] = field(default_factory=set)

    def packs(self) -> set[str]:
        return {p for r in self.recipes.values() for p in r.packs()}

    def naming(self, pack: str) -> frozenset[str]:
        """The large objects whose recipes name `pack`."""
        return frozenset(i for i, r in self.recipes.items() if pack in r.packs())


def walk(remote: Remote, jobs: int, damage: list[Damage] | None = None) -> Reach:
    """What the remote's refs need (see the module for `damage`)."""
    reach = Reach()
    names = []
    for name in remote.ref_names():
        try:
            names.append(check_ref_name(name))
        except InvalidInputError:
            continue
    reach.refs = {n: r.manifest_id for n, r in remote.read_refs(names, jobs).items()}
    reach.manifests = set(reach.refs.values())
    with tempfile.TemporaryDirectory(prefix="mstore-walk-") as directory:
        for manifest_id in sorted(reach.manifests):
            try:
                files = _manifest_files(remote, manifest_id, Path(directory) / manifest_id)
            except (IntegrityError, NotFoundError, InvalidInputError) as err:
                if damage is None:
                    raise
                damage.append(Damage(str(err), frozenset({manifest_id})))
                continue
            for object_id, size in files:
                reach.data[object_id] = size
                reach.logical += size
    large = sorted(i for i, size in reach.data.items() if size > CHUNK_THRESHOLD)
    blobs = parallel(lambda i: remote.get_blob(recipe_name(i), MAX_META_BYTES), large, jobs)
    for object_id, data in zip(large, blobs, strict=True):
        if data is None:
            reach.whole.add(object_id)
            continue
        try:
            recipe = decode_recipe(data, object_id, reach.data[object_id], remote.url)
        except IntegrityError as err:
            if damage is None:
                raise
            damage.append(Damage(str(err), frozenset({object_id})))
            continue
        reach.recipes[object_id] = recipe
    reach.whole |= {i for i, size in reach.data.items() if size <= CHUNK_THRESHOLD}
    _add_bases(remote, reach, jobs, damage)
    return reach


def _add_bases(remote: Remote, reach: Reach, jobs: int, damage: list[Damage] | None) -> None:
    """Add the recipes of the objects the refs' deltas are XORed with, and of theirs,
    up to deltas.MAX_DEPTH bases deep: a version needs them to be read (prune keeps
    them, verify checks them). A base with no valid recipe is damage."""
    todo = sorted({b for r in reach.recipes.values() for b in r.bases()} - reach.recipes.keys())
    for _depth in range(MAX_DEPTH):
        if not todo:
            return
        blobs = parallel(lambda i: remote.get_blob(recipe_name(i), MAX_META_BYTES), todo, jobs)
        found: set[str] = set()
        for base, data in zip(todo, blobs, strict=True):
            try:
                if data is None:
                    raise IntegrityError(
                        f"object {base} on {remote.url}, a base of deltas, has no recipe"
                    )
                recipe = decode_recipe(data, base, None, remote.url)
            except IntegrityError as err:
                if damage is None:
                    raise
                damage.append(Damage(str(err), frozenset({base})))
                continue
            reach.recipes[base] = recipe
            reach.bases.add(base)
            found |= recipe.bases()
        todo = sorted(found - reach.recipes.keys())


def _manifest_files(remote: Remote, manifest_id: str, target: Path) -> list[tuple[str, int]]:
    """(object id, size) of every file of the remote manifest `manifest_id`, fetched into
    `target`, hashed and validated first."""
    remote.get_object(manifest_id, target, limit=MAX_MANIFEST_BYTES)
    if hash_file(target, owned=False) != manifest_id:
        raise IntegrityError(
            f"manifest {manifest_id} on {remote.url} does not hash to its id; the remote is "
            "damaged (",
            Hint(command="remote verify"),
            ")",
        )
    manifest = decode_manifest(target.read_bytes(), manifest_id)
    return [(entry.id, entry.size) for entry in manifest.files.values()]


def recipe_ids(remote: Remote) -> dict[str, BlobInfo]:
    """Every stored recipe: object id -> its listing (strays left out)."""
    return named(remote.list_blobs("recipes"), recipe_object)[0]
