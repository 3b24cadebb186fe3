"""RefStore: named pointers to manifests under `.mstore/refs/`.

    refs/
      production               "<manifest id>\\n"
      staging
      archive/
        v3_2024-11-10

A ref file holds exactly one manifest id and a newline. It is replaced atomically
(`fsutil.atomic_write`) and only inside a transaction (`transaction.py`) holding the
store lock, which re-reads the ref under the lock before moving it (compare-and-swap).
Names follow `git check-ref-format` and a few rules of our own (see `check_ref_name`);
a new name must also be in Unicode NFC, clash with no existing ref and fit the
filesystem it is written to (see `RefStore.check_new_name`).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import unicodedata
from collections.abc import Iterator
from pathlib import Path

from mstore.core import fsutil, packed_refs
from mstore.core.hashing import is_object_id
from mstore.core.layout import Layout
from mstore.errors import IntegrityError, InvalidInputError, RefusedError

MAX_REF_BYTES = 1024
MAX_COMPONENT_BYTES = 255
FORBIDDEN_CHARACTERS = frozenset(" ~^:?*[\\")
# Control characters, and the line separators `str.splitlines()` ends a line at besides
# them (U+0085, U+2028, U+2029): a name holding one would break the line-based files
# names are written to (packed-refs, .env) for any reader that splits that way.
_BAD_REF_CHARACTER = re.compile(r"[\x00-\x20\x7f\x85\u2028\u2029~^:?*\[\\]")
# `REF@{N}`: N counts moves in the log, in ASCII digits. A log holds fewer than 10**18
# entries (each takes over 100 bytes), so a longer N names nothing and is never given
# to int() (which refuses numbers over 4,300 digits with an exception).
MAX_REFLOG_DIGITS = 18
_REFLOG = re.compile(r"(?P<ref>.+)@\{(?P<steps>[^{}]*)\}", re.DOTALL)
_ASCII_DIGITS = re.compile(r"[0-9]+")
# Names that pass every rule below at a glance: ASCII letters, digits, `_` and `-`, with
# `.` inside a component (not first, not last, never `..`, no component ending `.lock`),
# components joined by single `/`. Anything else takes the full check.
_PLAIN = re.compile(
    r"(?!.*\.\.)(?!.*\.lock(?:/|$))"
    r"[A-Za-z0-9_-](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?"
    r"(?:/[A-Za-z0-9_-](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?)*"
)


def check_ref_name(name: str) -> str:
    """Refuse every name `git check-ref-format` rejects, plus over-long ones; return it.

    Rules: not empty, not "@"; no "..", "@{", "//", control characters, line
    separators (U+0085, U+2028, U+2029), space or any of ~ ^ : ? * [ \\; no leading or
    trailing "/"; no trailing "."; no component starting with "." or ending with ".lock";
    components of at most 255 bytes.
    """
    if isinstance(name, str) and len(name) <= MAX_COMPONENT_BYTES and _PLAIN.fullmatch(name):
        return name  # the common case, decided by one regex (`list` checks thousands)
    shown = repr(name)
    if not isinstance(name, str) or not name:
        raise InvalidInputError("ref name is empty")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"ref name {shown} is not valid UTF-8") from None
    if len(encoded) > MAX_REF_BYTES:
        raise InvalidInputError(f"ref name {name[:40]!r}... is longer than {MAX_REF_BYTES} bytes")
    if name == "@":
        raise InvalidInputError("ref name '@' is reserved")
    bad = _BAD_REF_CHARACTER.search(name)
    if bad:
        character = bad.group()
        raise InvalidInputError(
            f"ref name {shown} contains {character!r} (not allowed: control characters, "
            f"line separators, space, ~ ^ : ? * [ \\)"
        )
    if ".." in name or "@{" in name:
        raise InvalidInputError(f"ref name {shown} contains '..' or '@{{'")
    if name.startswith("/") or name.endswith("/") or "//" in name:
        raise InvalidInputError(
            f"ref name {shown} has an empty component (leading, trailing or double '/')"
        )
    if name.endswith("."):
        raise InvalidInputError(f"ref name {shown} ends with '.'")
    for component in name.split("/"):
        if component.startswith("."):
            raise InvalidInputError(f"ref name {shown} has a component starting with '.'")
        if component.endswith(".lock"):
            raise InvalidInputError(f"ref name {shown} has a component ending with '.lock'")
        if len(component.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise InvalidInputError(
                f"ref name {shown} has a component over {MAX_COMPONENT_BYTES} bytes"
            )
    return name


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
    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def read(self, name: str) -> str | None:
        """The manifest id `name` points at, or None if the ref does not exist."""
        path = self._safe_path(check_ref_name(name))
        value = None if path is None else _read_ref_file(name, path)
        # The loose file first, the packed file second (see packed_refs.py for why).
        return value if value is not None else self.packed().get(name)

    def packed(self) -> dict[str, str]:
        """The refs in `packed-refs` (name -> id), loose files not applied."""
        return packed_refs.read_packed(self.layout.packed_refs, check_ref_name)

    def names(self) -> list[str]:
        """Every ref name, sorted; temporary files and invalid names are skipped."""
        loose = {name for name, _ in self._walk() if _is_valid(name)}
        return sorted(loose | self.packed().keys())

    def read_all(self) -> dict[str, str]:
        """Every ref and its manifest id (refs that cannot be read raise IntegrityError)."""
        # One walk of refs/ that never follows a symlink, each file opened once, then the
        # packed refs under them: this is `mstore list`'s path over thousands of refs.
        result: dict[str, str] = {}
        for name, path in self._walk():
            if _is_valid(name):
                value = _read_ref_file(name, path)
                if value is not None:
                    result[name] = value
        for name, value in self.packed().items():
            result.setdefault(name, value)
        return dict(sorted(result.items()))

    def loose_count(self) -> int:
        """How many refs are loose files (what `pack` would move)."""
        return sum(1 for name, _ in self._walk() if _is_valid(name))

    def pack(self) -> int:
        """Move every loose ref into `packed-refs`; return how many loose files went.
        Callers hold the store lock."""
        current = self.read_all()
        loose = [(name, path) for name, path in self._walk() if _is_valid(name)]
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

    def _safe_path(self, name: str) -> str | None:
        """The ref's path, or None if a directory on the way is missing; refuse symlinks."""
        current = os.fspath(self.layout.refs)
        *directories, leaf = name.split("/")
        for component in directories:
            current = f"{current}/{component}"
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                return None
            if not stat.S_ISDIR(mode):
                if stat.S_ISLNK(mode):
                    raise IntegrityError(
                        f"ref directory {current} is a symlink; refusing to follow it"
                    )
                return None
        return f"{current}/{leaf}"

    def _walk(self) -> Iterator[tuple[str, str]]:
        root = self.layout.refs
        if not root.is_dir():
            return
        # Plain strings, not pathlib: listing thousands of refs is on `mstore list`'s path.
        stack = [("", os.fspath(root))]
        while stack:
            prefix, directory = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                continue  # emptied and removed by a pack or a delete while we walked
            for entry in entries:
                if entry.name.startswith(fsutil.TEMP_PREFIX):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((f"{prefix}{entry.name}/", entry.path))
                else:
                    yield f"{prefix}{entry.name}", entry.path

    def iter_files(self) -> Iterator[tuple[str, Path]]:
        """(name, path) of every file under refs/, valid name or not (for verify)."""
        return ((name, Path(path)) for name, path in self._walk())


def _read_ref_file(name: str, path: str) -> str | None:
    """The id in ref file `path`; None if it is absent or a directory of refs."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO must not hang
    except FileNotFoundError:
        return None
    except OSError as err:
        raise IntegrityError(f"ref {name} ({path}) cannot be read: {err.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            if os.listdir(path):
                return None  # a directory of refs (`archive` when `archive/x` exists)
            raise IntegrityError(f"ref {name} ({path}) is an empty directory, not a ref file")
        if not stat.S_ISREG(mode):
            raise IntegrityError(f"ref {name} ({path}) is not a regular file")
        data = os.read(fd, 256)
    finally:
        os.close(fd)
    text = data.decode("ascii", errors="replace")
    if not text.endswith("\n") or not is_object_id(text[:-1]):
        raise IntegrityError(
            f"ref {name} ({path}) is corrupt: expected one manifest id, found {data[:80]!r}"
        )
    return text[:-1]


def _is_valid(name: str) -> bool:
    try:
        check_ref_name(name)
    except InvalidInputError:
        return False
    return True
