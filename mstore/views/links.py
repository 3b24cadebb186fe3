"""Link modes: how one file of a view is made from its object (docs/FORMAT.md, "Views").

- copy: a hardlink to a private copy of the object under `copies/`, made once and
  shared by the views that show it; writing through `models/` can never reach an object.
- reflink: a copy-on-write clone of the object (XFS, btrfs); as safe as copy, O(1).
- hardlink: the object's own inode, so each distinct file is stored once; sealed by
  the store's protection (guard.py: the immutable flag for root, read-only modes for a
  plain user) so that no write through `models/` reaches it.
- symlink: a relative link to the object; root can write through it.
- auto: probed once, when the store is created (link_choice.py), and recorded in the
  config: reflink where the filesystem clones, copy inside a git work tree, else a
  sealed hardlink where protection is available, else copy.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from mstore.core import fsutil
from mstore.core.layout import Layout
from mstore.core.manifests import MODE_EXECUTABLE, FileEntry
from mstore.core.view_ids import LinkMode
from mstore.errors import RefusedError


def place(layout: Layout, entry: FileEntry, target: Path, mode: LinkMode) -> None:
    """Create view file `target` for `entry` in link mode `mode` (never `auto`, which the
    config records as the mode it chose)."""
    source = layout.object_path(entry.id)
    if mode == LinkMode.SYMLINK:
        os.symlink(os.path.relpath(source, target.parent), target)
    elif mode == LinkMode.HARDLINK:
        os.link(source, target)
    elif mode == LinkMode.REFLINK:
        if not fsutil.try_reflink(source, target):
            raise RefusedError("link mode reflink is not supported on this filesystem; use auto")
        os.chmod(target, 0o555 if entry.mode == MODE_EXECUTABLE else 0o444)
    else:
        os.link(shared_copy(layout, entry), target)


def shared_copy_path(layout: Layout, entry: FileEntry) -> Path:
    return layout.copy_path(entry.id, executable=entry.mode == MODE_EXECUTABLE)


def shared_copy(layout: Layout, entry: FileEntry) -> Path:
    """A private copy of an object, made once and hardlinked into every view."""
    copy = shared_copy_path(layout, entry)
    if copy.is_file():
        return copy
    copy.parent.mkdir(parents=True, exist_ok=True)
    tmp = fsutil.temp_name(copy)
    try:
        fsutil.copy_file(layout.object_path(entry.id), tmp)
        os.chmod(tmp, 0o555 if entry.mode == MODE_EXECUTABLE else 0o444)
        os.replace(tmp, copy)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsutil.fsync_dir(copy.parent)
    return copy


def drop_shared_copy(layout: Layout, entry: FileEntry) -> None:
    """Forget the shared copy of an object (it may have been written through a view):
    the next view built with it gets a fresh copy; views already linking it keep theirs."""
    copy = shared_copy_path(layout, entry)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(copy)
        fsutil.fsync_dir(copy.parent)


def reflink_works(layout: Layout) -> bool:
    """Whether this filesystem clones files (a probe in tmp/)."""
    layout.tmp.mkdir(parents=True, exist_ok=True)
    probe = layout.tmp / f"{fsutil.TEMP_PREFIX}probe.{fsutil.random_suffix(4)}"
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
