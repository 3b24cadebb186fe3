"""Delta chunks: a changed tensor's chunk stored as its XOR with the parent's bytes.

    raw chunk ──XOR──▶ delta ──codecs.encode──▶ stored        (base: the same tensor's
    base bytes ─┘                                               bytes in the parent file)

A full fine-tune moves every weight by a little: no chunk repeats, but each float
keeps its sign and exponent and most of its high mantissa bits, so the XOR of a
tensor with the same tensor of the parent version is mostly zero bytes in the high
positions, which byte grouping and zstd then squeeze (ZipLLM/BitX; docs/CHUNKING.md
"Deltas"). A delta is kept only when it saves at least MIN_GAIN of the chunk over the
plain encoding: reading it costs its base.

Decoding is `xor(decoded, base bytes)`, then the caller hashes the result against the
chunk id, so a wrong or damaged base can only fail a pull, never pass one. A reader
follows at most MAX_DEPTH bases from an object (a delta's base may itself hold deltas);
deeper chains and cycles are refused.
"""

from __future__ import annotations

from mstore.chunks import codecs

# At most this many objects between a delta and plain bytes (git's pack.depth is the
# model; a reader rebuilds at most this many bases a host lacks, one after another).
MAX_DEPTH = 8
# What a reader lacking every base may have to rebuild, bounded on push and refused
# beyond on pull (mstore.transfer.chunk_bases): each base at most MAX_BASE_FACTOR times
# the size of the object that needs it, all its bases together at most MAX_DEPTH times,
# and at most MAX_BASES distinct bases named by one recipe.
MAX_BASE_FACTOR = 4
MAX_BASES = 64
# A delta must save this share of the raw chunk more than the plain encoding does.
MIN_GAIN = 0.05


def xor(a: bytes | memoryview, b: bytes | memoryview) -> bytes:
    """The bytewise XOR of two byte strings of equal length."""
    if len(a) != len(b):
        raise ValueError("xor of byte strings of different lengths")
    n = len(a)
    return (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).to_bytes(n, "little")


def encode(raw: bytes | memoryview, base: bytes | None) -> tuple[str, bytes | memoryview, bool]:
    """(codec, stored bytes, is a delta) for the raw chunk `raw`: its XOR with `base`
    (the same number of bytes of the parent tensor) when that saves MIN_GAIN of the
    chunk over the plain encoding, else the plain encoding."""
    codec, stored = codecs.encode(raw)
    if base is None or len(base) != len(raw):
        return codec, stored, False
    delta_codec, delta = codecs.encode(xor(raw, base))
    if len(delta) <= len(stored) - MIN_GAIN * len(raw):
        return delta_codec, delta, True
    return codec, stored, False


def decode(delta: bytes | memoryview, base: bytes | memoryview) -> bytes:
    """The raw bytes of a chunk from its decoded delta and its base bytes."""
    return xor(delta, base)
