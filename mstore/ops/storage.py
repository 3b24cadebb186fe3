"""Storage: the bytes the refs' versions hold against the bytes this store keeps.

    logical   every file of every version a ref names, each version counted once
    unique    the distinct objects those files are: a file shared by versions counts once
    stored    every object under `.mstore/objects/` (manifests, and what gc has not
              collected yet, included)
    copies    writable copies under `.mstore/copies/` (the `copy` link mode's views)

Read-only: no lock, nothing written. A remote's figures are `transfer.upkeep.stats`,
which contacts the remote; this reads local files only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mstore.repo import Repo


@dataclass(frozen=True)
class StorageReport:
    versions: int
    logical_bytes: int
    unique_bytes: int
    objects: int
    stored_bytes: int
    copies_bytes: int
    link_mode: str

    @property
    def ratio(self) -> float:
        """Stored bytes per logical byte (below 1: files shared between versions)."""
        return self.stored_bytes / self.logical_bytes if self.logical_bytes else 1.0

    def to_json(self) -> dict[str, object]:
        return {
            "versions": self.versions,
            "logical_bytes": self.logical_bytes,
            "unique_bytes": self.unique_bytes,
            "objects": self.objects,
            "stored_bytes": self.stored_bytes,
            "stored_ratio": round(self.ratio, 4),
            "copies_bytes": self.copies_bytes,
            "link_mode": self.link_mode,
        }


def local_storage(repo: Repo) -> StorageReport:
    """Logical bytes of the versions the refs name against the bytes stored for them."""
    manifest_ids = set(repo.refs.read_all().values())
    logical = 0
    sizes: dict[str, int] = {}
    for manifest_id in manifest_ids:
        for entry in repo.manifest(manifest_id).files.values():
            logical += entry.size
            sizes[entry.id] = entry.size
    objects, stored = _fanned_out_bytes(repo.layout.objects)
    _copies, copies = _fanned_out_bytes(repo.layout.copies)
    return StorageReport(
        versions=len(manifest_ids),
        logical_bytes=logical,
        unique_bytes=sum(sizes.values()),
        objects=objects,
        stored_bytes=stored,
        copies_bytes=copies,
        link_mode=repo.config.link_mode,
    )


def _fanned_out_bytes(root: Path) -> tuple[int, int]:
    """(files, bytes) of the regular files in `root`'s two-character fan-out folders."""
    count = size = 0
    try:
        fans = list(os.scandir(root))
    except FileNotFoundError:
        return 0, 0
    for fan in fans:
        if len(fan.name) != 2 or not fan.is_dir(follow_symlinks=False):
            continue
        with os.scandir(fan.path) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    count += 1
                    size += entry.stat(follow_symlinks=False).st_size
    return count, size
