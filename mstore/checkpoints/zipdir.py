"""Read a zip archive's directory without decompressing anything.

Only what torch.save writes is accepted: a single-disk archive, zip64 or not, whose
entries are all STORED (uncompressed) and unencrypted. The layout read, from the end::

    ... [local header][data] ... [central directory] [zip64 end record]
        [zip64 locator] [end of central directory record (22 bytes + comment)]

Every number is checked before use: the directory lies inside the file and ends where
the end records begin, it holds exactly the entries it claims, each local header is
where the directory says, names the same file, and its data ends before the next
entry or the directory starts. Entries never overlap.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from mstore.checkpoints.model import UnreadableCheckpointError
from mstore.errors import InvalidInputError

END_RECORD = struct.Struct("<IHHHHIIH")
ZIP64_LOCATOR = struct.Struct("<IIQI")
ZIP64_END_RECORD = struct.Struct("<IQHHIIQQQQ")
CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")
LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
END_SIGNATURE = 0x06054B50
ZIP64_LOCATOR_SIGNATURE = 0x07064B50
ZIP64_END_SIGNATURE = 0x06064B50
CENTRAL_SIGNATURE = 0x02014B50
LOCAL_SIGNATURE = 0x04034B50
ZIP64_EXTRA_ID = 0x0001
STORED = 0
MAX_COMMENT = 0xFFFF
TAIL_GUESS = 4096
MAX_DIRECTORY_BYTES = 64 << 20
"""Refuse directories larger than this (about a million entries)."""


@dataclass(frozen=True)
class ZipEntry:
    """One STORED entry: its name and where its bytes are in the file."""

    name: str
    offset: int
    """Absolute offset of the entry's first data byte."""
    size: int
    crc32: int
    header_offset: int
    """Offset of the entry's local header."""
    flags: int = 0
    """The general purpose bit flags (the local header's equal the directory's)."""

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class ZipDirectory:
    entries: dict[str, ZipEntry]
    bytes_read: int
    central_offset: int = 0
    """Where the central directory starts: the end of the entries' region."""


def read_zip_directory(f: BinaryIO, size: int, name: str) -> ZipDirectory:
    """The entries of the zip archive open as `f` (`size` bytes, called `name`)."""
    reader = _Reader(f, size, name)
    # The end record sits in the last 22 bytes unless the archive has a comment (torch
    # writes none): look in a small tail first, then in the largest a comment allows.
    for window in (TAIL_GUESS, END_RECORD.size + MAX_COMMENT):
        tail_start = max(0, size - window)
        tail = reader.read(tail_start, size - tail_start)
        at = _find_end_record(tail)
        if at >= 0 or tail_start == 0:
            break
    if at < 0:
        raise InvalidInputError(f"{name}: no zip end-of-central-directory record found")
    end_offset = tail_start + at
    _, disk, cd_disk, _, count, cd_size, cd_offset, _ = END_RECORD.unpack_from(tail, at)
    directory_end = end_offset
    # torch.save writes the zip64 records whatever the size; other writers only when a
    # field overflows (0xFFFF / 0xFFFFFFFF placeholders), and then they must be there.
    needs_zip64 = 0xFFFF in (disk, cd_disk, count) or 0xFFFFFFFF in (cd_size, cd_offset)
    if needs_zip64 or _has_zip64_locator(reader, end_offset):
        count, cd_size, cd_offset, directory_end = _zip64_end(reader, end_offset)
    elif disk != 0 or cd_disk != 0:
        raise UnreadableCheckpointError(f"{name}: a multi-disk zip archive")
    if cd_offset + cd_size != directory_end:
        raise InvalidInputError(
            f"{name}: zip directory claims bytes {cd_offset}..{cd_offset + cd_size} but must end "
            f"at byte {directory_end} (corrupt, or data was prepended to the archive)"
        )
    if cd_size > MAX_DIRECTORY_BYTES:
        raise UnreadableCheckpointError(
            f"{name}: zip directory of {cd_size} bytes, over the {MAX_DIRECTORY_BYTES} limit"
        )
    if count * CENTRAL_HEADER.size > cd_size:
        raise InvalidInputError(f"{name}: zip directory claims {count} entries in {cd_size} bytes")
    directory = reader.read(cd_offset, cd_size)
    entries = _central_entries(reader, directory, count, cd_offset)
    _check_no_overlap(entries, name)
    return ZipDirectory({entry.name: entry for entry in entries}, reader.bytes_read, cd_offset)


class _Reader:
    """Positional reads that must return every byte asked for."""

    def __init__(self, f: BinaryIO, size: int, name: str) -> None:
        self.f, self.size, self.name, self.bytes_read = f, size, name, 0

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise InvalidInputError(
                f"{self.name}: zip structure points at bytes {offset}..{offset + length}, "
                f"past the end of the file ({self.size} bytes)"
            )
        self.f.seek(offset)
        data = self.f.read(length)
        self.bytes_read += len(data)
        if len(data) != length:
            raise InvalidInputError(f"{self.name}: ended at byte {offset + len(data)} while read")
        return data


def _find_end_record(tail: bytes) -> int:
    at = tail.rfind(END_SIGNATURE.to_bytes(4, "little"))
    while at >= 0 and not _is_end_record(tail, at):
        at = tail.rfind(END_SIGNATURE.to_bytes(4, "little"), 0, at)
    return at


def _is_end_record(tail: bytes, at: int) -> bool:
    """A signature match is the record only if its comment reaches exactly the file's end."""
    if at + END_RECORD.size > len(tail):
        return False
    comment_length: int = END_RECORD.unpack_from(tail, at)[7]
    return at + END_RECORD.size + comment_length == len(tail)


def _has_zip64_locator(reader: _Reader, end_offset: int) -> bool:
    if end_offset < ZIP64_LOCATOR.size:
        return False
    signature = reader.read(end_offset - ZIP64_LOCATOR.size, 4)
    return int.from_bytes(signature, "little") == ZIP64_LOCATOR_SIGNATURE


def _zip64_end(reader: _Reader, end_offset: int) -> tuple[int, int, int, int]:
    """(entries, directory size, directory offset, where the directory must end)."""
    name = reader.name
    locator_offset = end_offset - ZIP64_LOCATOR.size
    locator = reader.read(locator_offset, ZIP64_LOCATOR.size)
    signature, disk, record_offset, disks = ZIP64_LOCATOR.unpack(locator)
    if signature != ZIP64_LOCATOR_SIGNATURE:
        raise InvalidInputError(f"{name}: zip end record needs zip64 but has no zip64 locator")
    if disk != 0 or disks != 1:
        raise UnreadableCheckpointError(f"{name}: a multi-disk zip archive")
    if record_offset + ZIP64_END_RECORD.size > locator_offset:
        raise InvalidInputError(f"{name}: zip64 end record at byte {record_offset} is misplaced")
    record = reader.read(record_offset, ZIP64_END_RECORD.size)
    (signature, record_size, _, _, disk, cd_disk, _, count, cd_size, cd_offset) = (
        ZIP64_END_RECORD.unpack(record)
    )
    if signature != ZIP64_END_SIGNATURE or record_offset + 12 + record_size != locator_offset:
        raise InvalidInputError(f"{name}: zip64 end record at byte {record_offset} is corrupt")
    if disk != 0 or cd_disk != 0:
        raise UnreadableCheckpointError(f"{name}: a multi-disk zip archive")
    return count, cd_size, cd_offset, record_offset


def _central_entries(
    reader: _Reader, directory: bytes, count: int, cd_offset: int
) -> list[ZipEntry]:
    name = reader.name
    entries: list[ZipEntry] = []
    seen: set[str] = set()
    position = 0
    for index in range(count):
        if position + CENTRAL_HEADER.size > len(directory):
            raise InvalidInputError(f"{name}: zip directory ends inside entry {index}")
        fields = CENTRAL_HEADER.unpack_from(directory, position)
        (signature, _, _, flags, method, _, _, crc, packed, size, name_length) = fields[:11]
        extra_length, comment_length, disk, _, _, local_offset = fields[11:]
        if signature != CENTRAL_SIGNATURE:
            raise InvalidInputError(f"{name}: zip directory entry {index} has a bad signature")
        start = position + CENTRAL_HEADER.size
        position = start + name_length + extra_length + comment_length
        if position > len(directory):
            raise InvalidInputError(f"{name}: zip directory ends inside entry {index}")
        raw_name = directory[start : start + name_length]
        entry_name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
        extra = directory[start + name_length : start + name_length + extra_length]
        size, packed, local_offset, disk = _zip64_extra(extra, size, packed, local_offset, disk)
        where = f"{name}: zip entry {entry_name!r}"
        if flags & 0x1:
            raise UnreadableCheckpointError(f"{where} is encrypted")
        if method != STORED or packed != size:
            raise UnreadableCheckpointError(
                f"{where} is compressed (method {method}); torch.save stores every entry "
                "uncompressed, so this is not a torch.save archive"
            )
        if disk != 0:
            raise UnreadableCheckpointError(f"{name}: a multi-disk zip archive")
        if entry_name in seen:
            raise InvalidInputError(f"{where} appears twice in the directory")
        seen.add(entry_name)
        data_offset = _local_data_offset(reader, local_offset, raw_name, flags, where)
        if data_offset + size > cd_offset:
            raise InvalidInputError(
                f"{where} claims {size} bytes from byte {data_offset}, past the start of the "
                f"zip directory at byte {cd_offset}"
            )
        entries.append(ZipEntry(entry_name, data_offset, size, crc, local_offset, flags))
    if position != len(directory):
        raise InvalidInputError(f"{name}: zip directory holds more than its {count} entries")
    return entries


def _zip64_extra(
    extra: bytes, size: int, packed: int, offset: int, disk: int
) -> tuple[int, int, int, int]:
    """Replace the 32-bit placeholders (0xFFFFFFFF) by the zip64 extra field's values."""
    at = 0
    while at + 4 <= len(extra):
        field_id, length = struct.unpack_from("<HH", extra, at)
        body = extra[at + 4 : at + 4 + length]
        at += 4 + length
        if field_id != ZIP64_EXTRA_ID:
            continue
        values = iter(struct.unpack_from(f"<{len(body) // 8}Q", body))
        try:
            size = next(values) if size == 0xFFFFFFFF else size
            packed = next(values) if packed == 0xFFFFFFFF else packed
            offset = next(values) if offset == 0xFFFFFFFF else offset
        except StopIteration:
            raise InvalidInputError("a zip64 extra field is shorter than it must be") from None
        if disk == 0xFFFF:
            disk = int.from_bytes(body[-4:], "little") if len(body) % 8 == 4 else disk
        return size, packed, offset, disk
    return size, packed, offset, disk


def _local_data_offset(
    reader: _Reader, offset: int, raw_name: bytes, flags: int, where: str
) -> int:
    header = reader.read(offset, LOCAL_HEADER.size)
    fields = LOCAL_HEADER.unpack(header)
    signature, local_flags, method = fields[0], fields[2], fields[3]
    name_length, extra_length = fields[9], fields[10]
    if signature != LOCAL_SIGNATURE:
        raise InvalidInputError(f"{where}: no local header at byte {offset}")
    if local_flags != flags:
        # Readers that trust one header and scanners that trust the other disagree on
        # what the entry is (picklescan's CVE-2025-1945): refused, not guessed.
        raise InvalidInputError(
            f"{where}: local header flags {local_flags:#x} differ from the directory's {flags:#x}"
        )
    if method != STORED:
        raise InvalidInputError(f"{where}: local header says compressed, directory says stored")
    local_name = reader.read(offset + LOCAL_HEADER.size, name_length)
    if local_name != raw_name:
        raise InvalidInputError(f"{where}: local header names {local_name!r}")
    return int(offset + LOCAL_HEADER.size + name_length + extra_length)


def _check_no_overlap(entries: list[ZipEntry], name: str) -> None:
    """Entries (local header and data), in file order, must not overlap."""
    previous_end, previous = 0, ""
    for entry in sorted(entries, key=lambda e: e.header_offset):
        if entry.header_offset < previous_end:
            raise InvalidInputError(f"{name}: zip entries {previous!r} and {entry.name!r} overlap")
        previous_end, previous = entry.end, entry.name
