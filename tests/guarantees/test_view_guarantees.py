"""Views are complete or absent, whatever interrupts the commands that remove, replace
or rebuild them: gc deleting released views (nested directories, shared copies),
restore replacing damaged views, and a commit that finds its view damaged (a released
view that lost a file).

For each scenario (view_scenarios.py): a kill -9 of a real child process just before
each filesystem call that touches views/, tmp/ (where views are built) or copies/, and
a sample of the others (every call under `--stress`); and, in process, every call
failing in turn with EIO and with ENOSPC (until the operation no longer meets the
fault). After each attempt and one locked no-op (the documented recovery), the
invariants of `check_views_after` hold; the operation is then run again and the store
must end complete (`check_finished`) once gc, with its default windows, has finished
what the trash holds.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import orjson
import pytest

from mstore.ops.gc import gc
from mstore.repo import Repo
from tests.guarantees.faults import (
    FIXED_EPOCH,
    LOCK_TIMEOUT,
    FsCalls,
    allowed_error,
    fresh_copy,
    project,
    raise_errno,
    recover,
    remove_tree,
    sample,
    summary,
    sweep_kills,
)
from tests.guarantees.view_scenarios import (
    SCENARIOS,
    Faults,
    build_template,
    check_finished,
    check_views_after,
    prepare,
    start_child,
    verify_faults,
    view_directories,
)

pytestmark = pytest.mark.slow  # a kill and a failing call at every view step

JOBS = 2
QUICK_OTHER_KILLS = 12
VIEW_PATHS = re.compile(r"\.mstore/(views|tmp|copies)\b")
ERRNOS = {"EIO": errno.EIO, "ENOSPC": errno.ENOSPC}


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", FIXED_EPOCH)


class Baseline:
    """The template's views and faults, and the views an uninterrupted run leaves."""

    def __init__(self, template: Path, count: Path) -> None:
        fresh_copy(template, count)
        root = project(count)
        self.before = view_directories(root)
        self.faults: Faults = verify_faults(root)
        prepare(count)()
        self.wanted = set(view_directories(root))
        assert not check_finished(root, self.wanted), check_finished(root, self.wanted)
        remove_tree(count)


def finish_and_check(run: Path, baseline: Baseline, where: str) -> list[str]:
    root = project(run)
    try:
        recover(root)
        problems = check_views_after(root, baseline.before, baseline.faults)
        prepare(run)()
        # What a rebuild moved to the trash is gc's to finish (with its default windows,
        # which keep every recent view): the next gc is the command that ends the work.
        gc(Repo(root, lock_timeout=LOCK_TIMEOUT))
        problems += check_finished(root, baseline.wanted)
    except Exception as failure:
        problems = [f"checking raised {failure!r}"]
    return [f"{where}: {p}" for p in problems]


def count_calls(template: Path, run: Path) -> list[list[object]]:
    fresh_copy(template, run)
    child = start_child(run, 0)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    remove_tree(run)
    calls: list[list[object]] = orjson.loads(out)
    return calls


def kill_points(calls: list[list[object]], stress: bool) -> list[int]:
    """Every call that touches views/, tmp/ (where views are built) or copies/, plus a
    sample of the rest (every call under `--stress`)."""
    total = len(calls)
    if stress:
        return list(range(1, total + 1))
    views = {int(str(n)) for n, _, path in calls if VIEW_PATHS.search(str(path))}
    return sorted(views | set(sample(total, QUICK_OTHER_KILLS)))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_kill_at_every_call_leaves_views_complete_or_absent(
    scenario: str, scratch: Path, stress: bool
) -> None:
    template = scratch / "template"
    build_template(scenario, template)
    baseline = Baseline(template, scratch / "baseline")
    calls = count_calls(template, scratch / "count")
    points = kill_points(calls, stress)

    def after_kill(kill_at: int, run: Path) -> list[str]:
        number, name, path = calls[kill_at - 1]
        return finish_and_check(run, baseline, f"{scenario} killed before #{number} {name}({path})")

    problems = sweep_kills(template, scratch, points, start_child, after_kill, jobs=JOBS)
    assert not problems, summary(problems, len(calls))


@pytest.mark.parametrize("errno_name", list(ERRNOS))
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_failing_call_leaves_views_complete_or_absent(
    scenario: str, errno_name: str, scratch: Path
) -> None:
    template = scratch / "template"
    build_template(scenario, template)
    baseline = Baseline(template, scratch / "baseline")
    code = ERRNOS[errno_name]
    problems: list[str] = []
    number = 0
    while True:
        number += 1
        run = fresh_copy(template, scratch / f"n{number}")
        error: Exception | None = None
        operation = prepare(run)
        with FsCalls(run, fail_at=number, action=raise_errno(code)) as calls:
            try:
                operation()
            except Exception as err:
                error = err
        for fd in calls.open_descriptors():
            problems.append(f"{scenario}: descriptor left open after call {number}")
            os.close(fd)
        if calls.hit is None:
            assert error is None, error
            remove_tree(run)
            break
        where = f"{scenario}, {errno_name} at {calls.hit.describe(run)}"
        if not allowed_error(error):
            problems.append(f"{where}: raised {error!r}")
        problems += finish_and_check(run, baseline, where)
        remove_tree(run)
    assert number > 10, f"{scenario}: only {number} calls"
    assert not problems, summary(problems, number)
