"""Verified loading: check a resolved view before the application reads it.

    check_view_files(directory, verify)   -> Listing (what was checked, the files' ids)

`directory` is a view, `.mstore/views/<view id>`, as `models/<env>` resolves. Its record
`.mstore/views/<view id>.json` (docs/FORMAT.md, "Views") says what every file was built
from and its `stat` after the build. `verify=True` compares, for every file: present,
nothing beside the record's files, of the right kind, `size` equal, and the fields of
`record_rules.compared_fields` for the record's link mode (the rules `view_records`
applies to builds). `verify="hash"` also re-hashes every file and compares it with its
object id. A view without a record (built by an older mstore) is checked against its
ref's manifest by listing and size (metadata.json by presence: the policy may render
it), and the result says so. Any difference raises IntegrityError naming the file.

Standard library only, plus mstore.hashing (blake3) when hashing is asked for: this
module is imported by `mstore.settings`, which applications import at start-up.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mstore.errors import IntegrityError, NotFoundError
from mstore.record_rules import check_record, compared_fields

if TYPE_CHECKING:  # not built at run time: this module's import cost is the application's
    from typing import Literal, TypeAlias

    Verify: TypeAlias = bool | Literal["hash"]

Record = tuple[str, dict[str, dict[str, Any]]]  # (link mode, files) of a view record
METADATA_NAME = "metadata.json"
CHECKED_RECORD = "record"  # size, mode, inode and stable times against the view record
CHECKED_LISTING = "listing"  # no record: presence and size against the ref's manifest
CHECKED_HASH = "hash"  # as above, and every file re-hashed against its object id


@dataclass(frozen=True)
class Expected:
    """One file of a view as mstore made it: its object and size (None: not known)."""

    id: str | None
    size: int | None


@dataclass(frozen=True)
class Listing:
    """The files of one view and how the check that produced this listing went."""

    directory: Path
    files: Mapping[str, Expected]
    recorded: bool  # the view has a record (else: listed from the ref's manifest)
    checked: str  # CHECKED_RECORD, CHECKED_LISTING or CHECKED_HASH


def listing_of(directory: Path, environment: str) -> Listing:
    """The files `directory` should hold, from its record or else its ref's manifest."""
    return _listing(directory, environment)[0]


def _listing(directory: Path, environment: str) -> tuple[Listing, Record | None]:
    views = directory.parent
    if views.name != "views" or views.parent.name != ".mstore":
        raise IntegrityError(
            f"models/{environment} resolves to {directory}, which is not a view of a store; "
            f"run `mstore checkout {environment}` to relink it"
        )
    record = _read_record(views / f"{directory.name}.json", directory.name)
    if record is not None:
        files = record[1]
        expected = {p: Expected(str(f["id"]), int(f["size"])) for p, f in files.items()}
        return Listing(directory, expected, True, CHECKED_RECORD), record
    manifest = _ref_manifest(views.parent, environment)
    expected = {
        path: Expected(None, None) if path == METADATA_NAME else Expected(e["id"], e["size"])
        for path, e in manifest.items()
    }
    if METADATA_NAME not in expected and (directory / METADATA_NAME).exists():
        expected[METADATA_NAME] = Expected(None, None)  # the policy's rendered metadata
    return Listing(directory, expected, False, CHECKED_LISTING), None


def check_view_files(directory: Path, environment: str, verify: Verify) -> Listing:
    """Check `directory` (see the module's docstring); IntegrityError on any difference."""
    views = directory.parent
    listing, record = _listing(directory, environment)
    where = f"models/{environment} ({directory.name[:12]})"
    present = _walk(directory)
    extra = sorted(set(present) - set(listing.files))
    if extra:
        raise _damaged(where, extra[0], "is not a file of this version", environment)
    for path, want in sorted(listing.files.items()):
        if path not in present:
            raise _damaged(where, path, "is missing", environment)
        target = directory.joinpath(*path.split("/"))
        lst = present[path]
        link_mode = record[0] if record is not None else None
        if link_mode == "symlink":
            objects = views.parent / "objects"
            wanted = os.path.relpath(objects / str(want.id)[:2] / str(want.id)[2:], target.parent)
            if not stat.S_ISLNK(lst.st_mode) or os.readlink(target) != wanted:
                raise _damaged(where, path, "does not link to its object", environment)
        elif link_mode is not None and not stat.S_ISREG(lst.st_mode):
            raise _damaged(where, path, "is not a regular file", environment)
        try:
            st = os.stat(target)
        except OSError as err:
            raise _damaged(where, path, f"cannot be read ({err.strerror})", environment) from None
        if not stat.S_ISREG(st.st_mode):
            raise _damaged(where, path, "is not a regular file", environment)
        if want.size is not None and st.st_size != want.size:
            raise _damaged(where, path, f"has {st.st_size} bytes, not {want.size}", environment)
        if record is not None:
            fields = record[1][path]
            for name in compared_fields(record[0]):
                if fields[name] != getattr(st, f"st_{name}"):
                    raise _damaged(
                        where,
                        path,
                        f"was changed after mstore built it ({name} differs from the view record)",
                        environment,
                    )
    if verify == "hash":
        from mstore.hashing import hash_file  # blake3: only when hashing is asked for

        for path, want in sorted(listing.files.items()):
            if want.id is not None:
                target = directory.joinpath(*path.split("/"))
                if hash_file(target, owned=False) != want.id:
                    raise _damaged(where, path, "does not hash to its object id", environment)
        return Listing(directory, listing.files, listing.recorded, CHECKED_HASH)
    return listing


def _damaged(where: str, path: str, what: str, environment: str) -> IntegrityError:
    return IntegrityError(
        f"{where}: {path} {what}; run `mstore status` to see the damage and "
        f"`mstore restore {environment}` to rebuild the view from the store's objects"
    )


def _walk(directory: Path) -> dict[str, os.stat_result]:
    """Every non-directory below `directory` by relative POSIX path, with its lstat."""
    found: dict[str, os.stat_result] = {}
    stack = [directory]
    while stack:
        current = stack.pop()
        with os.scandir(current) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(Path(entry.path))
                else:
                    found[Path(entry.path).relative_to(directory).as_posix()] = st
    return found


def _read_record(path: Path, view_id: str) -> Record | None:
    """(link mode, files) of a view record; None without one; IntegrityError if bad."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return check_record(json.loads(data), view_id, lambda value: isinstance(value, str))
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise IntegrityError(f"record of view {view_id[:12]} is unreadable: {err}") from None


def _ref_manifest(store: Path, environment: str) -> dict[str, dict[str, Any]]:
    """The files of the manifest ref `environment` names (record-less views only)."""
    try:
        text = store.joinpath("refs", *environment.split("/")).read_text("ascii").strip()
        object_path = store / "objects" / text[:2] / text[2:]
        if len(text) != 64 or not object_path.is_file():
            raise ValueError(text[:80])
        document = json.loads(object_path.read_bytes())
        files = document["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not an object")
        return {p: {"id": str(e["id"]), "size": int(e["size"])} for p, e in files.items()}
    except FileNotFoundError:
        raise NotFoundError(f"{environment!r} is not a ref of the store") from None
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        raise IntegrityError(f"ref {environment} or its manifest is unreadable: {err}") from None
