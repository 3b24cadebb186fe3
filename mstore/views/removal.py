"""Removing views: out of `views/` first, deleted after.

    .mstore/views/.trash/<view id>.<random>/   a view being deleted

A view leaves `views/` by one `rename` into `views/.trash/` (both directories fsynced)
before any of its files is deleted; its record is removed next. A kill or an I/O error
in the middle of the delete therefore leaves a partial directory only under `.trash/`,
never under a view's final name, and gc finishes whatever `.trash/` holds.

A protected view (guard.py) is opened first (its directory's flag cleared and write bit
set, under the guard's intent, so a crash before the rename seals it again), and its
files, links of flagged objects, are deleted so that the objects stay protected.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from mstore.core import fsutil
from mstore.core.layout import Layout
from mstore.views.guard import Guard
from mstore.views.records import record_path


def move_to_trash(layout: Layout, directory: Path, name: str) -> Path:
    """Rename `directory` into `views/.trash/` (durably); return its new path."""
    trash = layout.trash
    fsutil.makedirs_durable(trash)
    moved = trash / f"{name}.{fsutil.random_suffix(4)}"
    os.rename(directory, moved)
    fsutil.fsync_dir(directory.parent)
    fsutil.fsync_dir(trash)
    return moved


def remove_view(layout: Layout, view_id: str, guard: Guard) -> bool:
    """Take `views/<view_id>` out of `views/`, drop its record, delete its files.
    True if a view directory was removed; errors are raised (the rest stays in the
    trash for the next gc)."""
    view = layout.view_path(view_id)
    moved: Path | None = None
    if os.path.lexists(view):
        with guard.unprotecting([view]):
            guard.open_directory(view)
            moved = move_to_trash(layout, view, view_id)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(record_path(layout, view_id))
        fsutil.fsync_dir(layout.views)
    if moved is not None:
        guard.remove_tree(moved)
    return moved is not None


def unfinished(layout: Layout) -> list[Path]:
    """What interrupted removals left in the trash."""
    trash = layout.trash
    return [trash / name for name in sorted(os.listdir(trash))] if trash.is_dir() else []


def finish(path: Path, guard: Guard) -> None:
    """Delete one leftover of the trash (a directory, or a stray file)."""
    if path.is_dir() and not path.is_symlink():
        guard.remove_tree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        fsutil.fsync_dir(path.parent)
