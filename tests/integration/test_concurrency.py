"""Real processes against one store: the lock, and compare-and-swap under contention."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mstore.errors import LockedError
from mstore.ops.commit import commit
from mstore.ops.show import log
from mstore.ops.switch import promote
from mstore.ops.verify import verify
from mstore.repo import Repo
from tests.helpers import assert_consistent, store_digest, write_version

MSTORE = Path(sys.executable).parent / "mstore"

HOLDER = """
import sys
from pathlib import Path
from mstore.repo import Repo

with Repo(Path(sys.argv[1])).locked("holder"):
    print("locked", flush=True)
    sys.stdin.read()
"""

WORKER = """
import json, sys
from pathlib import Path
from mstore.errors import LockedError, RefMovedError
from mstore.ops.commit import CommitOptions, commit
from mstore.repo import Repo
from tests.helpers import write_version

root, src, worker, count = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
made, retries = [], 0
for n in range(count):
    while True:
        seen = Repo(root).refs.read("staging")
        weights = f"{worker}/{n}".encode()
        source = write_version(src / f"w{worker}-{n}", f"v{worker}.{n}", model=weights)
        try:
            options = CommitOptions(expect=seen[:12] if seen else "none")
            result = commit(Repo(root), source, "staging", options=options)
        except (RefMovedError, LockedError):
            retries += 1
            continue
        made.append(result.manifest_id)
        break
print(json.dumps({"made": made, "retries": retries}))
"""


@contextmanager
def lock_held(root: Path) -> Iterator[int]:
    """Hold the store lock in another process; yield its pid."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        yield holder.pid
    finally:
        if holder.stdin:
            holder.stdin.close()
        holder.wait(timeout=30)
    assert holder.returncode == 0


def object_ids(repo: Repo) -> set[str]:
    return {p.parent.name + p.name for p in repo.layout.objects.glob("*/*")}


@pytest.fixture
def staged(repo: Repo, tmp_path: Path) -> str:
    v4 = commit(repo, write_version(tmp_path / "src" / "v4", "v4"), "production").manifest_id
    v5 = commit(repo, write_version(tmp_path / "src" / "v5", "v5"), "staging").manifest_id
    assert v4 is not None and v5 is not None
    return v5


def test_held_lock_makes_commit_fail_naming_the_holder(
    repo: Repo, staged: str, tmp_path: Path
) -> None:
    source = write_version(tmp_path / "src" / "v6", "v6")
    with lock_held(repo.root) as pid:
        before, objects = store_digest(repo), object_ids(repo)

        with pytest.raises(LockedError, match=f"locked by pid {pid} .*holder"):
            commit(Repo(repo.root, lock_timeout=0.2), source, "staging")

        assert object_ids(repo) - objects == set(), "the refused commit left new objects behind"
        assert store_digest(repo) == before
    assert repo.refs.read("staging") == staged
    assert_consistent(repo)


def test_held_lock_makes_promote_fail_naming_the_holder(repo: Repo, staged: str) -> None:
    with lock_held(repo.root) as pid:
        before = store_digest(repo)

        with pytest.raises(LockedError, match=f"locked by pid {pid} "):
            promote(Repo(repo.root, lock_timeout=0.2), "staging")

        assert store_digest(repo) == before
    assert_consistent(repo)


def test_held_lock_makes_cli_commit_exit_11(repo: Repo, staged: str, tmp_path: Path) -> None:
    source = write_version(tmp_path / "src" / "v6", "v6")
    with lock_held(repo.root) as pid:
        before, objects = store_digest(repo), object_ids(repo)

        command = ["--store", repo.root, "--lock-timeout", "0.2", "commit", source, "--to", "s"]
        done = subprocess.run(
            [MSTORE, *command],
            capture_output=True,
            text=True,
            timeout=60,
        )

        assert done.returncode == 11, done.stderr
        assert done.stderr.startswith("mstore: error: store is locked by pid ")
        assert f"pid {pid} " in done.stderr
        assert done.stderr.count("\n") == 1
        assert object_ids(repo) - objects == set(), "the refused commit left new objects behind"
        assert store_digest(repo) == before
    assert_consistent(repo)


def test_lock_of_a_killed_holder_is_released(repo: Repo, staged: str, tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(repo.root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)

    result = commit(
        Repo(repo.root, lock_timeout=5), write_version(tmp_path / "src" / "v6", "v6"), "staging"
    )

    assert repo.refs.read("staging") == result.manifest_id
    assert_consistent(repo)


def test_concurrent_commits_with_expect_form_one_linear_history(repo: Repo, tmp_path: Path) -> None:
    workers, per_worker = 4, 5
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), *sys.path])}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, *map(str, (repo.root, tmp_path / "src", w, per_worker))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for w in range(workers)
    ]
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        outcomes.append(json.loads(out))

    made = [m for o in outcomes for m in o["made"]]
    assert len(made) == len(set(made)) == workers * per_worker
    entries = list(reversed(log(repo, "staging")))
    assert len(entries) == workers * per_worker
    assert [e.new for e in entries] == [e.new for e in entries if e.new in made]
    assert {e.new for e in entries} == set(made)
    # Each move starts where the previous one ended: no lost update.
    assert entries[0].old is None
    for previous, entry in itertools.pairwise(entries):
        assert entry.old == previous.new
        assert entry.new is not None
        assert repo.manifest(entry.new).lineage.parent == previous.new
    assert repo.refs.read("staging") == entries[-1].new
    assert verify(Repo(repo.root)).ok
    assert_consistent(repo)
