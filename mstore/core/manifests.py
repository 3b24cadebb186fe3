"""Manifest: the canonical JSON object that names one model version.

    {"files": {"encoders.pkl": {"id": "<64 hex>", "mode": 420, "size": 5123}, ...},
     "format": 1,
     "kind": "mstore/manifest",
     "lineage": {"author": "ana", "message": "...", "parent": "<64 hex>" | null,
                 "time": "2024-11-15T10:00:00Z"},
     "metadata": {...the version's metadata.json, every key kept...} | null}

Canonical bytes are orjson with sorted keys and no whitespace; decoding re-encodes and
insists on the same bytes, which also refuses duplicate keys and non-canonical forms.
Metadata integers are 64-bit (what orjson keeps exactly); larger ones are refused.
Paths are relative POSIX paths that stay inside the view (see `check_manifest_path`).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from mstore.core import untrusted
from mstore.core.hashing import is_object_id
from mstore.errors import InvalidInputError, MstoreError, RefusedError

FORMAT_VERSION = 1
MANIFEST_KIND = "mstore/manifest"
METADATA_FILE = "metadata.json"
MODE_FILE = 0o644
MODE_EXECUTABLE = 0o755
MAX_PATH_BYTES = 4096
MAX_COMPONENT_BYTES = 255
MAX_METADATA_DEPTH = 32
# The integers orjson reads and writes exactly; it reads a longer integer as a float
# (123456789012345678901234567890 would become 1.2345678901234568e+29), so metadata
# holding one is refused rather than stored rounded.
MIN_INTEGER = -(1 << 63)
MAX_INTEGER = (1 << 64) - 1
RESERVED_COMPONENTS = frozenset({".mstore", ".git"})
_BAD_PATH_CHARACTER = re.compile(r"[\x00-\x1f\x7f\\]")
# Every canonical manifest starts with these bytes (sorted keys put "files" first): a
# cheap test before a full decode.
MANIFEST_PREFIX = b'{"files":{'


@dataclass(frozen=True)
class FileEntry:
    """One file of a version: its object id, size in bytes and mode (0644 or 0755)."""

    id: str
    size: int
    mode: int = MODE_FILE


@dataclass(frozen=True)
class Lineage:
    """Where a manifest came from: its parent manifest, who made it, when and why."""

    parent: str | None
    author: str
    time: str
    message: str


@dataclass(frozen=True)
class Manifest:
    files: Mapping[str, FileEntry]
    metadata: Mapping[str, Any] | None
    lineage: Lineage
    format: int = field(default=FORMAT_VERSION)

    def encode(self) -> bytes:
        """Canonical bytes (sorted keys, no whitespace): equal manifests, equal ids."""
        check_files(self.files)
        if self.metadata is not None:
            check_metadata(self.metadata)
        return self._encode_checked()

    def _encode_checked(self) -> bytes:
        """`encode` without re-validating (for `decode_manifest`, which just did)."""
        document = {
            "files": {
                path: {"id": e.id, "mode": e.mode, "size": e.size} for path, e in self.files.items()
            },
            "format": self.format,
            "kind": MANIFEST_KIND,
            "lineage": {
                "author": self.lineage.author,
                "message": self.lineage.message,
                "parent": self.lineage.parent,
                "time": self.lineage.time,
            },
            "metadata": self.metadata,
        }
        try:
            return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError as err:
            raise InvalidInputError(f"manifest cannot be encoded as JSON: {err}") from None

    def same_content(self, other: Manifest) -> bool:
        """Same files and metadata, whatever the lineage."""
        return dict(self.files) == dict(other.files) and self.metadata == other.metadata


def starts_like_manifest(path: Path) -> bool:
    """Whether the object file at `path` begins as every canonical manifest does: a cheap
    test before a full decode. Anything but a regular file (a FIFO planted among the
    objects) is not one, and is never waited on."""
    try:
        fd = untrusted.open_regular(path)
    except (OSError, MstoreError):
        return False
    try:
        return os.read(fd, len(MANIFEST_PREFIX)) == MANIFEST_PREFIX
    except OSError:
        return False
    finally:
        os.close(fd)


def decode_manifest(data: bytes, object_id: str = "?") -> Manifest:
    """Parse and validate manifest bytes; refuse anything that is not canonical."""
    where = f"manifest {object_id}"
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise InvalidInputError(f"{where} is not valid JSON: {err}") from None
    if not isinstance(document, dict) or document.get("kind") != MANIFEST_KIND:
        raise InvalidInputError(f"{where} is not an mstore manifest")
    version = document.get("format")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidInputError(f"{where} has no valid format version")
    if version > FORMAT_VERSION:
        raise RefusedError(
            f"{where} uses format {version}; this mstore reads format {FORMAT_VERSION} "
            f"(upgrade mstore)"
        )
    if set(document) != {"files", "format", "kind", "lineage", "metadata"}:
        raise InvalidInputError(f"{where} has unexpected or missing fields")
    files = _decode_files(document["files"], where)
    metadata = document["metadata"]
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidInputError(f"{where}: metadata must be a JSON object or null")
    lineage = _decode_lineage(document["lineage"], where)
    manifest = Manifest(files=files, metadata=metadata, lineage=lineage, format=version)
    if metadata is not None:
        check_metadata(metadata)
    if manifest._encode_checked() != data:
        raise InvalidInputError(f"{where} is not in canonical form (duplicate keys or reformatted)")
    return manifest


def _decode_files(raw: object, where: str) -> dict[str, FileEntry]:
    if not isinstance(raw, dict) or not raw:
        raise InvalidInputError(f"{where}: files must be a non-empty JSON object")
    files: dict[str, FileEntry] = {}
    for path, entry in raw.items():
        if not isinstance(entry, dict) or set(entry) != {"id", "mode", "size"}:
            raise InvalidInputError(f"{where}: entry {path!r} must have exactly id, mode, size")
        object_id, size, mode = entry["id"], entry["size"], entry["mode"]
        if not isinstance(object_id, str) or not is_object_id(object_id):
            raise InvalidInputError(f"{where}: entry {path!r} has an invalid object id")
        if not _is_int(size) or size < 0:
            raise InvalidInputError(f"{where}: entry {path!r} has an invalid size")
        if mode not in (MODE_FILE, MODE_EXECUTABLE) or not _is_int(mode):
            raise InvalidInputError(f"{where}: entry {path!r} has an invalid mode {mode!r}")
        files[path] = FileEntry(object_id, size, mode)
    check_files(files)
    return files


def _decode_lineage(raw: object, where: str) -> Lineage:
    if not isinstance(raw, dict) or set(raw) != {"author", "message", "parent", "time"}:
        raise InvalidInputError(f"{where}: lineage must have author, message, parent, time")
    parent = raw["parent"]
    if parent is not None and (not isinstance(parent, str) or not is_object_id(parent)):
        raise InvalidInputError(f"{where}: lineage parent is not an object id")
    for key in ("author", "message", "time"):
        if not isinstance(raw[key], str):
            raise InvalidInputError(f"{where}: lineage {key} must be a string")
    return Lineage(parent=parent, author=raw["author"], time=raw["time"], message=raw["message"])


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_manifest_path(path: object) -> str:
    """Refuse any path that could escape or shadow the view; return it unchanged."""
    if not isinstance(path, str) or not path:
        raise InvalidInputError(f"manifest path {path!r} must be a non-empty string")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(
            f"file name {path!r} is not valid UTF-8; rename it (manifests hold UTF-8 JSON)"
        ) from None
    if len(encoded) > MAX_PATH_BYTES:
        raise InvalidInputError(
            f"manifest path {path[:40]!r}... is longer than {MAX_PATH_BYTES} bytes"
        )
    if path.startswith("/"):
        raise InvalidInputError(f"manifest path {path!r} is absolute")
    if _BAD_PATH_CHARACTER.search(path):
        raise InvalidInputError(f"manifest path {path!r} holds a backslash or control character")
    for component in path.split("/"):
        if component in ("", ".", ".."):
            raise InvalidInputError(f"manifest path {path!r} has an empty, '.' or '..' component")
        if component.lower() in RESERVED_COMPONENTS:
            raise InvalidInputError(f"manifest path {path!r} names a reserved directory")
        if len(component.encode("utf-8")) > MAX_COMPONENT_BYTES:
            raise InvalidInputError(f"manifest path {path!r} has a component over 255 bytes")
    return path


def check_files(files: Mapping[str, FileEntry]) -> None:
    """Every path valid, and no path is also a directory of another (`a` and `a/b`)."""
    if not files:
        raise InvalidInputError("a manifest needs at least one file")
    for path in files:
        check_manifest_path(path)
    directories = {p.rsplit("/", i)[0] for p in files for i in range(1, p.count("/") + 1)}
    clash = directories.intersection(files)
    if clash:
        raise InvalidInputError(
            f"manifest path {sorted(clash)[0]!r} is both a file and a directory"
        )


def check_metadata(value: object, depth: int = 0, where: str = "metadata") -> None:
    """Metadata is plain JSON: finite numbers, string keys, bounded nesting."""
    if depth > MAX_METADATA_DEPTH:
        raise InvalidInputError(f"{where} is nested deeper than {MAX_METADATA_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(
            f"{where} holds a non-finite number ({value}); use null or a number"
        )
    if isinstance(value, int) and not MIN_INTEGER <= value <= MAX_INTEGER:
        raise InvalidInputError(
            f"{where} holds an integer beyond 64 bits, which would be stored rounded; "
            f"write it as a string (or as a float, if rounding is meant)"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"{where} has a non-string key {key!r}")
            check_metadata(item, depth + 1, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_metadata(item, depth + 1, f"{where}[{index}]")
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise InvalidInputError(f"{where} holds a {type(value).__name__}, not plain JSON")


def parse_metadata(data: bytes, source: str) -> dict[str, Any]:
    """Parse a version's metadata.json: a JSON object of finite values."""
    try:
        metadata = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise InvalidInputError(f"{source} is not valid JSON ({err}); fix or remove it") from None
    if not isinstance(metadata, dict):
        raise InvalidInputError(f"{source} must hold a JSON object")
    check_metadata(metadata, where=source)
    # orjson has read an integer beyond 64 bits as a float: read the integers again,
    # exactly (nesting is bounded now), so that such a value is refused, not rounded.
    check_metadata(json.loads(data, parse_int=_exact_integer), where=source)
    return metadata


def _exact_integer(literal: str) -> int:
    """An integer literal's value; one too long for any 64-bit integer becomes one just
    out of range, so that int() never reads thousands of digits."""
    return int(literal) if len(literal) <= 21 else MAX_INTEGER + 1
