"""What each file of a version would import if loaded, read without unpickling.

    scan_file(f, size, name) -> FileScan(kind, globals, problems)

Files are told apart by their bytes, never by their names (a pickle under `.bin` is a
pickle: picklescan's CVE-2025-10155):

- a zip archive (`PK\\x03\\x04` at byte 0, where `torch.load` looks): every entry whose
  name ends in `.pkl` (`data.pkl`, TorchScript's `constants.pkl`) is scanned as a
  pickle. The archive must be regular, or it is refused rather than guessed at: entries
  from byte 0 with nothing between them but their data descriptors, up to the central
  directory; no name twice; local headers agreeing with the directory (name, method,
  flags); only the flags `torch.save` writes (data descriptor, UTF-8 names); every
  pickle entry's bytes matching its CRC-32;
- anything else is read as a stream of pickles (`imports.pickle_imports`); bytes that
  do not start with one name nothing (`other`). A safetensors file is one of those: its
  first bytes are a length, not a pickle, so it names nothing and needs no allowlist.

Work: the zip directory, the local headers, and the pickle entries; the tensor data of
a checkpoint is never read. Any other file is read opcode by opcode from its start: bytes
that are not a pickle (a 200 MB safetensors file) stop the walk within their first few
bytes, and only a pickle is read to its end (at most `imports.MAX_PICKLE_BYTES`; a
longer one is refused as one that cannot be judged). A safetensors file is scanned like
any other: its header length can be chosen to make the file a pickle too.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from mstore.checkpoints.imports import PickleImports, pickle_imports, read_pickle_imports
from mstore.checkpoints.model import UnreadableCheckpointError
from mstore.checkpoints.zipdir import ZipDirectory, ZipEntry, read_zip_directory
from mstore.errors import InvalidInputError

ZIP_MAGIC = b"PK\x03\x04"
ALLOWED_ZIP_FLAGS = frozenset({0x0, 0x8, 0x800, 0x808})  # data descriptor, UTF-8 names
DATA_DESCRIPTOR_SIGNATURE = 0x08074B50
MAX_PICKLE_ENTRY_BYTES = 64 << 20


@dataclass(frozen=True)
class FileScan:
    """One file: `zip`, `pickle` or `other`; the globals it names; what is irregular."""

    kind: str
    globals: frozenset[str]
    problems: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "globals": sorted(self.globals), "problems": list(self.problems)}


def scan_file(f: BinaryIO, size: int, name: str) -> FileScan:
    """Scan the file open as `f` (`size` bytes, called `name`)."""
    f.seek(0)
    if f.read(4) == ZIP_MAGIC:
        return _scan_zip(f, size, name)
    found = read_pickle_imports(f, size)
    return _from_pickle(found, "pickle" if found.is_pickle else "other", "")


def _from_pickle(found: PickleImports, kind: str, where: str) -> FileScan:
    prefix = f"{where}: " if where else ""
    return FileScan(kind, frozenset(found.globals), tuple(prefix + p for p in found.problems))


def _scan_zip(f: BinaryIO, size: int, name: str) -> FileScan:
    try:
        directory = read_zip_directory(f, size, name)
        _check_regular(f, directory, name)
    except (InvalidInputError, UnreadableCheckpointError) as err:
        return FileScan("zip", frozenset(), (f"irregular zip archive: {err}",))
    names: set[str] = set()
    problems: list[str] = []
    for entry in sorted(directory.entries.values(), key=lambda e: e.header_offset):
        if not entry.name.endswith(".pkl"):
            continue
        if entry.size > MAX_PICKLE_ENTRY_BYTES:
            problems.append(f"{entry.name} is over the {MAX_PICKLE_ENTRY_BYTES >> 20} MiB scanned")
            continue
        f.seek(entry.offset)
        data = f.read(entry.size)
        if zlib.crc32(data) != entry.crc32:
            # torch.load does not check it; a scanner that stops on it is blind (CVE-2025-10156).
            problems.append(f"{entry.name} does not match its CRC-32")
        found = pickle_imports(data)
        names |= found.globals
        problems.extend(f"{entry.name}: {problem}" for problem in found.problems)
        if not found.is_pickle:
            problems.append(f"{entry.name} is not a pickle")
    return FileScan("zip", frozenset(names), tuple(problems))


def _check_regular(f: BinaryIO, directory: ZipDirectory, name: str) -> None:
    """Nothing in the archive but its entries, each where and what the directory says."""
    position = 0
    for entry in sorted(directory.entries.values(), key=lambda e: e.header_offset):
        where = f"{name}: zip entry {entry.name!r}"
        if entry.flags not in ALLOWED_ZIP_FLAGS:
            raise InvalidInputError(f"{where} has flags {entry.flags:#x}")
        if entry.header_offset != position:
            raise InvalidInputError(
                f"{where} starts at byte {entry.header_offset}, not {position}: bytes outside "
                f"any entry"
            )
        position = entry.end
        if entry.flags & 0x8:
            position += _descriptor_length(f, entry, directory.central_offset, where)
    if position != directory.central_offset:
        raise InvalidInputError(
            f"{name}: bytes {position}..{directory.central_offset} lie between the last entry "
            f"and the zip directory"
        )


def _descriptor_length(f: BinaryIO, entry: ZipEntry, limit: int, where: str) -> int:
    """The length of the data descriptor after `entry`'s data, checked against it:
    an optional signature, the CRC-32, and the sizes (4 bytes each, or 8 for zip64)."""
    f.seek(entry.end)
    data = f.read(min(24, max(0, limit - entry.end)))
    start = 4 if data[:4] == struct.pack("<I", DATA_DESCRIPTOR_SIGNATURE) else 0
    for width, code in ((8, "<IQQ"), (4, "<III")):
        length = start + 4 + 2 * width
        if len(data) >= length:
            crc, packed, plain = struct.unpack_from(code, data, start)
            if (crc, packed, plain) == (entry.crc32, entry.size, entry.size):
                return length
    raise InvalidInputError(f"{where}: its data descriptor does not match the directory")
