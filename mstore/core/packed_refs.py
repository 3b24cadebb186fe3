"""Packed refs: many refs in one file, so that reading every ref costs one read, not one
file per ref (`mstore list` of a store with thousands of archived versions).

    .mstore/packed-refs
      # mstore packed-refs 1
      <manifest id> <name>
      ...                       one line per ref, sorted by name

A ref's value is its loose file under `refs/` if there is one, else its line here.
Writers hold the store lock and keep this order, so that a reader without the lock
always finds each ref at its old or its new value:

- pack (`RefStore.pack`, run by gc): write this file with every ref's current value
  (temporary file, fsync, rename, fsync `.mstore/`), then delete each loose file that
  holds the packed value;
- delete: rewrite this file without the ref, then delete its loose file;
- write: a loose file, which takes precedence over any packed line.

Readers therefore look at loose files first and this file second: a loose file that a
pack removed after the reader looked was already in the packed file it then reads.
The file is validated as a whole before use: a malformed line, an invalid name or id,
or a name listed twice is IntegrityError. Lines end at b"\n" and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from mstore.core import fsutil, untrusted
from mstore.core.ids import is_object_id
from mstore.errors import IntegrityError, InvalidInputError

HEADER = b"# mstore packed-refs 1\n"
# Far above any real store (a line is about 100 bytes): a bigger file is not read.
MAX_PACKED_BYTES = 256 << 20


def encode_packed(refs: Mapping[str, str]) -> bytes:
    """The canonical bytes of a packed-refs file holding `refs` (name -> manifest id)."""
    lines = [f"{refs[name]} {name}\n" for name in sorted(refs)]
    return HEADER + "".join(lines).encode("utf-8")


def decode_packed(data: bytes, where: str, check_name: Callable[[str], str]) -> dict[str, str]:
    """Name -> manifest id from packed-refs bytes; IntegrityError for anything else
    (`check_name` refuses an invalid ref name with InvalidInputError)."""
    if not data.startswith(HEADER):
        raise IntegrityError(f"{where} does not start with {HEADER.decode().strip()!r}")
    if not data.endswith(b"\n"):
        raise IntegrityError(f"{where} is truncated (no newline at its end)")
    try:
        text = data[len(HEADER) :].decode("utf-8")
    except UnicodeDecodeError:
        raise IntegrityError(f"{where} is not valid UTF-8") from None
    refs: dict[str, str] = {}
    previous = ""
    # Lines end at "\n" only: str.splitlines() would also end one inside a name, at
    # U+2028 or U+0085 (refused in names today, but a reader must not depend on that).
    lines = text.split("\n")[:-1]
    for number, line in enumerate(lines, start=2):
        manifest_id, _, name = line.partition(" ")
        if not is_object_id(manifest_id):
            raise IntegrityError(f"{where}, line {number}: {line[:80]!r} does not start with an id")
        try:
            check_name(name)
        except InvalidInputError as err:
            raise IntegrityError(f"{where}, line {number}: {err}") from None
        if name <= previous:
            raise IntegrityError(
                f"{where}, line {number}: ref {name!r} is out of order or listed twice"
            )
        refs[name] = manifest_id
        previous = name
    return refs


def read_packed(path: Path, check_name: Callable[[str], str]) -> dict[str, str]:
    """The refs in the packed-refs file at `path` ({} if there is none)."""
    try:
        data = untrusted.read_bounded(path, MAX_PACKED_BYTES)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    return decode_packed(data, str(path), check_name)


def write_packed(path: Path, refs: Mapping[str, str]) -> None:
    """Replace the packed-refs file atomically (removed when `refs` is empty)."""
    if refs:
        fsutil.atomic_write(path, encode_packed(refs))
        return
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsutil.fsync_dir(path.parent)
