"""push and pull on a directory remote, with a filesystem call failing or the process
killed before it (scenarios in transfer_scenarios.py).

The template: store `project` committed v1 to production and pushed it; store `host`
was cloned from the remote then; `project` has since committed v2 to staging and
promoted it (production = v2, and its archive ref). `push` sends that to the remote;
for `pull`, the template has pushed it already and `host` brings it in.

Each attempt restores the template to the same path (so the remote's URL, and each
store's remote-tracking file, stay the same); then the Nth filesystem call under the
run's directory (the store's or the remote's) raises ENOSPC or EIO, for a sample of N
spread over the whole operation (every N under `--stress`: the full ENOSPC sweep of
both took about 3 minutes here). The kill sweep runs the transfer in a child process
that SIGKILLs itself just before call N, for the same sample. One transfer at a time
(jobs=1), so the calls come in the same order in every attempt.

After each attempt, with nothing injected:
- the operation raised an `MstoreError` or an `OSError`, nothing else (or was killed);
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
import signal
from pathlib import Path

import orjson
import pytest

from mstore.repo import Repo
from tests.guarantees.faults import (
    FsCalls,
    allowed_error,
    fresh_copy,
    raise_errno,
    sample,
    start_code,
    summary,
)
from tests.guarantees.transfer_scenarios import (
    OPERATIONS,
    build,
    check_after,
    restore,
    run_operation,
)
from tests.remote.support import remote_state

pytestmark = pytest.mark.slow  # a kill and a failing call at every step of a transfer

ERRNOS = {"ENOSPC": errno.ENOSPC, "EIO": errno.EIO}
QUICK_SAMPLE = 60  # sample() asks: about 35 distinct calls per errno in quick mode

CHILD_CODE = """
import json, sys
from pathlib import Path
from tests.guarantees.faults import FsCalls, kill_self
from tests.guarantees.transfer_scenarios import run_operation
run, kill_at = Path(sys.argv[1]), int(sys.argv[2])
with FsCalls(run, fail_at=kill_at or None, action=kill_self) as calls:
    run_operation((run / "operation").read_text(), run)
print(json.dumps([[c.number, c.name, c.relative(run)] for c in calls.calls]))
"""


def template(operation: str, scratch: Path) -> tuple[Path, Path, dict[str, dict[str, str]]]:
    """The run directory, its pristine copy, and the refs before (remote and host)."""
    run, pristine = scratch / "run", scratch / "pristine"
    build(run, operation)
    fresh_copy(run, pristine)
    before = {
        "remote": remote_state(str(run / "remote")),
        "host": Repo(run / "host").refs.read_all(),
    }
    return run, pristine, before


@pytest.mark.parametrize("errno_name", list(ERRNOS))
@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_failing_call_anywhere_in_a_transfer_leaves_both_sides_consistent(
    operation: str, errno_name: str, scratch: Path, stress: bool
) -> None:
    run, pristine, before = template(operation, scratch)
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
    assert not problems, summary(problems, len(numbers))


@pytest.mark.parametrize("operation", OPERATIONS)
def test_kill_anywhere_in_a_transfer_leaves_both_sides_consistent(
    operation: str, scratch: Path, stress: bool
) -> None:
    """A child process runs the transfer and SIGKILLs itself before call K (a sample of
    K; every K under `--stress`); then the same invariants as for a failing call."""
    run, pristine, before = template(operation, scratch)
    restore(pristine, run)
    child = start_code(CHILD_CODE, run, 0)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    calls: list[list[object]] = orjson.loads(out)
    total = len(calls)
    points = list(range(1, total + 1)) if stress else sample(total, QUICK_SAMPLE)
    problems: list[str] = []
    for kill_at in points:
        restore(pristine, run)
        child = start_code(CHILD_CODE, run, kill_at)
        _, err = child.communicate(timeout=120)
        number, name, path = calls[kill_at - 1]
        where = f"{operation} killed before #{number} {name}({path})"
        if child.returncode != -signal.SIGKILL:
            problems.append(f"{where}: the child exited {child.returncode}: {err[-400:]}")
            continue
        problems += [f"{where}: {p}" for p in check_after(operation, run, before)]
    assert not problems, summary(problems, len(points))
