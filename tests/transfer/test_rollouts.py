"""mstore/transfer/rollouts.py with the follower: a push over a window reaches hosts in
wariness order; pause stops it, resume goes on, abort brings switched hosts back; on a
guarded ref, a bucket writer cannot pause or resume a rollout."""

from __future__ import annotations

from pathlib import Path

import pytest

from mstore.errors import RefusedError
from mstore.ops.commit import commit
from mstore.repo import Repo
from mstore.transfer.follow import Follower, FollowOptions
from mstore.transfer.pull import clone
from mstore.transfer.rollout import seconds_of
from mstore.transfer.rollout_statements import statement_of
from mstore.transfer.rollouts import abort_rollout, pause_rollout, resume_rollout, rollout_status
from mstore.transfer.verbs import push
from mstore.trust.accepted import read_accepted
from mstore.trust.rules import Signer, TrustRules
from mstore.trust.sshsig import parse_public_key
from mstore.trust.statements import decode_statement
from tests.helpers import assert_consistent, write_version
from tests.transfer.conftest import Published
from tests.trust.ssh_keys import keygen

WINDOW = 1000


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def hosts(published: Published, tmp_path: Path, *warinesses: float) -> list[Repo]:
    repos = []
    for number, _ in enumerate(warinesses):
        repo, _ = clone(published.remote(), tmp_path / f"host{number}", link_mode="copy")
        repos.append(repo)
    return repos


def roll_out(published: Published, tmp_path: Path, version: str) -> tuple[str, float]:
    """Commit `version` to production and push it over WINDOW; (its id, the start)."""
    manifest = commit(
        published.repo, write_version(tmp_path / "src" / version, version), "production"
    ).manifest_id
    assert manifest is not None
    push(published.repo, published.remote(), ["production"], rollout=WINDOW)
    report = rollout_status(published.remote(), "production")
    assert report.rollout is not None
    return manifest, float(seconds_of(report.rollout.start))


def test_a_push_over_a_window_reaches_hosts_in_wariness_order(
    published: Published, tmp_path: Path
) -> None:
    old = published.manifest
    repos = hosts(published, tmp_path, 0.0, 0.5, 0.9)
    new, start = roll_out(published, tmp_path, "v2")
    clock = Clock()
    followers = [
        Follower(repo, "origin", FollowOptions(wariness=w), clock=clock)
        for repo, w in zip(repos, (0.0, 0.5, 0.9), strict=True)
    ]
    switched: list[list[str | None]] = []
    for elapsed in (0, 100, 499, 500, 899, 900, 1000):
        clock.now = start + elapsed
        for follower in followers:
            with follower:
                follower.poll_once()
        switched.append([repo.refs.read("production") for repo in repos])

    assert switched == [
        [new, old, old],
        [new, old, old],
        [new, old, old],
        [new, new, old],
        [new, new, old],
        [new, new, new],
        [new, new, new],
    ]
    for repo in repos:
        assert_consistent(repo)


def test_pause_stops_the_rollout_resume_goes_on_and_abort_brings_hosts_back(
    published: Published, tmp_path: Path
) -> None:
    old = published.manifest
    early, late = hosts(published, tmp_path, 0.0, 0.6)
    new, start = roll_out(published, tmp_path, "v2")
    clock = Clock()
    first = Follower(early, "origin", FollowOptions(wariness=0.0), clock=clock)
    last = Follower(late, "origin", FollowOptions(wariness=0.6), clock=clock)
    clock.now = start + 100
    with first:
        first.poll_once()
    assert early.refs.read("production") == new

    paused = pause_rollout(published.repo, published.remote(), "production")
    assert paused.rollout is not None and paused.rollout.paused
    clock.now = start + WINDOW * 5  # long after the window: still paused
    with last:
        assert last.poll_once() == "pending"
    assert late.refs.read("production") == old
    with pytest.raises(RefusedError, match="paused already"):
        pause_rollout(published.repo, published.remote(), "production")

    going = resume_rollout(published.repo, published.remote(), "production")
    assert going.rollout is not None and not going.rollout.paused
    clock.now = float(seconds_of(going.rollout.start)) + 0.6 * WINDOW
    with last:
        assert last.poll_once() == "following"
    assert late.refs.read("production") == new

    aborted = abort_rollout(published.repo, published.remote(), "production")
    assert (aborted.manifest, aborted.previous) == (old, new)
    assert published.repo.refs.read("production") == old
    for follower, repo in ((first, early), (last, late)):
        with follower:
            follower.poll_once()
        assert repo.refs.read("production") == old  # back at once: no window
        assert_consistent(repo)


def test_rollout_statements_go_up_in_generation_and_record_it(
    published: Published, tmp_path: Path
) -> None:
    roll_out(published, tmp_path, "v2")
    pause_rollout(published.repo, published.remote(), "production")
    resume_rollout(published.repo, published.remote(), "production")
    remote_ref = published.remote().read_ref("production")
    assert remote_ref is not None and remote_ref.statement is not None
    body, newline, armor = remote_ref.statement.partition(b"\n")
    assert not newline and not armor  # the store does not sign: the JSON alone
    statement = decode_statement(body, "test")
    assert statement.action == "resume"
    recorded = read_accepted(published.repo.layout.accepted)["production"].generation
    assert statement.generation == recorded
    commit(published.repo, write_version(tmp_path / "src" / "v3", "v3"), "production")
    push(published.repo, published.remote(), ["production"])  # a plain move afterwards
    after = published.remote().read_ref("production")
    assert after is not None
    assert statement_of(after, "test") is None  # no statement: unsigned, no rollout


def test_a_bucket_writer_cannot_pause_a_guarded_rollout(
    published: Published, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a ref the host's rules guard, an unsigned pause is not heeded: the pull it then
    attempts refuses the unsigned statement, and nothing changes."""
    (host,) = hosts(published, tmp_path, 0.0)
    keygen(tmp_path, "release")
    public = (tmp_path / "release.pub").read_text().split()
    rules = TrustRules((Signer("release@team", parse_public_key(f"{public[0]} {public[1]}")),))
    host.update_config(lambda c: c.with_trust(rules.to_json()))
    new, start = roll_out(published, tmp_path, "v2")  # unsigned: the publisher has no key
    pause_rollout(published.repo, published.remote(), "production")
    clock = Clock()
    clock.now = start
    follower = Follower(host, "origin", FollowOptions(wariness=0.99), clock=clock)
    with follower:
        assert follower.poll_once() == "refused"
    assert host.refs.read("production") == published.manifest
    assert new != published.manifest


def test_a_ref_without_a_rollout_cannot_be_paused(published: Published) -> None:
    with pytest.raises(RefusedError, match="has no rollout"):
        pause_rollout(published.repo, published.remote(), "production")
