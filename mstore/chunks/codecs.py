"""How a chunk's bytes rest in a pack: a codec chosen per chunk (docs/CHUNKING.md).

    raw chunk ──sample (32 KiB): bg2-zstd saves >= 1.5%? ──no──▶ none
                                      └─yes─▶ zstd, bg4-zstd too: best saves >= 3%? ──no──▶ none
                                              └─yes─▶ whole chunk with it
                                                      saves >= 3%? ──no──▶ none

| codec      | stored bytes                                                             |
|------------|--------------------------------------------------------------------------|
| `none`     | the raw bytes                                                            |
| `zstd`     | one zstd frame (level 1, content size in its header) of the raw bytes    |
| `bg4-zstd` | one zstd frame of the raw bytes grouped by position modulo 4: every byte |
|            | at 0 mod 4, then 1 mod 4, 2, 3 (the exponents of float32s fall together, |
|            | as in Xet's BG4 and ZipNN)                                               |
| `bg2-zstd` | the same with positions modulo 2 (16-bit floats: bf16, fp16)             |

A chunk's id is the blake3 of its raw bytes, whatever its codec. `decode` refuses
(IntegrityError) stored bytes that are not exactly one frame of the codec whose header
gives the raw length the index gives, before allocating anything for its output: a
decompression bomb costs its reader no more than the raw length it was promised. The
caller then hashes the output against the chunk id. `zstandard` is imported on first
use, so commands that never touch a remote do not load it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from mstore.errors import IntegrityError

if TYPE_CHECKING:
    import zstandard

NONE = "none"
ZSTD = "zstd"
BG4_ZSTD = "bg4-zstd"
BG2_ZSTD = "bg2-zstd"
CODECS = (NONE, ZSTD, BG4_ZSTD, BG2_ZSTD)
LEVEL = 1
# A codec must save at least this share of a chunk, on a sample and then on the whole
# chunk, or the chunk is stored raw (what a compressed chunk costs to read is not free).
MIN_SAVING = 0.03
SAMPLE_BYTES = 32 << 10
_WIDTH = {ZSTD: 1, BG4_ZSTD: 4, BG2_ZSTD: 2}
_local = threading.local()


def encode(data: bytes | memoryview) -> tuple[str, bytes | memoryview]:
    """The codec chosen for the raw chunk `data`, and its stored bytes (never longer
    than `data`; `data` itself for `none`, never copied). Thread-safe: one compressor
    per thread."""
    if len(data) < 64:
        return NONE, data
    start = max(0, len(data) // 2 - SAMPLE_BYTES // 2)
    sample = bytes(data[start : start + SAMPLE_BYTES])
    # A sample of the chunk's middle decides which codec, if any, is worth a full pass.
    # bg2-zstd first: on bytes it cannot save even half the bound on (random bytes,
    # compressed data) neither other codec is tried, so those cost one small
    # compression; anything it squeezes (floats of either width, ints, pickles, text)
    # gets all three tried.
    probe = len(_compress(sample, BG2_ZSTD))
    if probe > len(sample) * (1 - MIN_SAVING / 2):
        return NONE, data
    sizes = {BG2_ZSTD: probe, **{c: len(_compress(sample, c)) for c in (ZSTD, BG4_ZSTD)}}
    best = min(sizes, key=lambda c: (sizes[c], c))
    if sizes[best] > len(sample) * (1 - MIN_SAVING):
        return NONE, data
    stored = _compress(bytes(data), best)
    if len(stored) > len(data) * (1 - MIN_SAVING):
        return NONE, data
    return best, stored


def decode(stored: bytes | memoryview, codec: str, length: int, where: str) -> bytes | memoryview:
    """The raw bytes of a chunk stored with `codec`, which the index says are `length`
    bytes; IntegrityError (naming `where`) for an unknown codec, bytes that are not one
    whole frame, or a frame that would give any other length (refused before its
    output is allocated). The caller hashes the result against the chunk id."""
    if codec == NONE:
        if len(stored) != length:
            raise IntegrityError(f"{where}: {len(stored)} stored bytes, not {length}")
        return stored
    if codec not in _WIDTH:
        raise IntegrityError(f"{where}: unknown codec {codec!r}")
    import zstandard

    try:
        # The frame's header gives its content size; zstandard allocates that much, so it
        # is checked against the index's length first (a bomb claims more).
        claimed = zstandard.frame_content_size(stored)
        if claimed != length:
            raise IntegrityError(
                f"{where}: the {codec} frame says {claimed} raw bytes, the index {length}; "
                "refused before decompressing it"
            )
        raw = _decompressor().decompress(stored, max_output_size=length, allow_extra_data=False)
    except zstandard.ZstdError as err:
        raise IntegrityError(f"{where}: not a valid {codec} frame ({err})") from None
    if len(raw) != length:
        raise IntegrityError(f"{where}: decompressed to {len(raw)} bytes, not {length}")
    width = _WIDTH[codec]
    return raw if width == 1 else ungroup(raw, width)


def group(data: bytes, width: int) -> bytes:
    """The bytes of `data` at positions 0 mod `width`, then 1 mod `width`, and so on."""
    return b"".join(data[k::width] for k in range(width))


def ungroup(grouped: bytes, width: int) -> bytes:
    """The inverse of `group`."""
    out = bytearray(len(grouped))
    at = 0
    for k in range(width):
        count = len(range(k, len(grouped), width))
        out[k::width] = grouped[at : at + count]
        at += count
    return bytes(out)


def _compress(data: bytes, codec: str) -> bytes:
    width = _WIDTH[codec]
    compressor: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if compressor is None:
        import zstandard

        compressor = _local.compressor = zstandard.ZstdCompressor(
            level=LEVEL, write_content_size=True
        )
    return compressor.compress(data if width == 1 else group(data, width))


def _decompressor() -> zstandard.ZstdDecompressor:
    decompressor: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if decompressor is None:
        import zstandard

        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    return decompressor
