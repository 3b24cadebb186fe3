"""The links readers resolve: `models/<ref>` -> `../.mstore/views/<view id>`.

Where a ref's link may be written (never through a symlinked models/ or a directory
mstore does not manage), which view a link shows, the release stamp a view gets when
its last link moves away, and the clean-up of directories `import` exchanged for links.
Switching itself (building the link and replacing it atomically) is in build.py.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path

from mstore.core import fsutil
from mstore.core.layout import Layout
from mstore.errors import Hint, RefusedError
from mstore.views.records import record_path


def current_view_id(layout: Layout, ref: str) -> str | None:
    """The view id `models/<ref>` points at, or None if it is not an mstore link."""
    link = layout.view_link(ref)
    try:
        target = os.readlink(link)
    except OSError:
        return None
    prefix = layout.view_link_target(ref, "")
    return target[len(prefix) :] if target.startswith(prefix) else None


def check_location(layout: Layout, ref: str, adopt: bool = False) -> Path:
    """`models/<ref>`, refusing to write through symlinked or foreign directories.

    With `adopt` (import), a real directory at the link's place is accepted."""
    models = layout.models
    if models.is_symlink():
        raise RefusedError(f"{models} is a symlink; mstore only manages a real models/ directory")
    current = models
    for component in ref.split("/")[:-1]:
        current = current / component
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISDIR(os.lstat(current).st_mode):
                raise RefusedError(f"{current} is in the way of view models/{ref}; move it aside")
    link = current / ref.split("/")[-1]
    with contextlib.suppress(FileNotFoundError):
        mode = os.lstat(link).st_mode
        if not stat.S_ISLNK(mode) and not (adopt and stat.S_ISDIR(mode)):
            raise RefusedError(
                f"{link} is a real {'directory' if stat.S_ISDIR(mode) else 'file'} that mstore "
                "does not manage; move it aside (or adopt it with ",
                Hint(command="import"),
                ")",
            )
    return link


def mark_released(layout: Layout, view_id: str | None) -> None:
    """Stamp a view's release time on its record (the directory may be sealed): gc
    spares it for its grace period after this, so that readers who resolved the old
    link can finish. A view without a record is stamped on its directory."""
    if view_id:
        with contextlib.suppress(OSError):
            try:
                os.utime(record_path(layout, view_id))
            except FileNotFoundError:
                os.utime(layout.view_path(view_id))


def remove_adopted(link: Path) -> None:
    """Delete directories an import exchanged away (their bytes are in the store)."""
    prefix = fsutil.temp_prefix(link.name)
    for entry in os.scandir(link.parent):
        if entry.name.startswith(prefix):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
