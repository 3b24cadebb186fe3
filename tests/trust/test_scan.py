"""mstore/checkpoints/scan.py: each file of a version, told apart by its bytes, and the
zip irregularities scanners have been fooled by, refused."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from pathlib import Path

import pytest

from mstore.checkpoints.scan import scan_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "models" / "production"
FIXTURES = ROOT / "tests" / "fixtures" / "checkpoints"
EVIL = b"cos\nsystem\n(S'touch marker'\ntR."
STATE_DICT = b"\x80\x02ccollections\nOrderedDict\n)R."


def scan(data: bytes) -> tuple[str, set[str], tuple[str, ...]]:
    result = scan_file(io.BytesIO(data), len(data), "file")
    return result.kind, set(result.globals), result.problems


def torch_like_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_the_example_store_files() -> None:
    model = scan((EXAMPLE / "model.pth").read_bytes())
    encoders = scan((EXAMPLE / "encoders.pkl").read_bytes())
    metadata = scan((EXAMPLE / "metadata.json").read_bytes())

    assert model[0] == "zip" and model[2] == ()
    assert "torch._utils._rebuild_tensor_v2" in model[1]
    assert encoders[0] == "pickle" and "sklearn.preprocessing._label.LabelEncoder" in encoders[1]
    assert metadata == ("other", set(), ())


def test_safetensors_names_nothing() -> None:
    for path in sorted(FIXTURES.glob("*.safetensors")):
        assert scan(path.read_bytes()) == ("other", set(), ()), path


def test_a_protocol_0_pickle_under_any_name_is_scanned() -> None:
    """CVE-2025-10155: picklescan judged by the extension."""
    assert scan(EVIL) == ("pickle", {"os.system"}, ())


def test_every_pickle_entry_of_a_zip_is_scanned() -> None:
    data = torch_like_zip({"archive/data.pkl": STATE_DICT, "archive/constants.pkl": EVIL})

    kind, names, problems = scan(data)

    assert kind == "zip" and problems == ()
    assert names == {"collections.OrderedDict", "os.system"}


def test_a_pickle_entry_with_a_wrong_crc_is_scanned_and_reported() -> None:
    """CVE-2025-10156: a scanner stopping on the CRC error saw nothing; torch loads it."""
    data = bytearray(torch_like_zip({"archive/data.pkl": EVIL}))
    central = data.rindex(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 16, 0xDEADBEEF)
    struct.pack_into("<I", data, 14, 0xDEADBEEF)

    _kind, names, problems = scan(bytes(data))

    assert names == {"os.system"}
    assert any("CRC-32" in problem for problem in problems)


def test_local_header_flags_differing_from_the_directory_are_irregular() -> None:
    """CVE-2025-1945: flag bits that one reader honours and another ignores."""
    data = bytearray(torch_like_zip({"archive/data.pkl": EVIL}))
    struct.pack_into("<H", data, 6, 0x1)

    kind, names, problems = scan(bytes(data))

    assert kind == "zip" and names == set()
    assert len(problems) == 1 and "irregular" in problems[0] and "flags" in problems[0]


def test_local_header_name_differing_from_the_directory_is_irregular() -> None:
    """CVE-2025-1944: the local header names another file than the directory."""
    data = bytearray(torch_like_zip({"archive/data.pkl": EVIL}))
    data[30 : 30 + len("archive/data.pkl")] = b"archive/data.txt"

    assert "local header names" in scan(bytes(data))[2][0]


def test_bytes_between_entries_and_duplicate_names_are_irregular() -> None:
    first = torch_like_zip({"archive/a": b"1", "archive/data.pkl": STATE_DICT})
    gap = bytearray(first)
    second_header = gap.index(b"PK\x03\x04", 4)
    gap[second_header:second_header] = b"hidden"
    directory = gap.rindex(b"PK\x05\x06")
    (cd_offset,) = struct.unpack_from("<I", gap, directory + 16)
    struct.pack_into("<I", gap, directory + 16, cd_offset + 6)
    central = gap.index(b"PK\x01\x02")
    second_central = gap.index(b"PK\x01\x02", central + 4)
    (local,) = struct.unpack_from("<I", gap, second_central + 42)
    struct.pack_into("<I", gap, second_central + 42, local + 6)

    assert "outside any entry" in scan(bytes(gap))[2][0]

    with pytest.warns(UserWarning, match="Duplicate"):
        duplicate = torch_like_zip({"archive/data.pkl": STATE_DICT})
        buffer = io.BytesIO(duplicate)
        with zipfile.ZipFile(buffer, "a") as archive:
            archive.writestr("archive/data.pkl", EVIL)
    assert "twice" in scan(buffer.getvalue())[2][0]


def test_a_pickle_prepended_to_a_zip_is_what_gets_loaded() -> None:
    """torch.load reads a file not starting with a zip header as a pickle."""
    data = EVIL + torch_like_zip({"archive/data.pkl": STATE_DICT})

    kind, names, _ = scan(data)

    assert kind == "pickle" and "os.system" in names


class CountingFile(io.BytesIO):
    """A file that counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, n: int | None = -1) -> bytes:
        data = super().read(n)
        self.bytes_read += len(data)
        return data

    def readline(self, n: int | None = -1) -> bytes:
        data = super().readline(n)
        self.bytes_read += len(data)
        return data


def safetensors_file(first_byte: int, data: bytes) -> bytes:
    """A safetensors file whose header length's low byte is `first_byte`."""
    header = b'{"w":{"dtype":"U8","shape":[%d],"data_offsets":[0,%d]}}' % (len(data), len(data))
    length = first_byte + 256 * ((len(header) >> 8) + 1)
    return struct.pack("<Q", length) + header.ljust(length) + data


@pytest.mark.parametrize("first_byte", [0x80, 0x28, 0x58, 0x70, 0x10])
def test_a_large_safetensors_file_is_not_read_whole(first_byte: int) -> None:
    """Its first bytes are no pickle (or one that breaks at once): the walk stops there,
    reading kilobytes of a 64 MiB file (PROTO, MARK, BINUNICODE, PUT as first byte)."""
    data = safetensors_file(first_byte, bytes(range(256)) * (1 << 18))
    f = CountingFile(data)

    result = scan_file(f, len(data), "model.safetensors")

    assert (result.kind, result.globals, result.problems) == ("other", frozenset(), ())
    assert f.bytes_read < 1 << 16


def test_a_pickle_is_read_to_its_end() -> None:
    padding = pickle.dumps(b"x" * (8 << 20), protocol=2)[2:-1]  # BINBYTES or _codecs
    data = b"\x80\x02" + padding + b"0" + EVIL[:-1] + b"."
    f = CountingFile(data)

    result = scan_file(f, len(data), "weights.bin")

    assert result.kind == "pickle" and "os.system" in result.globals
    assert f.bytes_read >= len(data) - 4


def test_a_safetensors_file_that_is_also_a_pickle_is_scanned_as_one() -> None:
    """A valid safetensors file whose header length 0x2253 begins `S"`: a protocol 0
    STRING running to a quote that ends a header line, `}}` (two EMPTY_DICTs), then
    tensor data that is a pickle calling os.system; torch.load reads it as a pickle."""
    payload = b"cos\nsystem\n(S'touch marker'\ntR."
    start = b'{"w":{"dtype":"U8","shape":[%d],"data_offsets":[0,%d]},"__metadata__":{"n":"' % (
        len(payload),
        len(payload),
    )
    length = 0x2253
    header = start + b"x" * (length - len(start) - 4) + b'"\n}}'
    data = struct.pack("<Q", length) + header + payload
    assert json.loads(header)["w"]["data_offsets"] == [0, len(payload)]

    result = scan_file(io.BytesIO(data), len(data), "model.safetensors")

    assert result.kind == "pickle" and "os.system" in result.globals


@pytest.mark.parametrize(
    "first",
    [b"I0x10\n0", b"L0x10L\n0", b"S'\xc3\xa9'\n0", b"F1e9999\n0", b"Pid\n0"],
    ids=["hex-int", "hex-long", "utf8-string", "float", "persid"],
)
def test_protocol_0_arguments_pickletools_refuses_do_not_hide_what_follows(first: bytes) -> None:
    """CPython's unpickler reads `I0x10` and a non-ASCII STRING; pickletools does not.
    A walk stopping there would pass the os.system behind it."""
    kind, names, _ = scan(first + EVIL)

    assert kind == "pickle" and "os.system" in names


def test_a_text_line_too_long_to_judge_is_refused() -> None:
    data = b"(V" + b"a" * (2 << 20) + b"\n0" + EVIL

    kind, _names, problems = scan(data)

    assert kind == "pickle" and "text line" in problems[0]


def test_a_pickle_longer_than_the_limit_is_refused() -> None:
    from mstore.checkpoints.imports import read_pickle_imports

    data = pickle.dumps(b"x" * 4096, protocol=2)[:-1] + b"0" + EVIL

    found = read_pickle_imports(io.BytesIO(data), len(data), limit=1024)

    assert found.is_pickle and "cannot be judged" in found.problems[0]
