"""Fault injection, SQLite-style: every filesystem call an operation makes fails once.

For each operation (commit, import, promote, rollback, checkout of an archive, gc --now
after a ref was deleted, ref delete) and each errno (ENOSPC, EIO, EACCES), the Nth
filesystem call touching the test's directory raises `OSError(errno)`, for N = 1, 2,
3, ... until the operation completes without meeting the fault (ENOSPC: every N; EIO
and EACCES: a sample including the first and last calls and those around the journal's
rename; every N for all three under `--stress`).

After each attempt, with nothing injected, this suite proves:

- the operation raised an `MstoreError` or an `OSError`, nothing else, and left no
  descriptor open (a leaked lock descriptor keeps the store locked in this process);
- after one locked no-op (the documented automatic recovery): `verify` is clean and
  every view shows one complete version (`assert_consistent`); every ref holds its old
  or its new value, and refs, log and `.env` are all old or all new (so promote never
  moves production without creating its archive ref, or the reverse); refs/ and
  models/ are byte-identical to the state before or to an uninterrupted run; no
  `.tmp-` file is left in refs/, objects/, copies/, models/, `.mstore/` or beside `.env`;
- a failure before the journal was written changed nothing a reader sees; an operation
  that returned normally despite the fault took effect;
- retrying the operation succeeds and ends byte for byte where an uninterrupted run ends.

All problems of a sweep are collected and reported together, one line per attempt.
"""

from __future__ import annotations

import errno
import os
import traceback
from pathlib import Path

import pytest

from tests.guarantees.faults import (
    FIXED_EPOCH,
    OPERATIONS,
    Expectation,
    FsCalls,
    State,
    allowed_error,
    archive_of,
    build_template,
    check_invariants,
    commit_point,
    finish_like_uninterrupted,
    fresh_copy,
    operation_of,
    prepare_operation,
    project,
    raise_errno,
    recover,
    remove_tree,
    sample,
    summary,
)

pytestmark = pytest.mark.slow  # a failing filesystem call at every step

ERRNOS = {"ENOSPC": errno.ENOSPC, "EIO": errno.EIO, "EACCES": errno.EACCES}
# Quick mode: every N for ENOSPC, about this many sampled N for EIO and EACCES.
QUICK_SAMPLE = 14


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", FIXED_EPOCH)


class NotMet(Exception):
    """The operation completed before reaching call N: the sweep is over."""


def measure(template: Path, run: Path) -> tuple[Expectation, int, tuple[int, ...]]:
    """Run the operation once uninterrupted: its end state, call count and commit point."""
    fresh_copy(template, run)
    before = State.of(project(run))
    operation = prepare_operation(run)
    with FsCalls(run) as calls:
        operation()
    after = State.of(project(run))
    remove_tree(run)
    expected = Expectation(operation_of(template), before, after, archive_of(template))
    return expected, calls.count, commit_point(calls.calls)


def attempt(run: Path, number: int, code: int, expected: Expectation) -> list[str]:
    """One run with call `number` failing, then every check; the problems found.
    NotMet if the operation finished without making that many calls."""
    operation = prepare_operation(run)
    root = project(run)
    error: Exception | None = None
    with FsCalls(run, fail_at=number, action=raise_errno(code)) as calls:
        try:
            operation()
        except Exception as err:
            error = err
    leaked = calls.open_descriptors()
    for fd in leaked:
        os.close(fd)  # so that the checks below can take the lock
    if calls.hit is None:
        assert error is None, f"{expected.operation} failed with no fault injected: {error!r}"
        raise NotMet
    where = (
        f"{expected.operation}, {errno.errorcode[code]} at {calls.hit.describe(run)}, "
        f"journal {'written' if calls.journal_written else 'not written'}"
    )
    problems = []
    if leaked:
        shown = sorted(path.replace(str(run) + os.sep, "") for path in leaked.values())
        problems.append(f"{where}: descriptors left open by the failed call: {shown}")
    try:
        assert allowed_error(error), (
            f"{where}: raised {type(error).__name__}, not MstoreError or OSError: "
            + "".join(traceback.format_exception(error)).replace("\n", " | ")
        )
        recover(root)
        state = check_invariants(
            root, expected, where, journal_written=calls.journal_written, check_temporaries=True
        )
        if error is None and not expected.before.same_moves(expected.after):
            assert state.same_moves(expected.after), (
                f"{where}: the operation returned normally but did not take effect"
            )
        finish_like_uninterrupted(root, run, expected, where, state, "the retry")
    except AssertionError as failure:
        problems.append(str(failure))
    except Exception as failure:
        problems.append(f"{where}: checking raised {failure!r}")
    return problems


@pytest.mark.parametrize("errno_name", list(ERRNOS))
@pytest.mark.parametrize("operation", OPERATIONS)
def test_failing_filesystem_call_leaves_old_or_new_state(
    operation: str, errno_name: str, scratch: Path, stress: bool
) -> None:
    template = scratch / "template"
    build_template(operation, template)
    expected, total, around = measure(template, scratch / "count")
    code = ERRNOS[errno_name]
    every = stress or errno_name == "ENOSPC"
    numbers = range(1, 2 * total + 10) if every else sample(total, QUICK_SAMPLE, around)
    problems: list[str] = []
    attempts = 0
    for number in numbers:
        run = fresh_copy(template, scratch / f"n{number}")
        try:
            problems += attempt(run, number, code, expected)
        except NotMet:
            assert every, f"{operation}: call {number} of {total} was never made"
            break
        finally:
            remove_tree(run)
        attempts += 1
    else:
        assert not every, f"{operation}: the operation kept meeting the injected fault"
    assert attempts >= min(total, len(numbers)), (operation, attempts, total)
    assert not problems, summary(problems, attempts)
