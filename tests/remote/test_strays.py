"""Files mstore never writes, found where it keeps packs and recipes (an NFS client's
`.nfs...` files, an S3 console's empty "folder" keys), and a mark that is not valid: none
of them is marked, deleted or reused, none blocks a push or a prune; stats and verify
list them as strays. On every kind of remote; the files are written behind mstore's
back (file writes, boto3)."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from mstore.core.hashing import is_object_id
from mstore.remotes import open_remote
from mstore.remotes.packs import DOOMED
from mstore.repo import Repo
from mstore.transfer.upkeep import prune
from tests.helpers import write_version
from tests.remote.support import as_json, mstore, new_store, ok, remote_state
from tests.remote.tamper import hours_later, names_raw, read_raw, write_raw

SIZE = 6 << 20


def _commit(repo: Repo, src: Path, name: str, model: bytes, ref: str = "production") -> None:
    ok(mstore(repo.root, "commit", write_version(src / name, name, model), "--to", ref))


def _strays(remote_url: str) -> list[str]:
    """Stray names, written where packs and recipes live."""
    planted = ["packs/.nfs0000000001a2b3c4", "recipes/.nfs0000000005d6e7f8", "recipes/ab/.nfs01"]
    if remote_url.startswith("s3://"):
        planted += ["packs/", "recipes/", "indexes/"]  # "folder" keys: empty names
    for name in planted:
        write_raw(remote_url, name, b"" if name.endswith("/") else b"not mstore's")
    return planted


def test_strays_are_never_marked_nor_in_the_way(remote_url: str, tmp_path: Path) -> None:
    a = new_store(tmp_path / "a")
    model = os.urandom(SIZE)
    _commit(a, tmp_path / "src", "v1", model)
    ok(mstore(a.root, "push", remote_url))
    _commit(a, tmp_path / "src", "v0", b"small")
    ok(mstore(a.root, "push", remote_url))  # v1's pack and recipe: unneeded
    planted = _strays(remote_url)

    marked = prune(open_remote(remote_url), clock=hours_later(25))

    assert marked.marked_packs == 1 and marked.marked_recipes == 1
    mark = orjson.loads(read_raw(remote_url, DOOMED))
    assert all(is_object_id(name) for name in mark["packs"] + mark["recipes"])
    _commit(a, tmp_path / "src", "v2", model + b"tail", "staging")
    ok(mstore(a.root, "push", remote_url, "staging"))  # a large push reads the mark
    deleted = prune(open_remote(remote_url), clock=hours_later(50))
    assert deleted.deleted_packs == 1 and deleted.deleted_recipes == 1
    for name in planted:
        folder, _, rest = name.partition("/")
        assert rest in names_raw(remote_url, folder), name  # left alone
    assert remote_state(remote_url)["staging"] == a.refs.read("staging")
    verified = as_json(mstore(a.root, "remote", "verify", remote_url, "--json"))
    assert verified["problems"] == [] and sorted(verified["strays"]) == sorted(planted)
    stats = mstore(a.root, "remote", "stats", remote_url)
    assert "stray" in ok(stats).stderr and planted[0] in stats.stderr


def test_a_mark_that_is_not_valid_marks_nothing_and_prune_replaces_it(
    remote_url: str, tmp_path: Path
) -> None:
    a = new_store(tmp_path / "a")
    model = os.urandom(SIZE)
    _commit(a, tmp_path / "src", "v1", model)
    ok(mstore(a.root, "push", remote_url))
    write_raw(remote_url, DOOMED, b'{"packs": [".nfs01"], "recipes": [], "since": 1}')
    _commit(a, tmp_path / "src", "v2", model + b"tail", "staging")

    ok(mstore(a.root, "push", remote_url, "staging"))  # it reuses v1's chunks as before

    assert as_json(mstore(a.root, "remote", "verify", remote_url, "--json"))["strays"] == [
        f"{DOOMED} (not valid: it marks nothing; the next prune replaces it)"
    ]
    result = prune(open_remote(remote_url), clock=hours_later(25))
    assert result.deleted_packs == 0 and result.marked_packs == 0
    assert names_raw(remote_url, "prune") == []
    assert as_json(mstore(a.root, "remote", "verify", remote_url, "--json"))["strays"] == []
