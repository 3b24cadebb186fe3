"""mstore/transfer/follow.py: a serving host follows a remote ref, checks its health,
goes back by itself when the check fails, and continues after a kill from its state."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from mstore.errors import IntegrityError, LockedError, RefusedError, UsageError
from mstore.ops.commit import commit
from mstore.repo import Repo
from mstore.transfer import follow as following
from mstore.transfer.fleet import fleet_status
from mstore.transfer.follow import Follower, FollowEvent, FollowOptions
from mstore.transfer.follow_state import FollowState, read_state, write_state
from mstore.transfer.pull import clone, pull
from mstore.transfer.verbs import push
from tests.helpers import assert_consistent, write_version
from tests.transfer.conftest import LARGE, Published

Events = list[FollowEvent]


def host(published: Published, tmp_path: Path, name: str = "host") -> Repo:
    repo, _ = clone(published.remote(), tmp_path / name, link_mode="copy")
    (repo.layout.env_file).write_text("MODEL_ENVIRONMENT=production\n")
    return repo


def publish(published: Published, tmp_path: Path, version: str) -> str:
    manifest = commit(
        published.repo, write_version(tmp_path / "src" / version, version), "production"
    ).manifest_id
    assert manifest is not None
    push(published.repo, published.remote())
    return manifest


def hook(repo: Repo, name: str, body: str) -> Path:
    path = repo.layout.hooks / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def follower(repo: Repo, events: Events, **options: object) -> Follower:
    return Follower(repo, "origin", FollowOptions(**options), events.append)  # type: ignore[arg-type]


def kinds(events: Events) -> list[str]:
    return [e.event for e in events]


def test_a_host_follows_a_promote_and_reports_it(published: Published, tmp_path: Path) -> None:
    repo = host(published, tmp_path)
    switched = tmp_path / "switched"
    hook(repo, "post-switch", f'echo "$3" >> {switched}')
    new = publish(published, tmp_path, "v2")
    events: Events = []

    with follower(repo, events) as f:
        assert f.poll_once() == "following"
        assert f.poll_once() == "following"  # nothing new: nothing done

    assert repo.refs.read("production") == new
    assert switched.read_text().split() == [new]  # the restart ran once
    assert kinds(events) == ["started", "switching", "switched", "healthy"]
    assert [e.action for e in repo.history.newest_first("production")][:1] == ["pull"]
    report = fleet_status(repo, "origin")
    (status,) = report.hosts
    assert (status.running, status.state, status.ref) == (new, "following", "production")
    assert report.summary() == [f"production: 1/1 on {new[:12]}"]
    assert_consistent(repo)


def test_a_failing_health_check_goes_back_and_is_not_retried(
    published: Published, tmp_path: Path
) -> None:
    repo = host(published, tmp_path)
    switched = tmp_path / "switched"
    hook(repo, "post-switch", f'echo "$3" >> {switched}')
    old = repo.refs.read("production")
    bad = publish(published, tmp_path, "v2")
    events: Events = []

    with follower(repo, events, health_command='test "$MSTORE_NEW" != ' + bad) as f:
        assert f.poll_once() == "failed-and-reverted"
        assert f.poll_once() == "failed-and-reverted"  # not tried again
        assert repo.refs.read("production") == old
        good = publish(published, tmp_path, "v3")
        assert f.poll_once() == "healthy"  # the ref moved: followed

    assert repo.refs.read("production") == good
    assert switched.read_text().split() == [bad, old, good]  # switch, revert, switch
    assert kinds(events) == [
        *("started", "switching", "switched", "failed", "reverted"),
        *("switching", "switched", "healthy"),
    ]
    actions = [e.action for e in repo.history.newest_first("production")]
    assert actions[:3] == ["pull", "rollback", "pull"]
    assert_consistent(repo)


def test_a_hanging_health_check_is_killed_and_fails(published: Published, tmp_path: Path) -> None:
    repo = host(published, tmp_path)
    old = repo.refs.read("production")
    publish(published, tmp_path, "v2")
    events: Events = []
    child = tmp_path / "child.pid"

    with follower(repo, events, health_command=f"sleep 60 & echo $! > {child}; wait",
                  health_timeout=0.5) as f:  # fmt: skip
        assert f.poll_once() == "failed-and-reverted"

    assert repo.refs.read("production") == old
    assert "did not finish within its timeout" in events[-1].message
    assert not running(int(child.read_text()))  # its child was killed too


def running(pid: int) -> bool:
    """Whether `pid` runs (a killed process not yet reaped is a zombie: not running)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


def test_a_health_hook_that_cannot_run_is_an_error_at_start(
    published: Published, tmp_path: Path
) -> None:
    repo = host(published, tmp_path)
    (repo.layout.hooks).mkdir(exist_ok=True)
    (repo.layout.hooks / "health").write_text("#!/bin/sh\nexit 0\n")  # not executable

    with pytest.raises(UsageError, match="not an executable"):
        follower(repo, [])


def test_a_second_follower_of_the_store_refuses(published: Published, tmp_path: Path) -> None:
    repo = host(published, tmp_path)
    with follower(repo, []), pytest.raises(LockedError):
        follower(Repo(repo.root), []).__enter__()


def test_a_refused_version_is_marked_failed_and_nothing_switches(
    published: Published, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = host(published, tmp_path)
    old = repo.refs.read("production")
    refused = publish(published, tmp_path, "v2")

    def refuse(*args: object, **kwargs: object) -> None:
        raise RefusedError("ref production: signed by nobody this store trusts")

    monkeypatch.setattr(following, "pull", refuse)
    events: Events = []
    with follower(repo, events) as f:
        assert f.poll_once() == "refused"
        assert f.poll_once() == "failed-and-reverted"  # marked: not pulled again

    assert repo.refs.read("production") == old
    state = read_state(repo.layout.follow / "state")
    assert state is not None and state.failed is not None
    assert state.failed.manifest == refused
    (status,) = fleet_status(repo, "origin").hosts
    assert status.failed and "trusts" in (status.error or "")


@pytest.mark.parametrize("phase", ["switching", "checking", "reverting"])
def test_a_follower_killed_in_a_phase_continues_from_it(
    published: Published, tmp_path: Path, phase: str
) -> None:
    """The state written before each step is what a kill leaves; the next start reads it."""
    repo = host(published, tmp_path)
    old = repo.refs.read("production")
    bad = publish(published, tmp_path, "v2")
    pull(repo, published.remote(), ["production"])  # the kill came after the switch
    state = FollowState("production", "origin", phase=phase, running=old, previous=old, wanted=bad)
    write_state(repo.layout.follow / "state", state)
    events: Events = []

    with follower(repo, events, health_command="exit 1") as f:
        assert f.poll_once() == "failed-and-reverted"

    assert kinds(events)[:2] == ["started", "resumed"]
    assert repo.refs.read("production") == old
    saved = read_state(repo.layout.follow / "state")
    assert saved is not None and saved.phase == "idle" and saved.running == old
    assert_consistent(repo)


def test_errors_back_off_with_jitter_and_recover(
    published: Published, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = host(published, tmp_path)
    new = publish(published, tmp_path, "v2")
    remote_dir = Path(published.url)
    hidden = tmp_path / "hidden"
    remote_dir.rename(hidden)  # the remote disappears
    waits: list[float] = []

    class Stop(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            assert timeout is not None
            waits.append(timeout)
            if len(waits) == 3:
                hidden.rename(remote_dir)  # and comes back
            if len(waits) == 5:
                self.set()
            return self.is_set()

    events: Events = []
    with follower(repo, events, interval=10.0) as f:
        f.run(Stop())

    assert kinds(events).count("error") == 3
    assert 2 * 10 * 0.9 <= waits[0] <= 2 * 10 * 1.1
    assert waits[0] < waits[1] < waits[2]  # exponential
    assert 10 * 0.9 <= waits[3] <= 10 * 1.1  # recovered: the interval again
    assert repo.refs.read("production") == new
    assert kinds(events)[-1] == "stopped"


def test_a_damaged_state_file_is_named(published: Published, tmp_path: Path) -> None:
    repo = host(published, tmp_path)
    (repo.layout.follow).mkdir(parents=True, exist_ok=True)
    (repo.layout.follow / "state").write_text('{"format":1,"phase":"dancing"}')

    with pytest.raises(IntegrityError, match="follow/state is damaged"):
        follower(repo, []).__enter__()


def test_host_identity_is_stable_and_nameable(published: Published, tmp_path: Path) -> None:
    repo = host(published, tmp_path)
    with follower(repo, []) as first:
        assert first.host is not None
        first_id = first.host.id
    with follower(repo, [], host_name="web-3") as second:
        assert second.host is not None
        assert (second.host.id, second.host.name) == (first_id, "web-3")
    with follower(repo, []) as third:
        assert third.host is not None and third.host.name == "web-3"


def test_a_damaged_chunk_keeps_the_running_version_until_the_remote_is_whole(
    published: Published, tmp_path: Path
) -> None:
    """The follower switches only to a complete, verified version: a pack byte flipped
    on the remote is an error it backs off from, with the old version still serving."""
    repo = host(published, tmp_path)
    old = repo.refs.read("production")
    directory = write_version(tmp_path / "src" / "v2", "v2")
    (directory / "weights.bin").write_bytes(os.urandom(LARGE))
    new = commit(published.repo, directory, "production").manifest_id
    packs = Path(published.url) / "packs"
    before = {p.name for p in packs.iterdir()}
    push(published.repo, published.remote())
    (pack,) = [p for p in packs.iterdir() if p.name not in before]
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    events: Events = []

    with follower(repo, events) as f:
        with pytest.raises(IntegrityError):
            f.poll_once()
        assert repo.refs.read("production") == old
        assert_consistent(repo)
        data[len(data) // 2] ^= 0xFF  # the remote is repaired
        pack.write_bytes(bytes(data))
        assert f.poll_once() == "following"

    assert repo.refs.read("production") == new
    assert_consistent(repo)


def test_follow_once_exits_1_when_the_version_fails_here_and_fleet_says_so(
    published: Published, tmp_path: Path
) -> None:
    """`mstore follow --once` for cron: exit 0 when the host runs what the remote names,
    1 when that version failed its check (and was reverted); `--json` prints one event
    per line; `mstore fleet` names the host and its state."""
    import subprocess
    import sys

    import orjson

    repo = host(published, tmp_path)
    publish(published, tmp_path, "v2")
    mstore = [str(Path(sys.executable).parent / "mstore"), "--store", str(repo.root)]

    failed = subprocess.run(
        [*mstore, "follow", "--once", "--json", "--health-cmd", "exit 3", "--host-name", "web-1"],
        capture_output=True,
        text=True,
        check=False,
    )
    events = [orjson.loads(line)["event"] for line in failed.stdout.splitlines()]
    fleet = subprocess.run([*mstore, "fleet"], capture_output=True, text=True, check=False)
    again = subprocess.run(
        [*mstore, "follow", "--once", "--health-cmd", "true"], capture_output=True, text=True
    )

    assert failed.returncode == 1, failed.stderr
    assert events == ["started", "switching", "switched", "failed", "reverted"]
    assert fleet.returncode == 0 and "web-1" in fleet.stdout
    assert "failed-and-reverted" in fleet.stdout and "1 failed" in fleet.stdout
    assert again.returncode == 1  # not retried until the ref moves: still failed here
