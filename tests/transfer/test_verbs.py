"""mstore.transfer.verbs: push, pull and clone, the entry point the CLI and the API use.

The round trip its docstring promises: versions go both ways, a repeated exchange moves
nothing, and neither side ever holds a ref naming an object it lacks."""

from __future__ import annotations

import os
from pathlib import Path

from mstore.ops.commit import commit
from mstore.remotes import open_remote
from mstore.transfer import pull as pulling
from mstore.transfer import push as pushing
from mstore.transfer import verbs
from mstore.transfer.upkeep import verify
from mstore.transfer.verbs import clone, pull, push
from tests.helpers import assert_consistent, write_version
from tests.transfer.conftest import LARGE, new_store


def remote_is_whole(url: str) -> None:
    """Every remote ref names a manifest the remote holds, and every file it names."""
    remote = open_remote(url)
    for ref in remote.read_refs(remote.ref_names()).values():
        assert remote.has_object(ref.manifest_id)
    verify(remote, jobs=2)


def test_the_verbs_are_push_pull_and_clone() -> None:
    assert (verbs.push, verbs.pull, verbs.clone) == (pushing.push, pulling.pull, pulling.clone)
    assert set(verbs.__all__) == {"PullResult", "PushResult", "RefPush", "clone", "pull", "push"}


def test_versions_go_both_ways_and_a_repeat_moves_nothing(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    first = new_store(tmp_path / "first")
    model = os.urandom(LARGE)
    commit(first, write_version(tmp_path / "src" / "v1", "v1", model), "production")
    push(first, open_remote(url))
    remote_is_whole(url)

    second, cloned = clone(open_remote(url), tmp_path / "second", "copy")
    assert cloned.move.changed and second.refs.read_all() == first.refs.read_all()
    edited = model[:1000] + b"edited" + model[1006:]
    commit(second, write_version(tmp_path / "src" / "v2", "v2", edited), "staging")
    sent = push(second, open_remote(url))
    assert sent.bytes_sent < LARGE // 2  # the large file's unchanged chunks stay
    remote_is_whole(url)

    pulled = pull(first, open_remote(url))
    assert pulled.move.changed and first.refs.read_all() == second.refs.read_all()
    assert pulled.bytes_fetched < LARGE // 2  # rebuilt from chunks the store holds

    assert not push(first, open_remote(url)).changed
    assert not pull(second, open_remote(url)).move.changed
    assert push(second, open_remote(url)).objects_sent == 0
    for store in (first, second):
        assert_consistent(store)
