"""Delta chunks: XOR against the base, kept only when it pays."""

from __future__ import annotations

import pytest

from mstore.chunks import codecs, deltas
from tests.helpers import weights


def test_xor_is_its_own_inverse_and_refuses_unequal_lengths() -> None:
    a, b = b"\x00\x01\xff\x10", b"\xff\x01\x0f\x10"
    assert deltas.xor(a, b) == b"\xff\x00\xf0\x00"
    assert deltas.decode(deltas.xor(a, b), b) == a
    with pytest.raises(ValueError):
        deltas.xor(a, b[:3])


def test_a_delta_is_kept_only_when_it_saves_over_the_plain_encoding() -> None:
    base = weights(1 << 18, seed=1)
    close = bytearray(base)
    close[::4] = bytes((x ^ 1) for x in base[::4])  # only the lowest mantissa bytes move
    codec, stored, delta = deltas.encode(bytes(close), base)
    assert delta and len(stored) < 0.2 * len(close)
    raw = codecs.decode(stored, codec, len(close), "test")
    assert deltas.decode(raw, base) == bytes(close)
    other = weights(1 << 18, seed=2)
    assert deltas.encode(other, base)[2] is False  # unrelated: plain
    assert deltas.encode(other, None)[2] is False
    assert deltas.encode(other, base[:100])[2] is False  # another length: plain
