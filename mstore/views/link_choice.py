"""What `auto` resolves to on a store's filesystem, probed once (at `init` or `relink`)
and recorded in the config with its reason (docs/FORMAT.md, "Link modes").

In order, the first that can be made safe:
1. `reflink`: the filesystem clones files (XFS, btrfs): each view file is a
   copy-on-write clone, sharing the object's blocks; a write lands in the clone.
2. `hardlink` + `immutable`: the immutable flag works here (root with
   CAP_LINUX_IMMUTABLE on a filesystem that keeps inode flags): refuses root too.
3. `hardlink` + `modes`: not root: 0444 files and 0555 directories refuse this user and
   every other one but root.
4. `copy`: root without the flag (a default container; tmpfs, overlayfs): root ignores
   modes, so only a private copy keeps a write through models/ off the objects; every
   version's files then take twice their size on disk.
Hardlinks must work between tmp/ and views/ for 2 and 3 (they always share `.mstore/`,
but some filesystems have no hardlinks at all). A git work tree changes nothing here:
the store is kept out of git and out of `git clean -fdx` instead (views/git_project.py).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from mstore.core import fsutil
from mstore.core.layout import Layout
from mstore.core.view_ids import LinkMode
from mstore.views import links as view_links
from mstore.views import protection


@dataclass(frozen=True)
class LinkChoice:
    """A concrete link mode, its protection (or None) and why it was chosen."""

    link_mode: LinkMode
    protection: str | None
    reason: str


def choose(layout: Layout, requested: LinkMode) -> LinkChoice:
    """The concrete mode for `requested` (`auto` probed; other modes as they are).
    The store's tmp/ and views/ must exist."""
    if requested != LinkMode.AUTO:
        return LinkChoice(requested, None, "")
    if view_links.reflink_works(layout):
        return LinkChoice(LinkMode.REFLINK, None, "the filesystem clones files (reflink)")
    linking = _hardlink_problem(layout)
    if linking:
        return LinkChoice(LinkMode.COPY, None, linking)
    probe = protection.probe(layout.tmp)
    if probe.immutable:
        return LinkChoice(
            LinkMode.HARDLINK,
            "immutable",
            "hardlinks to objects sealed with the immutable flag refuse every write, "
            "root's included",
        )
    if os.geteuid() != 0:
        return LinkChoice(
            LinkMode.HARDLINK,
            "modes",
            f"hardlinks to read-only objects (0444 files, 0555 directories) refuse writes by "
            f"every user but root; the immutable flag is not available ({probe.reason})",
        )
    return LinkChoice(
        LinkMode.COPY,
        None,
        f"root ignores read-only modes and the immutable flag is not available "
        f"({probe.reason}), so views use private copies: every version's files take "
        f"twice their size on disk",
    )


def _hardlink_problem(layout: Layout) -> str:
    """Why objects cannot be hardlinked into views here ('' if they can)."""
    scratch = layout.tmp / f"{fsutil.TEMP_PREFIX}link-probe.{fsutil.random_suffix(4)}"
    link = layout.views / scratch.name
    scratch.write_bytes(b"probe")
    try:
        os.link(scratch, link)
    except OSError as err:
        return f"the filesystem refuses hardlinks ({err.strerror}), so views use private copies"
    finally:
        for path in (link, scratch):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    return ""
