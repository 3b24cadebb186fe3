"""Crashes: kill -9 of a real process at every filesystem call of an operation.

`test_kill_at_call_k_leaves_old_or_new_state`: a counting run in a child process
measures the K filesystem calls an operation makes (commit, import, promote, rollback,
checkout of an archive, gc --now after a ref was deleted, ref delete); then, for each
chosen K (about 25 spread over 1..K with the first and last few and those around the
journal's rename; every K under `--stress`), a fresh child runs the operation and
SIGKILLs itself just before its Kth call: no `finally`, no cleanup, no flush.

`test_cli_killed_at_random_moments_leaves_old_or_new_state`: the `mstore` console
script runs `promote staging` and `rollback production` in turn and is SIGKILLed 0-50 ms
after it took the store lock (20 times; 200 under `--stress`), so the kill lands at
real, unscripted moments.

After every kill, the parent opens the store and runs one locked no-op (the documented
automatic recovery); then this suite proves: `verify` is clean and every view shows one
complete version; every ref holds its old or its new value and refs, log and `.env`
are all old or all new, byte for byte (promote never leaves production moved without
its archive ref, or the reverse; `.env` keeps every other line); a kill before the
journal's rename changed nothing a reader sees (refs/, log, models/, `.env`); and
running the operation again succeeds and ends where an uninterrupted run ends.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from mstore.core.history import decode_entry
from mstore.repo import Repo
from tests.guarantees.faults import (
    FIXED_EPOCH,
    OPERATIONS,
    Expectation,
    State,
    archive_of,
    build_template,
    check_invariants,
    child_environment,
    commit_point,
    difference,
    finish_like_uninterrupted,
    fresh_copy,
    operation_of,
    project,
    recover,
    remove_tree,
    sample,
    start_child,
    summary,
    sweep_kills,
)
from tests.helpers import assert_consistent

pytestmark = pytest.mark.slow  # a kill at every step of every operation

QUICK_KILLS = 25
QUICK_CLI_KILLS = 20
STRESS_CLI_KILLS = 200
JOBS = max(2, min(4, os.cpu_count() or 2))
MSTORE = Path(sys.executable).parent / "mstore"


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", FIXED_EPOCH)


def count_calls(template: Path, run: Path) -> tuple[Expectation, list[list[object]]]:
    """An uninterrupted child run: the state it ends in and the calls it made."""
    fresh_copy(template, run)
    before = State.of(project(run))
    child = start_child(run, 0)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    after = State.of(project(run))
    remove_tree(run)
    calls: list[list[object]] = orjson.loads(out)
    return Expectation(operation_of(template), before, after, archive_of(template)), calls


def check_after_kill(
    run: Path, kill_at: int, calls: list[list[object]], expected: Expectation
) -> list[str]:
    """Recovery, every invariant, then a retry; the problems found."""
    number, name, path, _ = calls[kill_at - 1]
    journal = any(point < kill_at for point in commit_point(calls))
    where = (
        f"{expected.operation} killed before call #{number} {name}({path}), "
        f"journal {'written' if journal else 'not written'}"
    )
    root = project(run)
    try:
        recover(root)
        state = check_invariants(
            root, expected, where, journal_written=journal, check_temporaries=False
        )
        finish_like_uninterrupted(root, run, expected, where, state, "running it again")
    except AssertionError as failure:
        return [str(failure)]
    except Exception as failure:
        return [f"{where}: checking raised {failure!r}"]
    return []


@pytest.mark.parametrize("operation", OPERATIONS)
def test_kill_at_call_k_leaves_old_or_new_state(
    operation: str, scratch: Path, stress: bool
) -> None:
    template = scratch / "template"
    build_template(operation, template)
    expected, calls = count_calls(template, scratch / "count")
    total = len(calls)
    points = (
        list(range(1, total + 1)) if stress else sample(total, QUICK_KILLS, commit_point(calls))
    )
    attempts = len(points)

    def after_kill(kill_at: int, run: Path) -> list[str]:
        return check_after_kill(run, kill_at, calls, expected)

    problems = [
        p if p.startswith(operation) else f"{operation}: {p}"
        for p in sweep_kills(template, scratch, points, start_child, after_kill)
    ]
    assert not problems, summary(problems, attempts)


# -- random moments, through the command line ------------------------------------------


def env_lines(env: bytes | None) -> list[bytes]:
    """Every line of .env but MODEL_ENVIRONMENT's."""
    return [line for line in (env or b"").splitlines() if b"MODEL_ENVIRONMENT" not in line]


def check_cli_kill(
    root: Path,
    before: State,
    wanted: dict[str, str],
    environment: bytes,
    where: str,
) -> State:
    """Invariants after a kill of `mstore promote|rollback` at an arbitrary moment."""
    recover(root)
    try:
        assert_consistent(Repo(root))
    except AssertionError as err:
        raise AssertionError(f"{where}: verify or views inconsistent: {err}") from None
    state = State.of(root)
    for ref in sorted(set(before.refs) | set(wanted) | set(state.refs)):
        assert state.refs.get(ref) in (before.refs.get(ref), wanted.get(ref)), (
            f"{where}: ref {ref} is {state.refs.get(ref)}, neither old nor new"
        )
    assert env_lines(state.env) == env_lines(before.env), f"{where}: .env lost other lines"
    env_value = [line for line in (state.env or b"").splitlines() if b"MODEL_ENVIRONMENT" in line]
    if state.refs == before.refs:
        assert state.log == before.log, f"{where}: the log changed but no ref moved"
        assert state.env == before.env, f"{where}: .env changed but no ref moved"
        assert state.models == before.models, (
            f"{where}: models/ changed but no ref moved: {difference(state.models, before.models)}"
        )
    else:
        assert state.refs == wanted, f"{where}: refs {state.refs} are half moved"
        assert state.log is not None and before.log is not None
        assert state.log.startswith(before.log), f"{where}: the log was rewritten"
        added = [decode_entry(line) for line in state.log[len(before.log) :].splitlines()]
        moves = {e.ref: (e.old, e.new) for e in added}
        assert len({e.txn for e in added}) == 1, f"{where}: log entries of several transactions"
        assert moves == {
            ref: (before.refs.get(ref), value)
            for ref, value in wanted.items()
            if before.refs.get(ref) != value
        }, f"{where}: the log records other moves: {moves}"
        assert env_value == [environment], f"{where}: .env says {env_value}"
    return state


def test_cli_killed_at_random_moments_leaves_old_or_new_state(tmp_path: Path, stress: bool) -> None:
    # On the ordinary temporary directory, not in RAM: with real fsyncs an operation
    # lasts tens of milliseconds, the window the random delay is drawn from.
    template = tmp_path / "template"
    build_template("promote", template)
    run = fresh_copy(template, tmp_path / "cli")
    root = project(run)
    v4 = Repo(root).refs.read("production")
    v5 = Repo(root).refs.read("staging")
    archive = archive_of(template)
    assert v4 is not None and v5 is not None and archive is not None
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    lock = Repo(root).layout.lock
    problems: list[str] = []
    kills = STRESS_CLI_KILLS if stress else QUICK_CLI_KILLS
    for round_number in range(kills):
        before = State.of(root)
        if before.refs.get("production") == v4:
            command = ["promote", "staging"]
            wanted = {"production": v5, "staging": v5, archive: v4}
        else:
            command = ["rollback", "production"]
            wanted = {**before.refs, "production": v4}
        environment = b"MODEL_ENVIRONMENT=production  # Default"
        if command[0] == "rollback":
            environment = next(
                line for line in (before.env or b"").splitlines() if b"MODEL_ENVIRONMENT" in line
            )
        child = subprocess.Popen(
            [str(MSTORE), "--store", str(root), "--quiet", *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=child_environment(),
        )
        marker = f"{child.pid} ".encode()
        while child.poll() is None and not lock.read_bytes().startswith(marker):
            time.sleep(0.0002)  # poll until the child holds the lock
        delay = rng.uniform(0.0, 0.050)
        time.sleep(delay)  # the kill lands at a random moment of the locked command (seeded)
        child.kill()
        _, err = child.communicate(timeout=60)
        where = (
            f"round {round_number} (seed {seed}): `mstore {' '.join(command)}` "
            f"killed {delay * 1000:.1f} ms after taking the lock (exit {child.returncode})"
        )
        if child.returncode not in (0, -signal.SIGKILL):
            problems.append(f"{where}: failed: {err.decode(errors='replace').strip()}")
            break
        try:
            check_cli_kill(root, before, wanted, environment, where)
        except AssertionError as failure:
            problems.append(str(failure))
            break
    assert not problems, summary(problems, kills)
