"""mstore.core.hashing: object ids, hashing files and ranges, and copying while hashing.

The large-file paths (memory-mapped windows, the kernel copy with a hashing thread
behind it) start at 16 MiB; the tests lower the thresholds so that a few pages take
every path, window and step boundary included.
"""

from __future__ import annotations

import errno
import itertools
import mmap
import os
import stat
from pathlib import Path

import pytest

from mstore.core import hashing
from mstore.core.hashing import copy_into, hash_bytes, hash_file, hash_range, is_object_id
from mstore.errors import InvalidInputError

PAGE = mmap.ALLOCATIONGRANULARITY
# BLAKE3's published digest of the empty input: the id `b3sum` prints for an empty file.
EMPTY_ID = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


@pytest.fixture
def small_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Large-file paths from 2 pages on, one-page windows and two-page kernel copies."""
    monkeypatch.setattr(hashing, "MMAP_THRESHOLD", 2 * PAGE)
    monkeypatch.setattr(hashing, "MMAP_WINDOW", PAGE)
    monkeypatch.setattr(hashing, "COPY_STEP", 2 * PAGE)


def pattern(size: int) -> bytes:
    """Bytes that differ from page to page (a misplaced window changes the digest)."""
    return bytes((i * 7 + i // PAGE) % 251 for i in range(size))


def test_the_id_of_nothing_is_blake3s_published_digest() -> None:
    assert hash_bytes(b"") == EMPTY_ID
    assert hashing.new_hasher().hexdigest() == EMPTY_ID


def test_an_id_is_exactly_64_lowercase_hex_digits() -> None:
    assert is_object_id(EMPTY_ID)
    assert is_object_id(hash_bytes(b"weights"))
    assert not is_object_id(EMPTY_ID.upper())
    assert not is_object_id(EMPTY_ID[:-1])
    assert not is_object_id(EMPTY_ID + "0")
    assert not is_object_id(EMPTY_ID[:-1] + "g")
    assert not is_object_id(EMPTY_ID + "\n")


def test_hash_bytes_of_a_view_hashes_the_viewed_bytes() -> None:
    data = bytearray(b"0123456789")
    assert hash_bytes(memoryview(data)[2:5]) == hash_bytes(b"234")


def test_an_incremental_hasher_agrees_with_hash_bytes() -> None:
    hasher = hashing.new_hasher()
    for part in (b"model ", b"weights", b""):
        hasher.update(part)
    assert hasher.hexdigest() == hash_bytes(b"model weights")


@pytest.mark.parametrize("size", [0, 1, PAGE - 1, 2 * PAGE, 3 * PAGE + 123])
@pytest.mark.parametrize("owned", [True, False])
def test_hash_file_is_the_id_of_its_bytes_on_every_path(
    tmp_path: Path, small_thresholds: None, size: int, owned: bool
) -> None:
    data = pattern(size)
    path = tmp_path / "file"
    path.write_bytes(data)
    seen: list[int] = []

    assert hash_file(path, seen.append, owned=owned) == hash_bytes(data)
    assert sum(seen) == size


def test_only_owned_files_are_memory_mapped(
    tmp_path: Path, small_thresholds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's file may shrink while mapped (SIGBUS): it is always read through a buffer."""
    mapped: list[int] = []
    real = hashing._hash_mapped

    def spy(fd: int, hasher: object, start: int, end: int, progress: object) -> None:
        mapped.append(end - start)
        real(fd, hasher, start, end, progress)  # type: ignore[arg-type]

    monkeypatch.setattr(hashing, "_hash_mapped", spy)
    path = tmp_path / "file"
    path.write_bytes(pattern(4 * PAGE))

    hash_file(path, owned=False)
    assert mapped == []
    hash_file(path, owned=True)
    assert mapped == [4 * PAGE]


@pytest.mark.parametrize("size", [0, PAGE, 2 * PAGE, 5 * PAGE + 17])
def test_copy_into_returns_the_id_of_what_it_wrote(
    tmp_path: Path, small_thresholds: None, size: int
) -> None:
    data = pattern(size)
    source, dest = tmp_path / "source", tmp_path / "dest"
    source.write_bytes(data)
    seen: list[int] = []

    assert copy_into(source, dest, seen.append) == (hash_bytes(data), size)
    assert dest.read_bytes() == data
    assert sum(seen) == size
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600  # the store's until it seals it


def test_copy_into_hashes_behind_the_kernel_copy_step_by_step(
    tmp_path: Path, small_thresholds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each step the kernel copied is hashed from the destination, in order."""
    steps: list[tuple[int, int]] = []
    real = hashing._hash_mapped

    def spy(fd: int, hasher: object, start: int, end: int, progress: object) -> None:
        steps.append((start, end))
        real(fd, hasher, start, end, progress)  # type: ignore[arg-type]

    monkeypatch.setattr(hashing, "_hash_mapped", spy)
    data = pattern(5 * PAGE + 17)
    source = tmp_path / "source"
    source.write_bytes(data)

    object_id, size = copy_into(source, tmp_path / "dest")

    assert (object_id, size) == (hash_bytes(data), len(data))
    assert steps[0][0] == 0 and steps[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(steps))  # no gap


@pytest.mark.parametrize("code", [errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP])
def test_copy_into_falls_back_to_reading_when_the_kernel_cannot_copy(
    tmp_path: Path, small_thresholds: None, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    def refuse(*_args: object) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(hashing.os, "copy_file_range", refuse)
    data = pattern(3 * PAGE)
    source, dest = tmp_path / "source", tmp_path / "dest"
    source.write_bytes(data)

    assert copy_into(source, dest) == (hash_bytes(data), len(data))
    assert dest.read_bytes() == data


def test_copy_into_passes_on_other_kernel_copy_errors(
    tmp_path: Path, small_thresholds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_args: object) -> int:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(hashing.os, "copy_file_range", fail)
    source = tmp_path / "source"
    source.write_bytes(pattern(3 * PAGE))

    with pytest.raises(OSError) as info:
        copy_into(source, tmp_path / "dest")
    assert info.value.errno == errno.EIO


def test_copy_into_never_writes_over_an_existing_file(tmp_path: Path) -> None:
    source, dest = tmp_path / "source", tmp_path / "dest"
    source.write_bytes(b"new")
    dest.write_bytes(b"old")

    with pytest.raises(FileExistsError):
        copy_into(source, dest)
    assert dest.read_bytes() == b"old"


def test_hash_range_hashes_the_range_and_leaves_the_position(tmp_path: Path) -> None:
    data = pattern(3 * PAGE)
    path = tmp_path / "file"
    path.write_bytes(data)
    with open(path, "rb") as f:
        f.seek(5)
        assert hash_range(f, PAGE - 3, PAGE + 10) == hash_bytes(data[PAGE - 3 : 2 * PAGE + 7])
        assert hash_range(f, 0, 0) == EMPTY_ID
        assert f.tell() == 5


def test_hash_range_of_a_file_too_short_is_an_error_not_a_digest(tmp_path: Path) -> None:
    path = tmp_path / "truncated"
    path.write_bytes(b"x" * 100)
    with open(path, "rb") as f, pytest.raises(InvalidInputError) as info:
        hash_range(f, 60, 50)
    assert str(path) in str(info.value)
    assert "ended at byte 100" in str(info.value)


def test_hash_range_reads_in_bounded_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "RANGE_BUFFER_SIZE", 1000)
    reads: list[int] = []
    real = os.preadv

    def spy(fd: int, buffers: list[memoryview], offset: int) -> int:
        reads.append(sum(len(b) for b in buffers))
        return real(fd, buffers, offset)

    monkeypatch.setattr(hashing.os, "preadv", spy)
    data = pattern(10_000)
    path = tmp_path / "file"
    path.write_bytes(data)
    with open(path, "rb") as f:
        assert hash_range(f, 1, 9_999) == hash_bytes(data[1:])
    assert max(reads) == 1000 and sum(reads) == 9_999
