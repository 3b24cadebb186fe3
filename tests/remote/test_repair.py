"""A damaged remote: push does not build on what it cannot check cheaply, a damaged
index costs only its pack's reuse, and `mstore remote verify --repair` sends again, from
a store that holds them, what the damage lost. On every kind of remote; the damage is
done behind mstore's back (file writes, boto3)."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from mstore.chunks.chunking import DEFAULT_PARAMS, chunk_file
from mstore.remotes import open_remote
from mstore.remotes.packs import recipe_name
from mstore.repo import Repo
from mstore.transfer.upkeep import prune
from tests.helpers import assert_consistent, write_version
from tests.remote.support import as_json, fails, mstore, new_store, ok, remote_state
from tests.remote.tamper import flip_byte, hours_later, names_raw, read_raw, write_raw

SIZE = 6 << 20


def _commit(
    repo: Repo,
    src: Path,
    name: str,
    model: bytes,
    ref: str = "production",
    encoders: bytes = b"encoders",
) -> str:
    ok(mstore(repo.root, "commit", write_version(src / name, name, model, encoders), "--to", ref))
    value = repo.refs.read(ref)
    assert value is not None
    return value


def _model(repo: Repo, ref: str) -> str:
    value = repo.refs.read(ref)
    assert value is not None
    return repo.manifest(value).files["model.pth"].id


def _packs(url: str) -> list[str]:
    return names_raw(url, "packs")


@pytest.fixture
def published(remote_url: str, tmp_path: Path) -> Repo:
    """production (a 6 MiB model) pushed, in one pack."""
    a = new_store(tmp_path / "a")
    _commit(a, tmp_path / "src", "v1", os.urandom(SIZE))
    ok(mstore(a.root, "push", remote_url))
    assert len(_packs(remote_url)) == 1
    return a


def _pulls(remote_url: str, directory: Path, source: Repo, *refs: str) -> None:
    c = new_store(directory)
    ok(mstore(c.root, "pull", remote_url, *refs))
    for ref in refs or source.refs.names():
        assert c.refs.read(ref) == source.refs.read(ref)
    assert_consistent(c)


def _repairs(remote_url: str, store: Repo, directory: Path) -> None:
    """--repair from `store` leaves a remote that verifies and pulls whole."""
    ok(mstore(store.root, "remote", "verify", remote_url, "--repair"))
    ok(mstore(store.root, "remote", "verify", remote_url))
    _pulls(remote_url, directory, store)


def test_an_index_listing_chunks_its_pack_lacks_is_not_trusted(
    remote_url: str, published: Repo, tmp_path: Path
) -> None:
    """The index of production's pack also lists every chunk of a new model, at offsets
    inside the pack: push sends the new model's chunks anyway, and it pulls whole."""
    (pack,) = _packs(remote_url)
    new_model = os.urandom(SIZE)
    _commit(published, tmp_path / "src", "v2", new_model, "staging")
    path = published.objects.path(_model(published, "staging"))
    index = orjson.loads(read_raw(remote_url, f"indexes/{pack}"))
    for chunk in chunk_file(path, DEFAULT_PARAMS):
        index["chunks"].append([chunk.id, 0, chunk.length])  # bytes the pack does not hold
    write_raw(remote_url, f"indexes/{pack}", orjson.dumps(index))

    pushed = mstore(published.root, "push", remote_url, "staging")

    _pulls(remote_url, tmp_path / "c", published, "staging", "production")
    assert "not reused" in ok(pushed).stderr and pack[:12] in pushed.stderr
    assert as_json(mstore(published.root, "push", remote_url, "--json"))["bytes_sent"] == 0
    fails(mstore(published.root, "remote", "verify", remote_url), 3, pack, "--repair")


def test_push_does_not_take_as_present_a_recipe_its_index_contradicts(
    remote_url: str, published: Repo, tmp_path: Path
) -> None:
    """production's recipe is damaged (two chunks' places swapped, lengths still adding
    up): pushing the same version under another ref writes a true recipe again (from the
    chunks the index lists: no pack is sent), and both refs pull."""
    model = _model(published, "production")
    recipe = orjson.loads(read_raw(remote_url, recipe_name(model)))
    first, second = recipe["chunks"][0], recipe["chunks"][1]
    first[2], second[2] = second[2], first[2]
    write_raw(remote_url, recipe_name(model), orjson.dumps(recipe))
    ok(mstore(published.root, "promote", "production", "--to", "staging"))

    sent = as_json(mstore(published.root, "push", remote_url, "staging", "--json"))

    assert sent["objects_sent"] == 1 and sent["packs_sent"] == 0
    assert orjson.loads(read_raw(remote_url, recipe_name(model))) != recipe
    _pulls(remote_url, tmp_path / "c", published)
    ok(mstore(published.root, "remote", "verify", remote_url))


def test_verify_repair_sends_again_what_a_damaged_pack_lost(
    remote_url: str, tmp_path: Path
) -> None:
    """v1's model and encoders share one pack; production then moves to v2 (same model,
    small encoders). One flipped byte in the pack: verify points at --repair (a push sends
    nothing: the ref already names the version); --repair sends the model again, in a new
    pack, with a new recipe; the damaged pack is no longer needed, and prune removes it."""
    a = new_store(tmp_path / "a")
    model = os.urandom(SIZE)
    _commit(a, tmp_path / "src", "v1", model, encoders=os.urandom(SIZE))
    ok(mstore(a.root, "push", remote_url))
    (damaged,) = _packs(remote_url)
    _commit(a, tmp_path / "src", "v2", model)
    ok(mstore(a.root, "push", remote_url))
    assert _packs(remote_url) == [damaged]
    flip_byte(remote_url, f"packs/{damaged}", SIZE)
    fails(mstore(a.root, "remote", "verify", remote_url), 3, damaged, "--repair")
    assert "up to date" in ok(mstore(a.root, "push", remote_url)).stdout

    repaired = as_json(mstore(a.root, "remote", "verify", remote_url, "--repair", "--json"))

    assert repaired["repaired"] == [_model(a, "production")]
    assert damaged in _packs(remote_url) and len(_packs(remote_url)) == 2
    assert damaged not in names_raw(remote_url, "indexes")  # never reused again
    ok(mstore(a.root, "remote", "verify", remote_url))
    _pulls(remote_url, tmp_path / "c", a)
    assert prune(open_remote(remote_url), clock=hours_later(25)).marked_packs == 1
    assert prune(open_remote(remote_url), clock=hours_later(50)).deleted_packs == 1
    assert damaged not in _packs(remote_url)
    ok(mstore(a.root, "remote", "verify", remote_url))


def test_repair_restores_a_damaged_pack_it_makes_again_whole(
    remote_url: str, published: Repo, tmp_path: Path
) -> None:
    """A pack of exactly one model's chunks, damaged: the model chunked again makes the
    same pack, whose name is its hash, so --repair restores it where it was."""
    (damaged,) = _packs(remote_url)
    flip_byte(remote_url, f"packs/{damaged}", SIZE // 2)

    _repairs(remote_url, published, tmp_path / "c")

    assert _packs(remote_url) == [damaged] and names_raw(remote_url, "indexes") == [damaged]


def test_repair_from_a_store_without_the_version_names_what_it_lacks(
    remote_url: str, published: Repo, tmp_path: Path
) -> None:
    (damaged,) = _packs(remote_url)
    flip_byte(remote_url, f"packs/{damaged}", 100)
    b = new_store(tmp_path / "b")

    fails(
        mstore(b.root, "remote", "verify", remote_url, "--repair"),
        3,
        "lacks",
        _model(published, "production")[:12],
        "from a store that holds them",
    )

    _repairs(remote_url, published, tmp_path / "c")


def test_verify_repair_sends_again_a_damaged_whole_object(
    remote_url: str, published: Repo, tmp_path: Path
) -> None:
    manifest = published.refs.read("production")
    assert manifest is not None
    metadata = published.manifest(manifest).files["metadata.json"].id
    name = f"objects/{metadata[:2]}/{metadata[2:]}"
    write_raw(remote_url, name, read_raw(remote_url, name)[:-1] + b"!")
    fails(mstore(published.root, "remote", "verify", remote_url), 3, metadata, "--repair")

    _repairs(remote_url, published, tmp_path / "c")


def test_a_damaged_index_of_an_unneeded_pack_blocks_no_push(
    remote_url: str, published: Repo, tmp_path: Path
) -> None:
    """production moves to a small version, so v1's pack is needed by no ref; its index
    is damaged. Another store's push of a version sharing v1's chunks sends them again
    (the damaged index's chunks count as absent); verify reports the index; --repair
    deletes it."""
    (old,) = _packs(remote_url)
    v1_model = published.objects.path(_model(published, "production")).read_bytes()
    _commit(published, tmp_path / "src", "v0", b"small")
    ok(mstore(published.root, "push", remote_url))
    write_raw(remote_url, f"indexes/{old}", b'{"chunks": [[')
    b = new_store(tmp_path / "b")  # no cached copy of the index
    _commit(b, tmp_path / "src", "v2", v1_model + b"tail", "staging")

    pushed = as_json(mstore(b.root, "push", remote_url, "staging", "--json"))

    assert pushed["bytes_sent"] >= SIZE
    assert old[:12] in pushed["notes"][0] and "not reused" in pushed["notes"][0]
    assert remote_state(remote_url)["staging"] == b.refs.read("staging")
    fails(mstore(b.root, "remote", "verify", remote_url), 3, f"index of pack {old}")
    ok(mstore(b.root, "remote", "verify", remote_url, "--repair"))
    ok(mstore(b.root, "remote", "verify", remote_url))
    assert old not in names_raw(remote_url, "indexes")
    _pulls(remote_url, tmp_path / "c", b, "staging")
