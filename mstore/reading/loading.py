"""Verified loading: check a resolved view before the application reads it.

    check_view_files(directory, verify)   -> Listing (what was checked, the files' ids)

`directory` is a view, `.mstore/views/<view id>`, as `models/<env>` resolved it. The
view id names what the view shows, so the view is checked against its own description,
never against what its ref holds now (a promote may move the ref between the reader's
resolution of the link and its check; the resolved view stays what it was):

- with a record `.mstore/views/<view id>.json` (docs/FORMAT.md, "Views"), against the
  record: for every file present, nothing beside the record's files, of the right kind,
  `size` equal, and the fields of `record_rules.compared_fields` for the record's link
  mode (the rules `view_records` applies to builds);
- without one (a view built by an older mstore, or the shipped example store, whose
  records could not survive a clone), against the manifest whose view has this id:
  candidates are the ref's value (read as the store reads refs, `ref_reading`: loose
  file, then `packed-refs`) and then its earlier values in the log, newest first, at
  most `UNRECORDED_CANDIDATES`; each gives a listing (its `metadata.json` as the view
  shows it, hashed) whose id (`core.view_ids.view_id`) must be the view's. Then listing,
  kind and size are compared, and `metadata.json` is known by its hash.

`verify="hash"` also re-hashes every file and compares it with its object id. Any
difference raises IntegrityError naming the file.

Standard library only for a view with a record (plus mstore.core.hashing, blake3, when
hashing is asked for): this module is imported by `mstore.settings`, which applications
import at start-up. A view without a record costs the store's own readers (imported
then) and the hash of its `metadata.json`.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mstore.core.record_rules import STABLE_TIMES, check_record, compared_fields
from mstore.core.ref_reading import read_ref
from mstore.core.view_ids import LinkMode
from mstore.errors import Hint, IntegrityError, InvalidInputError, NotFoundError

if TYPE_CHECKING:  # not built at run time: this module's import cost is the application's
    from typing import Literal, TypeAlias

    Verify: TypeAlias = bool | Literal["hash"]

Record = tuple[LinkMode, dict[str, dict[str, Any]]]  # (link mode, files) of a view record
# How many values of its ref a view without a record is compared with (newest first).
UNRECORDED_CANDIDATES = 16
CHECKED_RECORD = "record"  # size, mode, inode and stable times against the view record
CHECKED_LISTING = "listing"  # no record: listing and size against the manifest it shows
CHECKED_HASH = "hash"  # as above, and every file re-hashed against its object id


@dataclass(frozen=True)
class Expected:
    """One file of a view as mstore made it: its object and size."""

    id: str
    size: int


@dataclass(frozen=True)
class Listing:
    """The files of one view and how the check that produced this listing went."""

    directory: Path
    files: Mapping[str, Expected]
    recorded: bool  # the view has a record (else: listed from the manifest it shows)
    checked: str  # CHECKED_RECORD, CHECKED_LISTING or CHECKED_HASH


def listing_of(directory: Path, environment: str) -> Listing:
    """The files `directory` should hold, from its record or else the manifest it shows."""
    return _listing(directory, environment)[0]


def _listing(directory: Path, environment: str) -> tuple[Listing, LinkMode, Record | None]:
    """The view's listing, its link mode, and its record if it has one."""
    views = directory.parent
    if views.name != "views" or views.parent.name != ".mstore":
        raise IntegrityError(
            f"models/{environment} resolves to {directory}, which is not a view of a store; run ",
            Hint(command="checkout", args=(environment,)),
            " to relink it",
        )
    record = _read_record(views / f"{directory.name}.json", directory.name)
    if record is not None:
        files = record[1]
        expected = {p: Expected(str(f["id"]), int(f["size"])) for p, f in files.items()}
        return Listing(directory, expected, True, CHECKED_RECORD), record[0], record
    listing, link_mode = _unrecorded_listing(directory, environment)
    return listing, link_mode, None


def check_view_files(directory: Path, environment: str, verify: Verify) -> Listing:
    """Check `directory` (see the module's docstring); IntegrityError on any difference."""
    views = directory.parent
    listing, link_mode, record = _listing(directory, environment)
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
        if link_mode == LinkMode.SYMLINK:
            objects = views.parent / "objects"
            wanted = os.path.relpath(objects / want.id[:2] / want.id[2:], target.parent)
            if not stat.S_ISLNK(lst.st_mode) or os.readlink(target) != wanted:
                raise _damaged(where, path, "does not link to its object", environment)
        elif not stat.S_ISREG(lst.st_mode):
            raise _damaged(where, path, "is not a regular file", environment)
        try:
            st = os.stat(target)
        except OSError as err:
            raise _damaged(where, path, f"cannot be read ({err.strerror})", environment) from None
        if not stat.S_ISREG(st.st_mode):
            raise _damaged(where, path, "is not a regular file", environment)
        if st.st_size != want.size:
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
        from mstore.core.hashing import hash_file  # blake3: only when hashing is asked for

        for path, want in sorted(listing.files.items()):
            target = directory.joinpath(*path.split("/"))
            if hash_file(target, owned=False) != want.id:
                raise _damaged(where, path, "does not hash to its object id", environment)
        return Listing(directory, listing.files, listing.recorded, CHECKED_HASH)
    return listing


def _damaged(where: str, path: str, what: str, environment: str) -> IntegrityError:
    return IntegrityError(
        f"{where}: {path} {what}; run ",
        Hint(command="status"),
        " to see the damage and ",
        Hint(command="restore", args=(environment,)),
        " to rebuild the view from the store's objects",
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


def _unrecorded_listing(directory: Path, environment: str) -> tuple[Listing, LinkMode]:
    """The listing and link mode of a view without a record: those of the manifest whose
    view has the directory's id, among the values ref `environment` has had."""
    # Only a view without a record needs these: the store's readers, orjson and blake3.
    from mstore.core.layout import Layout
    from mstore.core.manifests import METADATA_FILE, FileEntry, decode_manifest
    from mstore.core.objects import ObjectStore
    from mstore.core.view_ids import view_id

    store = directory.parent.parent
    objects = ObjectStore(Layout(store.parent))
    shown = _shown_metadata(directory / METADATA_FILE)
    for manifest_id in _ref_values(store, environment):
        try:
            manifest = decode_manifest(objects.read_bytes(manifest_id), manifest_id)
        except NotFoundError:
            continue  # an old value whose manifest gc removed: not this view's
        except InvalidInputError as err:
            raise IntegrityError(f"manifest {manifest_id[:12]} is unreadable: {err}") from None
        files = dict(manifest.files)
        entry = files.get(METADATA_FILE)
        if entry is not None and shown is not None:
            files[METADATA_FILE] = FileEntry(shown[0], shown[1], entry.mode)  # as rendered
        for link_mode in STABLE_TIMES:
            if view_id({p: (e.id, e.mode) for p, e in files.items()}, link_mode) == directory.name:
                expected = {path: Expected(e.id, e.size) for path, e in files.items()}
                return Listing(directory, expected, False, CHECKED_LISTING), link_mode
    raise IntegrityError(
        f"models/{environment} ({directory.name[:12]}) has no record and is the view of "
        f"none of the last {UNRECORDED_CANDIDATES} values of ref {environment} (its "
        f"metadata.json or the view was changed, or the view belongs to another ref); run ",
        Hint(command="status"),
        " to see the damage and ",
        Hint(command="restore", args=(environment,)),
        " to rebuild it",
    )


def _shown_metadata(path: Path) -> tuple[str, int] | None:
    """(object id, size) of the metadata.json a view shows; None if it has none."""
    from mstore.core.hashing import hash_file

    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None  # no listing will match: check_view_files names the file
    return hash_file(path, owned=False), st.st_size


def _ref_values(store: Path, environment: str) -> Iterator[str]:
    """The value of ref `environment`, then its earlier values in the log, newest first:
    distinct, at most UNRECORDED_CANDIDATES. NotFoundError if it never had one."""
    from mstore.core.history import History
    from mstore.core.layout import Layout

    layout = Layout(store.parent)
    current = read_ref(layout, environment)
    logged = (v for e in History(layout.log).newest_first(environment) for v in (e.new, e.old))
    seen: set[str] = set()
    for value in itertools.chain([current], logged):
        if value is not None and value not in seen:
            seen.add(value)
            yield value
            if len(seen) == UNRECORDED_CANDIDATES:
                return
    if not seen:
        raise NotFoundError(f"{environment!r} is not a ref of the store")
