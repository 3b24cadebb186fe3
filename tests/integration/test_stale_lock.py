"""A lock holder killed with SIGKILL: the kernel frees the lock, the next holder says who
died, and an interrupted transaction is finished by the next command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from mstore.core.fsutil import read_lock_holder
from mstore.ops.commit import commit
from mstore.ops.status import status
from mstore.ops.verify import verify
from mstore.repo import Repo
from tests.helpers import assert_consistent, write_version

MSTORE = Path(sys.executable).parent / "mstore"

HOLDER = """
import sys, time
from pathlib import Path
from mstore.repo import Repo

with Repo(Path(sys.argv[1])).locked("commit"):
    print("locked", flush=True)
    time.sleep(600)  # holds the lock until the test kills it; bounds an orphan's life
"""

# Commit, but die by SIGKILL right after the log append: the journal is written (the
# commit point), the log has the entries, the ref, views and .env are not yet moved.
CRASHER = """
import os, signal, sys
from pathlib import Path
from mstore.core.history import History
from mstore.ops.commit import CommitOptions, commit
from mstore.repo import Repo

original = History.append

def append(self, entries):
    original(self, list(entries))
    os.kill(os.getpid(), signal.SIGKILL)

History.append = append
options = CommitOptions(message="interrupted")
commit(Repo(Path(sys.argv[1])), Path(sys.argv[2]), sys.argv[3], options=options)
"""


def kill_lock_holder(root: Path) -> int:
    """Start a process that takes the store lock, SIGKILL it while it holds it; its pid."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        if holder.stdout:
            holder.stdout.close()
    assert holder.returncode == -signal.SIGKILL
    return holder.pid


def crash_commit(root: Path, source: Path, ref: str) -> tuple[int, dict[str, Any]]:
    """Run CRASHER; return its pid and the journal it left behind."""
    child = subprocess.run(
        [sys.executable, "-c", CRASHER, str(root), str(source), ref],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    journal = root / ".mstore" / "transaction"
    assert journal.is_file(), "the child died before its commit point"
    document: dict[str, Any] = orjson.loads(journal.read_bytes())
    holder = read_lock_holder(root / ".mstore" / "lock")
    assert holder is not None and holder.command == "commit"
    return holder.pid, document


def run_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MSTORE), "--store", str(root), *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def committed(repo: Repo, tmp_path: Path) -> str:
    """production=v0 (the active environment) and staging=v1; staging's id."""
    commit(repo, write_version(tmp_path / "src" / "v0", "v0"), "production")
    manifest_id = commit(repo, write_version(tmp_path / "src" / "v1", "v1"), "staging").manifest_id
    assert manifest_id is not None
    return manifest_id


def test_killed_holder_frees_the_lock_and_is_reported(repo: Repo, committed: str) -> None:
    pid = kill_lock_holder(repo.root)
    left = read_lock_holder(repo.layout.lock)
    assert left is not None and left.pid == pid and left.command == "commit"

    # A short timeout: the lock is free at once (the kernel dropped the flock), or this
    # raises LockedError.
    fresh = Repo(repo.root, lock_timeout=0.5)
    with fresh.locked("gc"):
        pass

    assert len(fresh.notices) == 1, fresh.notices
    assert f"previous lock holder (pid {pid} on " in fresh.notices[0]
    assert "(commit)" in fresh.notices[0]
    assert read_lock_holder(repo.layout.lock) is None, "a clean release clears the line"
    again = Repo(repo.root, lock_timeout=0.5)
    with again.locked("gc"):
        pass
    assert again.notices == []


def test_clean_release_leaves_no_notice(repo: Repo, committed: str) -> None:
    first = Repo(repo.root)
    with first.locked("commit"):
        assert read_lock_holder(repo.layout.lock) is not None
    second = Repo(repo.root, lock_timeout=0.5)
    with second.locked("gc"):
        pass

    assert first.notices == [] and second.notices == []


def test_cli_shows_the_dead_holder_on_stderr(repo: Repo, committed: str) -> None:
    pid = kill_lock_holder(repo.root)

    done = run_cli(repo.root, "--lock-timeout", "1", "verify")

    assert done.returncode == 0, done.stderr
    assert f"mstore: the previous lock holder (pid {pid} " in done.stderr
    assert "without releasing the store lock" in done.stderr
    assert done.stdout.startswith("ok: ")


def test_transaction_of_a_killed_commit_is_finished_by_the_next_lock(
    repo: Repo, committed: str, tmp_path: Path
) -> None:
    source = write_version(tmp_path / "src" / "v2", "v2")
    pid, journal = crash_commit(repo.root, source, "staging")
    [entry] = journal["entries"]
    assert entry["old"] == committed
    new = entry["new"]
    assert repo.refs.read("staging") == committed  # not yet moved
    assert status(Repo(repo.root)).pending_transaction

    fresh = Repo(repo.root, lock_timeout=0.5)
    with fresh.locked("gc"):
        pass

    assert fresh.recovered == journal["txn"]
    assert any(f"pid {pid} " in n for n in fresh.notices), fresh.notices
    assert any(f"finished interrupted transaction {journal['txn']}" in n for n in fresh.notices)
    assert not repo.layout.transaction.exists()
    assert fresh.refs.read("staging") == new
    assert [e.txn for e in fresh.history.newest_first()].count(journal["txn"]) == 1
    report = verify(Repo(repo.root))
    assert report.ok, [f.to_json() for f in report.faults]
    assert status(Repo(repo.root)).clean
    assert_consistent(repo)


def test_cli_finishes_the_transaction_of_a_killed_commit(
    repo: Repo, committed: str, tmp_path: Path
) -> None:
    source = write_version(tmp_path / "src" / "v2", "v2")
    pid, journal = crash_commit(repo.root, source, "candidate")
    [entry] = journal["entries"]

    done = run_cli(repo.root, "--lock-timeout", "1", "verify")

    assert done.returncode == 0, (done.stdout, done.stderr)
    assert f"mstore: the previous lock holder (pid {pid} " in done.stderr
    assert f"mstore: finished interrupted transaction {journal['txn']}" in done.stderr
    fresh = Repo(repo.root)
    assert fresh.refs.read("candidate") == entry["new"]
    assert fresh.layout.view_link("candidate").is_symlink()
    assert status(fresh).clean
    assert_consistent(repo)
