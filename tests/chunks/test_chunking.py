"""Unit tests for mstore.chunks.chunking: golden cut points, coverage, locality, parameters."""

from __future__ import annotations

import struct
from pathlib import Path

import orjson
import pytest
from blake3 import blake3
from hypothesis import given, settings
from hypothesis import strategies as st

from mstore.chunks.chunking import (
    ACCELERATED,
    DEFAULT_PARAMS,
    Chunk,
    ChunkParams,
    chunk_bytes,
    chunk_file,
)
from mstore.core.hashing import hash_bytes
from mstore.errors import RefusedError, UsageError

SMALL = ChunkParams(min_size=64, avg_size=256, max_size=1024, tensor_cuts=False)
SMALL_TENSOR = ChunkParams(min_size=64, avg_size=256, max_size=1024, tensor_cuts=True)
PLAIN_64K = ChunkParams(16 << 10, 64 << 10, 256 << 10, tensor_cuts=False)


def pseudo_random(label: str, size: int) -> bytes:
    """Fixed bytes for a label: blake3's extendable output, the same on every platform."""
    return blake3(label.encode()).digest(length=size)


def digest_of(chunks: list[Chunk]) -> str:
    listing = "".join(f"{c.offset} {c.length} {c.id}\n" for c in chunks)
    return blake3(listing.encode()).hexdigest()


def safetensors_file(tensors: dict[str, bytes]) -> bytes:
    """A safetensors file: u64 header length, JSON header, tensors packed in name order."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, data in tensors.items():
        header[name] = {
            "dtype": "U8",
            "shape": [len(data)],
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    encoded = orjson.dumps(header, option=orjson.OPT_SORT_KEYS)
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + b"".join(tensors.values())


# -- golden chunks: these fail if an upgrade of the chunker moves a single cut point -------

GOLDEN_INPUT = pseudo_random("mstore chunking golden input", 3 << 20)


def test_golden_chunks_64k_plain() -> None:
    chunks = chunk_bytes(GOLDEN_INPUT, PLAIN_64K)
    assert [(c.offset, c.length) for c in chunks[:4]] == [
        (0, 178542),
        (178542, 126722),
        (305264, 56789),
        (362053, 67530),
    ]
    assert chunks[0].id == "d764f45fe38d383518fc293bf85e92ee4c430bc2144ac15f3085fc66750bc24a"
    assert len(chunks) == 39
    assert digest_of(chunks) == "9e3cd8e1f51a7e41d9c27972a81304151b71bdccd875e534d7a5076e0ffadb1f"


def test_golden_chunks_default_params() -> None:
    chunks = chunk_bytes(GOLDEN_INPUT)
    assert [(c.offset, c.length) for c in chunks[:3]] == [
        (0, 362053),
        (362053, 134305),
        (496358, 73486),
    ]
    assert len(chunks) == 12
    assert digest_of(chunks) == "98ddcc7cf87f99f3e15b26c445b3de97175e3c9d79913308b7ab919a1215c714"


def test_golden_chunks_safetensors_tensor_cuts() -> None:
    data = safetensors_file(
        {
            "a.weight": pseudo_random("tensor a", 300_000),
            "b.bias": pseudo_random("tensor b", 1_000),
            "c.weight": pseudo_random("tensor c", 700_001),
        }
    )
    chunks = chunk_bytes(data, ChunkParams(16 << 10, 64 << 10, 256 << 10, tensor_cuts=True))
    # The header is a chunk of its own; so is the bias, between the end of a and the start of c.
    assert [(c.offset, c.length) for c in chunks[:6]] == [
        (0, 256),
        (256, 128922),
        (129178, 70911),
        (200089, 90041),
        (290130, 10126),
        (300256, 1000),
    ]
    assert len(chunks) == 15
    assert digest_of(chunks) == "dc669998527377f986902978989ff8472104aec71965d4fee79ce15af70e7e65"


def test_the_compiled_cutter_is_installed() -> None:
    # The wheels cover CPython 3.11+ on x86_64 and aarch64; a missing one means a slow install.
    assert ACCELERATED


def test_parameter_names_are_canonical_and_round_trip() -> None:
    assert DEFAULT_PARAMS.name == "fastcdc2020-nc1-seed0/min=65536,avg=262144,max=1048576/tensor1"
    assert PLAIN_64K.name == "fastcdc2020-nc1-seed0/min=16384,avg=65536,max=262144/plain"
    for params in (DEFAULT_PARAMS, PLAIN_64K, SMALL, SMALL_TENSOR):
        assert ChunkParams.from_name(params.name) == params


@pytest.mark.parametrize(
    "name",
    [
        "fastcdc2020-nc1-seed0/min=65536,avg=262144,max=1048576/tensor2",
        "fastcdc2020-nc2-seed0/min=65536,avg=262144,max=1048576/tensor1",
        "fastcdc2020-nc1-seed0/avg=262144,min=65536,max=1048576/tensor1",
        "fastcdc2020-nc1-seed0/min=65536,avg=262144/tensor1",
        "fastcdc2020-nc1-seed0/min=x,avg=262144,max=1048576/tensor1",
        "fastcdc2020-nc1-seed0/min=065536,avg=262144,max=1048576/tensor1",
        "fastcdc2020-nc1-seed0/min=65536,avg=300000,max=1048576/tensor1",
        "fastcdc2020-nc1-seed0/min=65536,avg=262144,max=1048576,max=1/tensor1",
        "",
    ],
)
def test_unknown_or_non_canonical_names_are_refused(name: str) -> None:
    with pytest.raises(RefusedError):
        ChunkParams.from_name(name)


@pytest.mark.parametrize(
    ("low", "avg", "high"),
    [(32, 256, 1024), (64, 300, 1024), (1024, 512, 2048), (64, 256, 128 << 20), (64, 256, 512)],
)
def test_invalid_parameters_are_refused(low: int, avg: int, high: int) -> None:
    with pytest.raises(UsageError):
        ChunkParams(low, avg, high)


# -- coverage and sizes --------------------------------------------------------------------


def assert_covers(chunks: list[Chunk], data: bytes) -> None:
    """Contiguous from 0 to len(data), each id the blake3 of its bytes."""
    position = 0
    for chunk in chunks:
        assert chunk.offset == position
        assert chunk.length > 0
        assert chunk.id == hash_bytes(data[position : position + chunk.length])
        position += chunk.length
    assert position == len(data)


def test_chunks_cover_the_input_within_min_and_max() -> None:
    data = pseudo_random("coverage", 5_000_001)
    for params in (PLAIN_64K, ChunkParams(tensor_cuts=False)):
        chunks = chunk_bytes(data, params)
        assert_covers(chunks, data)
        assert all(params.min_size <= c.length <= params.max_size for c in chunks[:-1])
        assert 0 < chunks[-1].length <= params.max_size
        # The average lands between avg and avg + min (FastCDC skips the first min bytes).
        mean = len(data) / len(chunks)
        assert params.avg_size * 0.7 < mean < (params.avg_size + params.min_size) * 1.3


def test_empty_input_has_no_chunks(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert chunk_bytes(b"") == []
    assert list(chunk_file(path)) == []
    assert list(chunk_file(path, owned=True)) == []


@pytest.mark.parametrize("size", [1, 7, 63, 64, 65, 1000, 65_536])
def test_tiny_input_is_one_chunk_with_the_object_id(tmp_path: Path, size: int) -> None:
    data = pseudo_random("tiny", size)
    path = tmp_path / "tiny"
    path.write_bytes(data)
    expected = [Chunk(0, size, hash_bytes(data))]
    assert chunk_bytes(data) == expected
    assert list(chunk_file(path)) == expected
    assert list(chunk_file(path, owned=True)) == expected


def test_same_bytes_give_the_same_chunks_every_time() -> None:
    data = pseudo_random("determinism", 2_000_000)
    assert chunk_bytes(data, PLAIN_64K) == chunk_bytes(bytes(data), PLAIN_64K)
    assert chunk_bytes(data, PLAIN_64K) == chunk_bytes(bytearray(data), PLAIN_64K)


# -- locality: an edit changes only the chunks around it -----------------------------------


def test_inserting_a_prefix_changes_only_the_first_chunks() -> None:
    data = pseudo_random("shift", 8 << 20)
    before = chunk_bytes(data, PLAIN_64K)
    after = chunk_bytes(b"inserted bytes" * 9 + data, PLAIN_64K)
    old_ids = {c.id for c in before}
    changed = [c for c in after if c.id not in old_ids]
    assert 1 <= len(changed) <= 3
    assert all(c.offset < 3 * PLAIN_64K.max_size for c in changed)
    # The rest are the same chunks, 126 bytes further on.
    shared = [c for c in after if c.id in old_ids]
    offsets = {c.id: c.offset for c in before}
    assert all(c.offset == offsets[c.id] + 126 for c in shared)


def test_changing_one_tensor_leaves_every_other_tensor_chunk_alone() -> None:
    names = [f"layer.{i}.weight" for i in range(6)]
    tensors = {name: pseudo_random(name, 200_003 + 17 * i) for i, name in enumerate(names)}
    edited = {**tensors, "layer.3.weight": pseudo_random("retrained", 200_003 + 17 * 3)}
    old, new = safetensors_file(tensors), safetensors_file(edited)
    params = ChunkParams(16 << 10, 64 << 10, 256 << 10, tensor_cuts=True)
    old_ids = {c.id for c in chunk_bytes(old, params)}
    moved = sum(c.length for c in chunk_bytes(new, params) if c.id not in old_ids)
    assert moved == len(edited["layer.3.weight"])  # exactly the changed tensor, no neighbour
    # Without tensor cuts the chunks that straddle its edges move too.
    plain = ChunkParams(16 << 10, 64 << 10, 256 << 10, tensor_cuts=False)
    old_ids = {c.id for c in chunk_bytes(old, plain)}
    moved_plain = sum(c.length for c in chunk_bytes(new, plain) if c.id not in old_ids)
    assert moved_plain > moved


def test_tensor_cuts_start_a_chunk_at_each_large_tensor() -> None:
    tensors = {"big": pseudo_random("big", 5000), "small": b"x" * 10, "last": b"y" * 3000}
    data = safetensors_file(tensors)
    header_length = int.from_bytes(data[:8], "little")
    data_start = 8 + header_length
    starts = {c.offset for c in chunk_bytes(data, SMALL_TENSOR)}
    assert {data_start, data_start + 5000, data_start + 5010} <= starts
    assert data_start + 5000 + 5 not in starts  # inside a tensor below min_size: no forced cut


# -- the file path streams exactly what the in-memory path computes ------------------------


READ_MODES = [
    {"owned": False},  # read into a buffer
    {"owned": True},  # memory-mapped windows
]


@pytest.mark.parametrize("params", [PLAIN_64K, ChunkParams(16 << 10, 64 << 10, 256 << 10)])
@pytest.mark.parametrize("mode", READ_MODES)
def test_chunk_file_matches_chunk_bytes_across_buffer_refills(
    tmp_path: Path, params: ChunkParams, mode: dict[str, bool]
) -> None:
    tensors = {f"t{i}": pseudo_random(f"t{i}", 150_000 + 4099 * i) for i in range(12)}
    data = safetensors_file(tensors) + pseudo_random("tail", 1_234_567)
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    expected = chunk_bytes(data, params)
    assert_covers(expected, data)
    for buffer_size in (1, 600_000, 1 << 20, 16 << 20):
        chunks = list(chunk_file(path, params, buffer_size, **mode))
        assert chunks == expected, buffer_size


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=0, max_size=20_000), cut=st.integers(0, 20_000))
def test_property_chunks_cover_and_extending_keeps_decided_chunks(data: bytes, cut: int) -> None:
    chunks = chunk_bytes(data, SMALL)
    assert_covers(chunks, data)
    assert all(SMALL.min_size <= c.length <= SMALL.max_size for c in chunks[:-1])
    # A chunk that ends at least max_size before the end of the input was decided on its
    # own bytes alone: appending anything keeps it (what lets chunk_file stream).
    prefix = data[: min(cut, len(data))]
    decided = [c for c in chunk_bytes(prefix, SMALL) if c.offset + SMALL.max_size <= len(prefix)]
    assert chunks[: len(decided)] == decided


@settings(max_examples=25, deadline=None)
@given(
    pieces=st.lists(st.binary(min_size=0, max_size=3000), min_size=0, max_size=6),
    buffer_size=st.sampled_from([1, 2048, 2500, 5000]),
)
def test_property_file_and_bytes_agree(
    tmp_path_factory: pytest.TempPathFactory, pieces: list[bytes], buffer_size: int
) -> None:
    data = safetensors_file({f"p{i}": piece for i, piece in enumerate(pieces)})
    path = tmp_path_factory.mktemp("prop") / "file"
    path.write_bytes(data)
    expected = chunk_bytes(data, SMALL_TENSOR)
    assert_covers(expected, data)
    assert all(c.length <= SMALL_TENSOR.max_size for c in expected)
    assert list(chunk_file(path, SMALL_TENSOR, buffer_size)) == expected
    assert list(chunk_file(path, SMALL_TENSOR, buffer_size, owned=True)) == expected
