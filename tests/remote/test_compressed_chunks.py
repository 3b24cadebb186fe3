"""Compressed chunks (remote format 4 and later) on a directory, moto and RGW: float weights rest
byte-grouped and compressed, random bytes raw, and every pull gets the bytes back
exactly; stored bytes that do not decode to exactly the chunk are refused (exit 3,
the store byte-identical); a format-3 remote is upgraded in place and stays readable.

Remote files are tampered with as a hostile writer would (tests/remote/tamper.py:
plain file writes, boto3 calls).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard

from mstore.chunks.codecs import BG4_ZSTD, NONE
from mstore.core.hashing import hash_bytes
from mstore.errors import RefusedError
from mstore.remotes import base, open_remote
from mstore.remotes.base import MARKER_NAME, check_marker, encode_marker
from mstore.remotes.packs import Recipe, recipe_name
from mstore.remotes.tracking import remote_key
from mstore.repo import Repo
from mstore.transfer import upkeep
from mstore.transfer.verbs import push
from tests.helpers import assert_consistent, store_digest, weights, write_version
from tests.remote.support import fails, model_id, mstore, new_store, ok, remote_recipe, view_bytes
from tests.remote.tamper import flip_byte, names_raw, read_raw, write_raw

# 5 MiB of float32 weights, then 1 MiB of random bytes (an optimizer's noise).
MODEL = weights(5 << 20, seed=7) + os.urandom(1 << 20)


@pytest.fixture
def pushed(remote_url: str, tmp_path: Path) -> tuple[Repo, str]:
    """A store whose production (the model above) is pushed; the model's id."""
    a = new_store(tmp_path / "a")
    ok(mstore(a.root, "commit", write_version(tmp_path / "v1", "v1", MODEL), "--to", "production"))
    push(a, open_remote(remote_url))
    return a, model_id(a, "production")


def test_weights_rest_compressed_and_every_pull_gets_them_back_exactly(
    remote_url: str, pushed: tuple[Repo, str], tmp_path: Path
) -> None:
    a, model = pushed
    recipe = remote_recipe(remote_url, model)
    codecs = [e.codec for e in recipe.entries]
    assert BG4_ZSTD in codecs and NONE in codecs  # the weights grouped, the noise raw
    assert sum(e.stored for e in recipe.entries) < 0.92 * len(MODEL)
    stats = upkeep.stats(open_remote(remote_url))
    assert stats.stored_bytes < stats.logical_bytes

    b = new_store(tmp_path / "b")
    ok(mstore(b.root, "pull", remote_url))
    assert view_bytes(b) == view_bytes(a)
    assert_consistent(b)
    clone = tmp_path / "c"
    ok(mstore(tmp_path, "clone", remote_url, str(clone)))
    assert view_bytes(Repo(clone)) == view_bytes(a)
    ok(mstore(a.root, "remote", "verify", remote_url))


def _compressed(recipe: Recipe) -> int:
    return next(i for i, e in enumerate(recipe.entries) if e.codec != NONE)


def _edit_entry(url: str, object_id: str, edit: Any) -> None:
    """Rewrite the recipe's first compressed entry with `edit(entry list) -> entry list`."""
    name = recipe_name(object_id)
    document = orjson.loads(read_raw(url, name))
    at = _compressed(remote_recipe(url, object_id))
    document["chunks"][at] = edit(document["chunks"][at])
    write_raw(url, name, orjson.dumps(document))


def _planted_pack(url: str, data: bytes) -> str:
    pack = hash_bytes(data)
    write_raw(url, f"packs/{pack}", data)
    return pack


def _damaged(url: str, object_id: str) -> None:
    entry = remote_recipe(url, object_id).entries[_compressed(remote_recipe(url, object_id))]
    flip_byte(url, f"packs/{entry.pack}", entry.offset + entry.stored // 2)


def _truncated(url: str, object_id: str) -> None:
    _edit_entry(url, object_id, lambda e: [*e[:3], e[3] - 8, *e[4:]])


def _bomb(url: str, object_id: str, *, sized: bool) -> None:
    """The chunk's entry pointed at a frame of 16 MiB of zeros (a few hundred bytes)."""
    compressor = zstandard.ZstdCompressor(level=3, write_content_size=sized)
    bomb = compressor.compress(b"\0" * (16 << 20))
    pack = _planted_pack(url, bomb)
    _edit_entry(url, object_id, lambda e: [e[0], pack, 0, len(bomb), "zstd", e[5]])


ATTACKS = {
    "compressed bytes damaged": (_damaged, "zstd frame|do not hash"),
    "compressed bytes truncated": (_truncated, "not a valid bg4-zstd frame"),
    "a bomb (16 MiB for a chunk)": (
        lambda u, o: _bomb(u, o, sized=True),
        "says 16777216 raw bytes.*refused before decompressing",
    ),
    "a bomb with no size in its header": (lambda u, o: _bomb(u, o, sized=False), "says -1"),
    "an unknown codec": (
        lambda u, o: _edit_entry(u, o, lambda e: [*e[:4], "lz4", e[5]]),
        "not a valid recipe",
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_stored_bytes_that_are_not_exactly_the_chunk_are_refused_nothing_stored(
    remote_url: str, pushed: tuple[Repo, str], tmp_path: Path, attack: str
) -> None:
    _a, model = pushed
    tamper, words = ATTACKS[attack]
    tamper(remote_url, model)
    b = new_store(tmp_path / "b")
    before = store_digest(b)

    fails(mstore(b.root, "pull", remote_url), 3, "the remote is damaged")
    assert store_digest(b) == before
    result = mstore(b.root, "pull", remote_url)
    assert result.exit_code == 3
    assert re.search(words, result.stderr), result.stderr


def test_an_index_with_an_unknown_codec_is_refused(
    remote_url: str, pushed: tuple[Repo, str], tmp_path: Path
) -> None:
    a, model = pushed
    (pack,) = {e.pack for e in remote_recipe(remote_url, model).entries}
    document = orjson.loads(read_raw(remote_url, f"indexes/{pack}"))
    document["chunks"][0][3] = "lz4"
    write_raw(remote_url, f"indexes/{pack}", orjson.dumps(document))
    cached = a.layout.remote_dir(remote_key(remote_url)) / "indexes" / pack
    cached.unlink(missing_ok=True)  # the store reads the remote's copy

    fails(mstore(a.root, "remote", "verify", remote_url), 3, "not a valid index")
    edited = MODEL[:100] + b"!" + MODEL[101:]
    ok(mstore(a.root, "commit", write_version(tmp_path / "v2", "v2", edited), "--to", "staging"))
    sent = push(a, open_remote(remote_url), ["staging"])
    assert sent.bytes_sent > len(MODEL) // 2  # nothing of that pack reused
    assert "not reused" in sent.notes[0]


def _as_format_3(url: str) -> None:
    """The remote as mstore wrote format 3: format-1 indexes and recipes (raw chunks)."""
    for pack in names_raw(url, "indexes"):
        document = orjson.loads(read_raw(url, f"indexes/{pack}"))
        assert all(codec == NONE for _c, _o, _s, codec, _n in document["chunks"])
        document["chunks"] = [[c, o, n] for c, o, _s, _codec, n in document["chunks"]]
        write_raw(url, f"indexes/{pack}", orjson.dumps(document | {"format": 1}))
    for name in names_raw(url, "recipes"):
        document = orjson.loads(read_raw(url, f"recipes/{name}"))
        document["chunks"] = [[c, p, o, n] for c, p, o, _s, _codec, n in document["chunks"]]
        write_raw(url, f"recipes/{name}", orjson.dumps(document | {"format": 1}))
    marker = orjson.loads(read_raw(url, MARKER_NAME))
    write_raw(url, MARKER_NAME, orjson.dumps(marker | {"format": 3}))


def test_a_format_3_remote_is_upgraded_in_place_and_its_raw_chunks_stay_readable(
    remote_url: str, tmp_path: Path
) -> None:
    a = new_store(tmp_path / "a")
    noise = os.urandom(6 << 20)
    ok(mstore(a.root, "commit", write_version(tmp_path / "v1", "v1", noise), "--to", "production"))
    push(a, open_remote(remote_url))
    _as_format_3(remote_url)
    repository = open_remote(remote_url).repository()
    b = new_store(tmp_path / "b")

    fails(mstore(b.root, "pull", remote_url), 7, "format 3", "uncompressed chunks", "upgrade")
    upgraded = ok(mstore(a.root, "remote", "upgrade", remote_url)).stdout
    assert f"format 3 -> {base.REMOTE_FORMAT}" in upgraded
    assert open_remote(remote_url).repository() == repository
    ok(mstore(b.root, "pull", remote_url))
    assert view_bytes(b) == view_bytes(a)

    # A new version reuses the raw chunks and adds compressed ones beside them.
    grown = noise + weights(2 << 20, seed=9)
    ok(mstore(a.root, "commit", write_version(tmp_path / "v2", "v2", grown), "--to", "staging"))
    sent = push(a, open_remote(remote_url), ["staging"])
    # The new weights and the chunk at the seam (up to 1 MiB raw), not the noise again.
    assert sent.bytes_sent < (4 << 20)
    codecs = {e.codec for e in remote_recipe(remote_url, model_id(a, "staging")).entries}
    # The raw chunks reused; the weights grouped (the seam chunk, half noise, may take
    # plain zstd).
    assert NONE in codecs and codecs & {BG4_ZSTD, "bg2-zstd"}
    assert codecs <= {NONE, "zstd", BG4_ZSTD, "bg2-zstd"}
    ok(mstore(b.root, "pull", remote_url, "staging"))
    assert view_bytes(b) == view_bytes(a)
    ok(mstore(a.root, "remote", "verify", remote_url))
    assert_consistent(b)


def test_a_format_3_mstore_refuses_a_newer_remote(monkeypatch: pytest.MonkeyPatch) -> None:
    marker = encode_marker("0" * 32)
    newer = f"uses format {base.REMOTE_FORMAT}; this mstore reads format 3"
    monkeypatch.setattr(base, "REMOTE_FORMAT", 3)
    with pytest.raises(RefusedError, match=newer):
        check_marker(marker, "s3://bucket/models")
