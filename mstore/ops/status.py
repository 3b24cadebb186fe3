"""status: is the working models/ layout what the refs say?

For each ref, `models/<ref>` should be a link to the view the ref's manifest gives
under that ref. A view is checked file by file: missing and extra files, and modified
files (bytes that differ, or a mode that left the view's record). A file is re-hashed
only when its stat differs from the hash cache's record, so unchanged large files are
not read. Also reported: links under models/ for refs that no longer exist, directories
mstore does not manage, the active environment, and an unfinished transaction.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from mstore.core.hashing import hash_file
from mstore.core.layout import STORE_DIR_NAME
from mstore.repo import Repo
from mstore.views.build import ViewSpec

OK, MISSING, STALE, FOREIGN = "ok", "missing", "stale", "foreign"


@dataclass
class ViewStatus:
    ref: str
    manifest_id: str
    state: str
    modified: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.state == OK and not (self.modified or self.missing or self.extra)

    def to_json(self) -> dict[str, object]:
        return {
            "ref": self.ref,
            "id": self.manifest_id,
            "state": self.state,
            "clean": self.clean,
            "modified": self.modified,
            "missing": self.missing,
            "extra": self.extra,
        }


@dataclass
class StatusReport:
    active: str
    active_exists: bool
    views: list[ViewStatus] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    unmanaged: list[str] = field(default_factory=list)
    pending_transaction: bool = False
    link_mode: str = ""

    @property
    def clean(self) -> bool:
        return (
            self.active_exists
            and not self.orphans
            and not self.pending_transaction
            and all(v.clean for v in self.views)
        )

    def to_json(self) -> dict[str, object]:
        return {
            "clean": self.clean,
            "active": self.active,
            "active_exists": self.active_exists,
            "views": [v.to_json() for v in self.views],
            "orphans": self.orphans,
            "unmanaged": self.unmanaged,
            "pending_transaction": self.pending_transaction,
            "link_mode": self.link_mode,
        }


def status(repo: Repo) -> StatusReport:
    """Compare models/ with the refs; reads only, takes no lock."""
    refs = repo.refs.read_all()
    deployments = repo.deployments(set(refs.values()))
    active = repo.active_environment()
    report = StatusReport(
        active=active,
        active_exists=active in refs,
        pending_transaction=repo.layout.transaction.exists(),
        link_mode=repo.config.link_mode,
    )
    for ref, manifest_id in refs.items():
        spec = repo.view_spec(ref, manifest_id, dates=deployments)
        report.views.append(check_view(repo, ref, manifest_id, spec))
    _scan_models(repo, set(refs), report)
    return report


def check_view(repo: Repo, ref: str, manifest_id: str, spec: ViewSpec) -> ViewStatus:
    link = repo.layout.view_link(ref)
    result = ViewStatus(ref, manifest_id, OK)
    try:
        mode = os.lstat(link).st_mode
    except FileNotFoundError:
        result.state = MISSING
        return result
    if not stat.S_ISLNK(mode):
        result.state = FOREIGN
        return result
    current = repo.views.current_view_id(ref)
    if current is None:
        result.state = FOREIGN
        return result
    if current != spec.id:
        result.state = STALE
        return result
    view = repo.layout.view_path(current)
    present = _files_below(view)
    result.extra = sorted(set(present) - set(spec.files))
    result.missing = sorted(set(spec.files) - set(present))
    # A file whose mode left the view's record (e.g. made writable) is modified too,
    # even while its bytes are still right.
    modes = set(repo.views.check(spec).modes)
    for path in sorted(set(present) & set(spec.files)):
        entry = spec.files[path]
        if path in modes or not _file_matches(repo, present[path], entry.id, entry.size):
            result.modified.append(path)
    return result


def _files_below(view: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for directory, _dirs, names in os.walk(view):
        for name in names:
            path = Path(directory) / name
            found[path.relative_to(view).as_posix()] = path
    return found


def _file_matches(repo: Repo, path: Path, object_id: str, size: int) -> bool:
    """True if `path` holds the object's bytes; re-hashes only on a hash-cache miss."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    if st.st_size != size or not stat.S_ISREG(st.st_mode):
        return False
    if repo.hash_cache.lookup(st) == object_id:
        return True
    try:
        actual = hash_file(path, owned=False)
    except OSError:
        return False
    if actual == object_id:
        repo.hash_cache.remember(st, object_id)
    return actual == object_id


def _scan_models(repo: Repo, refs: set[str], report: StatusReport) -> None:
    """Links under models/ for refs that are gone, and entries mstore does not manage."""
    if repo.layout.models.is_dir():
        _scan_directory(repo.layout.models, repo.layout.models, refs, report)


def _scan_directory(models: Path, directory: Path, refs: set[str], report: StatusReport) -> bool:
    """Classify the entries of one real directory under models/; True if it holds any
    mstore view link (so it is reported entry by entry, not as one unmanaged directory)."""
    marker = f"/{STORE_DIR_NAME}/views/"
    found_link = False
    unmanaged: list[str] = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        path = Path(entry.path)
        ref = path.relative_to(models).as_posix()
        if entry.is_symlink() and marker in f"/{os.readlink(path)}":
            found_link = True
            if ref not in refs:
                report.orphans.append(ref)
        elif entry.is_dir(follow_symlinks=False):
            before = len(report.unmanaged)
            if _scan_directory(models, path, refs, report):
                found_link = True
            else:
                del report.unmanaged[before:]
                unmanaged.append(ref + "/")
        elif ref not in refs:
            unmanaged.append(ref)
    report.unmanaged.extend(unmanaged)
    return found_link
