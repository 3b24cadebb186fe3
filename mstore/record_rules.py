"""Which `stat` fields of a view file must still equal its record, per link mode.

The rules of docs/FORMAT.md ("Views", the record): `mode` and `ino` always; the times
mstore itself never changes after the build (`STABLE_TIMES`). Both `view_records` (the
builds' check) and `loading` (the application's check, which must stay light to import)
read them from here, so the two can never disagree. Standard library only.
"""

from __future__ import annotations

STABLE_TIMES: dict[str, tuple[str, ...]] = {
    "reflink": ("mtime_ns", "ctime_ns"),
    "copy": ("mtime_ns",),
    "hardlink": ("mtime_ns",),
    "symlink": ("mtime_ns",),
}


def compared_fields(link_mode: str) -> tuple[str, ...]:
    """The record fields a view file of `link_mode` is compared on, besides its size."""
    return ("mode", "ino", *STABLE_TIMES.get(link_mode, ()))
