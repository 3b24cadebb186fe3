"""Choosing a delta's base when pushing: tensors paired by name, dtype and shape; a
base's bytes served only once they hash to its recipe's chunks; chains bounded and
never cyclic."""

from __future__ import annotations

from pathlib import Path

import pytest

from mstore.core.hashing import hash_bytes
from mstore.core.manifests import FileEntry, Lineage, Manifest
from mstore.remotes import open_remote
from mstore.remotes.packs import Entry, Recipe, encode_recipe, recipe_name
from mstore.transfer import delta_bases
from mstore.transfer.delta_bases import BaseSource, Chains, layout_of, parents, tensor_pairs
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


def _put_recipe(remote_url: str, object_id: str, bases: list[str]) -> None:
    entries = [Entry("c" * 64, "d" * 64, 0, 10, "none", 10, base, 0) for base in bases] or [
        Entry("c" * 64, "d" * 64, 0, 10, "none", 10)
    ]
    recipe = Recipe(object_id, 10 * len(entries), tuple(entries))
    open_remote(remote_url).put_blob(recipe_name(object_id), encode_recipe(recipe))


def test_chains_are_bounded_and_never_cyclic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(tmp_path / "remote")
    open_remote(url).ensure("0" * 32)
    v1, v2, v3, x, y = ("1" * 64, "2" * 64, "3" * 64, "e" * 64, "f" * 64)
    _put_recipe(url, v1, [])
    _put_recipe(url, v2, [v1])
    _put_recipe(url, v3, [v2])
    _put_recipe(url, x, [y])  # x and y need each other
    _put_recipe(url, y, [x])
    chains = Chains(open_remote(url))
    chain = chains.chain(v3)
    assert chain is not None and chain.depth == 2 and chain.needs == {v1, v2}
    assert chains.usable(v3, "9" * 64)
    assert not chains.usable(v2, v1)  # v2 needs v1: v1 may not need v2
    assert not chains.usable(v1, v1)
    assert chains.chain(x) is None and not chains.usable(x, "9" * 64)
    assert not chains.usable("a" * 64, "9" * 64)  # no recipe: no base
    monkeypatch.setattr(delta_bases, "MAX_DEPTH", 2)
    bounded = Chains(open_remote(url))
    assert bounded.usable(v2, "9" * 64)
    assert not bounded.usable(v3, "9" * 64)  # a delta on it would be 3 deep


def test_objects_are_sent_after_the_bases_they_name_among_them() -> None:
    a, b, c, d = "a" * 64, "b" * 64, "c" * 64, "d" * 64
    order = delta_bases.bases_first([a, b, c, d], {a: b, b: c, d: "9" * 64})
    assert order.index(c) < order.index(b) < order.index(a)
    assert sorted(order) == [a, b, c, d]
    assert delta_bases.bases_first([a, b], {a: b, b: a}) in ([b, a], [a, b])  # no loop
