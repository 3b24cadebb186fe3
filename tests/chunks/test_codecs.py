"""mstore.chunks.codecs: each chunk stored with the codec that saves most (or raw), and
every stored chunk decoded to exactly the raw length its index gives, or refused."""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
import tracemalloc

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from mstore.chunks.codecs import (
    BG2_ZSTD,
    BG4_ZSTD,
    CODECS,
    LEVEL,
    MIN_SAVING,
    NONE,
    ZSTD,
    decode,
    encode,
    group,
    ungroup,
)
from mstore.errors import IntegrityError
from tests.helpers import weights

WHERE = "pack p at 0+n"
NOISE = random.Random(2).randbytes(64)


def halves(count: int) -> bytes:
    """16-bit floats (IEEE half) of small weights: exponents in a narrow band."""
    draw = random.Random(1).gauss
    return struct.pack(f"<{count}e", *(draw(0.0, 0.02) for _ in range(count)))


@pytest.mark.parametrize(
    ("data", "codec"),
    [
        (weights(256 << 10), BG4_ZSTD),  # float32 weights: exponents grouped
        (halves(128 << 10), BG2_ZSTD),  # float16: grouped by two
        (b"layer.weight " * 20_000, ZSTD),  # text, a pickle's names
        (os.urandom(256 << 10), NONE),  # random bytes: stored raw
    ],
    ids=["float32", "float16", "text", "random"],
)
def test_each_chunk_gets_the_codec_that_saves_most_and_round_trips(data: bytes, codec: str) -> None:
    chosen, stored = encode(data)
    assert chosen == codec
    if codec == NONE:
        assert stored == data
    else:
        assert len(stored) <= len(data) * (1 - MIN_SAVING)
    assert decode(stored, chosen, len(data), WHERE) == data


@pytest.mark.parametrize(
    "data", [weights(256 << 10), os.urandom(256 << 10)], ids=["float32", "random"]
)
def test_a_view_of_a_chunk_encodes_as_its_bytes_and_a_raw_one_is_not_copied(data: bytes) -> None:
    """Push hands over views of the mapped object: the same codec and stored bytes as
    for a copy, and a chunk stored raw is that very view (no copy of it is made)."""
    view = memoryview(bytearray(data))
    chosen, stored = encode(view)
    assert (chosen, bytes(stored)) == encode(data)
    if chosen == NONE:
        assert stored is view


def test_float32_weights_save_more_grouped_than_plain() -> None:
    data = weights(256 << 10, seed=3)
    grouped = len(zstandard.ZstdCompressor(level=LEVEL).compress(group(data, 4)))
    plain = len(zstandard.ZstdCompressor(level=LEVEL).compress(data))
    assert grouped < plain < len(data)
    assert len(encode(data)[1]) == grouped


def test_a_tiny_chunk_or_one_that_saves_too_little_is_stored_raw() -> None:
    assert encode(b"\0" * 10) == (NONE, b"\0" * 10)
    # Random bytes with a compressible tail too small to reach the bound on the whole.
    data = os.urandom(200_000) + b"\0" * 3_000
    assert encode(data)[0] == NONE


@given(st.binary(max_size=300), st.sampled_from([2, 4]))
def test_grouping_is_undone_exactly_whatever_the_length(data: bytes, width: int) -> None:
    assert ungroup(group(data, width), width) == data
    assert len(group(data, width)) == len(data)


def frame(data: bytes, **options: bool) -> bytes:
    return zstandard.ZstdCompressor(level=3, **options).compress(data)


@pytest.mark.parametrize(
    ("stored", "codec", "length", "words"),
    [
        (frame(b"x" * 1000), "lz4", 1000, "unknown codec 'lz4'"),
        (frame(b"x" * 1000)[:-4], ZSTD, 1000, "not a valid zstd frame"),  # truncated
        (frame(b"x" * 1000) + b"\0\0", ZSTD, 1000, "not a valid zstd frame"),  # trailing
        (b"\x28\xb5\x2f\xfd" + NOISE[:40], ZSTD, 1000, "zstd"),  # damaged
        (NOISE, BG4_ZSTD, 1000, "not a valid bg4-zstd frame"),
        (frame(b"x" * 5000), ZSTD, 1000, "says 5000 raw bytes, the index 1000"),  # bomb
        (frame(b"x" * 5000, write_content_size=False), ZSTD, 1000, "says -1 raw bytes"),
        (frame(b"x" * 999), ZSTD, 1000, "says 999 raw bytes"),
        (b"x" * 999, NONE, 1000, "999 stored bytes, not 1000"),
    ],
    ids=[
        "unknown codec",
        "truncated",
        "trailing bytes",
        "damaged",
        "not a frame",
        "bomb",
        "no size",
        "short",
        "raw short",
    ],
)
def test_stored_bytes_that_are_not_exactly_the_chunk_are_refused(
    stored: bytes, codec: str, length: int, words: str
) -> None:
    with pytest.raises(IntegrityError, match=words):
        decode(stored, codec, length, WHERE)


def test_a_bomb_is_refused_before_its_output_is_allocated() -> None:
    """A frame whose header claims 4 GiB (a few dozen bytes on the wire) costs nothing."""
    honest = frame(b"\0" * (1 << 20))
    # The frame header: magic, descriptor (single segment, 4-byte content size), size.
    assert honest[4] & 0xC0 == 0x80 and honest[4] & 0x20
    bomb = honest[:5] + b"\xff\xff\xff\xff" + honest[9:]
    assert zstandard.frame_content_size(bomb) == (1 << 32) - 1
    tracemalloc.start()
    try:
        with pytest.raises(IntegrityError, match="refused before decompressing"):
            decode(bomb, ZSTD, 1 << 20, WHERE)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_every_codec_is_named_in_the_table() -> None:
    assert CODECS == (NONE, ZSTD, BG4_ZSTD, BG2_ZSTD)


def test_the_command_line_does_not_import_zstandard() -> None:
    code = "import sys, mstore.cli.app; print('zstandard' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
