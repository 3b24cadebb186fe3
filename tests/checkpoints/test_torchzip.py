"""The torch.save reader on real torch 2.13 archives (tests/fixtures/checkpoints, made by
scripts/make_checkpoint_fixtures.py) and on archives tampered with by hand."""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mstore.checkpoints import UnreadableCheckpointError, read_checkpoint
from mstore.checkpoints.pickles import walk_pickle
from mstore.checkpoints.zipdir import ZipEntry, read_zip_directory
from mstore.errors import InvalidInputError
from tests.checkpoint_files import with_pickle, write_zip, zip_entries

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "checkpoints"
BASE = FIXTURES / "base.pt"

BASE_TENSORS = {
    "encoder.embed.weight": ("float32", (12, 8)),
    "encoder.proj.weight": ("float32", (8, 8)),
    "encoder.proj.bias": ("float32", (8,)),
    "encoder.norm.weight": ("float32", (8,)),
    "encoder.norm.bias": ("float32", (8,)),
    "head.weight": ("float32", (3, 8)),
    "head.bias": ("float32", (3,)),
}


def test_a_state_dict_is_read_in_file_order_with_each_storage() -> None:
    checkpoint = read_checkpoint(BASE)
    assert checkpoint.format == "torch-zip"
    assert {t.name: (t.dtype, t.shape) for t in checkpoint.tensors} == BASE_TENSORS
    assert [t.name for t in checkpoint.tensors] == list(BASE_TENSORS)
    storages = [t.storage for t in checkpoint.tensors]
    assert storages == [f"data/{i}" for i in range(7)]
    entries = dict(zip_entries(BASE))
    raw = BASE.read_bytes()
    for tensor in checkpoint.tensors:
        assert raw[tensor.begin : tensor.end] == entries[f"archive/{tensor.storage}"]
        assert tensor.begin % 64 == 0  # torch aligns storages to 64 bytes
    # The index is the zip directory and data.pkl: under the file's size, never its data.
    assert checkpoint.index_bytes < 2 * len(raw)


def test_dtypes_shared_storages_and_strided_views() -> None:
    tensors = read_checkpoint(FIXTURES / "dtypes.pt").by_name()
    assert {name: t.dtype for name, t in tensors.items()} == {
        "half": "float16",
        "brain": "bfloat16",
        "long": "int64",
        "unsigned": "uint16",  # a newer dtype: untyped storage plus a torch.uint16 global
        "flags": "bool",
        "matrix": "float32",
        "row": "float32",
        "transposed": "float32",
        "empty": "float32",
        "scalar": "int32",
    }
    matrix, row, transposed = tensors["matrix"], tensors["row"], tensors["transposed"]
    assert row.storage == transposed.storage == matrix.storage
    assert (row.begin, row.end, row.shape) == (matrix.begin + 16, matrix.begin + 32, (4,))
    assert (transposed.shape, transposed.stride) == ((4, 3), (1, 4))
    assert (transposed.begin, transposed.end) == (matrix.begin, matrix.end)
    assert tensors["empty"].nbytes == 0 and tensors["empty"].shape == (0, 4)
    assert tensors["scalar"].shape == () and tensors["scalar"].nbytes == 4
    assert tensors["unsigned"].nbytes == 6


def test_a_nested_training_checkpoint_names_tensors_by_key_path() -> None:
    names = [t.name for t in read_checkpoint(FIXTURES / "training.pt").tensors]
    assert names[:7] == [f"model_state_dict.{name}" for name in BASE_TENSORS]
    assert set(names[7:]) == {
        f"optimizer_state_dict.state.{index}.{slot}"
        for index in (0, 1)
        for slot in ("step", "exp_avg", "exp_avg_sq")
    }


def test_a_pickled_module_is_refused_naming_its_class() -> None:
    with pytest.raises(
        UnreadableCheckpointError, match=r"torch\.nn\.modules\.container\.Sequential"
    ):
        read_checkpoint(FIXTURES / "module.pt")


class _Evil:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, (self.command,))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_a_pickle_calling_os_system_is_refused_and_nothing_runs(
    tmp_path: Path, protocol: int
) -> None:
    marker = tmp_path / "ran"
    payload = pickle.dumps({"w": _Evil(f"touch {marker}")}, protocol=protocol)
    path = with_pickle(BASE, tmp_path / "evil.pt", payload)
    with pytest.raises(UnreadableCheckpointError, match=r"references (posix|os)\.system"):
        read_checkpoint(path)
    assert not marker.exists()


REFUSED_PICKLES = {
    "builtins.eval": (b"\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R.", "builtins.eval"),
    "INST": (b"(ios\nsystem\nX\x04\x00\x00\x00true\x85.", r"instance of os\.system"),
    "NEWOBJ": (b"\x80\x02ccollections\nOrderedDict\n)\x81.", "NEWOBJ"),
    "extension code": (b"\x80\x02\x82\x01.", "extension code"),
    "BUILD on a tensor": (
        b"\x80\x02ccollections\nOrderedDict\n)R]b.",
        "sets the state",
    ),
    "REDUCE of a storage class": (b"\x80\x02ctorch\nFloatStorage\n)R.", "FloatStorage"),
    "text persistent id": (b"\x80\x02P1\n.", "PERSID"),
    "non-storage persistent id": (b"\x80\x02X\x01\x00\x00\x00xQ.", "persistent id"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_PICKLES))
def test_pickles_outside_a_state_dict_are_refused(tmp_path: Path, case: str) -> None:
    payload, words = REFUSED_PICKLES[case]
    with pytest.raises(UnreadableCheckpointError, match=words):
        read_checkpoint(with_pickle(BASE, tmp_path / "odd.pt", payload))


def test_a_pickle_holding_itself_is_refused(tmp_path: Path) -> None:
    cycle = b"\x80\x02]q\x00h\x00a."  # a list appended to itself
    with pytest.raises(UnreadableCheckpointError, match="deeper"):
        read_checkpoint(with_pickle(BASE, tmp_path / "cycle.pt", cycle))


def test_a_bare_pickle_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "encoders.pkl"
    path.write_bytes(pickle.dumps({"a": [1, 2]}, protocol=4))
    with pytest.raises(UnreadableCheckpointError, match="bare pickle"):
        read_checkpoint(path)


def _rewrite(tmp_path: Path, change: dict[str, bytes | None]) -> Path:
    entries = [
        (name, change.get(name.removeprefix("archive/"), data))
        for name, data in zip_entries(BASE)
        if change.get(name.removeprefix("archive/"), b"") is not None
    ]
    path = tmp_path / "changed.pt"
    write_zip(path, [(n, d) for n, d in entries if d is not None])
    return path


def test_a_missing_or_resized_storage_is_malformed(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="lacks"):
        read_checkpoint(_rewrite(tmp_path, {"data/3": None}))
    with pytest.raises(InvalidInputError, match="claims 8 x 4 bytes"):
        read_checkpoint(_rewrite(tmp_path, {"data/3": b"\0" * 28}))


def test_big_endian_archives_and_foreign_zips_are_not_read(tmp_path: Path) -> None:
    with pytest.raises(UnreadableCheckpointError, match="byte order"):
        read_checkpoint(_rewrite(tmp_path, {"byteorder": b"big"}))
    plain = tmp_path / "plain.zip"
    write_zip(plain, [("readme.txt", b"hello")])
    with pytest.raises(UnreadableCheckpointError, match=r"not a torch\.save checkpoint"):
        read_checkpoint(plain)


def test_compressed_entries_are_not_read(tmp_path: Path) -> None:
    path = tmp_path / "deflated.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in zip_entries(BASE):
            archive.writestr(name, data)
    with pytest.raises(UnreadableCheckpointError, match="compressed"):
        read_checkpoint(path)


def _end_record_offset(raw: bytes) -> int:
    return raw.rindex(b"PK\x05\x06")


def test_lying_zip_directories_are_malformed(tmp_path: Path) -> None:
    raw = BASE.read_bytes()
    end = _end_record_offset(raw)
    zip64_end = raw.rindex(b"PK\x06\x06")
    cases = {
        # the zip64 end record's directory offset (torch always writes zip64 records)
        "directory offset": (zip64_end + 48, struct.pack("<Q", 10**6), "must end"),
        "entry count": (zip64_end + 32, struct.pack("<Q", 10**6), "entries"),
        "end signature": (end, b"XXXX", "no zip end"),
    }
    for label, (at, patch, words) in cases.items():
        bad = raw[:at] + patch + raw[at + len(patch) :]
        path = tmp_path / f"{label.replace(' ', '_')}.pt"
        path.write_bytes(bad)
        with pytest.raises(InvalidInputError, match=words):
            read_checkpoint(path)


def test_an_entry_claiming_more_bytes_than_the_file_has_is_malformed(tmp_path: Path) -> None:
    raw = bytearray(BASE.read_bytes())
    central = raw.index(b"PK\x01\x02")  # data.pkl's directory entry comes first
    raw[central + 20 : central + 28] = struct.pack("<II", 10**7, 10**7)
    path = tmp_path / "long.pt"
    path.write_bytes(bytes(raw))
    with pytest.raises(InvalidInputError, match="past the start of the zip directory"):
        read_checkpoint(path)


def test_a_corrupt_pickle_fails_its_crc(tmp_path: Path) -> None:
    raw = bytearray(BASE.read_bytes())
    at = raw.index(b"encoder.embed.weight")
    raw[at] ^= 0x20
    path = tmp_path / "flipped.pt"
    path.write_bytes(bytes(raw))
    with pytest.raises(InvalidInputError, match="CRC-32"):
        read_checkpoint(path)


def test_truncating_an_archive_anywhere_is_refused(tmp_path: Path) -> None:
    raw = BASE.read_bytes()
    for cut in range(0, len(raw), 7):
        path = tmp_path / "cut.pt"
        path.write_bytes(raw[:cut])
        with pytest.raises(InvalidInputError):
            read_checkpoint(path)


def test_zip64_directory_records_are_read(tmp_path: Path) -> None:
    path = tmp_path / "zip64.pt"
    write_zip(path, zip_entries(BASE), zip64=True)
    assert read_checkpoint(path).by_name().keys() == BASE_TENSORS.keys()


FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(st.data())
def test_fuzz_mutated_archives_give_a_checkpoint_or_invalid_input(
    tmp_path: Path, data: st.DataObject
) -> None:
    raw = bytearray(BASE.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        # Aim at the structure: the pickle and the directory, where lies are made.
        region = data.draw(st.sampled_from([(0, 1200), (len(raw) - 1400, len(raw))]))
        position = data.draw(st.integers(*region).filter(lambda p: 0 <= p < len(raw)))
        raw[position] = data.draw(st.integers(0, 255))
    path = tmp_path / "fuzz.pt"
    path.write_bytes(bytes(raw))
    try:
        checkpoint = read_checkpoint(path)
    except InvalidInputError:
        return
    for tensor in checkpoint.tensors:
        assert 0 <= tensor.begin <= tensor.end <= len(raw)


PICKLE_OPCODES = [bytes([b]) for b in b"()}]tuesaRbQKJMXq0hN\x88\x89\x85\x86\x87\x80\x02.c"]


@FUZZ
@given(st.lists(st.sampled_from(PICKLE_OPCODES) | st.binary(max_size=6), max_size=40))
def test_fuzz_pickle_streams_never_escape_the_walk(tmp_path: Path, pieces: list[bytes]) -> None:
    """Only InvalidInputError may come out, whatever the opcodes (pytest reports any other)."""
    payload = b"".join(pieces)
    with contextlib.suppress(InvalidInputError):
        walk_pickle(payload, "fuzz.pt")
    with contextlib.suppress(InvalidInputError):
        read_checkpoint(with_pickle(BASE, tmp_path / "fuzz.pt", payload))


def test_an_archive_comment_longer_than_the_first_look_is_found(tmp_path: Path) -> None:
    path = tmp_path / "commented.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in zip_entries(BASE):
            archive.writestr(name, data)
        archive.comment = b"PK\x05\x06 not the end record " * 300  # ~8 KiB, with decoys
    assert read_checkpoint(path).by_name().keys() == BASE_TENSORS.keys()


def test_a_deeply_nested_dict_key_is_refused_without_crashing(tmp_path: Path) -> None:
    """CPython hashes nested tuples recursively in C; such a key must never be hashed.
    Run in a child process, so that a regression crashes it and not the test run."""
    deep = b"\x80\x02}" + b")" + b"\x85" * 300_000 + b"K\x01s."  # {((((...)))): 1}
    path = with_pickle(BASE, tmp_path / "deep.pt", deep)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith("InvalidInputError") and "dict key" in child.stdout


CHILD = """
import sys
from pathlib import Path
from mstore.checkpoints import read_checkpoint
try:
    read_checkpoint(Path(sys.argv[1]))
except Exception as err:
    print(type(err).__name__, err)
"""


def test_special_files_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInputError, match="not a regular file"):
        read_checkpoint(fifo)


BASE_PICKLE = dict(zip_entries(BASE))["archive/data.pkl"]


@FUZZ
@given(st.data())
def test_fuzz_mutated_pickles_with_valid_crcs(tmp_path: Path, data: st.DataObject) -> None:
    """Lies inside data.pkl itself (storage sizes, offsets, shapes, keys) past the CRC."""
    raw = bytearray(BASE_PICKLE)
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path = with_pickle(BASE, tmp_path / "fuzz.pt", bytes(raw))
    try:
        checkpoint = read_checkpoint(path)
    except InvalidInputError:
        return
    entries = read_zip_entries_by_name(path)
    for tensor in checkpoint.tensors:  # every accepted view lies inside its storage
        storage = entries[f"archive/{tensor.storage}"]
        assert storage.offset <= tensor.begin <= tensor.end <= storage.end


def read_zip_entries_by_name(path: Path) -> dict[str, ZipEntry]:
    with open(path, "rb") as f:
        return read_zip_directory(f, path.stat().st_size, path.name).entries
