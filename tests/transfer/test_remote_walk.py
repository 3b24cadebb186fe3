"""mstore.transfer.remote_walk: what a remote's refs need (manifests, data objects,
recipes, packs), read as pull reads them; damage stops the walk or is listed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mstore.core.hashing import hash_bytes
from mstore.errors import IntegrityError
from mstore.remotes.packs import recipe_name
from mstore.transfer.remote_walk import Damage, recipe_ids, walk
from mstore.transfer.verbs import push
from tests.transfer.conftest import LARGE, Published, commit_version


def test_the_walk_finds_what_every_ref_needs(published: Published, tmp_path: Path) -> None:
    v2 = commit_version(published.repo, tmp_path / "src", "v2", os.urandom(LARGE), "staging")
    push(published.repo, published.remote())

    reach = walk(published.remote(), 2)

    repo = published.repo
    assert reach.refs == {"production": published.manifest, "staging": v2}
    assert reach.manifests == {published.manifest, v2}
    files = [*repo.manifest(published.manifest).files.values(), *repo.manifest(v2).files.values()]
    assert reach.data == {e.id: e.size for e in files}
    assert reach.logical == sum(e.size for e in files)  # shared files count per version
    large = {e.id for e in files if e.size == LARGE}
    assert set(reach.recipes) == large and reach.whole == set(reach.data) - large
    for object_id, recipe in reach.recipes.items():
        assert recipe.size == LARGE
        for pack in recipe.packs():
            assert object_id in reach.naming(pack)
    assert reach.packs() == set(published.remote().list_blobs("packs"))


def test_a_ref_with_an_invalid_name_is_skipped(published: Published) -> None:
    planted = Path(published.url) / "refs" / "bad..name"
    planted.write_text(published.manifest + "\n")
    assert set(walk(published.remote(), 2).refs) == {"production"}


def damage_manifest(published: Published) -> None:
    path = Path(published.url) / "objects" / published.manifest[:2] / published.manifest[2:]
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b"model.pth", b"model.pt_"))


def test_a_manifest_that_does_not_hash_to_its_id_stops_the_walk(published: Published) -> None:
    damage_manifest(published)
    with pytest.raises(IntegrityError, match="does not hash to its id"):
        walk(published.remote(), 2)


def test_with_a_damage_list_the_walk_records_damage_and_goes_on(published: Published) -> None:
    remote = published.remote()
    remote.put_blob(recipe_name(published.large), b'{"format": 1}')
    damage: list[Damage] = []

    reach = walk(remote, 2, damage)

    assert [d.objects for d in damage] == [frozenset({published.large})]
    assert "not a valid recipe" in damage[0].problem
    assert reach.recipes == {} and published.small in reach.whole

    damage_manifest(published)
    damage.clear()
    reach = walk(remote, 2, damage)
    assert [d.objects for d in damage] == [frozenset({published.manifest})]
    assert reach.data == {}


def test_a_large_object_without_a_recipe_counts_as_stored_whole(published: Published) -> None:
    remote = published.remote()
    remote.delete_blob(recipe_name(published.large))
    reach = walk(remote, 2)
    assert published.large in reach.whole and reach.recipes == {}


def test_recipe_ids_leave_strays_out(published: Published) -> None:
    remote = published.remote()
    remote.put_blob("recipes/zz/not-an-id", b"{}")
    remote.put_blob(recipe_name(hash_bytes(b"x")), b"{}")
    assert set(recipe_ids(remote)) == {published.large, hash_bytes(b"x")}
