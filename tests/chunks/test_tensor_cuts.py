"""Unit tests for mstore.chunks.tensor_cuts: where torch zip entries and safetensors tensors lie."""

from __future__ import annotations

import io
import struct
import zipfile

import orjson
import pytest
from blake3 import blake3
from hypothesis import given, settings
from hypothesis import strategies as st

from mstore.chunks.chunking import ChunkParams, chunk_bytes
from mstore.chunks.tensor_cuts import tensor_cut_points


def random_bytes(label: str, size: int) -> bytes:
    return blake3(label.encode()).digest(length=size)


def cut_points(data: bytes, min_size: int) -> list[int]:
    return tensor_cut_points(lambda o, n: data[o : o + n], len(data), min_size)


def torch_like_zip(entries: dict[str, bytes], force_zip64: bool = False) -> bytes:
    """A zip laid out as torch.save writes one: STORED entries under `archive/`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(f"archive/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=force_zip64) as f:
                f.write(data)
    return buffer.getvalue()


def entry_spans(data: bytes) -> dict[str, tuple[int, int]]:
    """Each entry's data (start, end), as Python's zipfile finds them."""
    spans = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
            start = info.header_offset + 30 + name_length + extra_length
            spans[info.filename] = (start, start + info.compress_size)
    return spans


ENTRIES = {
    "data.pkl": b"\x80\x02pickle" * 10,
    "data/0": random_bytes("storage 0", 70_000),
    "data/1": random_bytes("storage 1", 100),
    "data/2": random_bytes("storage 2", 250_001),
    "version": b"3\n",
}


@pytest.mark.parametrize("force_zip64", [False, True])
def test_zip_points_are_the_data_edges_of_large_entries(force_zip64: bool) -> None:
    data = torch_like_zip(ENTRIES, force_zip64)
    spans = entry_spans(data)
    expected = sorted(
        point for name in ("archive/data/0", "archive/data/2") for point in spans[name]
    )
    assert cut_points(data, 1024) == expected
    assert cut_points(data, 1) == sorted({p for span in spans.values() for p in span} - {len(data)})


def test_safetensors_points_are_the_data_start_and_large_tensor_edges() -> None:
    header = orjson.dumps(
        {
            "__metadata__": {"format": "pt"},
            "a": {"dtype": "F32", "shape": [500], "data_offsets": [0, 2000]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [2000, 2008]},
            "c": {"dtype": "F32", "shape": [1000], "data_offsets": [2008, 6008]},
        }
    )
    data = struct.pack("<Q", len(header)) + header + bytes(6008)
    start = 8 + len(header)
    assert cut_points(data, 1000) == [start, start + 2000, start + 2008]  # end of c = size


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"PK\x03\x04",
        b"PK\x03\x04" + bytes(100),
        b"just some text that is not a model file at all",
        struct.pack("<Q", 1 << 40) + b"{}",  # header length beyond the file
        struct.pack("<Q", 4) + b"[1] ",  # JSON, but not an object
        struct.pack("<Q", 8) + b"{broken ",
    ],
)
def test_files_that_are_not_models_get_no_points(data: bytes) -> None:
    assert cut_points(data, 1) == []


def test_safetensors_tensors_with_impossible_offsets_are_ignored() -> None:
    header = (
        b'{"t":{"data_offsets":[50,10]},"u":{"data_offsets":[0,1e9]},'
        b'"v":{"data_offsets":[0,999]},"w":[1]}'
    )
    data = struct.pack("<Q", len(header)) + header + bytes(100)
    assert cut_points(data, 1) == [8 + len(header)]  # only the start of the data area


def test_zip_entries_pointing_outside_the_file_are_ignored() -> None:
    data = bytearray(torch_like_zip(ENTRIES))
    directory = data.rfind(b"PK\x01\x02")  # the last central directory header: version
    struct.pack_into("<I", data, directory + 42, len(data) + 10)  # its local header offset
    points = cut_points(bytes(data), 1)
    assert points
    assert all(0 < p < len(data) for p in points)


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=400), prefix=st.sampled_from([b"PK\x03\x04", b"", b"\x10" + bytes(7)])
)
def test_property_any_bytes_give_sorted_points_inside_the_file(data: bytes, prefix: bytes) -> None:
    blob = prefix + data
    points = cut_points(blob, 1)
    assert points == sorted(set(points))
    assert all(0 < p < len(blob) for p in points)


@settings(max_examples=100, deadline=None)
@given(position=st.integers(0, 10_000), flip=st.integers(1, 255))
def test_property_a_damaged_zip_still_chunks_exactly(position: int, flip: int) -> None:
    data = bytearray(torch_like_zip(ENTRIES))
    data[position % len(data)] ^= flip
    params = ChunkParams(64, 256, 1024)
    position_sum = 0
    for chunk in chunk_bytes(bytes(data), params):
        assert chunk.offset == position_sum
        position_sum += chunk.length
    assert position_sum == len(data)


def test_zip64_end_record_is_followed() -> None:
    # More than 65,535 entries: the end record says 0xFFFF and the zip64 one has the count,
    # as in a torch.save archive over 4 GiB or with that many storages.
    entries = {f"data/{i}": b"" for i in range(65_536)}
    entries["data/big"] = random_bytes("big storage", 5_000)
    data = torch_like_zip(entries)
    assert b"PK\x06\x06" in data[-200:]  # the zip64 end of central directory record
    start, end = entry_spans(data)["archive/data/big"]
    assert cut_points(data, 1024) == [start, end]


def test_zip64_extra_field_replaces_placeholders() -> None:
    from mstore.chunks.tensor_cuts import _zip64_sizes

    both = struct.pack("<HHQQQ", 1, 24, 5 << 30, 6 << 30, 7 << 30)
    assert _zip64_sizes(both, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF) == (6 << 30, 7 << 30)
    only_offset = struct.pack("<HHI", 0x5455, 4, 0) + struct.pack("<HHQ", 1, 8, 9 << 30)
    assert _zip64_sizes(only_offset, 10, 20, 0xFFFFFFFF) == (20, 9 << 30)
    assert _zip64_sizes(b"", 10, 20, 30) == (20, 30)
