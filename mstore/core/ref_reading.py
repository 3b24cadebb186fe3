"""Reading one ref the way the store does: its loose file first, then `packed-refs`.

    .mstore/refs/<name>       "<manifest id>\\n"        a loose ref: it wins
    .mstore/packed-refs       "<manifest id> <name>"    one line per ref (packed_refs.py)

Writers hold the store lock and write `packed-refs` before they delete a loose file
(docs/FORMAT.md, "Packed refs"), so a reader without the lock that looks at the loose
file first and at `packed-refs` second finds each ref at its old or its new value and
never misses it (dulwich's `read_ref` has the same order).

Standard library and `mstore.core.untrusted` only: applications' verified loading
(`mstore.reading.loading`) reads refs through here, and must stay light to import. Callers check
the name first (`refs.check_ref_name`) and pass the packed refs as a function, so that
`packed-refs` is parsed by packed_refs.py alone and only when no loose file answers.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

from mstore.core import untrusted
from mstore.errors import IntegrityError

# A ref file: one manifest id (64 lowercase hex digits, hashing.ID_PATTERN) and "\n".
_REF_FILE = re.compile(rb"[0-9a-f]{64}\n")
_MAX_REF_FILE_BYTES = 256


def read_ref(refs: Path, name: str, packed: Callable[[], Mapping[str, str]]) -> str | None:
    """The manifest id ref `name` (already checked) points at, or None if there is none:
    the loose file under `refs` if there is one, else the entry of `packed()`."""
    value = read_loose(refs, name)
    return value if value is not None else packed().get(name)


def read_loose(refs: Path, name: str) -> str | None:
    """The id in the loose file of ref `name`; None if there is none (a missing file, or
    a directory of refs: `archive` when `archive/x` exists). IntegrityError for a
    symlink on the way, a special file or content that is not one id."""
    path = _loose_path(refs, name)
    if path is None:
        return None
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISDIR(mode):
        if os.listdir(path):
            return None
        raise IntegrityError(f"ref {name} ({path}) is an empty directory, not a ref file")
    try:
        fd = untrusted.open_regular(path)
    except (FileNotFoundError, NotADirectoryError):
        return None  # removed by a pack or a delete since the lstat: packed-refs answers
    except untrusted.UntrustedFileError as err:
        raise IntegrityError(f"ref {name}: {err}") from None
    try:
        data = untrusted.read_fd_bounded(fd, _MAX_REF_FILE_BYTES)
    finally:
        os.close(fd)
    if not _REF_FILE.fullmatch(data):
        raise IntegrityError(
            f"ref {name} ({path}) is corrupt: expected one manifest id, found {data[:80]!r}"
        )
    return data[:-1].decode("ascii")


def _loose_path(refs: Path, name: str) -> str | None:
    """The ref's file path, or None if a directory on the way is missing or a file;
    IntegrityError for a symlinked directory (it would lead out of `refs/`)."""
    current = os.fspath(refs)
    *directories, leaf = name.split("/")
    for component in directories:
        current = f"{current}/{component}"
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(mode):
            raise IntegrityError(f"ref directory {current} is a symlink; refusing to follow it")
        if not stat.S_ISDIR(mode):
            return None
    return f"{current}/{leaf}"
