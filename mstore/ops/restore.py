"""restore: make models/ match the refs again, from the objects.

Missing or stale views are rebuilt and relinked; a view file that was modified in
place (e.g. `cp` over `models/production/model.pth` as root) is replaced, atomically,
by a fresh copy of its object. That works in the copy and reflink modes, where view
files are separate from the objects. In the hardlink and symlink modes the write went
into the object itself: restore says so and leaves it to `verify` and the user
(recommit the version, or fetch the object from another store).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from mstore import fsutil
from mstore.errors import IntegrityError
from mstore.hashing import hash_file
from mstore.manifests import MODE_EXECUTABLE, FileEntry
from mstore.ops.status import MISSING, STALE, status
from mstore.repo import Repo


@dataclass
class RestoreResult:
    relinked: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unrecoverable: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.relinked or self.replaced or self.removed)

    def to_json(self) -> dict[str, object]:
        return {
            "relinked": self.relinked,
            "replaced": self.replaced,
            "removed": self.removed,
            "unrecoverable": self.unrecoverable,
            "dry_run": self.dry_run,
            "changed": self.changed,
        }


def restore(repo: Repo, refs: list[str] | None = None, dry_run: bool = False) -> RestoreResult:
    result = RestoreResult(dry_run=dry_run)
    lock = repo.locked_unless(dry_run, "restore")
    with lock:
        report = status(repo)
        for view in report.views:
            if refs and view.ref not in refs:
                continue
            if view.state in (MISSING, STALE):
                result.relinked.append(view.ref)
                if not dry_run:
                    built = repo.views.build(repo.view_spec(view.ref, view.manifest_id))
                    repo.views.switch(view.ref, built.name)
                continue
            spec = repo.view_spec(view.ref, view.manifest_id)
            directory = repo.layout.view_path(spec.id)
            for path in view.modified + view.missing:
                entry = spec.files[path]
                target = directory.joinpath(*path.split("/"))
                if repo.config.link_mode in ("hardlink", "symlink"):
                    result.unrecoverable.append(f"{view.ref}/{path}")
                    continue
                result.replaced.append(f"{view.ref}/{path}")
                if not dry_run:
                    _replace_file(repo, entry.id, entry.mode, target)
            for path in view.extra:
                result.removed.append(f"{view.ref}/{path}")
                if not dry_run:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(directory.joinpath(*path.split("/")))
    return result


def _replace_file(repo: Repo, object_id: str, mode: int, target: Path) -> None:
    """Put a fresh, checked copy of the object at `target` in one atomic rename."""
    source = repo.layout.object_path(object_id)
    if hash_file(source) != object_id:
        raise IntegrityError(f"object {object_id} is corrupt too; cannot restore from it")
    shared = repo.layout.copy_path(object_id)
    # The shared copy may be the very inode that was written to: drop it first.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(shared.with_name(shared.name + ("-x" if mode == MODE_EXECUTABLE else "")))
    target.parent.mkdir(parents=True, exist_ok=True)
    fresh = fsutil.temp_name(target)
    repo.views.place(FileEntry(object_id, 0, mode), fresh)
    os.replace(fresh, target)
    fsutil.fsync_dir(target.parent)
