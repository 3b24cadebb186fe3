"""mstore.transfer.pull: remote refs and their objects come into a store in one logged
transaction; a local version the remote lacks is not moved away; clone leaves nothing
behind when it fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from mstore.errors import IntegrityError, NotFoundError, RefusedError
from mstore.ops.commit import commit
from mstore.remotes import open_remote
from mstore.remotes.tracking import RemoteTracking
from mstore.repo import Repo
from mstore.transfer import pull as pulling
from mstore.transfer.pull import clone, pull
from mstore.transfer.verbs import push
from tests.helpers import assert_consistent, write_version
from tests.transfer.conftest import Published, new_store


@pytest.fixture
def empty(tmp_path: Path) -> Repo:
    return new_store(tmp_path / "b")


def test_a_pull_brings_every_ref_in_one_logged_transaction(
    published: Published, empty: Repo, tmp_path: Path
) -> None:
    commit(published.repo, write_version(tmp_path / "src" / "v2", "v2"), "staging")
    push(published.repo, published.remote())

    result = pull(empty, published.remote())

    assert empty.refs.read_all() == published.repo.refs.read_all()
    assert result.objects_received == 8  # two manifests, six files (one shared)
    entries = list(empty.history.newest_first())
    assert {(e.ref, e.action) for e in entries} == {("production", "pull"), ("staging", "pull")}
    assert len({e.txn for e in entries}) == 1  # one transaction
    assert result.move.action == "pull" and len(result.move.moves) == 2
    seen = RemoteTracking(empty.layout, published.url).read().seen
    assert seen == published.repo.refs.read_all()
    assert_consistent(empty)


def test_a_second_pull_changes_nothing(published: Published, empty: Repo) -> None:
    pull(empty, published.remote())
    again = pull(empty, published.remote())
    assert again.objects_received == again.bytes_received == again.bytes_fetched == 0


def test_a_named_ref_the_remote_lacks_is_named(published: Published, empty: Repo) -> None:
    with pytest.raises(NotFoundError, match="has no ref staging"):
        pull(empty, published.remote(), ["staging"])
    assert empty.refs.read_all() == {}


def test_a_version_made_here_and_never_pushed_is_not_moved_away(
    published: Published, empty: Repo, tmp_path: Path
) -> None:
    mine = commit(empty, write_version(tmp_path / "src" / "mine", "mine"), "production")

    with pytest.raises(RefusedError, match="never reached"):
        pull(empty, published.remote())
    assert empty.refs.read("production") == mine.manifest_id

    pull(empty, published.remote(), force=True)
    assert empty.refs.read("production") == published.manifest


def test_a_dry_run_receives_and_moves_nothing(published: Published, empty: Repo) -> None:
    result = pull(empty, published.remote(), dry_run=True)
    assert result.objects_received == 5  # the manifest and its four files
    assert empty.refs.read_all() == {}
    assert list(empty.layout.objects.iterdir()) == []


@pytest.mark.parametrize(
    ("names", "clash"),
    [(["Prod", "prod"], ("Prod", "prod")), (["team", "team/a"], ("team", "team/a"))],
)
def test_new_refs_that_cannot_both_exist_in_a_store_are_refused(
    names: list[str], clash: tuple[str, str]
) -> None:
    """An S3 remote may hold `team` and `team/a`, or names equal but for case."""
    with pytest.raises(RefusedError) as info:
        pulling._check_clashes(names, "s3://bucket/team")
    assert f"{clash[0]!r} and {clash[1]!r}" in str(info.value)
    pulling._check_clashes(["team/a", "team/b", "teams"], "s3://bucket/team")  # fine


def test_clone_makes_a_store_with_the_remote_as_origin(
    published: Published, tmp_path: Path
) -> None:
    repo, result = clone(published.remote(), tmp_path / "c", link_mode="copy")
    assert repo.refs.read_all() == {"production": published.manifest}
    assert repo.config.remotes == {"origin": published.url}
    assert result.remote == "origin"
    assert_consistent(repo)


def test_clone_refuses_a_target_that_is_not_new_or_empty(
    published: Published, tmp_path: Path
) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes").write_text("mine")
    (tmp_path / "file").write_text("mine")
    with pytest.raises(RefusedError, match="not empty"):
        clone(published.remote(), tmp_path / "full")
    with pytest.raises(RefusedError, match="is a file"):
        clone(published.remote(), tmp_path / "file")
    assert (tmp_path / "full" / "notes").read_text() == "mine"


@pytest.mark.parametrize("existed", [False, True])
def test_a_failed_clone_leaves_nothing_behind(
    published: Published, tmp_path: Path, existed: bool
) -> None:
    path = Path(published.url) / "objects" / published.small[:2] / published.small[2:]
    path.chmod(0o644)
    path.write_bytes(bytes(b ^ 1 for b in path.read_bytes()))
    target = tmp_path / "c"
    if existed:
        target.mkdir()

    with pytest.raises(IntegrityError):
        clone(open_remote(published.url), target)

    assert (target.exists() and list(target.iterdir()) == []) if existed else not target.exists()
