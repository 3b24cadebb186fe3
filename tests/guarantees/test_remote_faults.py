"""push and pull on a directory remote, with a filesystem call failing.

The template: store `project` committed v1 to production and pushed it; store `host`
was cloned from the remote then; `project` has since committed v2 to staging and
promoted it (production = v2, and its archive ref). `push` sends that to the remote;
for `pull`, the template has pushed it already and `host` brings it in.

Each attempt restores the template to the same path (so the remote's URL, and each
store's remote-tracking file, stay the same); then the Nth filesystem call under the
run's directory (the store's or the remote's) raises ENOSPC or EIO, for a sample of N
spread over the whole operation (every N under `--stress`: the full ENOSPC sweep of
both took about 3 minutes here). One transfer at a time (jobs=1), so the calls come in
the same order in every attempt.

After each attempt, with nothing injected:
- the operation raised an `MstoreError` or an `OSError`, nothing else;
- after one locked no-op, the store is consistent (`verify` clean, every view
  complete and byte-identical);
- push: every remote ref holds its old or its new value and names a manifest whose
  objects are all on the remote, and `remote verify` finds no fault;
- pull: the host's refs are all old or all new (one transaction);
- the operation run again succeeds and ends where an uninterrupted run ends: the
  remote's refs equal the project's (push), the host's refs equal the remote's (pull).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from mstore.ops import remote_upkeep
from mstore.ops.commit import commit
from mstore.ops.switch import promote
from mstore.ops.transfer import clone, pull, push
from mstore.remotes import open_remote
from mstore.repo import Repo
from tests.guarantees.faults import (
    FsCalls,
    allowed_error,
    fresh_copy,
    raise_errno,
    recover,
    remove_tree,
    sample,
    summary,
)
from tests.helpers import assert_consistent, write_version
from tests.remote.support import remote_state

ERRNOS = {"ENOSPC": errno.ENOSPC, "EIO": errno.EIO}
QUICK_SAMPLE = 60  # sample() asks: about 35 distinct calls per errno in quick mode
OPERATIONS = ("push", "pull")
# A model above the chunking threshold (4 MiB), mostly shared between v1 and v2, so
# push and pull go through packs, indexes and recipes as well as whole objects.
MODEL_V1 = os.urandom(5 << 20)
MODEL_V2 = MODEL_V1[: 3 << 20] + os.urandom(64 << 10) + MODEL_V1[(3 << 20) + (64 << 10) :]


def build(run: Path, operation: str) -> None:
    src = run / "src"
    project = run / "project"
    project.mkdir(parents=True)
    repo, _ = Repo.init(project)
    commit(repo, write_version(src / "v1", "v1", model=MODEL_V1), "production")
    push(repo, open_remote(str(run / "remote")), jobs=1)
    clone(open_remote(str(run / "remote")), run / "host", jobs=1)
    commit(Repo(project), write_version(src / "v2", "v2", model=MODEL_V2), "staging")
    promote(Repo(project), "staging")
    if operation == "pull":
        push(Repo(project), open_remote(str(run / "remote")), jobs=1)


def restore(pristine: Path, run: Path) -> None:
    """The template back at `run`, both stores' views sealed again (no copy keeps the
    inode flags: fresh_copy seals the project's, this the host's)."""
    remove_tree(run)
    fresh_copy(pristine, run)
    host = Repo(run / "host")
    for entry in os.scandir(host.layout.views):
        if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
            host.views.guard.seal_tree(Path(entry.path))


def run_operation(operation: str, run: Path) -> None:
    remote = open_remote(str(run / "remote"))
    if operation == "push":
        push(Repo(run / "project", lock_timeout=5), remote, jobs=1)
    else:
        pull(Repo(run / "host", lock_timeout=5), remote, jobs=1)


def check_after(operation: str, run: Path, before: dict[str, dict[str, str]]) -> list[str]:
    """The invariants after an attempt, then the retry; the problems found."""
    url = str(run / "remote")
    store = run / ("project" if operation == "push" else "host")
    problems: list[str] = []
    recover(store)
    try:
        assert_consistent(Repo(store))
    except AssertionError as err:
        problems.append(f"store inconsistent: {err}")
    try:
        remote = remote_state(url)
    except Exception as err:  # an assertion or any failure to read it: the finding
        return [*problems, f"remote inconsistent: {err!r}"]
    if operation == "push":
        wanted = Repo(store).refs.read_all()
        for ref in sorted(set(remote) | set(wanted)):
            if remote.get(ref) not in (before["remote"].get(ref), wanted.get(ref)):
                problems.append(f"remote ref {ref} is {remote.get(ref)}: neither old nor new")
        report = remote_upkeep.verify(open_remote(url), jobs=1)
        if report.problems:
            problems.append(f"remote verify: {report.problems}")
    else:
        refs = Repo(store).refs.read_all()
        if refs not in (before["host"], remote):
            problems.append(f"host refs {refs} are neither all old nor all new")
    try:
        run_operation(operation, run)
    except Exception as err:
        return [*problems, f"the retry failed: {err!r}"]
    remote = remote_state(url)
    final = Repo(store).refs.read_all()
    if final != remote:
        problems.append(f"after the retry, the store has {final}, the remote {remote}")
    try:
        assert_consistent(Repo(store))
    except AssertionError as err:
        problems.append(f"after the retry: {err}")
    return problems


@pytest.mark.parametrize("errno_name", list(ERRNOS))
@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_failing_call_anywhere_in_a_transfer_leaves_both_sides_consistent(
    operation: str, errno_name: str, scratch: Path, stress: bool
) -> None:
    run, pristine = scratch / "run", scratch / "pristine"
    build(run, operation)
    fresh_copy(run, pristine)
    before = {
        "remote": remote_state(str(run / "remote")),
        "host": Repo(run / "host").refs.read_all(),
    }
    restore(pristine, run)
    with FsCalls(run) as counting:
        run_operation(operation, run)
    total = len(counting.calls)
    assert total > QUICK_SAMPLE, f"{operation} made only {total} filesystem calls"
    numbers = list(range(1, total + 1)) if stress else sample(total, QUICK_SAMPLE)
    problems: list[str] = []
    for number in numbers:
        restore(pristine, run)
        error: Exception | None = None
        with FsCalls(run, fail_at=number, action=raise_errno(ERRNOS[errno_name])) as calls:
            try:
                run_operation(operation, run)
            except Exception as err:
                error = err
        if calls.hit is None:
            continue  # fewer calls this time (nothing left to retry): nothing injected
        where = f"{operation}, {errno_name} at {calls.hit.describe(run)}"
        if not allowed_error(error):
            problems.append(f"{where}: raised {error!r}")
        problems += [f"{where}: {p}" for p in check_after(operation, run, before)]
    remove_tree(run)
    assert not problems, summary(problems, len(numbers))
