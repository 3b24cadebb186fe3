"""Reading refs the way the store does: a ref's loose file first, then `packed-refs`.

    .mstore/refs/<name>       "<manifest id>\\n"        a loose ref: it wins
    .mstore/packed-refs       "<manifest id> <name>"    one line per ref (packed_refs.py)

Writers hold the store lock and write `packed-refs` before they delete a loose file
(docs/FORMAT.md, "Packed refs"), so a reader without the lock that looks at the loose
files first and at `packed-refs` second finds each ref at its old or its new value and
never misses it (dulwich's `read_ref` has the same order).

This is the one reader of refs: `RefStore` (refs.py) reads through it, and so do shell
completion (run at every <TAB>) and the application reader (`mstore.reading.loading`,
imported at an application's start). It therefore imports only the standard library
and the store's light modules (ref names, ids, layout, packed_refs, untrusted): no
blake3, no orjson.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from mstore.core import packed_refs, untrusted
from mstore.core.fsutil import TEMP_PREFIX
from mstore.core.ids import is_object_id
from mstore.core.layout import Layout
from mstore.core.ref_names import check_ref_name, is_valid_ref_name
from mstore.errors import IntegrityError

# A ref file is one manifest id and "\n" (65 bytes): more than this is not read.
_MAX_REF_FILE_BYTES = 256


def read_ref(layout: Layout, name: str) -> str | None:
    """The manifest id ref `name` points at, or None if there is no such ref: its loose
    file if there is one, else its line in `packed-refs` (parsed only then).
    InvalidInputError for an invalid name, IntegrityError for a damaged ref."""
    value = read_loose(layout.refs, check_ref_name(name))
    return value if value is not None else read_packed(layout).get(name)


def read_refs(layout: Layout) -> dict[str, str]:
    """Every ref and its manifest id, sorted by name (IntegrityError for a damaged one)."""
    # One walk of refs/ that never follows a symlink, each file opened once, then the
    # packed refs under them: this is `mstore list`'s path over thousands of refs.
    result: dict[str, str] = {}
    for name, path in loose_refs(layout.refs):
        value = read_loose_file(name, path)
        if value is not None:
            result[name] = value
    for name, value in read_packed(layout).items():
        result.setdefault(name, value)
    return dict(sorted(result.items()))


def ref_names(layout: Layout) -> list[str]:
    """Every ref name, sorted (files under `refs/` with an invalid name are no refs)."""
    loose = {name for name, _ in loose_refs(layout.refs)}
    return sorted(loose | read_packed(layout).keys())


def read_packed(layout: Layout) -> dict[str, str]:
    """The refs in `packed-refs` (name -> id), loose files not applied."""
    return packed_refs.read_packed(layout.packed_refs, check_ref_name)


def read_loose(refs: Path, name: str) -> str | None:
    """The id in the loose file of ref `name` (already checked) under `refs`; None if
    there is none. IntegrityError for a symlinked directory on the way (see
    `read_loose_file` for the file itself)."""
    path = loose_path(refs, name)
    return None if path is None else read_loose_file(name, path)


def read_loose_file(name: str, path: str) -> str | None:
    """The id in the loose ref file `path` of ref `name`; None if it is absent or a
    directory of refs (`archive` when `archive/x` exists). IntegrityError for a
    symlink, a special file, an empty directory or content that is not one id."""
    data = read_loose_bytes(name, path, _MAX_REF_FILE_BYTES)
    if data is None:
        return None
    text = data.decode("ascii", errors="replace")
    if not text.endswith("\n") or not is_object_id(text[:-1]):
        raise IntegrityError(
            f"ref {name} ({path}) is corrupt: expected one manifest id, found {data[:80]!r}"
        )
    return text[:-1]


def read_loose_bytes(name: str, path: str, limit: int) -> bytes | None:
    """The bytes of the loose ref file `path` of ref `name`, at most `limit + 1` read
    (the caller refuses more than `limit`); None as `read_loose_file`, IntegrityError
    for a symlink, a special file or an empty directory. A remote's ref files, which
    may carry a statement after the id, are read through here too."""
    try:
        fd = untrusted.open_regular(path)
    except (FileNotFoundError, NotADirectoryError):
        return None  # none, or removed by a pack or a delete since: packed-refs answers
    except untrusted.UntrustedFileError as err:
        kind = _kind(path)
        if stat.S_ISDIR(kind):
            if os.listdir(path):
                return None
            raise IntegrityError(
                f"ref {name} ({path}) is an empty directory, not a ref file"
            ) from None
        if stat.S_ISLNK(kind):
            raise IntegrityError(
                f"ref {name} ({path}) is a symbolic link, not a ref file; refusing to follow it"
            ) from None
        raise IntegrityError(f"ref {name}: {err}") from None
    except OSError as err:
        raise IntegrityError(f"ref {name} ({path}) cannot be read: {err.strerror}") from None
    try:
        return untrusted.read_fd_bounded(fd, limit)
    finally:
        os.close(fd)


def loose_refs(refs: Path) -> Iterator[tuple[str, str]]:
    """(name, path) of every loose ref: the files under `refs` with a valid name."""
    return ((name, path) for name, path in loose_files(refs) if is_valid_ref_name(name))


def loose_files(refs: Path) -> Iterator[tuple[str, str]]:
    """(name, path) of every file under `refs`, valid name or not (`verify` reports the
    others); writers' temporary files are skipped and no symlink is followed."""
    if not refs.is_dir():
        return
    # Plain strings, not pathlib: listing thousands of refs is on `mstore list`'s path.
    stack = [("", os.fspath(refs))]
    while stack:
        prefix, directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            continue  # emptied and removed by a pack or a delete while we walked
        for entry in entries:
            if entry.name.startswith(TEMP_PREFIX):
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append((f"{prefix}{entry.name}/", entry.path))
            else:
                yield f"{prefix}{entry.name}", entry.path


def loose_path(refs: Path, name: str) -> str | None:
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


def _kind(path: str) -> int:
    """The file type bits of `path` (never following a symlink); 0 if it is gone."""
    try:
        return stat.S_IFMT(os.lstat(path).st_mode)
    except OSError:
        return 0
