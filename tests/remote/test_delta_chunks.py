"""Delta chunks (remote format 5) on a directory, moto and RGW: a full fine-tune, every
weight moved a little, is pushed as deltas against its parent version's tensors and
pulled back exactly, by a host that holds the parent and by one that holds nothing
(the base is rebuilt, used and deleted); prune keeps the base; `remote verify`
rebuilds every delta; a base missing, of another size, a cycle of bases, a chain
deeper than the bound are refused (exit 3, the store byte-identical); interrupted
pushes and pulls end where uninterrupted ones end.

Remote files are tampered with as a hostile writer would (tests/remote/tamper.py).
"""

from __future__ import annotations

import random
from array import array
from pathlib import Path

import orjson
import pytest

from mstore.chunks import deltas
from mstore.errors import IntegrityError
from mstore.remotes import open_remote
from mstore.remotes.packs import Recipe, recipe_name
from mstore.repo import Repo
from mstore.transfer import chunk_bases, delta_bases, upkeep
from mstore.transfer.remote_walk import walk
from mstore.transfer.verbs import pull, push
from tests.checkpoint_files import tensors_file
from tests.helpers import assert_consistent, store_digest, weights, write_version
from tests.remote.support import (
    Proxy,
    edit_recipe,
    fails,
    model_id,
    mstore,
    new_store,
    ok,
    remote_recipe,
    view_bytes,
)
from tests.remote.tamper import read_raw, write_raw

ROWS = 1280  # x 1024 float32s: a 5 MiB tensor


def _moved(data: bytes, seed: int, step: float = 1e-5) -> bytes:
    """Every float32 of `data` moved by about `step` (a fine-tune's update)."""
    values = array("f", data)
    draw = random.Random(seed).gauss
    return array("f", (x + draw(0.0, step) for x in values)).tobytes()


def _checkpoint(big: bytes, small: bytes) -> bytes:
    return tensors_file(
        [("encoder.weight", "F32", [ROWS, 1024], big), ("head.weight", "F32", [256, 256], small)]
    )


BIG = weights(ROWS * 1024 * 4, seed=11)
SMALL = weights(256 * 256 * 4, seed=12)
V1 = _checkpoint(BIG, SMALL)
V2_BIG = _moved(BIG, 1)
V2 = _checkpoint(V2_BIG, _moved(SMALL, 2))
V3 = _checkpoint(_moved(V2_BIG, 3), _moved(_moved(SMALL, 2), 4))


def _commit(repo: Repo, tmp_path: Path, name: str, model: bytes) -> str:
    ok(mstore(repo.root, "commit", write_version(tmp_path / name, name, model), "--to", "staging"))
    return model_id(repo, "staging")


@pytest.fixture
def fine_tuned(remote_url: str, tmp_path: Path) -> tuple[Repo, str, str]:
    """A store that pushed staging at v1, then at v2 (v1 fine-tuned): (store, v1's
    model id, v2's). v1 is on the remote only as the base of v2's deltas."""
    a = new_store(tmp_path / "a")
    first = _commit(a, tmp_path, "v1", V1)
    push(a, open_remote(remote_url), ["staging"])
    second = _commit(a, tmp_path, "v2", V2)
    sent = push(a, open_remote(remote_url), ["staging"])
    # Every byte changed, yet the deltas keep about half (raw zstd would keep ~93%).
    assert sent.bytes_sent < 0.7 * len(V2)
    assert sent.delta_chunks > 0 and sent.to_json()["delta_chunks"] == sent.delta_chunks
    return a, first, second


def test_a_fine_tune_is_pushed_as_deltas_and_every_pull_gets_it_back_exactly(
    remote_url: str, tmp_path: Path, fine_tuned: tuple[Repo, str, str]
) -> None:
    a, first, second = fine_tuned
    recipe = remote_recipe(remote_url, second)
    assert recipe.bases() == {first}
    assert sum(e.length for e in recipe.entries if e.base) > 0.9 * len(V2)

    # A host holding nothing: the base is rebuilt from its recipe, used, not kept.
    b = new_store(tmp_path / "b")
    got = pull(b, open_remote(remote_url), ["staging"])
    assert view_bytes(b) == view_bytes(a)
    assert not b.objects.has(first)
    assert list(b.layout.tmp.iterdir()) == []
    assert got.bytes_fetched > len(V1)  # the base's bytes and the deltas
    assert_consistent(b)

    # A host holding the parent version fetches only the deltas.
    c = new_store(tmp_path / "c")
    ok(mstore(c.root, "commit", write_version(tmp_path / "c1", "v1", V1), "--to", "production"))
    got = pull(c, open_remote(remote_url), ["staging"])
    assert got.bytes_fetched < 0.7 * len(V2)
    assert view_bytes(c)["staging/model.pth"] == V2

    ok(mstore(a.root, "remote", "verify", remote_url))
    assert first in walk(open_remote(remote_url), 4).bases


def test_a_chain_of_deltas_is_bounded_when_pushed_and_when_pulled(
    remote_url: str,
    tmp_path: Path,
    fine_tuned: tuple[Repo, str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, _first, second = fine_tuned
    third = _commit(a, tmp_path, "v3", V3)
    push(a, open_remote(remote_url), ["staging"])
    assert remote_recipe(remote_url, third).bases() == {second}  # v3 -> v2 -> v1

    # A reader bound to one base refuses the two-deep chain, before installing anything.
    b = new_store(tmp_path / "b")
    before = store_digest(b)
    monkeypatch.setattr(chunk_bases, "MAX_DEPTH", 1)
    fails(mstore(b.root, "pull", remote_url, "staging"), 3, "more than 1 bases deep")
    assert store_digest(b) == before
    monkeypatch.setattr(chunk_bases, "MAX_DEPTH", deltas.MAX_DEPTH)
    ok(mstore(b.root, "pull", remote_url, "staging"))
    assert view_bytes(b)["staging/model.pth"] == V3

    # A pusher bound to one base sends the next version against no base two deep.
    monkeypatch.setattr(delta_bases, "MAX_DEPTH", 1)
    c = new_store(tmp_path / "c")
    ok(mstore(c.root, "pull", remote_url, "staging"))
    fourth = _commit(c, tmp_path, "v4", _checkpoint(_moved(BIG, 5), _moved(SMALL, 6)))
    push(c, open_remote(remote_url), ["staging"])
    assert remote_recipe(remote_url, fourth).bases() == set()  # v3 is already 2 deep


def test_prune_keeps_every_base_a_kept_delta_needs(
    remote_url: str, tmp_path: Path, fine_tuned: tuple[Repo, str, str]
) -> None:
    a, first, _second = fine_tuned
    remote = open_remote(remote_url)
    base_packs = remote_recipe(remote_url, first).packs()
    now = [10**10]
    grace = 2 * 3600.0
    upkeep.prune(remote, grace=grace, clock=lambda: now[0])
    now[0] += 2 * grace
    upkeep.prune(remote, grace=grace, clock=lambda: now[0])
    listed = set(remote.list_blobs("packs"))
    assert base_packs <= listed
    b = new_store(tmp_path / "b")
    ok(mstore(b.root, "pull", remote_url, "staging"))
    assert view_bytes(b) == view_bytes(a)


def _drop_recipe(url: str, object_id: str) -> None:
    open_remote(url).delete_blob(recipe_name(object_id))  # a bucket writer's delete


def _far_base(url: str, second: str, first: str) -> None:
    def edit(document: dict) -> None:  # type: ignore[type-arg]
        for entry in document["chunks"]:
            if len(entry) == 8:
                entry[7] = len(V1) - 10  # past the base's end
                return

    edit_recipe(url, second, edit)


def _cycle(url: str, second: str, first: str) -> None:
    """v1's recipe made to need v2 too: v2 -> v1 -> v2."""

    def edit(document: dict) -> None:  # type: ignore[type-arg]
        entry = document["chunks"][-1]
        document["chunks"][-1] = [*entry[:6], second, 0]
        document["format"] = 3

    edit_recipe(url, first, edit)


def _swollen_base(url: str, second: str, first: str) -> None:
    """v1's recipe made to give a base five times its size, from the same stored
    chunks (a few bytes on the remote, gigabytes for a reader to rebuild)."""

    def edit(document: dict) -> None:  # type: ignore[type-arg]
        document["chunks"] = document["chunks"] * 5
        document["size"] *= 5

    edit_recipe(url, first, edit)


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda url, second, first: _drop_recipe(url, first), ("base", "missing")),
        (_far_base, ("another size",)),
        (_cycle, ("cycle of bases",)),
        (_swollen_base, ("more than the", "the bases of object", "4 times its size")),
    ],
    ids=["base-missing", "base-of-another-size", "cycle", "base-too-large"],
)
def test_a_delta_that_cannot_be_resolved_is_refused_nothing_stored(
    remote_url: str,
    tmp_path: Path,
    fine_tuned: tuple[Repo, str, str],
    damage: object,
    words: tuple[str, ...],
) -> None:
    a, first, second = fine_tuned
    damage(remote_url, second, first)  # type: ignore[operator]
    b = new_store(tmp_path / "b")
    before = store_digest(b)
    fails(mstore(b.root, "pull", remote_url, "staging"), 3, *words)
    assert store_digest(b) == before
    assert list(b.layout.tmp.iterdir()) == []
    fails(mstore(a.root, "remote", "verify", remote_url), 3, "damaged")
    # The store that pushed them repairs the remote: the pull then passes.
    ok(mstore(a.root, "remote", "verify", "--repair", remote_url))
    ok(mstore(b.root, "pull", remote_url, "staging"))
    assert view_bytes(b) == view_bytes(a)


def test_verify_finds_a_delta_against_the_wrong_bytes_only_by_rebuilding(
    remote_url: str, tmp_path: Path, fine_tuned: tuple[Repo, str, str]
) -> None:
    """A recipe whose delta names another place in its base: every pack and index is
    intact and every stored chunk decodes, so only rebuilding the object shows it."""
    a, _first, second = fine_tuned

    def shift(document: dict) -> None:  # type: ignore[type-arg]
        entry = next(e for e in document["chunks"] if len(e) == 8)
        entry[7] += 4

    edit_recipe(remote_url, second, shift)
    fails(mstore(a.root, "remote", "verify", remote_url), 3, "do not hash to chunk")
    b = new_store(tmp_path / "b")
    before = store_digest(b)
    fails(mstore(b.root, "pull", remote_url, "staging"), 3, "do not hash")
    assert store_digest(b) == before
    ok(mstore(a.root, "remote", "verify", "--repair", remote_url))
    ok(mstore(b.root, "pull", remote_url, "staging"))
    assert view_bytes(b) == view_bytes(a)


def test_a_push_crashing_after_its_packs_then_retried_ends_as_an_uninterrupted_one(
    remote_url: str, tmp_path: Path
) -> None:
    a = new_store(tmp_path / "a")
    _commit(a, tmp_path, "v1", V1)
    push(a, open_remote(remote_url), ["staging"])
    second = _commit(a, tmp_path, "v2", V2)

    class Crash(Exception):
        pass

    class Crashing(Proxy):
        def put_blob(self, name: str, data: bytes) -> None:
            if name.startswith("recipes/"):
                raise Crash
            super().put_blob(name, data)

    with pytest.raises(Crash):
        push(a, Crashing(open_remote(remote_url)), ["staging"])
    retried = push(a, open_remote(remote_url), ["staging"])
    assert retried.changed
    assert retried.bytes_sent < 0.1 * len(V2)  # the packs were there: only the recipe
    assert remote_recipe(remote_url, second).bases()
    b = new_store(tmp_path / "b")
    ok(mstore(b.root, "pull", remote_url, "staging"))
    assert view_bytes(b) == view_bytes(a)
    ok(mstore(a.root, "remote", "verify", remote_url))


def test_a_pull_crashing_while_it_rebuilds_a_base_leaves_the_store_unchanged(
    remote_url: str, tmp_path: Path, fine_tuned: tuple[Repo, str, str]
) -> None:
    a, _first, _second = fine_tuned
    b = new_store(tmp_path / "b")
    before = store_digest(b)
    calls = [0]

    class Crash(Exception):
        pass

    class Crashing(Proxy):
        def get_range(self, name: str, start: int, length: int) -> bytes:
            calls[0] += 1
            if calls[0] > 1:  # after the first range: inside the base's rebuild
                raise Crash
            return super().get_range(name, start, length)

    with pytest.raises(Crash):
        pull(b, Crashing(open_remote(remote_url)), ["staging"], jobs=1)
    assert store_digest(b) == before
    assert list(b.layout.tmp.iterdir()) == []
    pull(b, open_remote(remote_url), ["staging"])
    assert view_bytes(b) == view_bytes(a)
    assert_consistent(b)


def test_deltas_pay_only_where_they_save() -> None:
    start = len(V1) - len(BIG) - len(SMALL)  # the first tensor's bytes
    raw, base = V2[start : start + (1 << 20)], V1[start : start + (1 << 20)]
    codec, stored, delta = deltas.encode(raw, base)
    assert delta and len(stored) < 0.7 * (1 << 20)
    assert deltas.decode(_decoded(codec, stored, 1 << 20), base) == raw
    unrelated = weights(1 << 20, seed=99)
    assert deltas.encode(raw, unrelated)[2] is False
    with pytest.raises(IntegrityError):
        _decoded("lz4", b"x", 1)


def _decoded(codec: str, stored: bytes | memoryview, length: int) -> bytes:
    from mstore.chunks.codecs import decode

    return bytes(decode(stored, codec, length, "test"))


def test_a_format_4_remote_is_upgraded_in_place_and_deltas_build_on_its_chunks(
    remote_url: str, tmp_path: Path
) -> None:
    """A remote as the previous mstore wrote it (format 4: format-2 indexes and recipes,
    no deltas) is refused until upgraded; after the marker is rewritten, a fine-tune
    goes as deltas against the old recipe's chunks and pulls back exactly."""
    from mstore.remotes.base import MARKER_NAME, REMOTE_FORMAT

    a = new_store(tmp_path / "a")
    first = _commit(a, tmp_path, "v1", V1)
    push(a, open_remote(remote_url), ["staging"])
    assert orjson.loads(read_raw(remote_url, recipe_name(first)))["format"] == 2
    marker = orjson.loads(read_raw(remote_url, MARKER_NAME))
    write_raw(remote_url, MARKER_NAME, orjson.dumps(marker | {"format": 4}))

    b = new_store(tmp_path / "b")
    fails(mstore(b.root, "pull", remote_url), 7, "format 4", "no delta chunks", "upgrade")
    upgraded = ok(mstore(a.root, "remote", "upgrade", remote_url)).stdout
    assert f"format 4 -> {REMOTE_FORMAT}" in upgraded
    second = _commit(a, tmp_path, "v2", V2)
    assert push(a, open_remote(remote_url), ["staging"]).delta_chunks > 0
    assert remote_recipe(remote_url, second).bases() == {first}
    ok(mstore(b.root, "pull", remote_url, "staging"))
    assert view_bytes(b)["staging/model.pth"] == V2


def test_a_base_a_prune_marked_is_never_built_on(
    remote_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """v1 is pushed, then replaced and marked by a prune; production is rolled back to
    v1 and v2 (a fine-tune of it) pushed while the prune's second run deletes what it
    marked, just before the ref moves: v2 must not lean on v1's marked recipe."""
    import time

    from mstore.transfer import chunk_present

    grace = 2.001
    monkeypatch.setattr(chunk_present, "PUSH_WINDOW", 2.0)
    a = new_store(tmp_path / "a")
    ok(mstore(a.root, "commit", write_version(tmp_path / "v1", "v1", V1), "--to", "production"))
    v1 = a.refs.read("production")
    assert v1 is not None
    push(a, open_remote(remote_url))
    small = write_version(tmp_path / "v0", "v0", b"small")
    ok(mstore(a.root, "commit", small, "--to", "production"))
    push(a, open_remote(remote_url))
    marked = upkeep.prune(open_remote(remote_url), grace, clock=lambda: time.time() + grace)
    assert marked.marked_recipes == 1  # v1's model
    ok(mstore(a.root, "rollback", "production", "--to", v1[:12]))
    ok(mstore(a.root, "commit", write_version(tmp_path / "v2", "v2", V2), "--to", "production"))
    remote = Proxy(open_remote(remote_url))
    deleted = []
    remote.before_swap = lambda: deleted.append(
        upkeep.prune(open_remote(remote_url), grace, clock=lambda: time.time() + 3 * grace)
    )
    pushed = push(a, remote, ["production"], clock=lambda: 0.0)

    assert deleted and deleted[0].deleted_recipes == 1
    assert pushed.delta_chunks == 0  # the only candidate base was marked
    ok(mstore(a.root, "remote", "verify", remote_url))
    c = new_store(tmp_path / "c")
    ok(mstore(c.root, "pull", remote_url, "production"))
    assert view_bytes(c)["production/model.pth"] == V2


def test_a_push_keeps_within_what_a_pull_rebuilds(remote_url: str, tmp_path: Path) -> None:
    """A child a fifth of its parent's size (a tensor dropped): a delta against the
    parent would make a host lacking it rebuild five times the child, more than a pull
    allows (4 times), so the push sends the child plain, and every pull gets it."""
    extra = weights(ROWS * 1024 * 16, seed=21)  # 20 MiB of another tensor
    parent = tensors_file(
        [("encoder.weight", "F32", [ROWS, 1024], BIG), ("extra", "F32", [len(extra) // 4], extra)]
    )
    child = tensors_file([("encoder.weight", "F32", [ROWS, 1024], V2_BIG)])
    a = new_store(tmp_path / "a")
    _commit(a, tmp_path, "v1", parent)
    push(a, open_remote(remote_url), ["staging"])
    second = _commit(a, tmp_path, "v2", child)
    assert push(a, open_remote(remote_url), ["staging"]).delta_chunks == 0
    assert remote_recipe(remote_url, second).bases() == set()
    b = new_store(tmp_path / "b")
    ok(mstore(b.root, "pull", remote_url, "staging"))
    assert view_bytes(b)["staging/model.pth"] == child


def test_verify_rebuilds_within_the_bounds_a_pull_keeps(
    remote_url: str,
    tmp_path: Path,
    fine_tuned: tuple[Repo, str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A base recipe swollen forty times (a bucket writer repeating its entries): verify
    refuses it before rebuilding it, as a pull does, never writing more than a pull may."""
    a, _first, second = fine_tuned
    third = _commit(a, tmp_path, "v3", V3)
    push(a, open_remote(remote_url), ["staging"])

    def swell(document: dict) -> None:  # type: ignore[type-arg]
        document["chunks"] = document["chunks"] * 40
        document["size"] *= 40

    edit_recipe(remote_url, second, swell)
    built: list[int] = []
    real = chunk_bases.rebuild

    def spy(remote: object, recipe: Recipe, *args: object, **kwargs: object) -> int:
        built.append(recipe.size)
        return real(remote, recipe, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(chunk_bases, "rebuild", spy)
    with pytest.raises(IntegrityError, match="more than the"):
        upkeep.verify(open_remote(remote_url), jobs=2)
    assert max(built, default=0) <= 4 * len(V3)
    assert remote_recipe(remote_url, third).bases() == {second}
