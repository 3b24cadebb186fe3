"""relink, interrupted anywhere, in both directions: copy -> auto (sealed hardlinks:
every view built and sealed anew, copies/ reclaimed) and auto -> copy (every sealed
view unsealed and removed under the unprotecting intent).

`test_a_failing_call_anywhere_in_relink_leaves_a_store_verify_passes`: every filesystem
call of relink fails once in turn (EIO, ENOSPC). `test_kill_anywhere_in_relink_...`:
a child process runs relink and SIGKILLs itself just before its Kth filesystem call
(every K that touches views/, copies/, tmp/ or the unprotecting intent, and a sample of
the rest; every K under `--stress`).

After each attempt, the next locked command recovers (re-sealing whatever the intent
lists), and then: `verify` passes and every ref's view is complete and byte-identical
to its objects; relinking again ends in the new mode, with `copies/` reclaimed, and
`status` and `verify` clean.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import subprocess
from pathlib import Path

import orjson
import pytest

from mstore.errors import MstoreError
from mstore.ops.commit import commit
from mstore.ops.relink import relink
from mstore.ops.status import status
from mstore.ops.verify import verify
from mstore.repo import Repo
from mstore.views import protection
from tests.guarantees.faults import (
    FsCalls,
    fresh_copy,
    project,
    raise_errno,
    recover,
    remove_tree,
    sample,
    start_code,
    summary,
    sweep_kills,
)
from tests.helpers import assert_consistent, write_version

pytestmark = pytest.mark.slow  # a kill and a failing call at every step of relink

ERRNOS = {"ENOSPC": errno.ENOSPC, "EIO": errno.EIO}
QUICK_OTHER_KILLS = 12
JOBS = max(2, min(4, os.cpu_count() or 2))
STORE_PATHS = re.compile(r"\.mstore/(views|copies|tmp|unprotecting|\.tmp-unprotecting)")

CHILD_CODE = """
import json, sys
from pathlib import Path
from mstore.ops.relink import relink
from mstore.repo import Repo
from tests.guarantees.faults import FsCalls, kill_self, project
run, kill_at = Path(sys.argv[1]), int(sys.argv[2])
with FsCalls(run, fail_at=kill_at or None, action=kill_self) as calls:
    relink(Repo(project(run), lock_timeout=5), (run / "target").read_text())
print(json.dumps([[c.number, c.name, c.relative(run)] for c in calls.calls]))
"""


DIRECTIONS = {"copy-to-auto": ("copy", "auto"), "auto-to-copy": ("auto", "copy")}


@pytest.fixture(params=list(DIRECTIONS))
def direction(request: pytest.FixtureRequest) -> tuple[str, str]:
    return DIRECTIONS[str(request.param)]


@pytest.fixture
def template(scratch: Path, direction: tuple[str, str]) -> Path:
    """A store in the direction's first mode with two versions, and the mode to relink
    it to in `target`; the suite needs the immutable flag (the default mode seals)."""
    run = scratch / "template"
    root = project(run)
    root.mkdir(parents=True)
    repo, _ = Repo.init(root, direction[0])
    (run / "target").write_text(direction[1])
    commit(repo, write_version(run / "src" / "v1", "v1"), "production")
    commit(Repo(root), write_version(run / "src" / "v2", "v2"), "staging")
    probe = protection.probe(repo.layout.tmp)
    if not probe.immutable:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the immutable flag is needed: {probe.reason}")
        pytest.skip(f"the immutable flag is needed: {probe.reason}")
    return run


def finished(repo: Repo, target: str) -> bool:
    """The store is wholly in `target`'s mode: config, and copies/ exactly when copying."""
    mode = "hardlink" if target == "auto" else target
    return repo.config.link_mode == mode and repo.layout.copies.exists() == (mode == "copy")


def check_after(root: Path, target: str, where: str) -> list[str]:
    """Recovery, then the invariants, then relinking again; the problems found."""
    try:
        recover(root)
        report = verify(Repo(root))
        if not report.ok:
            return [f"{where}: verify: {[f.to_json() for f in report.faults]}"]
        # (`status` may still say the links show views of the old mode: the documented
        # state between relink's commit point, the config, and its last switch.)
        assert_consistent(Repo(root))
        relink(Repo(root), target)
        final = Repo(root)
        if not finished(final, target):
            return [f"{where}: relinking again did not finish"]
        if not status(final).clean or not verify(final).ok:
            return [f"{where}: not clean after relinking again"]
        assert_consistent(final)
    except AssertionError as failure:
        return [f"{where}: {failure}"]
    except Exception as failure:
        return [f"{where}: checking raised {failure!r}"]
    return []


@pytest.mark.parametrize("errno_name", list(ERRNOS))
def test_a_failing_call_anywhere_in_relink_leaves_a_store_verify_passes(
    errno_name: str, template: Path, scratch: Path
) -> None:
    target = (template / "target").read_text()
    problems: list[str] = []
    for number in range(1, 2000):
        run = fresh_copy(template, scratch / f"r{number}")
        root = project(run)
        try:
            failing = raise_errno(ERRNOS[errno_name])
            with (
                FsCalls(run, fail_at=number, action=failing) as calls,
                contextlib.suppress(MstoreError, OSError),
            ):
                relink(Repo(root, lock_timeout=5), target)
            if calls.hit is None:
                break
            where = f"relink to {target}, {errno_name} at {calls.hit.describe(run)}"
            problems += check_after(root, target, where)
        finally:
            remove_tree(run)
    else:
        pytest.fail("relink kept meeting the injected fault")
    assert number > 10, "relink made too few filesystem calls to sweep"
    assert not problems, "\n".join(problems)


def start_child(run: Path, kill_at: int) -> subprocess.Popen[str]:
    return start_code(CHILD_CODE, run, kill_at)


def test_kill_anywhere_in_relink_leaves_a_store_verify_passes(
    template: Path, scratch: Path, stress: bool
) -> None:
    target = (template / "target").read_text()
    counting = fresh_copy(template, scratch / "count")
    child = start_child(counting, 0)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    remove_tree(counting)
    calls: list[list[object]] = orjson.loads(out)
    total = len(calls)
    touching = {int(str(n)) for n, _, path in calls if STORE_PATHS.search(str(path))}
    points = (
        list(range(1, total + 1))
        if stress
        else sorted(touching | set(sample(total, QUICK_OTHER_KILLS)))
    )
    assert len(touching) > 20, "relink made too few calls in the store to sweep"

    def after_kill(kill_at: int, run: Path) -> list[str]:
        number, name, path = calls[kill_at - 1]
        where = f"relink to {target} killed before #{number} {name}({path})"
        return check_after(project(run), target, where)

    problems = sweep_kills(template, scratch, points, start_child, after_kill)
    assert not problems, summary(problems, total)
