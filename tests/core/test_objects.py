"""Unit tests for mstore.core.objects: the content-addressed object store."""

from __future__ import annotations

import itertools
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest
from pyfakefs.fake_filesystem import FakeFilesystem

from mstore.core import hashing
from mstore.core.layout import Layout
from mstore.core.objects import ObjectStore
from mstore.errors import IntegrityError, InvalidInputError, NotFoundError
from mstore.repo import Repo

OLD = 1_000_000_000  # 2001-09-09: an mtime no fresh write can have


def b3(data: bytes) -> str:
    return str(blake3.blake3(data).hexdigest())


def temp_files(repo: Repo) -> list[str]:
    return os.listdir(repo.layout.tmp) if repo.layout.tmp.exists() else []


def test_put_bytes_returns_blake3_id_and_stores_read_only_file(repo: Repo) -> None:
    data = b"weights v1"
    object_id = repo.objects.put_bytes(data)
    assert object_id == b3(data)
    path = repo.layout.store / "objects" / object_id[:2] / object_id[2:]
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert repo.objects.has(object_id)
    assert repo.objects.size(object_id) == len(data)


def test_put_bytes_of_empty_data(repo: Repo) -> None:
    object_id = repo.objects.put_bytes(b"")
    assert object_id == b3(b"")
    assert repo.objects.read_bytes(object_id) == b""


def test_put_file_returns_id_size_and_created(repo: Repo, tmp_path: Path) -> None:
    source = tmp_path / "model.pth"
    source.write_bytes(b"x" * 5000)
    object_id, size, created = repo.objects.put_file(source)
    assert (object_id, size, created) == (b3(b"x" * 5000), 5000, True)
    path = repo.layout.object_path(object_id)
    assert path == repo.layout.store / "objects" / object_id[:2] / object_id[2:]
    assert path.read_bytes() == b"x" * 5000
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


def test_put_file_reports_progress(repo: Repo, tmp_path: Path) -> None:
    source = tmp_path / "model.pth"
    source.write_bytes(os.urandom(3 * hashing.BUFFER_SIZE + 5))
    seen: list[int] = []
    _, size, _ = repo.objects.put_file(source, seen.append)
    assert sum(seen) == size == 3 * hashing.BUFFER_SIZE + 5


def test_second_put_file_is_not_created_and_refreshes_its_marker(
    repo: Repo, tmp_path: Path
) -> None:
    source = tmp_path / "model.pth"
    source.write_bytes(b"same bytes")
    object_id, _, created = repo.objects.put_file(source)
    assert created is True
    path = repo.layout.object_path(object_id)
    os.utime(path, (OLD, OLD))
    again = repo.objects.put_file(source)
    assert again == (object_id, len(b"same bytes"), False)
    # The object's inode is never touched (it may be immutable): its marker is.
    assert path.stat().st_mtime == OLD
    assert (repo.layout.fresh / object_id).stat().st_mtime > OLD + 86400
    assert path.read_bytes() == b"same bytes"
    assert temp_files(repo) == []


def test_second_put_bytes_refreshes_its_marker(repo: Repo) -> None:
    object_id = repo.objects.put_bytes(b"manifest")
    path = repo.layout.object_path(object_id)
    os.utime(path, (OLD, OLD))
    inode = path.stat().st_ino
    assert repo.objects.put_bytes(b"manifest") == object_id
    assert path.stat().st_mtime == OLD
    assert (repo.layout.fresh / object_id).stat().st_mtime > OLD + 86400
    assert path.stat().st_ino == inode  # not rewritten


@pytest.mark.parametrize("step", [1 << 20, (1 << 20) + 123])  # page-aligned steps or not
def test_large_file_is_hashed_from_the_store_copy_while_the_kernel_copies(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: int
) -> None:
    data = os.urandom(hashing.MMAP_THRESHOLD + 12345)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    hashed: list[tuple[int, int]] = []
    real_hash_mapped = hashing._hash_mapped

    def spy(fd: int, hasher: object, start: int, end: int, progress: object) -> None:
        assert os.readlink(f"/proc/self/fd/{fd}").startswith(str(repo.layout.tmp))
        hashed.append((start, end))
        real_hash_mapped(fd, hasher, start, end, None)  # type: ignore[arg-type]

    monkeypatch.setattr(hashing, "COPY_STEP", step)
    monkeypatch.setattr(hashing, "_hash_mapped", spy)
    progress: list[int] = []
    object_id, size, created = repo.objects.put_file(source, progress.append)
    assert (object_id, size, created) == (b3(data), len(data), True)
    # One hashed range per kernel step, each starting where the last ended.
    assert hashed[0][0] == 0 and hashed[-1][1] == len(data) and len(hashed) > 16
    assert all(a[1] == b[0] for a, b in itertools.pairwise(hashed))
    assert sum(progress) == len(data)
    assert repo.objects.read_bytes(object_id) == data
    assert stat.S_IMODE(repo.layout.object_path(object_id).stat().st_mode) == 0o444
    assert temp_files(repo) == []


def small_kernel_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int | None = None
) -> tuple[Path, itertools.count[int]]:
    """A 17-step file for the kernel-copy path, 1 MiB steps, and a counter of the
    copy_file_range calls (the one numbered `fail_at` raises EIO)."""
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(hashing.MMAP_THRESHOLD + 1))
    calls = itertools.count()
    real_copy = os.copy_file_range

    def counted(src: int, dst: int, count: int) -> int:
        if next(calls) == fail_at:
            raise OSError(5, "Input/output error")
        return real_copy(src, dst, count)

    monkeypatch.setattr(hashing, "COPY_STEP", 1 << 20)
    monkeypatch.setattr(os, "copy_file_range", counted)
    return source, calls


def test_a_source_rewritten_during_the_copy_gets_the_id_of_the_bytes_stored(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer changes bytes the kernel has already copied: the id must still name
    # what the object holds (hashed from the store's file), never the source's bytes.
    source, _calls = small_kernel_steps(tmp_path, monkeypatch)
    original = source.read_bytes()
    real_copy = os.copy_file_range
    steps = itertools.count()

    def rewrite_what_was_just_copied(src: int, dst: int, count: int) -> int:
        copied = real_copy(src, dst, count)
        if next(steps) == 1:  # the second step, before it is handed to the hashing thread
            with open(source, "r+b") as f:
                f.seek(1 << 20)
                f.write(b"\xff" * 4096)
        return copied

    monkeypatch.setattr(os, "copy_file_range", rewrite_what_was_just_copied)
    object_id, _size, _created = repo.objects.put_file(source)
    stored = repo.layout.object_path(object_id).read_bytes()
    assert object_id == b3(stored)
    assert stored == original  # copied before the rewrite
    assert b3(source.read_bytes()) != object_id


def test_a_failing_kernel_copy_stops_the_hashing_thread_and_leaves_nothing(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, _calls = small_kernel_steps(tmp_path, monkeypatch, fail_at=3)
    with pytest.raises(OSError, match="Input/output error"):
        repo.objects.put_file(source)
    assert temp_files(repo) == []
    assert [t.name for t in threading.enumerate() if t.name == "mstore-hash"] == []
    assert list(repo.objects.iter_ids()) == []


def test_a_failing_hash_stops_the_copy_early(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, _calls = small_kernel_steps(tmp_path, monkeypatch)
    hashed: list[bool] = []

    def broken(*_args: object) -> None:
        hashed.append(False)
        raise MemoryError("no room to map")

    counted = os.copy_file_range

    def after_the_failure(src: int, dst: int, count: int) -> int:
        # The copy's third step waits until the hashing thread has failed and ended, so
        # the test does not depend on when that thread is scheduled.
        if next(copies) == 2:
            for worker in threading.enumerate():
                if worker.name == "mstore-hash":
                    worker.join(timeout=30)
        return counted(src, dst, count)

    copies = itertools.count()
    monkeypatch.setattr(hashing, "_hash_mapped", broken)
    monkeypatch.setattr(os, "copy_file_range", after_the_failure)
    with pytest.raises(MemoryError, match="no room to map"):
        repo.objects.put_file(source)
    assert hashed == [False]
    assert next(copies) <= 3  # no step after the one that waited for the failure (of 17)
    assert temp_files(repo) == []


def test_large_file_falls_back_to_a_buffered_copy_when_the_kernel_cannot_copy(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(hashing.MMAP_THRESHOLD + 99)
    source = tmp_path / "big.bin"
    source.write_bytes(data)

    def cross_device(*_args: object) -> int:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", cross_device)
    object_id, size, _created = repo.objects.put_file(source)
    assert (object_id, size) == (b3(data), len(data))
    assert repo.objects.read_bytes(object_id) == data


def test_read_bytes_of_corrupted_object_raises_integrity_error(repo: Repo) -> None:
    object_id = repo.objects.put_bytes(b"precious bytes")
    path = repo.layout.object_path(object_id)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        repo.objects.read_bytes(object_id)
    assert info.value.exit_code == 3


def test_missing_object_raises_not_found(repo: Repo) -> None:
    missing = b3(b"never stored")
    with pytest.raises(NotFoundError):
        repo.objects.read_bytes(missing)
    with pytest.raises(NotFoundError):
        repo.objects.size(missing)
    assert not repo.objects.has(missing)


@pytest.mark.parametrize("bad", ["A" * 64, "a" * 63, "../" + "a" * 61, ""])
def test_invalid_ids_are_refused(repo: Repo, bad: str) -> None:
    with pytest.raises(InvalidInputError):
        repo.objects.read_bytes(bad)
    with pytest.raises(InvalidInputError):
        repo.objects.has(bad)


def store_many(repo: Repo, count: int) -> list[str]:
    return sorted(repo.objects.put_bytes(f"object {n}".encode()) for n in range(count))


def test_find_prefix(repo: Repo) -> None:
    ids = store_many(repo, 300)  # 300 ids over 256 fan-out directories: some share one
    shared = next(a for a, b in itertools.pairwise(ids) if a[:2] == b[:2])
    fan = [i for i in ids if i.startswith(shared[:2])]
    assert len(fan) >= 2
    assert repo.objects.find_prefix(shared[:2]) == fan
    assert repo.objects.find_prefix(shared[:12]) == [shared]
    assert repo.objects.find_prefix(shared) == [shared]
    unused_in_fan = next(
        shared[:2] + c for c in "0123456789abcdef" if not any(i[2] == c for i in fan)
    )
    assert repo.objects.find_prefix(unused_in_fan) == []
    unused_fan = next(f"{n:02x}" for n in range(256) if not any(i[:2] == f"{n:02x}" for i in ids))
    assert repo.objects.find_prefix(unused_fan) == []


def test_find_prefix_ignores_temp_and_junk_files(repo: Repo) -> None:
    object_id = repo.objects.put_bytes(b"one")
    fan = repo.layout.objects / object_id[:2]
    (fan / ".tmp-junk").write_bytes(b"")
    (fan / "short").write_bytes(b"")
    assert repo.objects.find_prefix(object_id[:2]) == [object_id]


def test_iter_ids_lists_every_object_sorted(repo: Repo) -> None:
    assert list(repo.objects.iter_ids()) == []
    ids = store_many(repo, 50)
    (repo.layout.objects / ids[0][:2] / "not-an-id").write_bytes(b"")
    (repo.layout.objects / "junk").mkdir()
    assert list(repo.objects.iter_ids()) == ids


def test_no_temp_files_remain_after_puts(repo: Repo, tmp_path: Path) -> None:
    source = tmp_path / "f.bin"
    source.write_bytes(b"file bytes")
    repo.objects.put_bytes(b"bytes")
    repo.objects.put_bytes(b"bytes")
    repo.objects.put_file(source)
    repo.objects.put_file(source)
    assert temp_files(repo) == []


def test_delete_removes_object(repo: Repo) -> None:
    object_id = repo.objects.put_bytes(b"gone soon")
    repo.objects.delete(object_id)
    assert not repo.objects.has(object_id)
    assert list(repo.objects.iter_ids()) == []


# -- on a fake filesystem ------------------------------------------------------------------


@pytest.fixture
def fake_store(fs: FakeFilesystem) -> Iterator[ObjectStore]:
    layout = Layout(Path("/project"))
    for directory in (layout.objects, layout.tmp):
        directory.mkdir(parents=True)
    # pyfakefs numbers fake descriptors from 0. Hold some fakes open so the ones the test
    # uses lie above every real descriptor: an os call pyfakefs does not patch then fails
    # with EBADF instead of reading or blocking on a real file (stdin, a capture file).
    fs.create_file("/padding")
    padding = [os.open("/padding", os.O_RDONLY) for _ in range(256)]
    yield ObjectStore(layout)
    for fd in padding:
        os.close(fd)


def test_put_bytes_on_fake_filesystem(fake_store: ObjectStore) -> None:
    object_id = fake_store.put_bytes(b"fake bytes")
    assert object_id == b3(b"fake bytes")
    path = Path("/project/.mstore/objects") / object_id[:2] / object_id[2:]
    assert path.read_bytes() == b"fake bytes"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    assert fake_store.put_bytes(b"fake bytes") == object_id
    assert fake_store.read_bytes(object_id) == b"fake bytes"
    assert os.listdir("/project/.mstore/tmp") == []


def test_put_file_on_fake_filesystem(fs: FakeFilesystem, fake_store: ObjectStore) -> None:
    data = b"small model " * 1000
    fs.create_file("/src/model.pth", contents=data)
    object_id, size, created = fake_store.put_file(Path("/src/model.pth"))
    assert (object_id, size, created) == (b3(data), len(data), True)
    assert fake_store.read_bytes(object_id) == data
    assert fake_store.put_file(Path("/src/model.pth")) == (object_id, len(data), False)
    assert os.listdir("/project/.mstore/tmp") == []
