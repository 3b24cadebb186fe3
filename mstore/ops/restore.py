"""restore: make models/ match the refs again, from the objects.

Missing or stale views are rebuilt and relinked. A view that lost a file, gained one,
or had one modified in place (e.g. `cp` over `models/production/model.pth` as root) is
damaged: it is never repaired in place (a view never changes once renamed into place)
but replaced by a fresh build from the objects, swapped in under the same name in one
step (views.Views.rebuild). In copy mode the shared copy that was written through is
dropped first, so the fresh view gets a new copy. In the hardlink and symlink modes a
write through models/ went into the object itself: restore says so and leaves it to
`verify` and the user (recommit the version, or fetch the object from another store).
A damaged view that no link shows (released) is deleted, through the trash.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mstore.core.hashing import hash_file
from mstore.core.view_ids import LinkMode
from mstore.errors import IntegrityError
from mstore.ops.status import MISSING, OK, STALE, status
from mstore.ops.verify_views import check_views
from mstore.repo import Repo
from mstore.views import removal as view_removal


@dataclass
class RestoreResult:
    relinked: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unrecoverable: list[str] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)  # damaged released views deleted
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.relinked or self.replaced or self.removed or self.discarded)

    def to_json(self) -> dict[str, object]:
        return {
            "relinked": self.relinked,
            "replaced": self.replaced,
            "removed": self.removed,
            "unrecoverable": self.unrecoverable,
            "discarded": self.discarded,
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
            if view.state != OK:
                continue  # foreign: not mstore's to touch
            spec = repo.view_spec(view.ref, view.manifest_id)
            check = repo.views.check(spec)
            if check.unprotected and not dry_run:
                repo.views.guard.seal_tree(repo.layout.view_path(spec.id))
            if view.clean and check.complete and not check.modes:
                continue  # a file's inode or times alone moved (a copied store): bytes checked
            linking = repo.config.link_mode in (LinkMode.HARDLINK, LinkMode.SYMLINK)
            lost = view.modified if linking else []
            result.unrecoverable.extend(f"{view.ref}/{path}" for path in lost)
            fixed = sorted(set(view.missing + view.modified + list(check.modes)) - set(lost))
            if not (fixed or view.extra or check.problems):
                continue  # only what the objects themselves lost
            result.replaced.extend(f"{view.ref}/{path}" for path in fixed)
            result.removed.extend(f"{view.ref}/{path}" for path in view.extra)
            if not dry_run:
                for path in fixed:
                    _check_object(repo, spec.files[path].id)
                repo.views.rebuild(spec, suspects=fixed)
        if not refs:
            # A damaged view no link shows is of no use to anyone: out of sight with it.
            check_views(repo, _Ignored(), quick=False, bad_released=result.discarded)
            for view_id in result.discarded if not dry_run else ():
                view_removal.remove_view(repo.layout, view_id, repo.views.guard)
    return result


class _Ignored:
    """A fault sink: restore acts on what it finds; `verify` reports it."""

    def add(self, kind: str, subject: str, detail: str) -> None:
        pass


def _check_object(repo: Repo, object_id: str) -> None:
    """A view is rebuilt only from intact objects."""
    if hash_file(repo.layout.object_path(object_id)) != object_id:
        raise IntegrityError(f"object {object_id} is corrupt too; cannot restore from it")
