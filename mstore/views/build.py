"""Views: the files of one manifest, materialized for readers under `models/<ref>`.

    .mstore/views/<view id>/          immutable once renamed into place
      model.pth  encoders.pkl  metadata.json
    .mstore/views/<view id>.json      its record (view_records.py)
    models/production -> ../.mstore/views/<view id>

A view's id is the blake3 of its canonical listing (path -> object id, mode) and link
mode, so a view is built once and reused, but only after it checked intact against its
record. It is built under `.mstore/tmp/`, fsynced, recorded and renamed into `views/`;
`models/<ref>` is then switched with `os.replace` of a fresh symlink, so a reader
resolving `models/<ref>` sees one complete version, and a reader that resolved it
earlier keeps reading its old view until gc removes it (removal.py).

A view may show `metadata.json` with other bytes than the manifest's (rendered for the
ref by the policy, workflow/policy.py); those bytes are stored as an object like any other file.
This module knows nothing of what a ref means.

Link modes (how each file is made from its object) are in links.py.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mstore.core import fsutil
from mstore.core.hashing import hash_bytes
from mstore.core.layout import Layout
from mstore.core.manifests import METADATA_FILE, FileEntry, Manifest
from mstore.core.objects import ObjectStore
from mstore.core.view_ids import LinkMode, view_id
from mstore.errors import IntegrityError
from mstore.views import links as view_links
from mstore.views import protection, ref_links
from mstore.views import removal as view_removal
from mstore.views.guard import Guard, is_flagged
from mstore.views.records import (
    ViewCheck,
    check_view,
    read_record,
    record_of,
    write_record,
)


@dataclass(frozen=True)
class ViewSpec:
    """What one view shows: files by path (metadata.json already rendered) and link mode."""

    files: Mapping[str, FileEntry]
    link_mode: LinkMode
    # Bytes of objects this view needs that may not be stored yet (a re-rendered
    # metadata.json), by object id; `build` stores them. Not part of the id.
    rendered: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return view_id({p: (e.id, e.mode) for p, e in self.files.items()}, self.link_mode)


class Views:
    def __init__(
        self,
        layout: Layout,
        objects: ObjectStore,
        link_mode: LinkMode,
        protection: str | None = None,
    ) -> None:
        self.layout = layout
        self.objects = objects
        self.link_mode = link_mode
        # Protection guards the objects' own inodes, which only hardlink views show.
        self.guard = Guard(layout, protection if link_mode == LinkMode.HARDLINK else None)

    def spec(self, manifest: Manifest, metadata: bytes | None = None) -> ViewSpec:
        """The view of `manifest` (computed only; nothing is written), showing
        `metadata.json` as the bytes `metadata` when given."""
        files = dict(manifest.files)
        extra: dict[str, bytes] = {}
        entry = files.get(METADATA_FILE)
        if entry is not None and metadata is not None:
            rendered_id = hash_bytes(metadata)
            extra[rendered_id] = metadata
            files[METADATA_FILE] = FileEntry(rendered_id, len(metadata), entry.mode)
        return ViewSpec(files=files, link_mode=self.link_mode, rendered=extra)

    def check(self, spec: ViewSpec) -> ViewCheck:
        """How `views/<id>` compares with `spec` and its record (reads only)."""
        try:
            record = read_record(self.layout, spec.id)
        except IntegrityError as err:
            return ViewCheck(True, True, (str(err),))
        return check_view(self.layout, spec.id, spec.link_mode, spec.files, record, self.guard)

    def build(self, spec: ViewSpec) -> Path:
        """Materialize `spec` under `views/<id>`; return its directory.

        A view already there is reused only if it checks intact against its record; one
        made before records existed is checked against the listing, then recorded. Any
        other directory under that name is damaged: it is replaced by a fresh build and
        never linked again.
        """
        final = self.layout.view_path(spec.id)
        check = self.check(spec)
        if check.intact:
            if check.unprotected:
                # Intact but not sealed (protection cleared by hand): seal it again.
                self.guard.seal_tree(final)
            if not check.recorded:
                write_record(self.layout, record_of(final, spec.id, spec.link_mode, spec.files))
            return final
        return self.rebuild(spec, check.suspects if check.exists else ())

    def rebuild(self, spec: ViewSpec, suspects: Iterable[str] = ()) -> Path:
        """Build `spec` afresh and put it under `views/<id>`, replacing what is there.

        Files in `suspects` may have been written through: in copy mode their shared
        copies are dropped first, so the fresh view shows new copies of the objects.
        The record is written before the directory is renamed into place, so a
        directory under a final name always has the record of its own files.
        """
        final = self.layout.view_path(spec.id)
        for path in suspects:
            if spec.link_mode == LinkMode.COPY and path in spec.files:
                view_links.drop_shared_copy(self.layout, spec.files[path])
        for data in spec.rendered.values():
            self.objects.put_bytes(data)
        self.layout.tmp.mkdir(parents=True, exist_ok=True)
        self.layout.views.mkdir(parents=True, exist_ok=True)
        staging = self.layout.tmp / f"{fsutil.TEMP_PREFIX}view.{fsutil.random_suffix(8)}"
        staging.mkdir()
        # A hardlink to a flagged object needs its flag cleared for a moment: the intent
        # names those objects and the final name (sealed after the rename) first.
        sources = [self.layout.object_path(e.id) for e in spec.files.values()]
        flagged = [p for p in sources if spec.link_mode == LinkMode.HARDLINK and is_flagged(p)]
        try:
            with self.guard.unprotecting([*flagged, final]):
                for source in flagged:
                    protection.set_immutable(source, False)
                self._fill(staging, spec)
                if os.path.lexists(final):
                    self._replace(staging, final, spec.id)
                else:
                    os.rename(staging, final)
                    fsutil.fsync_dir(self.layout.views)
        except BaseException:
            with contextlib.suppress(OSError):
                if os.path.lexists(staging):
                    self.guard.remove_tree(staging)
            raise
        return final

    def _fill(self, staging: Path, spec: ViewSpec) -> None:
        """Place every file of `spec` under `staging`, seal files and inner directories
        (the top one is sealed once renamed into place), fsync, write the record."""
        directories = {staging}
        for path, entry in sorted(spec.files.items()):
            target = staging.joinpath(*path.split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            directories.add(target.parent)
            view_links.place(self.layout, entry, target, spec.link_mode)
        if spec.link_mode == LinkMode.HARDLINK:
            # After every link: a sealed inode refuses another (two paths, one object).
            for path in spec.files:
                self.guard.seal_file(staging.joinpath(*path.split("/")))
        for directory in sorted(directories, key=lambda p: len(p.parts), reverse=True):
            fsutil.fsync_dir(directory)
            if directory != staging:
                self.guard.seal_directory(directory)
        write_record(self.layout, record_of(staging, spec.id, spec.link_mode, spec.files))

    def _replace(self, fresh: Path, final: Path, view_id: str) -> None:
        """Put `fresh` under `final` in place of a damaged view, then delete that one.
        renameat2 swaps them in one step; without it the damaged view goes to the
        trash first (readers of a link to it see no view for a moment, never a partial
        one). The damaged view's top directory is opened first (it may be sealed; the
        caller's intent seals `final` again)."""
        if os.path.isdir(final) and not os.path.islink(final):
            self.guard.open_directory(final)
        if fsutil.exchange(fresh, final):
            fsutil.fsync_dir(self.layout.views)
            fsutil.fsync_dir(fresh.parent)
            damaged = view_removal.move_to_trash(self.layout, fresh, view_id)
        else:
            damaged = view_removal.move_to_trash(self.layout, final, view_id)
            os.rename(fresh, final)
            fsutil.fsync_dir(self.layout.views)
        view_removal.finish(damaged, self.guard)

    def switch(self, ref: str, view_id: str, adopt: bool = False) -> bool:
        """Point `models/<ref>` at a built view atomically; False if it already did.

        With `adopt` (import), a real directory at `models/<ref>` whose bytes are already
        stored is exchanged for the link in one step (renameat2), then removed.
        """
        link = self.check_link_location(ref, adopt)
        target = self.layout.view_link_target(ref, view_id)
        with contextlib.suppress(OSError):
            if os.readlink(link) == target:
                ref_links.remove_adopted(link)
                return False
        fsutil.makedirs_durable(link.parent)
        if adopt and link.is_dir() and not link.is_symlink():
            fresh = fsutil.temp_name(link)
            os.symlink(target, fresh)
            if not fsutil.exchange(fresh, link):
                # No atomic exchange here: move the directory aside, then link.
                os.rename(link, fresh.with_name(fresh.name + ".dir"))
                os.rename(fresh, link)
            fsutil.fsync_dir(link.parent)
            ref_links.remove_adopted(link)
            return True
        previous = self.current_view_id(ref)
        fsutil.replace_symlink(link, target)
        ref_links.mark_released(self.layout, previous)
        return True

    def remove(self, ref: str) -> None:
        """Take `models/<ref>` away (the ref was deleted); its view stays until gc."""
        link = self.check_link_location(ref)
        previous = self.current_view_id(ref)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
            fsutil.fsync_dir(link.parent)
        ref_links.mark_released(self.layout, previous)
        fsutil.remove_empty_parents(link, self.layout.models)

    def current_view_id(self, ref: str) -> str | None:
        """The view id `models/<ref>` points at, or None if it is not an mstore link."""
        return ref_links.current_view_id(self.layout, ref)

    def check_link_location(self, ref: str, adopt: bool = False) -> Path:
        """`models/<ref>`, refusing to write through symlinked or foreign directories."""
        return ref_links.check_location(self.layout, ref, adopt)
