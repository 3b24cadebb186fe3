"""relink: move a store to another link mode (`mstore relink`, or `mstore init
--link-mode MODE` on an existing store), e.g. a store made in copy mode to the default,
reclaiming `copies/`.

Atomic for readers, and resumable after a crash at any step (under the store lock):
1. build every ref's view in the new mode (invisible until linked);
2. write the config with the new mode, its protection and reason (the commit point:
   from here on every command builds views in the new mode);
3. switch each `models/<ref>` to its new view (`os.replace` of a symlink);
4. delete every view of another mode (through the trash), then `copies/`.
A crash before 2 leaves the old mode with some unlinked views (garbage for gc); after 2,
links may still show views of the old mode (each one complete, so `verify` passes and
readers see whole versions) until `mstore relink` is run again, which finishes 3 and 4.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from mstore.core import fsutil
from mstore.core.hashing import is_object_id
from mstore.core.view_ids import LinkMode
from mstore.errors import MstoreError
from mstore.repo import Repo
from mstore.views import guard
from mstore.views import removal as view_removal
from mstore.views.build import Views
from mstore.views.git_project import keep_out_of_git
from mstore.views.link_choice import choose
from mstore.views.records import read_record


@dataclass
class RelinkResult:
    link_mode: LinkMode
    protection: str | None
    reason: str
    previous_mode: LinkMode
    previous_protection: str | None
    relinked: list[str] = field(default_factory=list)  # refs switched to a new view
    removed_views: list[str] = field(default_factory=list)
    removed_copies: int = 0
    copy_bytes: int = 0
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)  # keeping the store out of git

    @property
    def changed(self) -> bool:
        return bool(
            self.relinked
            or self.removed_views
            or self.removed_copies
            or (self.link_mode, self.protection) != (self.previous_mode, self.previous_protection)
        )

    def to_json(self) -> dict[str, object]:
        return {
            "link_mode": self.link_mode,
            "protection": self.protection,
            "reason": self.reason,
            "previous_link_mode": self.previous_mode,
            "previous_protection": self.previous_protection,
            "relinked": self.relinked,
            "removed_views": self.removed_views,
            "removed_copies": self.removed_copies,
            "copy_bytes": self.copy_bytes,
            "dry_run": self.dry_run,
            "notes": self.notes,
            "changed": self.changed,
        }


def relink(repo: Repo, link_mode: str = LinkMode.AUTO, dry_run: bool = False) -> RelinkResult:
    """Move the store to `link_mode` (auto: probed now); with `dry_run`, the plan."""
    requested = LinkMode.parse(link_mode)
    with repo.locked_unless(dry_run, "relink"):
        repo.layout.tmp.mkdir(parents=True, exist_ok=True)
        choice = choose(repo.layout, requested)
        specs = {
            ref: replace(repo.view_spec(ref, manifest_id), link_mode=choice.link_mode)
            for ref, manifest_id in sorted(repo.refs.read_all().items())
        }
        keep = {spec.id for spec in specs.values()}
        result = RelinkResult(
            choice.link_mode,
            choice.protection,
            choice.reason,
            repo.config.link_mode,
            repo.config.protection,
            relinked=[r for r, s in specs.items() if repo.views.current_view_id(r) != s.id],
            removed_views=_views_of_other_modes(repo, choice.link_mode, keep),
            dry_run=dry_run,
        )
        if choice.link_mode != LinkMode.COPY:
            result.removed_copies, result.copy_bytes = _count_files(repo.layout.copies)
        if dry_run:
            return result
        new = Views(repo.layout, repo.objects, choice.link_mode, choice.protection)
        for spec in specs.values():
            new.build(spec)
        repo.update_config(
            lambda config: config.with_link_mode(choice.link_mode, choice.protection, choice.reason)
        )
        for ref, spec in specs.items():
            new.switch(ref, spec.id)
        for view_id in result.removed_views:
            view_removal.remove_view(repo.layout, view_id, new.guard)
        if choice.link_mode != LinkMode.COPY and repo.layout.copies.is_dir():
            guard.delete_tree(repo.layout.copies)
            fsutil.fsync_dir(repo.layout.store)
        result.notes = keep_out_of_git(repo.layout)
    return result


def _views_of_other_modes(repo: Repo, link_mode: LinkMode, keep: set[str]) -> list[str]:
    """Views under views/ not in `keep` built in another mode (or without a record)."""
    views = repo.layout.views
    found: list[str] = []
    for name in sorted(os.listdir(views)) if views.is_dir() else []:
        if not is_object_id(name) or name in keep:
            continue
        try:
            record = read_record(repo.layout, name)
        except MstoreError:
            record = None
        if record is None or record.link_mode != link_mode:
            found.append(name)
    return found


def _count_files(root: Path) -> tuple[int, int]:
    count = size = 0
    for directory, _dirs, names in os.walk(root):
        for name in names:
            count += 1
            size += os.lstat(os.path.join(directory, name)).st_size
    return count, size
