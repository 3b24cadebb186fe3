"""Large objects as chunks on remotes: only what changed travels, and bad bytes are refused.

Every test runs on a directory, moto and RGW. Remote files are tampered with through
the remote's own blob calls, so the same damage reaches every kind of remote.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from mstore.core.hashing import hash_file
from mstore.errors import MstoreError
from mstore.remotes import open_remote
from mstore.remotes.base import CHUNK_THRESHOLD, Remote
from mstore.remotes.packs import MAX_META_BYTES, recipe_name
from mstore.remotes.tracking import remote_key
from mstore.repo import Repo
from mstore.transfer.verbs import pull, push
from tests.helpers import assert_consistent, store_digest, write_version
from tests.remote.support import (
    Proxy,
    fails,
    model_id,
    mstore,
    new_store,
    ok,
    remote_state,
    view_bytes,
)

SIZE = 9 << 20


@pytest.fixture
def base_model() -> bytes:
    return os.urandom(SIZE)


def _edited(model: bytes, at: int = SIZE // 2, length: int = 100_000) -> bytes:
    return model[:at] + os.urandom(length) + model[at + length :]


@pytest.fixture
def published(remote_url: str, tmp_path: Path, base_model: bytes) -> Repo:
    """production (v1, a 9 MiB model) and staging (v2: 100 kB of it rewritten) pushed."""
    a = new_store(tmp_path / "a")
    src = tmp_path / "src"
    ok(mstore(a.root, "commit", write_version(src / "v1", "v1", base_model), "--to", "production"))
    push(a, open_remote(remote_url), ["production"])
    edited = _edited(base_model)
    ok(mstore(a.root, "commit", write_version(src / "v2", "v2", edited), "--to", "staging"))
    return a


@pytest.fixture
def follower(remote_url: str, published: Repo, tmp_path: Path) -> Repo:
    """A store holding v1 only."""
    b = new_store(tmp_path / "b")
    ok(mstore(b.root, "pull", remote_url, "production"))
    return b


def _chunked(remote: Remote, object_id: str) -> dict[str, object]:
    data = remote.get_blob(recipe_name(object_id), MAX_META_BYTES)
    assert data is not None, "the large object has no recipe"
    recipe: dict[str, object] = orjson.loads(data)
    return recipe


def test_large_objects_travel_as_chunks_and_pull_whole(
    remote_url: str, published: Repo, follower: Repo, tmp_path: Path
) -> None:
    remote = open_remote(remote_url)
    model = model_id(published, "production")
    assert SIZE > CHUNK_THRESHOLD
    assert not remote.has_object(model)  # not stored whole
    assert len(_chunked(remote, model)["chunks"]) > 5  # type: ignore[arg-type]
    assert remote.list_blobs("packs") and remote.list_blobs("indexes")
    # The pulled file is the object: its b3sum is its id.
    assert hash_file(follower.objects.path(model)) == model
    assert view_bytes(follower) == {
        k: v for k, v in view_bytes(published).items() if k.startswith("production/")
    }
    assert_consistent(follower)


def test_push_and_pull_move_only_the_changed_chunks(
    remote_url: str, published: Repo, follower: Repo
) -> None:
    sent = push(published, open_remote(remote_url), ["staging"])
    # 100 kB changed: at most the chunks around it travel (max chunk 1 MiB each side).
    assert 0 < sent.bytes_sent <= 3 << 20, sent
    assert sent.bytes_total > SIZE

    got = pull(follower, open_remote(remote_url), ["staging"])

    assert got.bytes_fetched <= 3 << 20, got
    assert got.bytes_received >= SIZE  # the whole file is installed
    staging = model_id(published, "staging")
    assert hash_file(follower.objects.path(staging)) == staging
    assert remote_state(remote_url) == published.refs.read_all()
    assert_consistent(follower)


def test_a_second_push_sends_nothing(remote_url: str, published: Repo) -> None:
    push(published, open_remote(remote_url))
    again = push(published, open_remote(remote_url))
    assert again.objects_sent == 0 and again.bytes_sent == 0


def _new_chunk(remote: Remote, published: Repo, recipe: dict[str, object]) -> int:
    """The position in `recipe` of a chunk the follower lacks (in the pack v2's push sent)."""
    old = _chunked(remote, model_id(published, "production"))["chunks"]
    old_packs = {c[1] for c in old}  # type: ignore[attr-defined]
    chunks: list[list[object]] = recipe["chunks"]  # type: ignore[assignment]
    return next(i for i, c in enumerate(chunks) if c[1] not in old_packs)


def _refused_unchanged(b: Repo, remote_url: str, code: int, *words: str) -> None:
    before = store_digest(b)
    fails(mstore(b.root, "pull", remote_url), code, *words)
    assert store_digest(b) == before
    assert list(b.layout.tmp.iterdir()) == []
    assert_consistent(b)


def _push_staging(published: Repo, remote_url: str) -> tuple[Remote, str]:
    push(published, open_remote(remote_url), ["staging"])
    return open_remote(remote_url), model_id(published, "staging")


def test_a_tampered_pack_is_refused(remote_url: str, published: Repo, follower: Repo) -> None:
    remote, staging = _push_staging(published, remote_url)
    recipe = _chunked(remote, staging)
    entry = recipe["chunks"][_new_chunk(remote, published, recipe)]  # type: ignore[index]
    pack, offset, length = entry[1], entry[2], entry[3]
    data = bytearray(remote.get_range(f"packs/{pack}", 0, remote.list_blobs("packs")[pack].size))
    data[offset + length // 2] ^= 0xFF  # same size, one bit flipped
    remote.put_blob(f"packs/{pack}", bytes(data))

    _refused_unchanged(follower, remote_url, 3, "do not hash to chunk")


def test_a_recipe_whose_lengths_do_not_add_up_is_refused(
    remote_url: str, published: Repo, follower: Repo
) -> None:
    remote, staging = _push_staging(published, remote_url)
    recipe = _chunked(remote, staging)
    recipe["chunks"] = recipe["chunks"][:-1]  # type: ignore[index]
    remote.put_blob(recipe_name(staging), orjson.dumps(recipe))

    _refused_unchanged(follower, remote_url, 3, "add up")


def test_a_recipe_pointing_past_its_pack_is_refused(
    remote_url: str, published: Repo, follower: Repo
) -> None:
    remote, staging = _push_staging(published, remote_url)
    recipe = _chunked(remote, staging)
    entry = recipe["chunks"][_new_chunk(remote, published, recipe)]  # type: ignore[index]
    entry[2] += 80 << 20  # past any pack's end
    remote.put_blob(recipe_name(staging), orjson.dumps(recipe))

    _refused_unchanged(follower, remote_url, 3, "ends before")


def test_a_recipe_naming_a_missing_pack_is_not_found(
    remote_url: str, published: Repo, follower: Repo
) -> None:
    remote, _ = _push_staging(published, remote_url)
    for pack in remote.list_blobs("packs"):
        remote.delete_blob(f"packs/{pack}")

    _refused_unchanged(follower, remote_url, 4, "missing")


def test_an_index_lying_about_its_pack_is_not_used_by_push(
    remote_url: str, published: Repo, tmp_path: Path
) -> None:
    """A damaged index costs its pack's reuse, not the push: v2's chunks are sent again."""
    remote = open_remote(remote_url)
    pack = next(iter(remote.list_blobs("indexes")))
    index = orjson.loads(remote.get_blob(f"indexes/{pack}", MAX_META_BYTES) or b"")
    index["chunks"][0][2:4] = [128 << 20, "zstd"]  # a stored length past the pack's end
    remote.put_blob(f"indexes/{pack}", orjson.dumps(index))
    cached = published.layout.remote_dir(remote_key(remote_url)) / "indexes" / pack
    cached.unlink(missing_ok=True)  # the store reads the remote's copy

    sent = push(published, open_remote(remote_url), ["staging"])

    assert sent.bytes_sent >= SIZE and "past the pack" in sent.notes[0]
    assert remote_state(remote_url) == published.refs.read_all()
    c = new_store(tmp_path / "c")
    ok(mstore(c.root, "pull", remote_url))
    assert_consistent(c)


def test_an_index_of_a_pack_that_is_not_there_is_not_trusted(
    remote_url: str, published: Repo, tmp_path: Path
) -> None:
    """A push does not skip chunks an index lists when its pack is gone: it sends them."""
    remote = open_remote(remote_url)
    for pack in remote.list_blobs("packs"):
        remote.delete_blob(f"packs/{pack}")

    push(published, open_remote(remote_url), ["staging"])

    c = new_store(tmp_path / "c")
    ok(mstore(c.root, "pull", remote_url, "staging"))
    staging = model_id(published, "staging")
    assert hash_file(c.objects.path(staging)) == staging
    # production's recipe still names the deleted pack: pulling it is "not found".
    fails(mstore(c.root, "pull", remote_url, "production"), 4, "missing")


def test_a_connection_dropped_mid_range_fails_the_pull_and_a_retry_completes(
    remote_url: str, published: Repo, follower: Repo
) -> None:
    push(published, open_remote(remote_url), ["staging"])

    class Dropping(Proxy):
        def get_range(self, name: str, start: int, length: int) -> bytes:
            raise MstoreError(f"S3 transfer failed while reading bytes of {name}: dropped")

    before = store_digest(follower)
    with pytest.raises(MstoreError, match="dropped"):
        pull(follower, Dropping(open_remote(remote_url)))
    assert store_digest(follower) == before
    assert list(follower.layout.tmp.iterdir()) == []

    pull(follower, open_remote(remote_url))
    assert follower.refs.read_all() == published.refs.read_all()
    assert_consistent(follower)


def test_the_local_chunk_index_is_a_cache(remote_url: str, published: Repo, follower: Repo) -> None:
    push(published, open_remote(remote_url), ["staging"])
    (follower.layout.store / "chunks.sqlite").write_bytes(b"not a database" * 100)

    got = pull(follower, open_remote(remote_url), ["staging"])

    assert got.bytes_fetched <= 3 << 20
    assert_consistent(follower)


@pytest.mark.parametrize("remote_kind", ["moto", "rgw"])
def test_packs_travel_with_unsigned_payloads_and_every_other_write_signed(
    remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_model: bytes
) -> None:
    """Over plain HTTP boto signs each body's SHA-256; a pack is named by its blake3
    and checked by every reader, so packs alone go as UNSIGNED-PAYLOAD (the server
    still takes them), and the pull that reads them back is exact."""
    from urllib.parse import unquote, urlsplit

    from mstore.remotes import s3

    monkeypatch.setenv("MSTORE_S3_CHECKSUM", "when_required")  # no trailer checksums
    sent: dict[str, str] = {}
    make_client = s3.make_client

    def spying(sign_payload: bool = True) -> object:
        client = make_client(sign_payload)

        def record(request: object, **_: object) -> None:
            value = request.headers["X-Amz-Content-SHA256"]  # type: ignore[attr-defined]
            path = unquote(urlsplit(request.url).path)  # type: ignore[attr-defined]
            sent[path] = value.decode() if isinstance(value, bytes) else value

        client.meta.events.register("before-send.s3.PutObject", record)
        return client

    monkeypatch.setattr(s3, "make_client", spying)
    a = new_store(tmp_path / "a")
    src = write_version(tmp_path / "src" / "v1", "v1", base_model)
    ok(mstore(a.root, "commit", src, "--to", "production"))
    push(a, open_remote(remote_url), ["production"])

    packs = {path: value for path, value in sent.items() if "/packs/" in path}
    others = {path: value for path, value in sent.items() if "/packs/" not in path}
    assert packs and set(packs.values()) == {"UNSIGNED-PAYLOAD"}
    assert any("/refs/" in path for path in others) and any("/recipes/" in path for path in others)
    assert all(len(value) == 64 and int(value, 16) >= 0 for value in others.values())
    b = new_store(tmp_path / "b")
    pull(b, open_remote(remote_url), ["production"])
    assert view_bytes(b)["production/model.pth"] == base_model
