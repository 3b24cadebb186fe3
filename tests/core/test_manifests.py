"""Unit tests for mstore.core.manifests: canonical encoding and strict decoding (pure logic)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from mstore.core.manifests import (
    MODE_EXECUTABLE,
    FileEntry,
    Lineage,
    Manifest,
    decode_manifest,
    parse_metadata,
)
from mstore.errors import InvalidInputError, RefusedError

ID_A = "a" * 64
ID_B = "0123456789abcdef" * 4
PARENT = "f" * 64


def make_manifest(metadata: dict[str, Any] | None = None) -> Manifest:
    return Manifest(
        files={
            "model.pth": FileEntry(ID_A, 1234),
            "bin/run.sh": FileEntry(ID_B, 10, MODE_EXECUTABLE),
            "encoders.pkl": FileEntry(ID_B, 0),
        },
        metadata=metadata if metadata is not None else {"version": "v3", "metrics": {"mae": 5.7}},
        lineage=Lineage(parent=PARENT, author="ana", time="2024-11-15T10:00:00Z", message="m"),
    )


def document(**changes: Any) -> dict[str, Any]:
    """A valid manifest document as plain JSON data, with `changes` applied at top level."""
    doc: dict[str, Any] = {
        "files": {"model.pth": {"id": ID_A, "mode": 420, "size": 3}},
        "format": 1,
        "kind": "mstore/manifest",
        "lineage": {"author": "ana", "message": "m", "parent": None, "time": "t"},
        "metadata": None,
    }
    doc.update(changes)
    return doc


def canonical(doc: object) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def with_file(path: str = "model.pth", **entry: Any) -> bytes:
    fields: dict[str, Any] = {"id": ID_A, "mode": 420, "size": 3}
    fields.update(entry)
    return canonical(document(files={path: fields}))


def assert_invalid(data: bytes) -> None:
    with pytest.raises(InvalidInputError) as info:
        decode_manifest(data)
    assert info.value.exit_code == 6


# -- encoding ------------------------------------------------------------------------------


def test_valid_document_decodes() -> None:
    manifest = decode_manifest(canonical(document()))
    assert manifest.files == {"model.pth": FileEntry(ID_A, 3, 0o644)}
    assert manifest.metadata is None
    assert manifest.lineage == Lineage(parent=None, author="ana", time="t", message="m")
    assert manifest.format == 1


def test_encode_is_deterministic_whatever_the_insertion_order() -> None:
    first = make_manifest()
    reordered = Manifest(
        files=dict(reversed(list(first.files.items()))),
        metadata={"metrics": {"mae": 5.7}, "version": "v3"},
        lineage=first.lineage,
    )
    assert first.encode() == make_manifest().encode()
    assert reordered.encode() == first.encode()


def test_encode_sorts_keys_at_every_level_and_has_no_whitespace() -> None:
    data = make_manifest({"z": 1, "a": {"y": 2, "b": 3}}).encode()
    assert b" " not in data and b"\n" not in data

    def check_sorted(pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        keys = [key for key, _ in pairs]
        assert keys == sorted(keys)
        return pairs

    json.loads(data, object_pairs_hook=check_sorted)
    assert data.startswith(b'{"files":{"bin/run.sh":')


def test_decode_of_encode_is_identity() -> None:
    manifest = make_manifest()
    decoded = decode_manifest(manifest.encode())
    assert decoded == manifest
    assert decoded.encode() == manifest.encode()


def test_decode_of_encode_is_identity_with_null_metadata_and_no_parent() -> None:
    manifest = Manifest(
        files={"a/b/c.bin": FileEntry(ID_A, 0)},
        metadata=None,
        lineage=Lineage(parent=None, author="", time="", message=""),
    )
    assert decode_manifest(manifest.encode()) == manifest


# -- decoding: document shape ----------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"{", b"not json", b"\xff\xfe", b'{"files":}'])
def test_decode_refuses_non_json(data: bytes) -> None:
    assert_invalid(data)


@pytest.mark.parametrize("data", [b"[]", b"null", b'"mstore/manifest"', b"1", b"{}"])
def test_decode_refuses_json_that_is_not_a_manifest_object(data: bytes) -> None:
    assert_invalid(data)


@pytest.mark.parametrize("kind", ["mstore/other", "", None, 1])
def test_decode_refuses_wrong_kind(kind: object) -> None:
    assert_invalid(canonical(document(kind=kind)))


def test_decode_refuses_newer_format_with_refused_error() -> None:
    with pytest.raises(RefusedError) as info:
        decode_manifest(canonical(document(format=2)))
    assert info.value.exit_code == 7


@pytest.mark.parametrize("version", [True, 1.0, "1", None])
def test_decode_refuses_non_integer_format(version: object) -> None:
    assert_invalid(canonical(document(format=version)))


@pytest.mark.parametrize("version", [0, -1])
def test_decode_refuses_format_below_one(version: int) -> None:
    # Format versions start at 1; 0 or a negative number was never written by anyone.
    assert_invalid(canonical(document(format=version)))


@pytest.mark.parametrize("field", ["files", "format", "kind", "lineage", "metadata"])
def test_decode_refuses_missing_field(field: str) -> None:
    doc = document()
    del doc[field]
    assert_invalid(canonical(doc))


def test_decode_refuses_extra_top_level_field() -> None:
    assert_invalid(canonical(document(extra=1)))


def test_decode_refuses_extra_or_missing_file_entry_field() -> None:
    assert_invalid(with_file(extra=1))
    doc = document()
    del doc["files"]["model.pth"]["size"]
    assert_invalid(canonical(doc))


@pytest.mark.parametrize(
    "lineage",
    [
        {"author": "a", "message": "m", "parent": None},
        {"author": "a", "message": "m", "parent": None, "time": "t", "extra": 1},
        {"author": 1, "message": "m", "parent": None, "time": "t"},
        {"author": "a", "message": "m", "parent": "A" * 64, "time": "t"},
        {"author": "a", "message": "m", "parent": "a" * 63, "time": "t"},
        [],
    ],
)
def test_decode_refuses_bad_lineage(lineage: object) -> None:
    assert_invalid(canonical(document(lineage=lineage)))


@pytest.mark.parametrize("metadata", [[], "text", 1])
def test_decode_refuses_metadata_that_is_not_an_object(metadata: object) -> None:
    assert_invalid(canonical(document(metadata=metadata)))


# -- decoding: files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "../x",
        "a/../b",
        "..",
        ".",
        "a/./b",
        "/abs",
        ".mstore/config",
        "a/.mstore",
        ".MSTORE/x",
        ".git/config",
        "sub/.git",
        "a//b",
        "a/",
        "a\\b",
        "a\x00b",
        "a\x1fb",
        "a\x7fb",
        "a\nb",
        "x" * 256,
        "",
    ],
)
def test_decode_refuses_bad_paths(path: str) -> None:
    assert_invalid(with_file(path))


def test_decode_refuses_path_that_is_both_file_and_directory() -> None:
    entry = {"id": ID_A, "mode": 420, "size": 3}
    assert_invalid(canonical(document(files={"a": entry, "a/b": entry})))
    assert_invalid(canonical(document(files={"a/b": entry, "a/b/c/d": entry})))


def test_decode_accepts_siblings_sharing_a_prefix() -> None:
    entry = {"id": ID_A, "mode": 420, "size": 3}
    manifest = decode_manifest(canonical(document(files={"a": entry, "ab/c": entry})))
    assert set(manifest.files) == {"a", "ab/c"}


@pytest.mark.parametrize("files", [{}, [], None, "model.pth"])
def test_decode_refuses_empty_or_non_object_files(files: object) -> None:
    assert_invalid(canonical(document(files=files)))


@pytest.mark.parametrize(
    "object_id", ["A" * 64, ID_A.upper(), "a" * 63, "a" * 65, "g" * 64, "", None, 1]
)
def test_decode_refuses_bad_object_ids(object_id: object) -> None:
    assert_invalid(with_file(id=object_id))


@pytest.mark.parametrize("size", [-1, True, False, 1.5, 3.0, "3", None])
def test_decode_refuses_bad_sizes(size: object) -> None:
    assert_invalid(with_file(size=size))


@pytest.mark.parametrize("mode", [0o600, 0o777, 0o100644, 0, True, "420", 420.0, None])
def test_decode_refuses_bad_modes(mode: object) -> None:
    assert_invalid(with_file(mode=mode))


@pytest.mark.parametrize("mode", [0o644, 0o755])
def test_decode_accepts_both_modes(mode: int) -> None:
    assert decode_manifest(with_file(mode=mode)).files["model.pth"].mode == mode


# -- decoding: canonical form -----------------------------------------------------------------


def test_decode_refuses_extra_whitespace() -> None:
    data = make_manifest().encode()
    assert_invalid(
        orjson.dumps(orjson.loads(data), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    )
    assert_invalid(data + b"\n")
    assert_invalid(b" " + data)
    assert_invalid(data.replace(b'"format":1', b'"format": 1'))


def test_decode_refuses_unsorted_keys() -> None:
    data = make_manifest().encode()
    unsorted = orjson.dumps(dict(reversed(list(orjson.loads(data).items()))))
    assert orjson.loads(unsorted) == orjson.loads(data)
    assert_invalid(unsorted)


def test_decode_refuses_duplicate_keys() -> None:
    data = canonical(document())
    top = data.replace(b'"format":1,', b'"format":1,"format":1,')
    nested = data.replace(b'"mode":420,', b'"mode":420,"mode":420,')
    assert top != data and nested != data
    assert_invalid(top)
    assert_invalid(nested)


def test_decode_refuses_escaped_characters_that_need_no_escape() -> None:
    data = canonical(document())
    escaped = data.replace(b'"model.pth"', b'"\\u006dodel.pth"')
    assert escaped != data
    assert_invalid(escaped)


def test_decode_survives_deeply_nested_json() -> None:
    assert_invalid(b"[" * 100_000 + b"]" * 100_000)
    assert_invalid(b'{"a":' * 100_000 + b"1" + b"}" * 100_000)
    deep_metadata = canonical(document()).replace(
        b'"metadata":null', b'"metadata":' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    )
    assert_invalid(deep_metadata)


def test_decode_refuses_metadata_nested_past_the_limit() -> None:
    nested: Any = 1
    for _ in range(40):
        nested = [nested]
    assert_invalid(canonical(document(metadata={"deep": nested})))


# -- metadata --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b'{"a": 1e400}']
)
def test_parse_metadata_refuses_non_finite_numbers(text: bytes) -> None:
    with pytest.raises(InvalidInputError):
        parse_metadata(text, "metadata.json")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_encode_refuses_non_finite_metadata(value: float) -> None:
    with pytest.raises(InvalidInputError):
        make_manifest({"loss": value}).encode()
    with pytest.raises(InvalidInputError):
        make_manifest({"metrics": [1.0, {"x": value}]}).encode()


def test_decode_refuses_nan_in_manifest_bytes() -> None:
    data = canonical(document()).replace(b'"metadata":null', b'"metadata":{"a":NaN}')
    assert_invalid(data)


@pytest.mark.parametrize("text", [b"[]", b"1", b"null", b"not json", b'"x"'])
def test_parse_metadata_refuses_non_objects(text: bytes) -> None:
    with pytest.raises(InvalidInputError):
        parse_metadata(text, "metadata.json")


def test_parse_metadata_keeps_every_key() -> None:
    text = b'{"version": "v3", "metrics": {"mae": 5.74}, "tags": [1, null, true], "n": null}'
    assert parse_metadata(text, "metadata.json") == {
        "version": "v3",
        "metrics": {"mae": 5.74},
        "tags": [1, None, True],
        "n": None,
    }


def test_encode_refuses_invalid_files() -> None:
    lineage = Lineage(parent=None, author="a", time="t", message="m")
    with pytest.raises(InvalidInputError):
        Manifest(files={}, metadata=None, lineage=lineage).encode()
    with pytest.raises(InvalidInputError):
        Manifest(files={"../x": FileEntry(ID_A, 1)}, metadata=None, lineage=lineage).encode()


# -- integers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (b'{"seed": 123456789012345678901234567890}', "metadata.json.seed"),
        (b'{"m": {"steps": [1, 18446744073709551616]}}', r"metadata.json.m.steps\[1\]"),
        (b'{"low": -9223372036854775809}', "metadata.json.low"),
        (b'{"huge": ' + b"9" * 300 + b"}", "metadata.json.huge"),
        (b'{"zeros": -' + b"1" + b"0" * 40 + b"}", "metadata.json.zeros"),
    ],
    ids=["30-digits", "2-to-the-64-in-a-list", "below-int64", "300-digits", "negative-41"],
)
def test_parse_metadata_refuses_integers_beyond_64_bits(text: bytes, where: str) -> None:
    """orjson would read them as floats: stored, they would come back rounded."""
    with pytest.raises(InvalidInputError, match=f"{where} holds an integer beyond 64 bits") as info:
        parse_metadata(text, "metadata.json")
    assert info.value.exit_code == 6


def test_parse_metadata_refuses_an_integer_no_double_holds() -> None:
    """Past 10**308 orjson itself refuses it, saying where (never int() of 5,000 digits)."""
    with pytest.raises(InvalidInputError, match=r"not valid JSON.*infinity.*column 10"):
        parse_metadata(b'{"huge": ' + b"9" * 5000 + b"}", "metadata.json")


def test_parse_metadata_keeps_64_bit_integers_exactly() -> None:
    text = b'{"max": 18446744073709551615, "min": -9223372036854775808, "f": 1e30, "s": "1' + (
        b"0" * 40 + b'"}'
    )
    metadata = parse_metadata(text, "metadata.json")
    assert metadata == {"max": 2**64 - 1, "min": -(2**63), "f": 1e30, "s": "1" + "0" * 40}
    manifest = make_manifest(metadata)
    assert decode_manifest(manifest.encode()).metadata == metadata


@pytest.mark.parametrize(
    "value", [2**64, -(2**63) - 1, 2**20000], ids=["2-to-the-64", "below-int64", "6000-digits"]
)
def test_encode_refuses_integers_beyond_64_bits(value: int) -> None:
    """The API hands metadata as Python objects: refused, not an orjson error."""
    with pytest.raises(InvalidInputError, match=r"metadata\.n holds an integer beyond 64 bits"):
        make_manifest({"n": value}).encode()
