"""Views: the files of one manifest, materialized for readers under `models/<ref>`.

    .mstore/views/<view id>/          immutable once renamed into place
      model.pth  encoders.pkl  metadata.json
    models/production -> ../.mstore/views/<view id>

A view's id is the blake3 of its canonical listing (path -> object id, mode) and link
mode, so a view is built once and reused. It is built under `.mstore/tmp/`, fsynced and
renamed into `views/`; `models/<ref>` is then switched with `os.replace` of a fresh
symlink, so a reader resolving `models/<ref>` sees one complete version, and a reader
that resolved it earlier keeps reading its old view until gc removes it.

A view may show `metadata.json` with other bytes than the manifest's (rendered for the
ref by the policy, policy.py); those bytes are stored as an object like any other file.
This module knows nothing of what a ref means.

Link modes, per file of a view:
- copy: a private copy of the object under `.mstore/copies/`, shared by hardlinks among
  the views that show it; writing through `models/` can never reach an object.
- reflink: a copy-on-write clone of the object (XFS, btrfs); as safe as copy, O(1).
- hardlink: the object's own inode; fastest, but root can write through it (verify
  detects it).
- symlink: a link to the object; root can write through it too.
- auto: reflink where the filesystem supports it, else copy; resolved once, when the
  store is created, and recorded in the config.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from mstore import fsutil
from mstore.errors import InvalidInputError, RefusedError
from mstore.hashing import hash_bytes
from mstore.layout import Layout
from mstore.manifests import METADATA_FILE, MODE_EXECUTABLE, FileEntry, Manifest
from mstore.objects import ObjectStore

LINK_MODES = ("auto", "copy", "reflink", "hardlink", "symlink")


@dataclass(frozen=True)
class ViewSpec:
    """What one view shows: files by path (metadata.json already rendered) and link mode."""

    files: Mapping[str, FileEntry]
    link_mode: str
    # Bytes of objects this view needs that may not be stored yet (a re-rendered
    # metadata.json), by object id; `build` stores them. Not part of the id.
    rendered: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def id(self) -> str:
        listing = {p: [e.id, e.mode] for p, e in sorted(self.files.items())}
        return hash_bytes(orjson.dumps({"files": listing, "link": self.link_mode}))


class Views:
    def __init__(self, layout: Layout, objects: ObjectStore, link_mode: str) -> None:
        if link_mode not in LINK_MODES:
            raise InvalidInputError(
                f"unknown link mode {link_mode!r} (one of {', '.join(LINK_MODES)})"
            )
        self.layout = layout
        self.objects = objects
        self.link_mode = link_mode

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

    def resolve_auto(self) -> str:
        """The concrete mode for `auto` on this filesystem: reflink if it works, else copy."""
        return self.resolve_auto_for(self.link_mode)

    def resolve_auto_for(self, mode: str) -> str:
        """`mode`, with `auto` and `reflink` checked against this filesystem."""
        if mode not in ("auto", "reflink"):
            return mode
        return "reflink" if self._reflink_works() else "copy"

    def build(self, spec: ViewSpec) -> Path:
        """Materialize `spec` under `views/<id>` (idempotent); return its directory."""
        final = self.layout.view_path(spec.id)
        if final.is_dir():
            return final
        for data in spec.rendered.values():
            self.objects.put_bytes(data)
        self.layout.tmp.mkdir(parents=True, exist_ok=True)
        self.layout.views.mkdir(parents=True, exist_ok=True)
        staging = self.layout.tmp / f"{fsutil.TEMP_PREFIX}view.{fsutil.random_suffix(8)}"
        staging.mkdir()
        try:
            directories = {staging}
            for path, entry in sorted(spec.files.items()):
                target = staging.joinpath(*path.split("/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                directories.add(target.parent)
                self.place(entry, target, spec.link_mode)
            for directory in sorted(directories, key=lambda p: len(p.parts), reverse=True):
                fsutil.fsync_dir(directory)
            try:
                os.rename(staging, final)
            except OSError:
                if not final.is_dir():
                    raise
                shutil.rmtree(staging)  # another writer built the same view first
            fsutil.fsync_dir(self.layout.views)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return final

    def switch(self, ref: str, view_id: str, adopt: bool = False) -> bool:
        """Point `models/<ref>` at a built view atomically; False if it already did.

        With `adopt` (import), a real directory at `models/<ref>` whose bytes are already
        stored is exchanged for the link in one step (renameat2), then removed.
        """
        link = self.check_link_location(ref, adopt)
        target = self.layout.view_link_target(ref, view_id)
        with contextlib.suppress(OSError):
            if os.readlink(link) == target:
                self._remove_adopted(link)
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
            self._remove_adopted(link)
            return True
        previous = self.current_view_id(ref)
        fsutil.replace_symlink(link, target)
        self._mark_released(previous)
        return True

    def _mark_released(self, view_id: str | None) -> None:
        """Stamp a view's release time: gc spares it for its grace period after this,
        so that readers who resolved the old link can finish."""
        if view_id:
            with contextlib.suppress(OSError):
                os.utime(self.layout.view_path(view_id))

    @staticmethod
    def _remove_adopted(link: Path) -> None:
        """Delete directories an import exchanged away (their bytes are in the store)."""
        prefix = f"{fsutil.TEMP_PREFIX}{link.name}."
        for entry in os.scandir(link.parent):
            if entry.name.startswith(prefix):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)

    def remove(self, ref: str) -> None:
        """Take `models/<ref>` away (the ref was deleted); its view stays until gc."""
        link = self.check_link_location(ref)
        previous = self.current_view_id(ref)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
            fsutil.fsync_dir(link.parent)
        self._mark_released(previous)
        fsutil.remove_empty_parents(link, self.layout.models)

    def current_view_id(self, ref: str) -> str | None:
        """The view id `models/<ref>` points at, or None if it is not an mstore link."""
        link = self.layout.view_link(ref)
        try:
            target = os.readlink(link)
        except OSError:
            return None
        prefix = self.layout.view_link_target(ref, "")
        return target[len(prefix) :] if target.startswith(prefix) else None

    def check_link_location(self, ref: str, adopt: bool = False) -> Path:
        """`models/<ref>`, refusing to write through symlinked or foreign directories."""
        models = self.layout.models
        if models.is_symlink():
            raise RefusedError(
                f"{models} is a symlink; mstore only manages a real models/ directory"
            )
        current = models
        for component in ref.split("/")[:-1]:
            current = current / component
            with contextlib.suppress(FileNotFoundError):
                mode = os.lstat(current).st_mode
                if not stat.S_ISDIR(mode):
                    raise RefusedError(
                        f"{current} is in the way of view models/{ref}; move it aside"
                    )
        link = current / ref.split("/")[-1]
        with contextlib.suppress(FileNotFoundError):
            mode = os.lstat(link).st_mode
            if not stat.S_ISLNK(mode) and not (adopt and stat.S_ISDIR(mode)):
                raise RefusedError(
                    f"{link} is a real {'directory' if stat.S_ISDIR(mode) else 'file'} that mstore "
                    f"does not manage; move it aside (or adopt it with `mstore import`)"
                )
        return link

    def place(self, entry: FileEntry, target: Path, mode: str | None = None) -> None:
        """Create view file `target` for `entry` in `mode` (default: the store's mode)."""
        mode = mode or self.link_mode
        source = self.layout.object_path(entry.id)
        if mode == "symlink":
            os.symlink(os.path.relpath(source, target.parent), target)
        elif mode == "hardlink":
            os.link(source, target)
        elif mode == "reflink":
            if not fsutil.try_reflink(source, target):
                raise RefusedError(
                    "link mode reflink is not supported on this filesystem; use auto"
                )
            os.chmod(target, 0o555 if entry.mode == MODE_EXECUTABLE else 0o444)
        else:
            os.link(self._shared_copy(entry), target)

    def _shared_copy(self, entry: FileEntry) -> Path:
        """A private copy of an object, made once and hardlinked into every view."""
        executable = entry.mode == MODE_EXECUTABLE
        copy = self.layout.copy_path(entry.id)
        if executable:
            copy = copy.with_name(copy.name + "-x")
        if copy.is_file():
            return copy
        copy.parent.mkdir(parents=True, exist_ok=True)
        tmp = fsutil.temp_name(copy)
        try:
            fsutil.copy_file(self.layout.object_path(entry.id), tmp)
            os.chmod(tmp, 0o555 if executable else 0o444)
            os.replace(tmp, copy)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        fsutil.fsync_dir(copy.parent)
        return copy

    def _reflink_works(self) -> bool:
        self.layout.tmp.mkdir(parents=True, exist_ok=True)
        probe = self.layout.tmp / f"{fsutil.TEMP_PREFIX}probe.{fsutil.random_suffix(4)}"
        clone = probe.with_name(probe.name + ".clone")
        probe.write_bytes(b"probe")
        try:
            return fsutil.try_reflink(probe, clone)
        except OSError:
            return False
        finally:
            for path in (probe, clone):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
