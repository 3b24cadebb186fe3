"""The health check a follower runs after it switched: is the application well?

    run_health_check(layout, command, timeout, variables) -> HealthResult

The check is the command the follower was given (a shell command line, run with
`/bin/sh -c`), or else the store's `health` hook (`.mstore/hooks/health`, an
executable, as the other hooks). It passes when it exits 0 within `timeout` seconds.
A check that hangs is killed at its timeout, with every process it started (it runs in
a session of its own, and the whole process group is killed), and counts as failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mstore.core.layout import Layout
from mstore.errors import UsageError
from mstore.workflow.hooks import HookOutput, hook_path

HEALTH = "health"
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class HealthResult:
    ok: bool
    returncode: int | None  # None: killed at the timeout
    seconds: float
    what: str  # the command or hook that ran, for messages

    def describe(self) -> str:
        if self.returncode is None:
            return f"health check {self.what} did not finish within its timeout (killed)"
        if self.ok:
            return f"health check {self.what} passed"
        return f"health check {self.what} failed (exit {self.returncode})"


def health_command(layout: Layout, command: str | None) -> list[str] | None:
    """The argv of the check: `command` through the shell, else the `health` hook, else
    None (no check: a switch is healthy once made). UsageError for a `health` file that
    exists but cannot run, so a follower says so when it starts, not after a switch."""
    if command is not None:
        if not command.strip():
            raise UsageError("the health command is empty")
        return ["/bin/sh", "-c", command]
    path = layout.hooks / HEALTH
    if hook_path(layout, HEALTH) is not None:
        return [str(path)]
    if path.exists() or path.is_symlink():
        raise UsageError(f"{path} exists but is not an executable file (chmod +x it)")
    return None


def run_health_check(
    layout: Layout,
    argv: list[str],
    timeout: float,
    variables: dict[str, str],
    output: HookOutput = None,
    clock: Callable[[], float] = time.monotonic,
) -> HealthResult:
    """Run the check `argv` in the project root; kill it (and its children) at `timeout`."""
    what = argv[-1] if argv[:2] == ["/bin/sh", "-c"] else Path(argv[0]).name
    started = clock()
    environment = {**os.environ, **variables, "MSTORE_ROOT": str(layout.root)}
    try:
        process = subprocess.Popen(
            argv,
            cwd=layout.root,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    except OSError as err:
        return HealthResult(False, 126 if err.errno is None else -abs(err.errno), 0.0, what)
    try:
        returncode: int | None = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        returncode = None
    return HealthResult(returncode == 0, returncode, clock() - started, what)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
