"""gc: delete what nothing needs any more. Plan first, then execute.

Kept (the rest of objects/, views/, copies/ and tmp/ is deleted):
- every manifest a ref names, and every manifest a log entry younger than the
  retention window (default 90 days, like git's reflog expiry) names as old or new;
- every object those manifests name;
- every view a link under models/ points at, and every view released (switched away
  from) within the grace period, with the objects and copies they show;
- every object, view and temporary file written within the grace period (default 14
  days, like git's gc.pruneExpire), so that a commit that has stored its objects but not
  yet moved its ref never loses them (storing an existing object refreshes the mtime of
  its marker `fresh/<id>`; a view's release refreshes its record's mtime).

Views leave views/ through views/.trash/ before their files are deleted (a removal an
earlier run did not finish is completed first), and gc returns what it really deleted,
not what it planned.

`now=True` (`mstore gc --now`) sets both windows to zero, for users who know nothing else
is writing. gc runs under the exclusive store lock, and commit holds the same lock
from its first object write to its ref move, so a commit never ends naming a missing
object.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mstore.core import fsutil
from mstore.core.hashing import is_object_id
from mstore.core.manifests import starts_like_manifest
from mstore.errors import MstoreError
from mstore.repo import Repo
from mstore.views import removal as view_removal
from mstore.views.guard import Guard
from mstore.views.records import RECORD_SUFFIX
from mstore.views.ref_links import current_view_id

DAY = 86400.0
DEFAULT_RETENTION_DAYS = 90.0
DEFAULT_GRACE_DAYS = 14.0


@dataclass
class GcPlan:
    """What gc would delete, and why the rest stays; `execute` returns another GcPlan
    holding only what it really deleted."""

    objects: dict[str, int] = field(default_factory=dict)
    manifests: set[str] = field(default_factory=set)  # those of `objects` that are manifests
    views: list[str] = field(default_factory=list)
    records: list[Path] = field(default_factory=list)  # records left without their view
    unfinished: list[Path] = field(default_factory=list)  # views/.trash/: interrupted removals
    copies: list[Path] = field(default_factory=list)
    temporaries: list[Path] = field(default_factory=list)
    loose_refs: int = 0  # moved into packed-refs (core/refs.py: `RefStore.pack`)
    markers: list[Path] = field(default_factory=list)  # fresh/<id> past the grace period
    kept_objects: int = 0
    kept_recent: int = 0

    @property
    def bytes(self) -> int:
        return sum(self.objects.values())

    def to_json(self) -> dict[str, object]:
        return {
            "objects": len(self.objects),
            "bytes": self.bytes,
            "views": len(self.views),
            "unfinished_removals": len(self.unfinished),
            "copies": len(self.copies),
            "temporaries": len(self.temporaries) + len(self.records) + len(self.markers),
            "refs_packed": self.loose_refs,
            "kept_objects": self.kept_objects,
            "kept_recent": self.kept_recent,
            "object_ids": sorted(self.objects),
            "view_ids": sorted(self.views),
        }

    def execute(self, repo: Repo) -> GcPlan:
        """Delete views first (they may link objects), then objects, copies, temporaries.
        Each view leaves views/ before its files are deleted (view_removal.py); an error
        stops gc with what was deleted so far reported, the rest left for the next run."""
        done = GcPlan(kept_objects=self.kept_objects, kept_recent=self.kept_recent)
        layout = repo.layout
        guard = repo.views.guard
        if self.loose_refs:
            done.loose_refs = repo.refs.pack()
        for path in self.unfinished:
            view_removal.finish(path, guard)
            done.unfinished.append(path)
        for view_id in self.views:
            if view_removal.remove_view(layout, view_id, guard):
                done.views.append(view_id)
        for path in self.records:
            if _unlink(path):
                done.records.append(path)
                fsutil.fsync_dir(path.parent)
        touched: set[Path] = set()
        # Manifests before the objects they name: an interrupted gc must never leave a
        # stored manifest whose files are gone.
        for object_id in sorted(self.objects, key=lambda i: i not in self.manifests):
            path = layout.object_path(object_id)
            if _unlink(path, guard):
                done.objects[object_id] = self.objects[object_id]
                if object_id in self.manifests:
                    done.manifests.add(object_id)
            touched.add(path.parent)
        for path in self.copies:
            if _unlink(path):
                done.copies.append(path)
            touched.add(path.parent)
        for path in self.temporaries:
            if path.is_dir() and not path.is_symlink():
                guard.remove_tree(path)  # a crashed writer's view build
                done.temporaries.append(path)
            elif _unlink(path):
                done.temporaries.append(path)
            touched.add(path.parent)
        for path in self.markers:
            if _unlink(path):
                done.markers.append(path)
        for directory in touched:
            if directory.exists():
                fsutil.fsync_dir(directory)
        return done


def _unlink(path: Path, guard: Guard | None = None) -> bool:
    """Delete one file (through `guard` if it may be protected); False if it was gone."""
    try:
        if guard is not None:
            return guard.unlink(path)
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as err:
        raise MstoreError(f"gc cannot delete {path}: {err.strerror}") from err
    return True


@dataclass(frozen=True)
class _Windows:
    """When this gc runs, and how long what was written or released lately is kept."""

    now: float
    grace: float

    def recent(self, when: float) -> bool:
        """Written (or released) within the grace period: a writer may still need it."""
        return self.now - when < self.grace

    def abandoned(self, when: float) -> bool:
        """A temporary file this old was left by a writer that died: no write takes a
        day, so the grace period is capped there for temporaries."""
        return self.now - when >= min(self.grace, DAY)


def plan_gc(
    repo: Repo,
    retention_days: float = DEFAULT_RETENTION_DAYS,
    grace_days: float = DEFAULT_GRACE_DAYS,
    now: bool = False,
) -> GcPlan:
    """Decide what to delete, phase by phase, each keeping what something still needs
    (deleting is `GcPlan.execute`'s job). The caller holds the store lock."""
    clock = time.time()
    windows = _Windows(clock, 0.0 if now else grace_days * DAY)
    retained = clock - retention_days * DAY
    oldest = None if now else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(retained))
    plan = GcPlan(loose_refs=repo.refs.loose_count())
    refs = repo.refs.read_all()

    manifests = _live_manifests(repo, refs, oldest)
    live = _live_objects(repo, refs, manifests)
    kept_views = _plan_views(repo, plan, windows)
    kept_inodes = _view_files(repo, kept_views, live)
    marked = _fresh_markers(repo.layout.fresh)
    _plan_objects(repo, plan, live, kept_inodes, marked, windows)
    _plan_markers(repo, plan, marked, windows)
    _plan_copies(repo, plan, kept_inodes, windows)
    _plan_temporaries(repo, plan, windows)
    return plan


def _live_manifests(repo: Repo, refs: Mapping[str, str], oldest: str | None) -> set[str]:
    """1. The manifests refs name, and those a log entry written since `oldest` names as
    old or new (no entry's with `--now`): `rollback` and `REF@{N}` must find them for the
    retention window, as git's reflog keeps what it names."""
    manifests = set(refs.values())
    if oldest is None:
        return manifests
    for entry in repo.history.newest_first():
        if entry.when < oldest:
            continue  # not `break`: a clock that went backwards must not hide newer entries
        manifests.update(v for v in (entry.old, entry.new) if v is not None)
    return manifests


def _live_objects(repo: Repo, refs: Mapping[str, str], manifests: set[str]) -> set[str]:
    """2. The live manifests (those still stored) and every object they name, plus what
    each ref's view shows that no manifest names (a re-rendered metadata.json): restore
    needs those objects to repair the view."""
    live: set[str] = set()
    for manifest_id in manifests:
        if repo.objects.has(manifest_id):
            live.add(manifest_id)
            live.update(e.id for e in repo.manifest(manifest_id).files.values())
    dates = repo.deployments(set(refs.values()))
    for ref, manifest_id in refs.items():
        spec = repo.view_spec(ref, manifest_id, dates=dates)
        live.update(e.id for e in spec.files.values())
    return live


def _plan_views(repo: Repo, plan: GcPlan, windows: _Windows) -> set[str]:
    """3. Sort views/: a view a link under models/ shows, or one built or released
    within the grace period (a reader may have resolved its link just before a switch),
    or anything not named like a view, is kept; every other view is deleted, with the
    record of a view that is gone and a record's temporary file left by a dead writer,
    and removals an earlier gc did not finish are finished. Returns the views kept."""
    kept_views = _linked_views(repo)
    views_root = repo.layout.views
    plan.unfinished = view_removal.unfinished(repo.layout)
    names = sorted(os.listdir(views_root)) if views_root.is_dir() else []
    for name in names:
        path = views_root / name
        recent = windows.recent(_released(path))
        if name.endswith(RECORD_SUFFIX) and is_object_id(name[: -len(RECORD_SUFFIX)]):
            if name[: -len(RECORD_SUFFIX)] not in names and not recent:
                plan.records.append(path)  # its view's build or removal was interrupted
        elif name.startswith(fsutil.TEMP_PREFIX):
            if windows.abandoned(path.lstat().st_mtime):
                plan.temporaries.append(path)  # a record's interrupted atomic write
        elif name in kept_views:
            continue
        elif not is_object_id(name) or recent:
            kept_views.add(name)
        else:
            plan.views.append(name)
    kept_views.discard(repo.layout.trash.name)
    return kept_views


def _view_files(repo: Repo, kept_views: set[str], live: set[str]) -> set[tuple[int, int]]:
    """4. The inodes the kept views' files are (a hardlink view shares its objects' and
    copies' inodes, which must stay), and into `live` the objects symlink views point at."""
    kept_inodes: set[tuple[int, int]] = set()
    for view_id in kept_views:
        for path in _files_below(repo.layout.views / view_id):
            st = path.lstat()
            kept_inodes.add((st.st_dev, st.st_ino))
            if path.is_symlink():
                live.add(_object_id_of(path))
    return kept_inodes


def _plan_objects(
    repo: Repo,
    plan: GcPlan,
    live: set[str],
    kept_inodes: set[tuple[int, int]],
    marked: Mapping[str, float],
    windows: _Windows,
) -> None:
    """5. Every object that is live or shown by a kept view is kept; so is one stored (or
    stored again: its `fresh/` marker) within the grace period, which a commit that has
    not yet moved its ref may need. The rest is deleted, manifests noted as such."""
    for object_id in repo.objects.iter_ids():
        path = repo.layout.object_path(object_id)
        st = path.stat()
        if object_id in live or (st.st_dev, st.st_ino) in kept_inodes:
            plan.kept_objects += 1
        elif windows.recent(max(st.st_mtime, marked.get(object_id, 0.0))):
            plan.kept_recent += 1
        else:
            plan.objects[object_id] = st.st_size
            if starts_like_manifest(path):
                plan.manifests.add(object_id)


def _plan_markers(repo: Repo, plan: GcPlan, marked: Mapping[str, float], windows: _Windows) -> None:
    """6. A `fresh/` marker past the grace period protects nothing any more, nor does
    one whose object is deleted."""
    for object_id, when in marked.items():
        if not windows.recent(when) or object_id in plan.objects:
            plan.markers.append(repo.layout.fresh / object_id)


def _plan_copies(
    repo: Repo, plan: GcPlan, kept_inodes: set[tuple[int, int]], windows: _Windows
) -> None:
    """7. A private copy (copy mode) that no kept view links and that was not made within
    the grace period (a view being built may be about to link it) is deleted."""
    for path in _files_below(repo.layout.copies):
        st = path.lstat()
        if (st.st_dev, st.st_ino) not in kept_inodes and not windows.recent(st.st_mtime):
            plan.copies.append(path)


def _plan_temporaries(repo: Repo, plan: GcPlan, windows: _Windows) -> None:
    """8. What a dead writer left in tmp/ (a view build, an object being stored)."""
    tmp = repo.layout.tmp
    for name in sorted(os.listdir(tmp)) if tmp.is_dir() else []:
        if windows.abandoned((tmp / name).lstat().st_mtime):
            plan.temporaries.append(tmp / name)


def gc(
    repo: Repo,
    retention_days: float = DEFAULT_RETENTION_DAYS,
    grace_days: float = DEFAULT_GRACE_DAYS,
    now: bool = False,
    dry_run: bool = False,
) -> GcPlan:
    """Plan under the exclusive lock; return the plan (`dry_run`) or what was deleted."""
    with repo.locked("gc"):
        plan = plan_gc(repo, retention_days, grace_days, now)
        return plan if dry_run else plan.execute(repo)


def _released(path: Path) -> float:
    """When a view (or anything else under views/) was last built or released: the
    later of its own mtime and its record's (a sealed view is stamped on its record)."""
    when = path.lstat().st_mtime
    if is_object_id(path.name):
        with contextlib.suppress(FileNotFoundError):
            when = max(when, os.stat(f"{path}{RECORD_SUFFIX}").st_mtime)
    return when


def _fresh_markers(root: Path) -> dict[str, float]:
    """Object id -> the mtime of its marker `fresh/<id>` (when it was last stored again)."""
    found: dict[str, float] = {}
    for entry in os.scandir(root) if root.is_dir() else []:
        if is_object_id(entry.name):
            found[entry.name] = entry.stat(follow_symlinks=False).st_mtime
    return found


def _linked_views(repo: Repo) -> set[str]:
    """View ids that a link under models/ points at (refs, and links left by old refs),
    read as every reader of view links reads them (`views.ref_links.current_view_id`)."""
    found: set[str] = set()
    models = repo.layout.models
    for directory, dirs, names in os.walk(models) if models.is_dir() else []:
        for name in dirs + names:
            path = Path(directory) / name
            if path.is_symlink():
                view_id = current_view_id(repo.layout, path.relative_to(models).as_posix())
                if view_id is not None and is_object_id(view_id):
                    found.add(view_id)
    return found


def _files_below(root: Path) -> list[Path]:
    files: list[Path] = []
    for directory, _dirs, names in os.walk(root) if root.is_dir() else []:
        files.extend(Path(directory) / name for name in names)
    return files


def _object_id_of(link: Path) -> str:
    """The object a symlink-mode view file points at ('' if it is not one)."""
    parts = Path(os.readlink(link)).parts
    candidate = "".join(parts[-2:]) if len(parts) >= 2 else ""
    return candidate if is_object_id(candidate) else ""
