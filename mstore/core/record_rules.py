"""Which `stat` fields of a view file must still equal its record, per link mode.

The rules of docs/FORMAT.md ("Views", the record): `mode` and `ino` always; the times
mstore itself never changes after the build (`STABLE_TIMES`). Both `view_records` (the
builds' check) and `loading` (the application's check, which must stay light to import)
read them from here, so the two can never disagree, and so is the shape of a record
(`check_record`). Standard library only (and `view_ids`, itself light to import).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mstore.core.view_ids import LinkMode

RECORD_KIND = "mstore/view-record"
RECORD_FORMAT = 1
FILE_FIELDS = ("ctime_ns", "id", "ino", "mode", "mtime_ns", "size")

STABLE_TIMES: dict[LinkMode, tuple[str, ...]] = {
    LinkMode.REFLINK: ("mtime_ns", "ctime_ns"),
    LinkMode.COPY: ("mtime_ns",),
    LinkMode.HARDLINK: ("mtime_ns",),
    LinkMode.SYMLINK: ("mtime_ns",),
}


def compared_fields(link_mode: LinkMode) -> tuple[str, ...]:
    """The record fields a view file of `link_mode` is compared on, besides its size."""
    return ("mode", "ino", *STABLE_TIMES.get(link_mode, ()))


def check_record(
    document: Any, view_id: str, is_id: Callable[[Any], bool]
) -> tuple[LinkMode, dict[str, dict[str, Any]]]:
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
    return LinkMode(document["link_mode"]), files
