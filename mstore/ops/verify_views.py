"""verify's view checks: every view under views/ is complete, and intact where it can tell.

For each view directory (`views/<view id>`), the view's owner is the ref whose link
`models/<ref>` points at it, or "released" when none does. A linked view is checked
against the listing its ref's manifest gives and against its record; a released view
against its record alone (a released view made before records existed has nothing to
be checked against, and waits for gc). Faults:

- `view_incomplete`: a file of the listing is missing, of the wrong kind or size, or
  links to the wrong object; a file beside the listing; a record that is unreadable or
  lists other files; a ref's link naming a view that is not there;
- `view_damaged`: a file whose mode differs from its record (e.g. made writable), or,
  unless quick, whose inode or stable times differ and whose bytes no longer hash to
  its object (modified behind mstore's back);
- `view_unprotected`: in a protected store, a file or directory of the view no longer
  sealed (its immutable flag or read-only mode cleared by hand).
"""

from __future__ import annotations

import os
import stat
from typing import Protocol

from mstore.core.hashing import hash_file, is_object_id
from mstore.core.manifests import FileEntry
from mstore.errors import Hint, IntegrityError, MstoreError
from mstore.repo import Repo
from mstore.views.records import ViewRecord, check_view, read_record

# A report's detail is text: the way out in the library's words (`mstore restore`).
_RESTORE = Hint(command="restore")


class Faults(Protocol):
    def add(self, kind: str, subject: str, detail: str) -> None: ...


def check_views(
    repo: Repo, report: Faults, quick: bool, bad_released: list[str] | None = None
) -> int:
    """Check every view; return how many were checked. The ids of released views found
    incomplete or damaged are added to `bad_released`, if given."""
    layout = repo.layout
    owners: dict[str, list[str]] = {}
    listings: dict[str, dict[str, FileEntry]] = {}
    for ref, _path in sorted(repo.refs.iter_files()):
        view_id = repo.views.current_view_id(ref)
        if view_id is None:
            continue  # no link (or not mstore's): status reports it
        owners.setdefault(view_id, []).append(ref)
        try:
            manifest_id = repo.refs.read(ref)
            spec = repo.view_spec(ref, manifest_id) if manifest_id else None
        except MstoreError:
            continue  # a corrupt ref or manifest: already reported
        if spec is None:
            continue
        if spec.id == view_id:
            listings[view_id] = dict(spec.files)
        if not os.path.lexists(layout.view_path(view_id)):
            report.add("view_incomplete", view_id, f"models/{ref} links to a view that is gone")
    names = sorted(os.listdir(layout.views)) if layout.views.is_dir() else []
    checked = 0
    for view_id in (n for n in names if is_object_id(n)):
        owner = ", ".join(f"models/{r}" for r in owners.get(view_id, [])) or "released"
        try:
            record = read_record(layout, view_id)
        except IntegrityError as err:
            report.add("view_incomplete", view_id, f"view of {owner}: {err}")
            continue
        listing = listings.get(view_id)
        # A view is checked in the mode it was built in (a relink may be half done).
        mode = record.link_mode if record is not None else repo.config.link_mode
        check = check_view(layout, view_id, mode, listing, record, repo.views.guard)
        if not check.exists or (listing is None and record is None):
            continue
        checked += 1
        changed = check.changed if record is not None else ()
        damaged = [p for p in changed if record and _damaged(repo, view_id, record, p, quick)]
        if bad_released is not None and owner == "released" and (check.problems or damaged):
            bad_released.append(view_id)
        if check.problems:
            report.add(
                "view_incomplete",
                view_id,
                f"view of {owner}: {'; '.join(check.problems)} (run {_RESTORE})",
            )
        if check.unprotected:
            report.add(
                "view_unprotected",
                view_id,
                f"view of {owner}: no longer sealed: {', '.join(check.unprotected)} "
                f"(run {_RESTORE} to seal it again)",
            )
        if damaged:
            report.add(
                "view_damaged",
                view_id,
                f"view of {owner}: changed behind mstore's back: {', '.join(damaged)} "
                f"(run {_RESTORE})",
            )
    return checked


def _damaged(repo: Repo, view_id: str, record: ViewRecord, path: str, quick: bool) -> bool:
    """Whether a file whose stat left its record no longer shows its object."""
    target = repo.layout.view_path(view_id).joinpath(*path.split("/"))
    recorded = record.files[path]
    try:
        st = os.stat(target)
    except OSError:
        return True
    if stat.S_IMODE(st.st_mode) != stat.S_IMODE(recorded.mode):
        return True
    if quick:
        return False
    try:
        return hash_file(target, owned=False) != recorded.id
    except OSError:
        return True
