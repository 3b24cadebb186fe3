"""Choosing a delta's base when pushing: tensors paired by name, dtype and shape; a
base's bytes served only once they hash to its recipe's chunks; chains bounded and
never cyclic."""

from __future__ import annotations

from pathlib import Path

import pytest

from mstore.chunks.deltas import MAX_BASES
from mstore.core.hashing import hash_bytes
from mstore.core.manifests import FileEntry, Lineage, Manifest
from mstore.remotes import open_remote
from mstore.remotes.packs import Doomed, Entry, Recipe, RemoteIndex, encode_recipe, recipe_name
from mstore.transfer import delta_bases
from mstore.transfer.delta_bases import (
    BaseSource,
    Chains,
    Needs,
    layout_of,
    parents,
    tensor_pairs,
)
from tests.checkpoint_files import tensors_file

BIG = 5 << 20


def _manifest(files: dict[str, tuple[str, int]], parent: str | None = None) -> Manifest:
    return Manifest(
        files={p: FileEntry(i, s, 0o644) for p, (i, s) in files.items()},
        metadata={},
        lineage=Lineage(parent=parent, author="ana", time="t", message=""),
    )


def test_a_large_file_s_base_is_the_same_path_in_the_version_it_came_from() -> None:
    a, b, c, d = "a" * 64, "b" * 64, "c" * 64, "d" * 64
    before = _manifest({"model.pth": (a, BIG), "small.pkl": (c, 10)})
    after = _manifest({"model.pth": (b, BIG), "small.pkl": (d, 10), "new.pth": (d, BIG)})
    assert parents([(after, before)]) == {b: a}  # small and new files have none
    assert parents([(after, None)]) == {}
    same = _manifest({"model.pth": (a, BIG)})
    assert parents([(same, before)]) == {}  # unchanged: nothing to delta


def test_tensors_pair_by_name_dtype_and_shape(tmp_path: Path) -> None:
    old = tmp_path / "old"
    new = tmp_path / "new"
    old.write_bytes(
        tensors_file(
            [
                ("a", "F32", [4], bytes(16)),
                ("b", "F32", [2, 2], bytes(16)),
                ("c", "F16", [8], bytes(16)),
            ]
        )
    )
    new.write_bytes(
        tensors_file(
            [
                ("c", "F16", [8], bytes(16)),  # moved: paired where it now is
                ("a", "F32", [4], bytes(16)),
                ("b", "F32", [4], bytes(16)),  # another shape: not paired
                ("d", "F32", [4], bytes(16)),  # new: not paired
            ]
        )
    )
    pairs = tensor_pairs(new, old)
    new_start = new.stat().st_size - 64
    old_start = old.stat().st_size - 48
    assert pairs == [
        (new_start, new_start + 16, old_start + 32),
        (new_start + 16, new_start + 32, old_start),
    ]
    (tmp_path / "junk").write_bytes(b"not a checkpoint")
    assert tensor_pairs(tmp_path / "junk", old) == []


def test_a_base_s_bytes_are_served_only_when_they_hash_to_its_chunks(tmp_path: Path) -> None:
    data = bytes(range(256)) * 64
    path = tmp_path / "base"
    path.write_bytes(data)
    chunks = [(hash_bytes(data[i : i + 4096]), 4096) for i in range(0, len(data), 4096)]
    source = BaseSource("b" * 64, path, layout_of(chunks))
    assert source.read(4000, 200) == data[4000:4200]  # across two chunks
    assert source.read(len(data) - 10, 20) is None  # past its end
    path.write_bytes(data[:5000] + b"!" + data[5001:])  # the local copy is damaged
    fresh = BaseSource("b" * 64, path, layout_of(chunks))
    assert fresh.read(0, 100) == data[:100]
    assert fresh.read(4096, 100) is None and fresh.damaged
    assert fresh.read(0, 100) is None  # never used again
    source.close()
    fresh.close()


def _put_recipe(remote_url: str, object_id: str, bases: list[str], size: int = 10) -> Recipe:
    """A recipe of one `size`-byte chunk per base (one plain chunk if none)."""
    chunk = hash_bytes(object_id.encode())
    entries = [Entry(chunk, "d" * 64, 0, size, "none", size, base, 0) for base in bases]
    entries = entries or [Entry(chunk, "d" * 64, 0, size, "none", size)]
    recipe = Recipe(object_id, size * len(entries), tuple(entries))
    open_remote(remote_url).put_blob(recipe_name(object_id), encode_recipe(recipe))
    return recipe


def _index(recipes: list[Recipe], marked: frozenset[str] = frozenset()) -> RemoteIndex:
    """A remote index holding exactly these recipes' chunks (marking `marked`)."""
    index = RemoteIndex({}, Doomed(recipes=marked))
    for recipe in recipes:
        for e in recipe.entries:
            if index.chunks.setdefault(e.chunk, e.place()) != e.place():
                index.elsewhere.setdefault(e.chunk, []).append(e.place())
    return index


def test_chains_are_bounded_and_never_cyclic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(tmp_path / "remote")
    open_remote(url).ensure("0" * 32)
    v1, v2, v3, x, y = ("1" * 64, "2" * 64, "3" * 64, "e" * 64, "f" * 64)
    recipes = [
        _put_recipe(url, v1, []),
        _put_recipe(url, v2, [v1]),
        _put_recipe(url, v3, [v2]),
        _put_recipe(url, x, [y]),  # x and y need each other
        _put_recipe(url, y, [x]),
    ]
    chains = Chains(open_remote(url), _index(recipes))
    new = Needs("9" * 64, 10)
    chain = chains.chain(v3)
    assert chain is not None and chain.depth == 2 and chain.needs == {v1, v2}
    assert chains.usable(v3, new)
    assert not chains.usable(v2, Needs(v1, 10))  # v2 needs v1: v1 may not need v2
    assert not chains.usable(v1, Needs(v1, 10))
    assert chains.chain(x) is None and not chains.usable(x, new)
    assert not chains.usable("a" * 64, new)  # no recipe: no base
    monkeypatch.setattr(delta_bases, "MAX_DEPTH", 2)
    bounded = Chains(open_remote(url), _index(recipes))
    assert bounded.usable(v2, new)
    assert not bounded.usable(v3, new)  # a delta on it would be 3 deep


def test_a_base_must_be_held_unmarked_and_within_what_a_pull_rebuilds(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    open_remote(url).ensure("0" * 32)
    v1, v2, big = "1" * 64, "2" * 64, "b" * 64
    recipes = [_put_recipe(url, v1, []), _put_recipe(url, v2, [v1]), _put_recipe(url, big, [], 50)]
    chains = Chains(open_remote(url), _index(recipes))
    assert chains.usable(v2, Needs("9" * 64, 10))  # needs v2 and v1: 20 bytes, 8 x 10 allowed
    assert not chains.usable(big, Needs("9" * 64, 10))  # 50 bytes > 4 x 10
    assert chains.usable(big, Needs("9" * 64, 13))  # 50 <= 52
    assert not chains.usable(v2, Needs("9" * 64, 2))  # 20 bytes in all > 8 x 2
    assert not Chains(open_remote(url), _index(recipes, frozenset({v1}))).usable(
        v2, Needs("9" * 64, 10)
    )  # v1 is marked by a prune: v2 leans on it, so neither is a base
    assert not Chains(open_remote(url), _index(recipes[1:])).usable(v2, Needs("9" * 64, 10))
    many = Needs("9" * 64, 10, bases={hash_bytes(bytes([i])) for i in range(MAX_BASES)})
    assert not chains.usable(v1, many)  # one base too many for a recipe


def test_objects_are_sent_after_the_bases_they_name_among_them() -> None:
    a, b, c, d = "a" * 64, "b" * 64, "c" * 64, "d" * 64
    order = delta_bases.bases_first([a, b, c, d], {a: b, b: c, d: "9" * 64})
    assert order.index(c) < order.index(b) < order.index(a)
    assert sorted(order) == [a, b, c, d]
    assert delta_bases.bases_first([a, b], {a: b, b: a}) in ([b, a], [a, b])  # no loop
