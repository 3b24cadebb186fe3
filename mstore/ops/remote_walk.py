"""What a remote's refs need: their manifests, data objects, recipes and packs.

Shared by `remote stats`, `remote verify` and `remote prune`. Manifests are fetched,
hashed and validated like pull does; recipes are validated against the manifests'
sizes. Nothing is written.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mstore.errors import IntegrityError, InvalidInputError
from mstore.hashing import hash_file
from mstore.manifests import decode_manifest
from mstore.ops.parallel import parallel
from mstore.refs import check_ref_name
from mstore.remotes.base import CHUNK_THRESHOLD, MAX_MANIFEST_BYTES, Remote
from mstore.remotes.packs import MAX_META_BYTES, Recipe, decode_recipe, recipe_name


@dataclass
class Reach:
    """Everything the remote refs need."""

    refs: dict[str, str] = field(default_factory=dict)
    manifests: set[str] = field(default_factory=set)
    data: dict[str, int] = field(default_factory=dict)
    logical: int = 0  # the bytes of every file of every version the refs name
    recipes: dict[str, Recipe] = field(default_factory=dict)
    whole: set[str] = field(default_factory=set)

    def packs(self) -> set[str]:
        return {p for r in self.recipes.values() for p in r.packs()}


def walk(remote: Remote, jobs: int) -> Reach:
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
            target = Path(directory) / manifest_id
            remote.get_object(manifest_id, target, limit=MAX_MANIFEST_BYTES)
            if hash_file(target, owned=False) != manifest_id:
                raise IntegrityError(
                    f"manifest {manifest_id} on {remote.url} does not hash to its id; "
                    f"the remote is damaged"
                )
            manifest = decode_manifest(target.read_bytes(), manifest_id)
            for entry in manifest.files.values():
                reach.data[entry.id] = entry.size
                reach.logical += entry.size
    large = sorted(i for i, size in reach.data.items() if size > CHUNK_THRESHOLD)
    blobs = parallel(lambda i: remote.get_blob(recipe_name(i), MAX_META_BYTES), large, jobs)
    for object_id, data in zip(large, blobs, strict=True):
        if data is None:
            reach.whole.add(object_id)
        else:
            size = reach.data[object_id]
            reach.recipes[object_id] = decode_recipe(data, object_id, size, remote.url)
    reach.whole |= {i for i, size in reach.data.items() if size <= CHUNK_THRESHOLD}
    return reach


def recipe_ids(remote: Remote) -> dict[str, float]:
    """Every stored recipe's object id -> its last-modified time."""
    found = {}
    for name, info in remote.list_blobs("recipes").items():
        head, _, tail = name.partition("/")
        found[head + tail] = info.mtime
    return found
