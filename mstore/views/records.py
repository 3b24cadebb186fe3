"""View records: what each view was built with, and the check of a view against it.

    .mstore/views/<view id>/        the view's files (what models/<ref> links to)
    .mstore/views/<view id>.json    its record, beside it (never inside: users would
                                    see it as an extra file under models/<ref>/)

A record is canonical JSON (orjson, keys sorted):

    {"files": {"model.pth": {"ctime_ns": 1731628800123456789, "id": "<object id>",
                             "ino": 1835021, "mode": 33060,
                             "mtime_ns": 1731628800123456789, "size": 9090}},
     "format": 1, "kind": "mstore/view-record", "link_mode": "copy", "view": "<view id>"}

`files` lists every file of the view with the object it shows and the `os.stat` of the
view file as built (following a symlink-mode link to the object it names). The record
is written (atomically) before the view's directory is renamed into place, so a view
under its final name always has its record; a record without a directory is garbage
that gc removes, and a directory whose files do not match its record is damaged.

What is compared (`check_view`), for every file of the listing:
- always: present; a regular file (symlink mode: a symlink whose text names its object,
  relative); `size` equal to the listing's; no file beside the listing's;
- with a record: `mode` (type and permission bits) and `ino` equal to the record's, and
  the times mstore itself never changes after the build (`STABLE_TIMES`): in reflink
  mode `mtime_ns` and `ctime_ns` (the inode is the view's own); in copy, hardlink and
  symlink modes `mtime_ns` only (the inode is shared: a shared copy, or the object
  itself, which every later view of it links and every removed view unlinks, and each
  link changes its ctime; mstore never touches an object's inode after storing it, so
  its mtime moves only when something writes into it);
- in hardlink mode with a protection (guard.py): every file and directory of the view
  still sealed (the immutable flag, and directories 0555); one that is not is listed
  in `unprotected` (sealed again by the next build that uses the view).
A difference in `mode`, `ino` or a stable time is reported as `changed` (the file may
have been written or replaced behind mstore's back); `problems` are structural.
A view without a record (made before records existed) is checked against the listing
only (presence, kind, size), then its record is written by the next build that uses it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from mstore.core import fsutil, untrusted
from mstore.core.hashing import is_object_id
from mstore.core.layout import Layout
from mstore.core.manifests import FileEntry
from mstore.core.record_rules import (
    FILE_FIELDS,
    RECORD_FORMAT,
    RECORD_KIND,
    check_record,
    compared_fields,
)
from mstore.core.view_ids import LinkMode
from mstore.errors import IntegrityError
from mstore.views.guard import Guard

RECORD_SUFFIX = ".json"
# A record lists each file of a view in about 150 bytes: a bigger one is not mstore's.
MAX_RECORD_BYTES = 256 << 20


@dataclass(frozen=True)
class FileRecord:
    """One view file as built: the object it shows and its stat."""

    id: str
    size: int
    mode: int
    ino: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, object_id: str, st: os.stat_result) -> FileRecord:
        return cls(object_id, st.st_size, st.st_mode, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)

    def to_json(self) -> dict[str, int | str]:
        return {name: getattr(self, name) for name in FILE_FIELDS}


@dataclass(frozen=True)
class ViewRecord:
    view: str
    link_mode: LinkMode
    files: Mapping[str, FileRecord]

    def encode(self) -> bytes:
        document = {
            "files": {p: f.to_json() for p, f in sorted(self.files.items())},
            "format": RECORD_FORMAT,
            "kind": RECORD_KIND,
            "link_mode": self.link_mode,
            "view": self.view,
        }
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def decode_record(data: bytes, view_id: str) -> ViewRecord:
    """Parse a record; IntegrityError if it is not a record of view `view_id`."""
    try:
        link_mode, entries = check_record(orjson.loads(data), view_id, is_object_id)
        files = {path: FileRecord(**fields) for path, fields in entries.items()}
    except (orjson.JSONDecodeError, ValueError, TypeError, KeyError, AttributeError) as err:
        raise IntegrityError(f"record of view {view_id[:12]} is unreadable: {err}") from None
    return ViewRecord(view_id, link_mode, files)


def record_path(layout: Layout, view_id: str) -> Path:
    return layout.views / f"{view_id}{RECORD_SUFFIX}"


def read_record(layout: Layout, view_id: str) -> ViewRecord | None:
    """The record of a view; None if it has none. IntegrityError if unreadable."""
    try:
        data = untrusted.read_bounded(record_path(layout, view_id), MAX_RECORD_BYTES)
    except FileNotFoundError:
        return None
    return decode_record(data, view_id)


def write_record(layout: Layout, record: ViewRecord) -> None:
    fsutil.atomic_write(record_path(layout, record.view), record.encode(), mode=0o444)


def record_of(
    view: Path, view_id: str, link_mode: LinkMode, files: Mapping[str, FileEntry]
) -> ViewRecord:
    """Stat every file of a built view into its record."""
    return ViewRecord(
        view_id,
        link_mode,
        {p: FileRecord.of(e.id, os.stat(view.joinpath(*p.split("/")))) for p, e in files.items()},
    )


@dataclass(frozen=True)
class ViewCheck:
    """How a view directory compares with its listing and record."""

    exists: bool
    recorded: bool
    problems: tuple[str, ...] = ()  # structural: missing, extra, wrong kind or size
    changed: tuple[str, ...] = ()  # mode, inode or a stable time differs from the record
    suspects: tuple[str, ...] = ()  # present files whose bytes may be wrong (size, changed)
    modes: tuple[str, ...] = ()  # files whose mode (e.g. made writable) left the record's
    unprotected: tuple[str, ...] = ()  # files and directories no longer sealed ("." the top)

    @property
    def complete(self) -> bool:
        return self.exists and not self.problems

    @property
    def intact(self) -> bool:
        """Complete, and (if recorded) every file still as the record says."""
        return self.complete and not self.changed


def check_view(
    layout: Layout,
    view_id: str,
    link_mode: LinkMode,
    files: Mapping[str, FileEntry] | None,
    record: ViewRecord | None,
    guard: Guard | None = None,
) -> ViewCheck:
    """Compare `views/<view_id>` with `files` (its listing; None: the record's own);
    `guard`: the store's protection, whose seals are checked in hardlink mode."""
    view = layout.view_path(view_id)
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISDIR(os.lstat(view).st_mode):
            return ViewCheck(True, record is not None, ("not a directory",))
    if not view.is_dir() or view.is_symlink():
        return ViewCheck(False, record is not None)
    if files is None:
        if record is None:
            return ViewCheck(True, False)  # nothing to compare with (a record-less old view)
        files = {p: FileEntry(f.id, f.size) for p, f in record.files.items()}
    problems: list[str] = []
    changed: list[str] = []
    suspects: list[str] = []
    modes: list[str] = []
    if record is not None:
        if record.link_mode != link_mode:
            problems.append(f"record says link mode {record.link_mode}, not {link_mode}")
        listed = {p: e.id for p, e in files.items()}
        if {p: f.id for p, f in record.files.items()} != listed:
            problems.append("record does not match the listing")
    present = dict(fsutil.walk_files(view))
    problems.extend(f"{p}: not in the listing" for p in sorted(set(present) - set(files)))
    for path, entry in sorted(files.items()):
        if path not in present:
            problems.append(f"{path}: missing")
            continue
        target = view.joinpath(*path.split("/"))
        problem = _kind_problem(layout, target, present[path], entry, link_mode)
        if problem is None:
            try:
                st = os.stat(target)
            except OSError as err:
                problem = f"cannot be read ({err.strerror})"
            else:
                if st.st_size != entry.size:
                    problem = f"{st.st_size} bytes, listing says {entry.size}"
                    suspects.append(path)
                elif (
                    record and path in record.files and _differs(record.files[path], st, link_mode)
                ):
                    changed.append(path)
                    suspects.append(path)
                    if st.st_mode != record.files[path].mode:
                        modes.append(path)
        if problem is not None:
            problems.append(f"{path}: {problem}")
    unprotected: list[str] = []
    if guard is not None and guard.active and link_mode == LinkMode.HARDLINK:
        unprotected = _unsealed(view, guard, [p for p in files if p in present])
    return ViewCheck(
        True,
        record is not None,
        tuple(problems),
        tuple(changed),
        tuple(suspects),
        tuple(modes),
        tuple(unprotected),
    )


def _unsealed(view: Path, guard: Guard, paths: list[str]) -> list[str]:
    """The view's files and directories that its protection no longer seals."""
    found: list[str] = []
    directories = {"."}
    for path in paths:
        parts = path.split("/")[:-1]
        directories.update("/".join(parts[: n + 1]) for n in range(len(parts)))
    for directory in sorted(directories):
        with contextlib.suppress(FileNotFoundError):
            if not guard.is_sealed(view / directory, directory=True):
                found.append(directory)
    for path in sorted(paths):
        with contextlib.suppress(FileNotFoundError):
            if not guard.is_sealed(view.joinpath(*path.split("/")), directory=False):
                found.append(path)
    return found


def _kind_problem(
    layout: Layout, target: Path, lst: os.stat_result, entry: FileEntry, link_mode: LinkMode
) -> str | None:
    if link_mode == LinkMode.SYMLINK:
        if not stat.S_ISLNK(lst.st_mode):
            return "not a symlink"
        wanted = os.path.relpath(layout.object_path(entry.id), target.parent)
        return None if os.readlink(target) == wanted else "links to another file"
    return None if stat.S_ISREG(lst.st_mode) else "not a regular file"


def _differs(recorded: FileRecord, st: os.stat_result, link_mode: LinkMode) -> bool:
    current = FileRecord.of(recorded.id, st)
    return any(getattr(recorded, n) != getattr(current, n) for n in compared_fields(link_mode))
