"""mstore.transfer.chunk_push: large objects leave as chunks; only the chunks a remote
lacks travel, in packs named by their bytes, each with its index; recipes come last.

Small chunk parameters (1 KiB on average) give many chunks from a few hundred KiB.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from mstore.chunks.chunking import ChunkParams, chunk_bytes
from mstore.chunks.codecs import decode
from mstore.core.hashing import hash_bytes
from mstore.errors import IntegrityError
from mstore.remotes import open_remote
from mstore.remotes.base import Remote
from mstore.remotes.packs import MAX_META_BYTES, RemoteIndex, decode_index, recipe_name
from mstore.transfer import chunk_push
from mstore.transfer.chunk_push import ChunkSender

PARAMS = ChunkParams(min_size=256, avg_size=1024, max_size=4096, tensor_cuts=False)


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    remote = open_remote(str(tmp_path / "remote"))
    remote.ensure("0" * 32)
    return remote


def object_file(tmp_path: Path, data: bytes) -> tuple[str, Path]:
    path = tmp_path / hash_bytes(data)
    path.write_bytes(data)
    return hash_bytes(data), path


def send(remote: Remote, files: list[tuple[str, Path]], jobs: int = 2) -> ChunkSender:
    sender = ChunkSender(remote, RemoteIndex.read(remote, None, jobs), PARAMS, jobs, None)
    for object_id, path in files:
        sender.add(object_id, path)
    sender.finish()
    return sender


def rebuilt(remote: Remote, object_id: str) -> bytes:
    """The object's bytes, read back through its recipe from the packs."""
    data = remote.get_blob(recipe_name(object_id), MAX_META_BYTES)
    assert data is not None
    document = orjson.loads(data)
    return b"".join(
        decode(remote.get_range(f"packs/{pack}", offset, stored), codec, length, "test")
        for _chunk, pack, offset, stored, codec, length in document["chunks"]
    )


def test_chunks_travel_in_packs_named_by_their_bytes_each_with_its_index(
    remote: Remote, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    object_id, path = object_file(tmp_path, data)

    sender = send(remote, [(object_id, path)])

    chunks = chunk_bytes(data, PARAMS)
    assert sender.stats.chunks == sender.stats.chunks_sent == len(chunks) > 100
    (pack,) = sender.stats.packs
    stored = remote.get_range(f"packs/{pack}", 0, sender.stats.bytes_sent)
    assert hash_bytes(stored) == pack and len(stored) == len(data)
    index_bytes = remote.get_blob(f"indexes/{pack}", MAX_META_BYTES)
    assert index_bytes is not None
    index = decode_index(index_bytes, pack, len(stored), remote.url)
    expected = [(c.id, c.length, "none") for c in chunks]  # random bytes: stored raw
    assert [(e.chunk, e.stored, e.codec) for e in index] == expected
    assert rebuilt(remote, object_id) == data
    assert [r.object_id for r in sender.stats.recipes] == [object_id]


def test_a_chunk_the_remote_holds_is_not_sent_again(remote: Remote, tmp_path: Path) -> None:
    """An edit in the middle of an object sends only the chunks around the edit."""
    data = os.urandom(200_000)
    edited = data[:100_000] + os.urandom(500) + data[100_500:]
    send(remote, [object_file(tmp_path, data)])

    second = send(remote, [object_file(tmp_path, edited)])

    assert 0 < second.stats.chunks_sent < second.stats.chunks // 10
    assert second.stats.bytes_sent < 20_000
    assert rebuilt(remote, hash_bytes(edited)) == edited


def test_chunks_repeated_within_one_push_are_packed_once(remote: Remote, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    sender = send(remote, [object_file(tmp_path, data), object_file(tmp_path, data + b"!")])
    assert sender.stats.bytes_sent < 110_000
    assert rebuilt(remote, hash_bytes(data + b"!")) == data + b"!"


def test_packs_are_sealed_at_the_limit(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chunk_push, "PACK_LIMIT", 20_000)
    data = os.urandom(100_000)
    object_id, path = object_file(tmp_path, data)

    sender = send(remote, [(object_id, path)], jobs=3)

    sizes = {p: info.size for p, info in remote.list_blobs("packs").items()}
    assert len(sizes) == len(sender.stats.packs) >= 5
    assert all(size <= 20_000 for size in sizes.values())
    assert sum(sizes.values()) == sender.stats.bytes_sent == len(data)
    assert rebuilt(remote, object_id) == data


def test_a_stored_pack_s_buffer_is_filled_again_with_exactly_the_next_pack(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One send at a time: each pack after the first fills the buffer of the pack
    stored before it (no new pages), longer or shorter than it, and holds exactly its
    own bytes."""
    monkeypatch.setattr(chunk_push, "PACK_LIMIT", 20_000)
    buffers: list[bytearray] = []
    joined = ChunkSender._joined

    def spy(self: ChunkSender, pieces: list[bytes | memoryview]) -> bytearray:
        buffer = joined(self, pieces)
        buffers.append(buffer)  # kept alive: a new buffer could not take its place
        return buffer

    monkeypatch.setattr(ChunkSender, "_joined", spy)
    data = os.urandom(150_000)
    object_id, path = object_file(tmp_path, data)

    sender = send(remote, [(object_id, path)], jobs=1)

    assert len(buffers) == len(sender.stats.packs) >= 7
    assert all(buffer is buffers[0] for buffer in buffers)
    sizes = {p: info.size for p, info in remote.list_blobs("packs").items()}
    assert len(set(sizes.values())) > 1
    for pack, size in sizes.items():
        assert hash_bytes(remote.get_range(f"packs/{pack}", 0, size)) == pack
    assert rebuilt(remote, object_id) == data


def test_bytes_that_changed_since_they_were_hashed_are_never_sent(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chunker read one version of the file; the bytes read for the pack are another."""
    data = os.urandom(50_000)
    object_id, path = object_file(tmp_path, data)
    before = list(chunk_push.chunk_file(path, PARAMS, owned=True))
    path.write_bytes(os.urandom(50_000))
    monkeypatch.setattr(chunk_push, "chunk_file", lambda *_a, **_k: iter(before))
    sender = ChunkSender(remote, RemoteIndex.read(remote, None, 1), PARAMS, 1, None)

    with pytest.raises(IntegrityError, match=f"object {object_id} changed while it was sent"):
        sender.add(object_id, path)
    sender.abort()

    assert remote.list_blobs("packs") == {} and remote.list_blobs("recipes") == {}


def test_recipes_are_written_only_after_every_pack(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pack that fails to arrive leaves no recipe naming it."""
    monkeypatch.setattr(chunk_push, "PACK_LIMIT", 20_000)
    real = remote.put_blob
    sent: list[str] = []

    def put_blob(name: str, data: bytes | bytearray) -> None:
        if name.startswith("packs/") and len(sent) == 2:
            raise OSError(28, "No space left on device")
        sent.append(name)
        real(name, data)

    monkeypatch.setattr(remote, "put_blob", put_blob)
    sender = ChunkSender(remote, RemoteIndex.read(remote, None, 1), PARAMS, 1, None)
    object_id, path = object_file(tmp_path, os.urandom(100_000))
    with pytest.raises(OSError):
        sender.add(object_id, path)
        sender.finish()
    sender.abort()

    assert not any(name.startswith("recipes/") for name in sent)
    assert remote.list_blobs("recipes") == {}


def test_progress_counts_every_byte_of_the_object(remote: Remote, tmp_path: Path) -> None:
    seen: list[int] = []
    object_id, path = object_file(tmp_path, os.urandom(30_000))
    sender = ChunkSender(remote, RemoteIndex.read(remote, None, 1), PARAMS, 1, seen.append)
    sender.add(object_id, path)
    sender.finish()
    assert sum(seen) == 30_000
