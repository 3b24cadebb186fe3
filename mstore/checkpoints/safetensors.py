"""Read a safetensors file's index without touching its tensor bytes.

The layout (https://github.com/huggingface/safetensors, "Format")::

    [8 bytes]  N, unsigned little-endian: length of the header
    [N bytes]  JSON object, UTF-8, may be padded with trailing spaces:
               {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
                ..., "__metadata__": {"key": "value"}}   (optional, strings only)
    [rest]     the data area: offsets are relative to its start

Everything is checked before it is used: the header fits in the file and under
MAX_HEADER_BYTES, it is a JSON object of the shape above, every dtype is known, every
shape is a list of non-negative integers whose element count times the dtype's width is
the tensor's byte range, and the ranges, taken in offset order, start at 0, follow one
another with no gap or overlap and end exactly at the end of the file.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import orjson

from mstore.checkpoints.dtypes import SAFETENSORS_DTYPES, byte_size
from mstore.checkpoints.model import Checkpoint, TensorInfo
from mstore.errors import InvalidInputError

MAX_HEADER_BYTES = 16 << 20  # parsed whole: ~28 bytes of memory a byte (CHECKPOINTS.md)
"""The safetensors library's own limit on the header."""

METADATA_KEY = "__metadata__"
MAX_DIMENSIONS = 64


def looks_like_safetensors(prefix: bytes) -> bool:
    """True if the file's first bytes announce a safetensors header: a plausible length
    (under 4 GiB: the 8 bytes of other formats almost never are), then '{'. Whether the
    length fits the file is for the reader to check (and refuse)."""
    if len(prefix) < 9 or prefix[8:9] != b"{":
        return False
    return 2 <= int.from_bytes(prefix[:8], "little") < 1 << 32


def read_safetensors(f: BinaryIO, size: int, name: str) -> Checkpoint:
    """Parse the header of the safetensors file open as `f` (`size` bytes, called `name`)."""
    if size < 8:
        raise InvalidInputError(f"{name}: {size} bytes, too short for a safetensors header")
    f.seek(0)
    length = int.from_bytes(f.read(8), "little")
    if length > MAX_HEADER_BYTES:
        raise InvalidInputError(
            f"{name}: safetensors header of {length} bytes, over the {MAX_HEADER_BYTES} limit"
        )
    if length > size - 8:
        raise InvalidInputError(
            f"{name}: safetensors header claims {length} bytes but the file has {size - 8} "
            "after the length field (truncated or not a safetensors file)"
        )
    raw = f.read(length)
    if len(raw) != length:
        raise InvalidInputError(f"{name}: ended inside its safetensors header")
    try:
        header = orjson.loads(raw.rstrip(b" "))
    except orjson.JSONDecodeError as err:
        raise InvalidInputError(f"{name}: safetensors header is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise InvalidInputError(f"{name}: safetensors header is not a JSON object")
    metadata = _metadata(header.pop(METADATA_KEY, {}), name)
    data_start = 8 + length
    tensors = [_tensor(key, value, data_start, name) for key, value in header.items()]
    _check_layout(tensors, data_start, size, name)
    return Checkpoint("safetensors", tuple(tensors), data_start, metadata)


def _metadata(value: Any, name: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidInputError(f"{name}: {METADATA_KEY} must map strings to strings")
    return tuple(sorted(value.items()))


def _tensor(key: str, value: Any, data_start: int, name: str) -> TensorInfo:
    where = f"{name}: tensor {key!r}"
    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data_offsets"}:
        raise InvalidInputError(f"{where} must have exactly dtype, shape and data_offsets")
    dtype = SAFETENSORS_DTYPES.get(value["dtype"]) if isinstance(value["dtype"], str) else None
    if dtype is None:
        raise InvalidInputError(f"{where} has unknown dtype {value['dtype']!r}")
    shape, offsets = value["shape"], value["data_offsets"]
    if not isinstance(shape, list) or len(shape) > MAX_DIMENSIONS or not all(map(_natural, shape)):
        raise InvalidInputError(
            f"{where} has a shape that is not a list of integers >= 0 (at most {MAX_DIMENSIONS})"
        )
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_natural, offsets))):
        raise InvalidInputError(f"{where} has data_offsets that are not two integers >= 0")
    begin, end = offsets
    if end < begin:
        raise InvalidInputError(f"{where} ends (byte {end}) before it begins (byte {begin})")
    count = 1
    for dimension in shape:
        count *= dimension
    expected = byte_size(dtype, count)
    if expected != end - begin:
        raise InvalidInputError(
            f"{where}: shape {shape} of {value['dtype']} needs "
            f"{'a fractional number of' if expected is None else expected} bytes, "
            f"data_offsets give {end - begin}"
        )
    return TensorInfo(key, dtype, tuple(shape), data_start + begin, data_start + end)


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_layout(tensors: list[TensorInfo], data_start: int, size: int, name: str) -> None:
    """The ranges, in offset order, must tile the data area exactly."""
    position = data_start
    for tensor in sorted(tensors, key=lambda t: (t.begin, t.end)):
        if tensor.begin != position:
            problem = "overlaps the previous one" if tensor.begin < position else "leaves a gap"
            raise InvalidInputError(
                f"{name}: tensor {tensor.name!r} at data offset {tensor.begin - data_start} "
                f"{problem} (expected {position - data_start})"
            )
        position = tensor.end
    if position != size:
        raise InvalidInputError(
            f"{name}: tensors cover {position - data_start} bytes of a data area of "
            f"{size - data_start} (the header does not describe the file)"
        )
