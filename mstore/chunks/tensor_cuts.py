"""Forced cut points at tensor boundaries: where a model file's tensors start and end.

A content-defined chunker resynchronises a few chunks after a change, so a changed
tensor also changes the chunk that straddles each of its edges, and with it bytes of its
unchanged neighbours. Cutting at every tensor's first and last byte keeps a changed
tensor's chunks to itself: a head retrain then moves only the head's bytes, whatever the
average chunk size (measured in docs/CHUNKING.md).

Two layouts are recognised, from their own bytes only (never from the file name):

    torch.save (zip)        [local header][entry data][local header][entry data] ...
                            [central directory][end of central directory]
    safetensors             [u64 header length N][JSON header, N bytes][tensor data ...]

For a zip, the cut points are the first byte and the end of every entry's data whose
length is at least `min_size`; for safetensors, the start of the data area and the first
byte and end of every tensor at least `min_size` long. Smaller entries (biases, norms,
the pickle) stay inside the surrounding content-defined chunks, which bounds the number
of forced cuts by about 2 x size / min_size.

Cut points are hints: any set of them yields chunks that cover the file exactly, so a
file that is neither layout, or a damaged one, simply gets none. Every offset read from
the file is checked against its size before use, and directories or headers larger than
`MAX_DIRECTORY` are ignored, so hostile input costs bounded memory. The rules here are
part of the chunking parameters' name (`CUTS_VERSION`): changing them changes chunk ids.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import orjson

CUTS_VERSION = "tensor1"
MAX_DIRECTORY = 16 << 20

ReadAt = Callable[[int, int], bytes]
"""read_at(offset, length): up to `length` bytes of the file from `offset`."""

_EOCD = struct.Struct("<IHHHHIIH")  # end of central directory record, 22 bytes
_EOCD_SIGNATURE = 0x06054B50
_ZIP64_LOCATOR = struct.Struct("<IIQI")  # 20 bytes, just before the EOCD
_ZIP64_LOCATOR_SIGNATURE = 0x07064B50
_ZIP64_EOCD = struct.Struct("<IQHHIIQQQQ")  # 56 bytes
_ZIP64_EOCD_SIGNATURE = 0x06064B50
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # central directory header, 46 bytes
_CENTRAL_SIGNATURE = 0x02014B50
_LOCAL = struct.Struct("<IHHHHHIIIHH")  # local file header, 30 bytes
_LOCAL_SIGNATURE = 0x04034B50
_MAX_COMMENT = 0xFFFF


def tensor_cut_points(read_at: ReadAt, size: int, min_size: int) -> list[int]:
    """Sorted offsets strictly inside (0, size) where a chunk must start; maybe none."""
    head = read_at(0, 8)
    if head[:4] == b"PK\x03\x04":
        points = _zip_points(read_at, size, min_size)
    elif len(head) == 8:
        points = _safetensors_points(read_at, size, min_size, int.from_bytes(head, "little"))
    else:
        points = []
    return sorted({p for p in points if 0 < p < size})


def _zip_points(read_at: ReadAt, size: int, min_size: int) -> list[int]:
    directory = _central_directory(read_at, size)
    if directory is None:
        return []
    data, entries = directory
    points: list[int] = []
    position = 0
    for _ in range(entries):
        if position + _CENTRAL.size > len(data):
            break
        fields = _CENTRAL.unpack_from(data, position)
        if fields[0] != _CENTRAL_SIGNATURE:
            break
        compressed, name_length, extra_length, comment_length = (
            fields[8],
            fields[10],
            fields[11],
            fields[12],
        )
        local_offset = fields[16]
        extra_start = position + _CENTRAL.size + name_length
        extra = data[extra_start : extra_start + extra_length]
        compressed, local_offset = _zip64_sizes(extra, fields[9], compressed, local_offset)
        position = extra_start + extra_length + comment_length
        if compressed < min_size or local_offset + _LOCAL.size > size:
            continue
        local = read_at(local_offset, _LOCAL.size)
        if len(local) < _LOCAL.size:
            continue
        header = _LOCAL.unpack(local)
        if header[0] != _LOCAL_SIGNATURE:
            continue
        start = local_offset + _LOCAL.size + header[9] + header[10]
        if start + compressed <= size:
            points += [start, start + compressed]
    return points


def _central_directory(read_at: ReadAt, size: int) -> tuple[bytes, int] | None:
    """(central directory bytes, entry count) of a zip file, or None if not found/too big."""
    tail_length = min(size, _EOCD.size + _MAX_COMMENT)
    tail = read_at(size - tail_length, tail_length)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(tail):
        return None
    fields = _EOCD.unpack_from(tail, at)
    entries, directory_size, directory_offset = fields[4], fields[5], fields[6]
    eocd_offset = size - tail_length + at
    if 0xFFFFFFFF in (directory_size, directory_offset) or entries == 0xFFFF:
        locator = read_at(eocd_offset - _ZIP64_LOCATOR.size, _ZIP64_LOCATOR.size)
        if len(locator) < _ZIP64_LOCATOR.size:
            return None
        signature, _, zip64_offset, _ = _ZIP64_LOCATOR.unpack(locator)
        if signature != _ZIP64_LOCATOR_SIGNATURE or zip64_offset + _ZIP64_EOCD.size > size:
            return None
        record = read_at(zip64_offset, _ZIP64_EOCD.size)
        if len(record) < _ZIP64_EOCD.size:
            return None
        zip64 = _ZIP64_EOCD.unpack(record)
        if zip64[0] != _ZIP64_EOCD_SIGNATURE:
            return None
        entries, directory_size, directory_offset = zip64[7], zip64[8], zip64[9]
    if directory_size > MAX_DIRECTORY or directory_offset + directory_size > size:
        return None
    data = read_at(directory_offset, directory_size)
    return (data, entries) if len(data) == directory_size else None


def _zip64_sizes(extra: bytes, uncompressed: int, compressed: int, offset: int) -> tuple[int, int]:
    """Replace 0xFFFFFFFF placeholders by the values of the zip64 extra field (id 1)."""
    position = 0
    while position + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, position)
        body = extra[position + 4 : position + 4 + length]
        position += 4 + length
        if tag != 1:
            continue
        values = [v for (v,) in struct.iter_unpack("<Q", body[: len(body) // 8 * 8])]
        if uncompressed == 0xFFFFFFFF and values:
            values.pop(0)
        if compressed == 0xFFFFFFFF and values:
            compressed = values.pop(0)
        if offset == 0xFFFFFFFF and values:
            offset = values.pop(0)
        break
    return compressed, offset


def _safetensors_points(read_at: ReadAt, size: int, min_size: int, length: int) -> list[int]:
    if not 2 <= length <= MAX_DIRECTORY or 8 + length > size:
        return []
    header = read_at(8, length)
    if header[:1] != b"{":
        return []
    try:
        document = orjson.loads(header)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(document, dict):
        return []
    data_start = 8 + length
    points = [data_start]
    for name, tensor in document.items():
        if name == "__metadata__" or not isinstance(tensor, dict):
            continue
        span = tensor.get("data_offsets")
        if not (isinstance(span, list) and len(span) == 2 and all(type(x) is int for x in span)):
            continue
        begin, end = span
        if 0 <= begin <= end and data_start + end <= size and end - begin >= min_size:
            points += [data_start + begin, data_start + end]
    return points
