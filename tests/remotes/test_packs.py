"""mstore.remotes.packs: the chunked layout of a remote (packs, their indexes, recipes and
prune's mark), each file validated before any name or offset in it is used."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from mstore.core.hashing import hash_bytes
from mstore.errors import IntegrityError
from mstore.remotes import open_remote
from mstore.remotes.base import BlobInfo, Remote
from mstore.remotes.packs import (
    DOOMED,
    Doomed,
    Entry,
    IndexEntry,
    Recipe,
    RemoteIndex,
    decode_index,
    decode_recipe,
    encode_doomed,
    encode_index,
    encode_recipe,
    named,
    pack_name,
    read_doomed,
    recipe_name,
    recipe_object,
)

URL = "/srv/remote"
OBJ, PACK, OTHER = "0" * 64, "1" * 64, "2" * 64
C1, C2, C3 = "a" * 64, "b" * 64, "c" * 64


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    remote = open_remote(str(tmp_path / "remote"))
    remote.ensure("0" * 32)
    return remote


def recipe() -> Recipe:
    return Recipe(
        OBJ, 30, (Entry(C1, PACK, 0, 10, "none", 10), Entry(C2, PACK, 10, 20, "none", 20))
    )


def test_a_recipe_survives_its_encoding_and_names_its_packs() -> None:
    data = encode_recipe(recipe())
    assert orjson.loads(data)["chunks"][0] == [C1, PACK, 0, 10, "none", 10]
    assert orjson.loads(data)["format"] == 2
    assert decode_recipe(data, OBJ, 30, URL) == recipe()
    assert decode_recipe(data, OBJ, None, URL).packs() == {PACK}
    assert recipe_name(OBJ) == f"recipes/00/{OBJ[2:]}"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"format": 4}, "not a valid recipe"),
        ({"id": OTHER}, "not a valid recipe"),
        ({"size": -1}, "not a valid recipe"),
        ({"size": True}, "not a valid recipe"),
        ({"chunks": [[C1, PACK, 0, 0, "none", 0], [C2, PACK, 0, 30, "none", 30]]}, "not a valid"),
        ({"chunks": [[C1, "pack", 0, 30, "none", 30]]}, "not a valid recipe"),
        ({"chunks": [[C1, PACK, -5, 30, "none", 30]]}, "not a valid recipe"),
        ({"chunks": [[C1, PACK, 0, 30, "none"]]}, "not a valid recipe"),
        ({"chunks": [[C1, PACK, 0, 30]]}, "not a valid recipe"),  # a format-1 entry
        ({"chunks": [[C1, PACK, 0, 10, "lz4", 30]]}, "not a valid recipe"),  # unknown codec
        ({"chunks": [[C1, PACK, 0, 10, "none", 30]]}, "not a valid recipe"),  # none: 10 != 30
        ({"chunks": [[C1, PACK, 0, 10, "zstd", (16 << 20) + 1]]}, "not a valid recipe"),
        ({"chunks": [[C1, PACK, 0, 29, "none", 29]]}, "add up to 29 bytes, not the object's 30"),
    ],
)
def test_a_recipe_that_lies_is_refused(change: dict[str, object], words: str) -> None:
    document = orjson.loads(encode_recipe(recipe())) | change
    with pytest.raises(IntegrityError, match=words):
        decode_recipe(orjson.dumps(document), OBJ, None, URL)


def delta_recipe() -> Recipe:
    return Recipe(
        OBJ,
        30,
        (Entry(C1, PACK, 0, 4, "zstd", 10, OTHER, 100), Entry(C2, PACK, 4, 20, "none", 20)),
    )


def test_a_recipe_with_deltas_is_format_3_and_names_its_bases() -> None:
    data = encode_recipe(delta_recipe())
    document = orjson.loads(data)
    assert document["format"] == 3
    assert document["chunks"] == [
        [C1, PACK, 0, 4, "zstd", 10, OTHER, 100],
        [C2, PACK, 4, 20, "none", 20],
    ]
    assert decode_recipe(data, OBJ, 30, URL) == delta_recipe()
    assert decode_recipe(data, OBJ, 30, URL).bases() == {OTHER}
    index = encode_index(PACK, 24, [IndexEntry(C1, 0, 4, "zstd", 10, OTHER, 100), plain(C2, 4, 20)])
    assert orjson.loads(index)["format"] == 3
    assert decode_index(index, PACK, 24, URL)[0].base == OTHER


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"format": 2}, "a delta entry in a format-2 recipe"),
        ({"chunks": [[C1, PACK, 0, 4, "zstd", 10, OBJ, 0], [C2, PACK, 4, 20, "none", 20]]}, "self"),
        ({"chunks": [[C1, PACK, 0, 4, "zstd", 10, "x", 0], [C2, PACK, 4, 20, "none", 20]]}, "hex"),
        ({"chunks": [[C1, PACK, 0, 4, "zstd", 10, OTHER], [C2, PACK, 4, 20, "none", 20]]}, "short"),
        (
            {"chunks": [[C1, PACK, 0, 4, "zstd", 10, OTHER, -1], [C2, PACK, 4, 20, "none", 20]]},
            "negative",
        ),
        (
            {
                "chunks": [
                    [C1, PACK, 0, 4, "zstd", 10, OTHER, 2**63 - 5],
                    [C2, PACK, 4, 20, "none", 20],
                ]
            },
            "past any file",
        ),
    ],
)
def test_a_delta_entry_that_lies_is_refused(change: dict[str, object], why: str) -> None:
    document = orjson.loads(encode_recipe(delta_recipe())) | change
    with pytest.raises(IntegrityError, match="not a valid recipe"):
        decode_recipe(orjson.dumps(document), OBJ, None, URL)


def test_a_format_1_recipe_stays_readable_as_uncompressed_chunks() -> None:
    document = {"chunks": [[C1, PACK, 0, 10], [C2, PACK, 10, 20]], "format": 1, "id": OBJ}
    assert decode_recipe(orjson.dumps(document | {"size": 30}), OBJ, 30, URL) == recipe()
    bad = document | {"chunks": [[C1, PACK, 0, 10, "none", 10]], "size": 10}
    with pytest.raises(IntegrityError, match="not a valid recipe"):
        decode_recipe(orjson.dumps(bad), OBJ, 10, URL)


def test_a_recipe_of_another_size_than_its_manifest_says_is_refused() -> None:
    with pytest.raises(IntegrityError, match="gives 30 bytes, the manifest says 31"):
        decode_recipe(encode_recipe(recipe()), OBJ, 31, URL)
    for data in (b"[]", b"{", b'"x"'):
        with pytest.raises(IntegrityError):
            decode_recipe(data, OBJ, None, URL)


def plain(chunk: str, offset: int, length: int) -> IndexEntry:
    return IndexEntry(chunk, offset, length, "none", length)


def test_an_index_lists_its_chunks_back_to_back_to_the_packs_end() -> None:
    chunks = [plain(C1, 0, 10), IndexEntry(C2, 10, 20, "bg4-zstd", 4000)]
    data = encode_index(PACK, 30, chunks)
    assert orjson.loads(data)["chunks"][1] == [C2, 10, 20, "bg4-zstd", 4000]
    assert decode_index(data, PACK, 30, URL) == chunks
    assert decode_index(encode_index(PACK, 0, []), PACK, 0, URL) == []


def test_a_format_1_index_stays_readable_as_uncompressed_chunks() -> None:
    document = {"chunks": [[C1, 0, 10], [C2, 10, 20]], "format": 1, "pack": PACK, "size": 30}
    assert decode_index(orjson.dumps(document), PACK, 30, URL) == [
        plain(C1, 0, 10),
        plain(C2, 10, 20),
    ]


@pytest.mark.parametrize(
    "entry",
    [
        [C1, 0, 30, "lz4", 100],  # a codec this mstore does not decode
        [C1, 0, 30, "none", 100],  # stored raw, yet another length
        [C1, 0, 30, "zstd", (16 << 20) + 1],  # a raw length no chunk has
        [C1, 0, 30, "zstd", 0],
        [C1, 0, 30, "zstd"],
    ],
)
def test_an_index_entry_no_chunk_can_have_is_refused(entry: list[object]) -> None:
    document = {"chunks": [entry], "format": 2, "pack": PACK, "size": 30}
    with pytest.raises(IntegrityError, match="not a valid index"):
        decode_index(orjson.dumps(document), PACK, 30, URL)


@pytest.mark.parametrize(
    ("chunks", "size", "words"),
    [
        ([plain(C1, 0, 10), plain(C2, 12, 18)], 30, "not at 10 where the chunk before it ends"),
        ([plain(C1, 0, 10), plain(C2, 5, 20)], 30, "not at 10"),
        ([plain(C1, 0, 40)], 30, "past the pack's end"),
        ([plain(C1, 0, 10)], 30, "accounts for 10 of the pack's 30 bytes"),
    ],
)
def test_an_index_that_does_not_tile_its_pack_is_refused(
    chunks: list[IndexEntry], size: int, words: str
) -> None:
    with pytest.raises(IntegrityError, match=words):
        decode_index(encode_index(PACK, size, chunks), PACK, size, URL)


def test_an_index_of_another_pack_or_size_is_refused() -> None:
    data = encode_index(PACK, 30, [plain(C1, 0, 30)])
    for pack, size in ((OTHER, 30), (PACK, 31)):
        with pytest.raises(IntegrityError, match="not a valid index"):
            decode_index(data, pack, size, URL)


def test_only_names_mstore_writes_count_the_rest_are_strays() -> None:
    assert pack_name(PACK) == PACK
    assert pack_name(".nfs000123") is None and pack_name(C1.upper()) is None
    assert recipe_object(f"00/{OBJ[2:]}") == OBJ
    for name in (OBJ, f"000/{OBJ[3:]}", "00/", f"00/{OBJ[2:]}.tmp"):
        assert recipe_object(name) is None
    info = BlobInfo(size=1, mtime=0.0)
    found, strays = named({PACK: info, "b/": info, "a": info}, pack_name)
    assert (found, strays) == ({PACK: info}, ["a", "b/"])


def test_the_mark_survives_its_encoding(remote: Remote) -> None:
    assert read_doomed(remote) == Doomed()
    mark = Doomed(frozenset({PACK}), frozenset({OBJ}), since=100.5, deleting=200)
    remote.put_blob(DOOMED, encode_doomed(mark))
    assert read_doomed(remote) == mark
    assert "deleting" not in orjson.loads(encode_doomed(Doomed(since=1)))


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"packs": [], "recipes": []}',
        b'{"packs": ["x"], "recipes": [], "since": 1}',
        b'{"packs": [], "recipes": [], "since": true}',
        b'{"packs": [], "recipes": [], "since": 1, "deleting": "now"}',
    ],
)
def test_a_mark_that_is_not_valid_marks_nothing(remote: Remote, data: bytes) -> None:
    remote.put_blob(DOOMED, data)
    assert read_doomed(remote) == Doomed(damaged=True)


def write_pack(remote: Remote, chunks: dict[str, bytes]) -> str:
    """A pack holding `chunks` (id -> bytes; the ids need not be their hashes here)."""
    data, where = b"", {}
    for chunk, part in chunks.items():
        where[chunk] = (len(data), len(part))
        data += part
    pack = hash_bytes(data)
    remote.put_blob(f"packs/{pack}", data)
    listing = [plain(c, o, n) for c, (o, n) in where.items()]
    remote.put_blob(f"indexes/{pack}", encode_index(pack, len(data), listing))
    return pack


def test_the_index_knows_each_chunk_of_each_usable_pack(remote: Remote, tmp_path: Path) -> None:
    pack = write_pack(remote, {C1: b"x" * 10, C2: b"y" * 20})
    cache = tmp_path / "cache"

    index = RemoteIndex.read(remote, cache, 2)

    assert index.chunks == {
        C1: (pack, 0, 10, "none", 10, None, 0),
        C2: (pack, 10, 20, "none", 20, None, 0),
    }
    assert (cache / pack).read_bytes() == remote.get_blob(f"indexes/{pack}", 1 << 20)
    assert index.holds(
        Recipe(OBJ, 30, (Entry(C1, pack, 0, 10, "none", 10), Entry(C2, pack, 10, 20, "none", 20)))
    )
    assert not index.holds(
        Recipe(OBJ, 10, (Entry(C1, pack, 1, 10, "none", 10),))
    )  # elsewhere in it
    assert not index.holds(Recipe(OBJ, 10, (Entry(C3, pack, 0, 10, "none", 10),)))  # not in it


def test_marked_excluded_and_damaged_packs_are_left_out(remote: Remote) -> None:
    marked = write_pack(remote, {C1: b"1" * 10})
    excluded = write_pack(remote, {C2: b"2" * 10})
    damaged = write_pack(remote, {C3: b"3" * 10})
    remote.put_blob(f"indexes/{damaged}", b"{}")
    remote.put_blob(DOOMED, encode_doomed(Doomed(packs=frozenset({marked}), since=1)))

    index = RemoteIndex.read(remote, None, 2, exclude=frozenset({excluded}))

    assert index.chunks == {}
    assert set(index.damaged) == {damaged}
    assert index.notes() == [
        f"the chunks of pack {damaged[:12]} are not reused: {index.damaged[damaged]}"
    ]


def test_a_stale_cached_index_is_fetched_again(remote: Remote, tmp_path: Path) -> None:
    pack = write_pack(remote, {C1: b"x" * 10})
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / pack).write_bytes(b"damaged cache entry")
    assert RemoteIndex.read(remote, cache, 1).chunks == {C1: (pack, 0, 10, "none", 10, None, 0)}
    assert (cache / pack).read_bytes() == remote.get_blob(f"indexes/{pack}", 1 << 20)
