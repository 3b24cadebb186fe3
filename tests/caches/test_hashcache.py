"""The hash cache: an unchanged directory is committed without reading it; a changed file
is never trusted; the cache is disposable."""

from __future__ import annotations

import builtins
import io
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import mstore.caches.hashcache
import mstore.core.objects
import mstore.ops.commit
from mstore.caches.hashcache import RACY_SECONDS
from mstore.core.hashing import copy_into, hash_bytes, hash_file
from mstore.ops.commit import CommitOptions, commit
from mstore.ops.verify import verify
from mstore.repo import Repo
from tests.helpers import assert_consistent, write_version

BIG = 20 << 20


def make_source(directory: Path) -> Path:
    """A 20 MiB model (the kernel-copy path) and two small files, no metadata.json."""
    directory.mkdir(parents=True)
    (directory / "model.pth").write_bytes(os.urandom(BIG))
    (directory / "encoders.pkl").write_bytes(b"encoders")
    (directory / "config" / "tokenizer.json").parent.mkdir()
    (directory / "config" / "tokenizer.json").write_bytes(b'{"vocab": 3}')
    return backdate(directory)


def backdate(directory: Path, seconds: float = 10.0) -> Path:
    past = time.time() - seconds
    for path in directory.rglob("*"):
        if path.is_file():
            os.utime(path, (past, past))
    return directory


def inside(path: Any, directory: Path) -> bool:
    if isinstance(path, int):
        return False
    try:
        return Path(os.fsdecode(path)).resolve().is_relative_to(directory.resolve())
    except (TypeError, ValueError):
        return False


@contextmanager
def watch_reads(directory: Path) -> Iterator[list[str]]:
    """Record every open of a file inside `directory`, and every copy or hash of one."""
    seen: list[str] = []
    with pytest.MonkeyPatch.context() as patch:

        def wrap(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
                if inside(path, directory):
                    seen.append(f"{name} {os.fsdecode(path)}")
                return original(path, *args, **kwargs)

            return wrapper

        patch.setattr(mstore.core.objects, "copy_into", wrap("copy_into", copy_into))
        patch.setattr(mstore.ops.commit, "hash_file", wrap("hash_file", hash_file))
        patch.setattr(builtins, "open", wrap("open", builtins.open))
        patch.setattr(io, "open", wrap("io.open", io.open))
        patch.setattr(os, "open", wrap("os.open", os.open))
        yield seen


def count_copies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the source of every file copied into the store."""
    calls: list[str] = []
    original = copy_into

    def counting(source: Path, *args: Any, **kwargs: Any) -> tuple[str, int]:
        calls.append(Path(source).name)
        return original(source, *args, **kwargs)

    monkeypatch.setattr(mstore.core.objects, "copy_into", counting)
    return calls


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hash cache's clock runs past the racy window, as if hashing happened seconds
    after the files were last changed. (`os.utime` itself changes ctime, which the cache
    also checks, so backdating mtimes alone does not make a file cacheable.)"""
    real = time.time
    monkeypatch.setattr(
        mstore.caches.hashcache, "time", SimpleNamespace(time=lambda: real() + RACY_SECONDS + 5)
    )


def remove_cache(repo: Repo) -> None:
    repo.hash_cache.close()
    for suffix in ("", "-wal", "-shm"):
        path = repo.layout.hash_cache.with_name(repo.layout.hash_cache.name + suffix)
        if path.exists():
            path.unlink()


def test_unchanged_directory_is_committed_without_reading_it(
    repo: Repo, tmp_path: Path, settled: None
) -> None:
    source = make_source(tmp_path / "src")
    first = commit(repo, source, "staging", options=CommitOptions(message="first"))

    with watch_reads(source) as seen:
        again = commit(
            Repo(repo.root),
            source,
            "staging",
            options=CommitOptions(message="same files, another message"),
        )

    assert seen == []
    assert again.manifest_id == first.manifest_id
    assert not again.move.changed
    assert any("unchanged" in note for note in again.move.notes)
    assert again.bytes == BIG + len(b"encoders") + len(b'{"vocab": 3}')


def test_unchanged_seed_directory_is_committed_without_reading_it(
    repo: Repo, tmp_path: Path, settled: None
) -> None:
    """The same with a metadata.json: FORMAT.md says an unchanged directory costs no reads."""
    source = backdate(write_version(tmp_path / "src", "v1", model=os.urandom(BIG)))
    first = commit(repo, source, "staging", options=CommitOptions(message="first"))

    with watch_reads(source) as seen:
        again = commit(Repo(repo.root), source, "staging", options=CommitOptions(message="again"))

    assert again.manifest_id == first.manifest_id
    assert seen == []


def test_reads_are_seen_when_the_cache_cannot_help(repo: Repo, tmp_path: Path) -> None:
    """Control for `watch_reads`: without a settled cache entry, commit reads every file."""
    source = make_source(tmp_path / "src")
    commit(
        repo, source, "staging", options=CommitOptions(message="first")
    )  # real clock: ctimes are racy, nothing cached

    with watch_reads(source) as seen:
        commit(Repo(repo.root), source, "staging", options=CommitOptions(message="again"))

    copied = sorted(Path(s.split(" ", 1)[1]).name for s in seen if s.startswith("copy_into"))
    assert copied == ["encoders.pkl", "model.pth", "tokenizer.json"]
    assert any(s.startswith("os.open") for s in seen)


def test_first_commit_fills_the_cache(repo: Repo, tmp_path: Path, settled: None) -> None:
    source = make_source(tmp_path / "src")

    manifest_id = commit(repo, source, "staging").manifest_id

    assert manifest_id is not None
    files = repo.manifest(manifest_id).files
    for name in ("model.pth", "encoders.pkl", "config/tokenizer.json"):
        assert repo.hash_cache.lookup(os.stat(source / name)) == files[name].id


def test_changed_file_with_same_size_and_mtime_is_rehashed(
    repo: Repo, tmp_path: Path, settled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_source(tmp_path / "src")
    first = commit(repo, source, "staging").manifest_id
    assert first is not None
    model = source / "model.pth"
    before = os.stat(model)
    data = bytearray(model.read_bytes())
    data[BIG // 2] ^= 0xFF
    with open(model, "r+b") as f:  # same inode, same size
        f.write(data)
    os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(model)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    assert after.st_ctime_ns != before.st_ctime_ns
    copies = count_copies(monkeypatch)

    second = commit(Repo(repo.root), source, "staging").manifest_id

    assert copies == ["model.pth"]
    assert second is not None and second != first
    entry = Repo(repo.root).manifest(second).files["model.pth"]
    assert entry.id == hash_bytes(bytes(data))
    assert Repo(repo.root).objects.read_bytes(entry.id) == data
    assert (repo.layout.view_link("staging") / "model.pth").read_bytes() == data
    assert_consistent(repo)


def test_deleted_cache_loses_nothing(
    repo: Repo, tmp_path: Path, settled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_source(tmp_path / "src")
    first = commit(repo, source, "staging").manifest_id
    remove_cache(repo)
    copies = count_copies(monkeypatch)

    fresh = Repo(repo.root)
    again = commit(
        fresh, source, "staging", options=CommitOptions(message="after losing the cache")
    )

    assert again.manifest_id == first
    assert not again.move.changed
    assert sorted(copies) == ["encoders.pkl", "model.pth", "tokenizer.json"]
    assert fresh.hash_cache.lookup(os.stat(source / "model.pth")) is not None
    assert_consistent(repo)


@pytest.mark.parametrize(
    "garbage",
    [b"\x00garbage\xff" * 4096, b"SQLite format 3\x00" + b"\xa5" * 8192],
    ids=["random", "bad-pages"],
)
def test_corrupt_cache_file_does_not_break_commit(
    repo: Repo, tmp_path: Path, garbage: bytes
) -> None:
    first_source = make_source(tmp_path / "src1")
    commit(repo, first_source, "staging")
    remove_cache(repo)
    repo.layout.hash_cache.write_bytes(garbage)
    source = write_version(tmp_path / "src2", "v2")

    fresh = Repo(repo.root)
    result = commit(fresh, source, "staging", options=CommitOptions(message="with a broken cache"))
    again = commit(Repo(repo.root), source, "staging", options=CommitOptions(message="and again"))

    assert result.move.changed
    assert again.manifest_id == result.manifest_id
    assert fresh.hash_cache.lookup(os.stat(source / "model.pth")) is None
    assert verify(Repo(repo.root)).ok
    assert_consistent(repo)


def test_cache_that_is_a_directory_does_not_break_commit(repo: Repo, tmp_path: Path) -> None:
    remove_cache(repo)
    repo.layout.hash_cache.mkdir()

    result = commit(Repo(repo.root), write_version(tmp_path / "src", "v1"), "staging")

    assert result.manifest_id is not None
    assert_consistent(repo)


def test_file_changed_within_the_racy_window_is_not_cached(repo: Repo, tmp_path: Path) -> None:
    source = write_version(tmp_path / "src", "v1")  # written just now (real clock)

    manifest_id = commit(repo, source, "staging").manifest_id

    assert manifest_id is not None
    for name in ("model.pth", "encoders.pkl", "metadata.json"):
        assert repo.hash_cache.lookup(os.stat(source / name)) is None, name


def test_racy_file_is_read_again_on_the_next_commit(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_version(tmp_path / "src", "v1")
    commit(repo, source, "staging")
    copies = count_copies(monkeypatch)

    commit(Repo(repo.root), source, "staging")

    assert sorted(copies) == ["encoders.pkl", "metadata.json", "model.pth"]
