"""Which `stat` fields of a view file must still equal its record, per link mode.

The rules of docs/FORMAT.md ("Views", the record): `mode` and `ino` always; the times
mstore itself never changes after the build (`STABLE_TIMES`). Both `view_records` (the
builds' check) and `loading` (the application's check, which must stay light to import)
read them from here, so the two can never disagree, and so is the shape of a record
(`check_record`). Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RECORD_KIND = "mstore/view-record"
RECORD_FORMAT = 1
FILE_FIELDS = ("ctime_ns", "id", "ino", "mode", "mtime_ns", "size")

STABLE_TIMES: dict[str, tuple[str, ...]] = {
    "reflink": ("mtime_ns", "ctime_ns"),
    "copy": ("mtime_ns",),
    "hardlink": ("mtime_ns",),
    "symlink": ("mtime_ns",),
}


def compared_fields(link_mode: str) -> tuple[str, ...]:
    """The record fields a view file of `link_mode` is compared on, besides its size."""
    return ("mode", "ino", *STABLE_TIMES.get(link_mode, ()))


def check_record(
    document: Any, view_id: str, is_id: Callable[[Any], bool]
) -> tuple[str, dict[str, dict[str, Any]]]:
    """(link mode, files) of a decoded record of view `view_id`; ValueError (or
    TypeError, KeyError, AttributeError) if it is not one. `is_id` checks object ids."""
    if (
        document.get("kind") != RECORD_KIND
        or document.get("format") != RECORD_FORMAT
        or document.get("view") != view_id
        or document.get("link_mode") not in STABLE_TIMES
    ):
        raise ValueError("not a record of this view")
    files: dict[str, dict[str, Any]] = document["files"]
    for path, fields in files.items():
        if sorted(fields) != list(FILE_FIELDS) or not is_id(fields["id"]):
            raise ValueError(f"bad entry for {path!r}")
        if not all(type(fields[n]) is int for n in FILE_FIELDS if n != "id"):
            raise ValueError(f"bad entry for {path!r}")
    return str(document["link_mode"]), files
