"""RefStore: named pointers to manifests under `.mstore/refs/`.

    refs/
      production               "<manifest id>\\n"
      staging
      archive/
        v3_2024-11-10

A ref file holds exactly one manifest id and a newline. It is replaced atomically
(`fsutil.atomic_write`) and only inside a transaction (`transaction.py`) holding the
store lock, which re-reads the ref under the lock before moving it (compare-and-swap).
Refs are read by `ref_reading` (loose file, then `packed-refs`), the one reader.
Names follow `git check-ref-format` and a few rules of our own (`ref_names.check_ref_name`);
a new name must also be in Unicode NFC, clash with no existing ref and fit the
filesystem it is written to (see `RefStore.check_new_name`).
"""

from __future__ import annotations

import contextlib
import os
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from mstore.core import fsutil, packed_refs, ref_reading
from mstore.core.ids import is_object_id
from mstore.core.layout import Layout

# The name rules live in ref_names.py (light: completion and the application reader
# check names too); most of the store imports them from here.
from mstore.core.ref_names import check_ref_name as check_ref_name
from mstore.errors import InvalidInputError, RefusedError

# `REF@{N}`: N counts moves in the log, in ASCII digits. A log holds fewer than 10**18
# entries (each takes over 100 bytes), so a longer N names nothing and is never given
# to int() (which refuses numbers over 4,300 digits with an exception).
MAX_REFLOG_DIGITS = 18
_REFLOG = re.compile(r"(?P<ref>.+)@\{(?P<steps>[^{}]*)\}", re.DOTALL)
_ASCII_DIGITS = re.compile(r"[0-9]+")


def split_reflog(revision: str) -> tuple[str, int | None] | None:
    """(REF, N) for a revision `REF@{N}`, None for any other revision.

    N is ASCII digits only (`production@{\u0661}` is InvalidInputError, not N=1); it is
    None when it has more significant digits than any log has moves, so that a
    5,000-digit N names nothing instead of raising from int(). REF is not checked.
    """
    match = _REFLOG.fullmatch(revision)
    if match is None:
        return None
    steps = match.group("steps")
    if not _ASCII_DIGITS.fullmatch(steps):
        raise InvalidInputError(
            f"revision {revision[:80]!r}: the N of REF@{{N}} counts moves back in the log, "
            f"written with the digits 0-9"
        )
    significant = steps.lstrip("0") or "0"
    if len(significant) > MAX_REFLOG_DIGITS:
        return match.group("ref"), None
    return match.group("ref"), int(significant)


def name_key(name: str) -> str:
    """What two names must not share: equal here, they are one file on a filesystem
    that folds case (APFS, casefolded ext4) or normalises Unicode (`café` typed as one
    code point or as `e` + U+0301). Unicode's canonical caseless match: NFD, casefold,
    NFD."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


def encode_ref(manifest_id: str) -> bytes:
    return f"{manifest_id}\n".encode("ascii")


class RefStore:
    """The refs of one store: read through `ref_reading` (the one reader, loose files
    then `packed-refs`), written here under the store lock."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def read(self, name: str) -> str | None:
        """The manifest id `name` points at, or None if the ref does not exist."""
        return ref_reading.read_ref(self.layout, name)

    def packed(self) -> dict[str, str]:
        """The refs in `packed-refs` (name -> id), loose files not applied."""
        return ref_reading.read_packed(self.layout)

    def names(self) -> list[str]:
        """Every ref name, sorted; temporary files and invalid names are skipped."""
        return ref_reading.ref_names(self.layout)

    def read_all(self) -> dict[str, str]:
        """Every ref and its manifest id (refs that cannot be read raise IntegrityError)."""
        return ref_reading.read_refs(self.layout)

    def loose_count(self) -> int:
        """How many refs are loose files (what `pack` would move)."""
        return sum(1 for _ in ref_reading.loose_refs(self.layout.refs))

    def pack(self) -> int:
        """Move every loose ref into `packed-refs`; return how many loose files went.
        Callers hold the store lock."""
        current = self.read_all()
        loose = list(ref_reading.loose_refs(self.layout.refs))
        if not loose:
            return 0
        packed_refs.write_packed(self.layout.packed_refs, current)
        # The packed file now holds every loose value (the lock keeps them unchanged), so
        # each loose file may go: a reader that misses it finds the same value packed.
        for _name, path in loose:
            os.unlink(path)
        for _name, path in loose:
            fsutil.remove_empty_parents(Path(path), self.layout.refs)
        fsutil.fsync_dir(self.layout.refs)
        return len(loose)

    def write(self, name: str, manifest_id: str) -> None:
        """Point `name` at `manifest_id`. Callers hold the store lock (transaction.py)."""
        if not is_object_id(manifest_id):
            raise InvalidInputError(f"not a manifest id: {manifest_id!r}")
        path = self.layout.ref_path(check_ref_name(name))
        fsutil.makedirs_durable(path.parent)
        fsutil.atomic_write(path, encode_ref(manifest_id))

    def delete(self, name: str) -> None:
        """Remove `name` and any directories it leaves empty. Callers hold the store lock."""
        path = self.layout.ref_path(check_ref_name(name))
        packed = self.packed()
        if name in packed:
            # The packed line first: until the loose file goes too, readers see its value.
            del packed[name]
            packed_refs.write_packed(self.layout.packed_refs, packed)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            fsutil.fsync_dir(path.parent)
        fsutil.remove_empty_parents(path, self.layout.refs)

    def check_new_name(self, name: str) -> None:
        """Refuse a name a new ref may not take: invalid, not in Unicode NFC, too long
        for the filesystem, or clashing with an existing ref on disk, by case or by
        Unicode normalisation. Every command creating a ref calls this before it
        writes anything."""
        check_ref_name(name)
        existing = self.names()
        if name in existing:
            return  # not new: a ref stored before these rules keeps working
        if not unicodedata.is_normalized("NFC", name):
            raise InvalidInputError(
                f"ref name {name!r} is not in Unicode NFC (it would be a second name for "
                f"{unicodedata.normalize('NFC', name)!r}); write it in NFC"
            )
        self._check_fits(name)
        key = name_key(name)
        for other in existing:
            other_key = name_key(other)
            if other_key.startswith(key + "/") or key.startswith(other_key + "/"):
                raise RefusedError(
                    f"ref {name!r} clashes with existing ref {other!r} (one would be a "
                    f"directory of the other); choose another name"
                )
            if other_key == key:
                raise RefusedError(
                    f"ref {name!r} differs from existing ref {other!r} only by case or "
                    f"Unicode normalisation; choose another name"
                )

    def _check_fits(self, name: str) -> None:
        """Refuse a name with a component longer than the filesystem allows (NAME_MAX)
        in `refs/` or in `models/`: refused here, it never fails a transaction after
        its commit point. mstore adds nothing to a component (temporary names embed
        only a bounded part of it: `fsutil.temp_name`)."""
        longest = max(name.split("/"), key=lambda c: len(c.encode("utf-8")))
        size = len(longest.encode("utf-8"))
        for directory in (self.layout.refs, self.layout.models):
            limit = fsutil.name_max(directory)
            if size > limit:
                raise InvalidInputError(
                    f"ref name {name!r} has a component of {size} bytes; the filesystem "
                    f"of {directory} allows {limit}: choose a shorter name"
                )

    def iter_files(self) -> Iterator[tuple[str, Path]]:
        """(name, path) of every file under refs/, valid name or not (for verify)."""
        return ((name, Path(path)) for name, path in ref_reading.loose_files(self.layout.refs))
