"""Writers for the checkpoint tests: safetensors files and zip archives, built by hand so
that a test can make them exactly as wrong as it needs."""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

SAFETENSORS_WIDTH = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "U8": 1, "BOOL": 1, "F64": 8}


def safetensors_bytes(header: dict[str, Any], data: bytes, pad: bool = True) -> bytes:
    """A safetensors file: 8-byte length, the JSON header (space-padded to 8), data."""
    raw = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def tensors_file(
    tensors: list[tuple[str, str, list[int], bytes]], metadata: dict[str, str] | None = None
) -> bytes:
    """A valid safetensors file holding `tensors` (name, dtype, shape, bytes) in order."""
    header: dict[str, Any] = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, data in tensors:
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    return safetensors_bytes(header, b"".join(t[3] for t in tensors))


def write_zip(
    path: Path,
    entries: list[tuple[str, bytes]],
    zip64: bool = False,
    holes: dict[str, int] | None = None,
    method: int = 0,
) -> None:
    """A zip archive of STORED entries (or claiming `method`), optionally with zip64
    records and with `holes[name]` unwritten (sparse) bytes before an entry."""
    holes = holes or {}
    central = []
    with open(path, "wb") as f:
        for name, data in entries:
            if name in holes:
                f.seek(holes[name], 1)
            offset = f.tell()
            encoded = name.encode()
            crc = zlib.crc32(data)
            f.write(
                struct.pack(
                    "<IHHHHHIIIHH", 0x04034B50, 45, 0x800, method, 0, 0, crc,
                    len(data), len(data), len(encoded), 0,
                )
            )  # fmt: skip
            f.write(encoded)
            f.write(data)
            central.append((encoded, crc, len(data), offset))
        cd_offset = f.tell()
        for encoded, crc, size, offset in central:
            extra = b""
            size32, offset32 = size, offset
            if zip64:
                extra = struct.pack("<HHQQQ", 1, 24, size, size, offset)
                size32 = offset32 = 0xFFFFFFFF
            f.write(
                struct.pack(
                    "<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0x800, method, 0, 0, crc,
                    size32, size32, len(encoded), len(extra), 0, 0, 0, 0, offset32,
                )
            )  # fmt: skip
            f.write(encoded + extra)
        cd_size = f.tell() - cd_offset
        count = len(central)
        if zip64:
            record_offset = f.tell()
            f.write(
                struct.pack(
                    "<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, cd_size, cd_offset
                )
            )
            f.write(struct.pack("<IIQI", 0x07064B50, 0, record_offset, 1))
            f.write(
                struct.pack(
                    "<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0
                )
            )
        else:
            f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, cd_size, cd_offset, 0))


def zip_entries(path: Path) -> list[tuple[str, bytes]]:
    """The entries of a (valid) zip archive, read with the standard library."""
    with zipfile.ZipFile(path) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def with_pickle(source: Path, dest: Path, pickle_bytes: bytes) -> Path:
    """A copy of the torch.save archive `source` whose data.pkl is `pickle_bytes`."""
    entries = [
        (name, pickle_bytes if name.endswith("/data.pkl") else data)
        for name, data in zip_entries(source)
    ]
    write_zip(dest, entries)
    return dest


def pickled_int(value: int) -> bytes:
    """LONG1 (LONG4 past 255 bytes): any integer, as pickle writes one past 32 bits."""
    raw = value.to_bytes(value.bit_length() // 8 + 1, "little", signed=True)
    if len(raw) < 256:
        return b"\x8a" + bytes([len(raw)]) + raw
    return b"\x8b" + struct.pack("<i", len(raw)) + raw


def pickled_str(text: str) -> bytes:
    """BINUNICODE."""
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def pickled_tuple(items: list[bytes]) -> bytes:
    """MARK, the items, TUPLE."""
    return b"(" + b"".join(items) + b"t"


def pickled_tensor(
    storage: str,
    numel: int,
    shape: tuple[int, ...],
    stride: tuple[int, ...],
    offset: int = 0,
    storage_class: str = "FloatStorage",
) -> bytes:
    """The opcodes torch.save writes for one tensor viewing storage `data/<storage>`
    (`numel` elements of the storage class), built from raw opcodes so that any size,
    stride or offset can be written."""
    persistent_id = pickled_tuple(
        [
            pickled_str("storage"),
            f"ctorch\n{storage_class}\n".encode(),
            pickled_str(storage),
            pickled_str("cpu"),
            pickled_int(numel),
        ]
    )
    return (
        b"ctorch._utils\n_rebuild_tensor_v2\n"
        + pickled_tuple(
            [
                persistent_id + b"Q",
                pickled_int(offset),
                pickled_tuple([pickled_int(n) for n in shape]),
                pickled_tuple([pickled_int(s) for s in stride]),
                b"\x89",  # requires_grad=False
                b"ccollections\nOrderedDict\n)R",  # no hooks
            ]
        )
        + b"R"
    )


def pickled_state_dict(entries: dict[str, bytes]) -> bytes:
    """A protocol 2 pickle of a dict of `entries` (name -> the opcodes of its value)."""
    items = b"".join(pickled_str(name) + value + b"s" for name, value in entries.items())
    return b"\x80\x02}" + items + b"."
