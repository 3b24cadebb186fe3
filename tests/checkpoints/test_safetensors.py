"""The safetensors reader: what it accepts, and every lie in a header it refuses."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mstore.checkpoints import UnreadableCheckpointError, read_checkpoint
from mstore.checkpoints.safetensors import MAX_HEADER_BYTES
from mstore.errors import InvalidInputError
from tests.checkpoint_files import safetensors_bytes, tensors_file

WEIGHT = struct.pack("<6f", *range(6))
BIAS = struct.pack("<3e", 1.0, 2.0, 3.0)
STEPS = struct.pack("<q", 42)


def _write(tmp_path: Path, data: bytes, name: str = "model.safetensors") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _valid() -> bytes:
    return tensors_file(
        [
            ("encoder.weight", "F32", [2, 3], WEIGHT),
            ("encoder.bias", "F16", [3], BIAS),
            ("steps", "I64", [], STEPS),
        ],
        metadata={"format": "pt"},
    )


def test_reads_names_dtypes_shapes_and_byte_ranges(tmp_path: Path) -> None:
    data = _valid()
    checkpoint = read_checkpoint(_write(tmp_path, data))
    assert checkpoint.format == "safetensors"
    assert checkpoint.metadata == (("format", "pt"),)
    tensors = checkpoint.by_name()
    assert [t.name for t in checkpoint.tensors] == ["encoder.weight", "encoder.bias", "steps"]
    weight, bias, steps = tensors["encoder.weight"], tensors["encoder.bias"], tensors["steps"]
    assert (weight.dtype, weight.shape, weight.nbytes) == ("float32", (2, 3), 24)
    assert (bias.dtype, bias.shape, steps.dtype, steps.shape) == ("float16", (3,), "int64", ())
    assert data[weight.begin : weight.end] == WEIGHT
    assert data[bias.begin : bias.end] == BIAS
    assert data[steps.begin : steps.end] == STEPS
    assert checkpoint.index_bytes == weight.begin  # the header only, no tensor bytes


def test_zero_sized_tensors_and_an_unpadded_header_are_fine(tmp_path: Path) -> None:
    header = {
        "empty": {"dtype": "F32", "shape": [0, 4], "data_offsets": [0, 0]},
        "w": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
    }
    checkpoint = read_checkpoint(_write(tmp_path, safetensors_bytes(header, b"ab", pad=False)))
    assert checkpoint.by_name()["empty"].nbytes == 0


def _header(**tensors: Any) -> dict[str, Any]:
    return dict(tensors)


def _entry(dtype: str, shape: Any, begin: Any, end: Any) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


TAMPERED = {
    "offset past the end": (_header(w=_entry("F32", [4], 0, 16)), b"\0" * 8, "cover"),
    "length disagrees with shape": (_header(w=_entry("F32", [3], 0, 8)), b"\0" * 8, "needs 12"),
    "gap between tensors": (
        _header(a=_entry("U8", [2], 0, 2), b=_entry("U8", [2], 4, 6)),
        b"\0" * 6,
        "gap",
    ),
    "overlapping tensors": (
        _header(a=_entry("U8", [4], 0, 4), b=_entry("U8", [4], 2, 6)),
        b"\0" * 6,
        "overlaps",
    ),
    "bytes nobody owns at the end": (_header(a=_entry("U8", [2], 0, 2)), b"\0" * 5, "cover"),
    "unknown dtype": (_header(a=_entry("F128", [1], 0, 16)), b"\0" * 16, "unknown dtype"),
    "negative dimension": (_header(a=_entry("U8", [-1], 0, 0)), b"", "shape"),
    "boolean dimension": (_header(a=_entry("U8", [True], 0, 1)), b"\0", "shape"),
    "float offset": (_header(a=_entry("U8", [1], 0.0, 1)), b"\0", "data_offsets"),
    "end before begin": (_header(a=_entry("U8", [0], 3, 1)), b"\0" * 3, "before it begins"),
    "missing field": (_header(a={"dtype": "U8", "shape": [1]}), b"\0", "exactly"),
    "extra field": (_header(a={**_entry("U8", [1], 0, 1), "x": 1}), b"\0", "exactly"),
    "tensor not an object": (_header(a=[1, 2]), b"", "exactly"),
    "metadata not strings": (
        {"__metadata__": {"epoch": 3}, "a": _entry("U8", [1], 0, 1)},
        b"\0",
        "__metadata__",
    ),
    "fractional bytes": (_header(a=_entry("F4", [3], 0, 1)), b"\0", "fractional"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_tampered_headers_are_refused_with_the_reason(tmp_path: Path, case: str) -> None:
    header, data, words = TAMPERED[case]
    with pytest.raises(InvalidInputError, match=words) as caught:
        read_checkpoint(_write(tmp_path, safetensors_bytes(header, data)))
    assert not isinstance(caught.value, UnreadableCheckpointError)
    assert "model.safetensors" in str(caught.value)


def test_header_longer_than_the_file_is_refused(tmp_path: Path) -> None:
    data = _valid()
    truncated = struct.pack("<Q", 4000) + data[8:200]
    with pytest.raises(InvalidInputError, match="claims 4000 bytes"):
        read_checkpoint(_write(tmp_path, truncated))


def test_header_over_the_cap_is_refused_before_reading_it(tmp_path: Path) -> None:
    data = struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{" + b" " * 64
    path = _write(tmp_path, data)
    with open(path, "r+b") as f:  # make the file big enough to hold the claim (sparse)
        f.truncate(MAX_HEADER_BYTES + 100)
    with pytest.raises(InvalidInputError, match=f"over the {MAX_HEADER_BYTES} limit"):
        read_checkpoint(path)


def test_bad_json_and_non_objects_are_refused(tmp_path: Path) -> None:
    for raw, words in ((b'{"a": ', "not valid JSON"), (b"{}   [1]", "not valid JSON")):
        data = struct.pack("<Q", len(raw)) + raw
        with pytest.raises(InvalidInputError, match=words):
            read_checkpoint(_write(tmp_path, data))
    array = b"[1, 2]  "
    # A header that is not an object does not even look like safetensors ('{' first).
    with pytest.raises(UnreadableCheckpointError, match="neither"):
        read_checkpoint(_write(tmp_path, struct.pack("<Q", len(array)) + array))


def test_truncating_a_valid_file_anywhere_is_refused(tmp_path: Path) -> None:
    data = _valid()
    for cut in range(len(data)):
        path = _write(tmp_path, data[:cut])
        with pytest.raises(InvalidInputError):
            read_checkpoint(path)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_fuzz_mutated_files_give_a_checkpoint_or_invalid_input(
    tmp_path: Path, data: st.DataObject
) -> None:
    raw = bytearray(_valid())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    path = _write(tmp_path, bytes(raw), "fuzz.safetensors")
    try:
        checkpoint = read_checkpoint(path)
    except InvalidInputError:
        return
    for tensor in checkpoint.tensors:  # whatever was accepted is within the file
        assert 0 <= tensor.begin <= tensor.end <= len(raw)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
ENTRIES = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "U8", "I64", "BF16", "F4", "nope"]) | JSON_VALUES,
        "shape": st.lists(st.integers(-2, 6), max_size=3) | JSON_VALUES,
        "data_offsets": st.lists(st.integers(-2, 40), min_size=2, max_size=2) | JSON_VALUES,
    }
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.dictionaries(st.text(max_size=6), ENTRIES | JSON_VALUES, min_size=1, max_size=4),
    data=st.binary(max_size=48),
)
def test_fuzz_headers_give_a_checkpoint_or_invalid_input(
    tmp_path: Path, header: dict[str, Any], data: bytes
) -> None:
    try:
        raw = safetensors_bytes(header, data)
    except (TypeError, ValueError):  # json cannot write this header
        return
    path = _write(tmp_path, raw, "fuzz.safetensors")
    try:
        checkpoint = read_checkpoint(path)
    except InvalidInputError:
        return
    covered = sum(t.end - t.begin for t in checkpoint.tensors)
    assert covered == len(data)
