"""The bases a pull's deltas need: found here, or rebuilt once and deleted after; a
missing base, a cycle and a chain past the bound are refused before anything more is
fetched."""

from __future__ import annotations

from pathlib import Path

import pytest

from mstore.chunks import codecs
from mstore.chunks.deltas import xor
from mstore.core.hashing import hash_bytes
from mstore.errors import IntegrityError
from mstore.remotes import open_remote
from mstore.remotes.packs import Entry, Recipe, encode_recipe, recipe_name
from mstore.transfer import chunk_bases
from mstore.transfer.chunk_bases import Bases


def _store_object(url: str, data: bytes, base: tuple[str, bytes] | None = None) -> str:
    """`data` as a one-chunk object on the remote, a delta against `base` if given."""
    remote = open_remote(url)
    object_id = hash_bytes(data)
    raw = xor(data, base[1]) if base is not None else data
    pack = hash_bytes(raw)
    remote.put_blob(f"packs/{pack}", raw)
    entry = Entry(
        hash_bytes(data), pack, 0, len(raw), codecs.NONE, len(data), base[0] if base else None, 0
    )
    remote.put_blob(recipe_name(object_id), encode_recipe(Recipe(object_id, len(data), (entry,))))
    return object_id


LIMIT = 1 << 20


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = str(tmp_path / "remote")
    open_remote(url).ensure("0" * 32)
    return url


def _bases(url: str, tmp_path: Path, held: dict[str, Path] | None = None) -> Bases:
    names = iter(range(100))
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return Bases(
        open_remote(url),
        lambda i: (held or {}).get(i),
        lambda: tmp_path / "tmp" / str(next(names)),
        None,
        2,
    )


def test_a_base_held_here_is_used_as_is_and_a_missing_one_rebuilt_once(
    url: str, tmp_path: Path
) -> None:
    one = b"first version " * 100
    two = b"second version" * 100
    first = _store_object(url, one)
    second = _store_object(url, two, (first, one))
    bases = _bases(url, tmp_path)
    path = bases.path(first, (second,), LIMIT)
    assert path.read_bytes() == one
    assert bases.path(first, (second,), LIMIT) == path  # once
    fetched = bases.fetched
    assert bases.take(first) == path and bases.take(first) is None
    bases.rebuilt[first] = path
    bases.close()
    assert not path.exists() and fetched == len(one)
    held = tmp_path / "held"
    held.write_bytes(one)
    assert _bases(url, tmp_path, {first: held}).path(first, (second,), LIMIT) == held


def test_a_missing_base_a_cycle_and_a_chain_too_deep_are_refused(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = b"A" * 1000
    first = _store_object(url, one)
    two = b"B" * 1000
    second = _store_object(url, two, (first, one))
    three = b"C" * 1000
    third = _store_object(url, three, (second, two))
    with pytest.raises(IntegrityError, match="is missing"):
        _bases(url, tmp_path).path("9" * 64, (second,), LIMIT)
    with pytest.raises(IntegrityError, match="more than the 800 the bases"):
        _bases(url, tmp_path).path(first, (second,), 200)  # each base: 4 x 200 at most
    root = "8" * 64  # an object of 300 bytes: its bases take at most 1200 each, 2400 in all
    bases = _bases(url, tmp_path)
    bases.path(first, (root,), 300)
    bases.path(second, (root,), 300)
    with pytest.raises(IntegrityError, match="more than the 400 the bases"):
        bases.path(third, (root,), 300)
    bases.close()
    with pytest.raises(IntegrityError, match="cycle of bases"):
        _bases(url, tmp_path).path(second, (second, third), LIMIT)
    monkeypatch.setattr(chunk_bases, "MAX_DEPTH", 1)
    bases = _bases(url, tmp_path)
    with pytest.raises(IntegrityError, match="more than 1 bases deep"):
        bases.path(second, (third,), LIMIT)  # second needs first: two bases from third
    assert list((tmp_path / "tmp").iterdir()) == []  # nothing half-rebuilt left
