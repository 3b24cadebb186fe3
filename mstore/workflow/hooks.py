"""Hooks, in the manner of git's: executables under `.mstore/hooks/`.

    pre-promote  SOURCE TARGET VIEW   before a promote moves anything; a non-zero exit
                                      vetoes it and nothing changes (the seed's step 3,
                                      validation). Skipped only by an explicit
                                      --no-verify, which the log entry records.
    post-switch  REF OLD NEW ACTION   after the active version changed (promote,
                                      rollback or checkout), e.g. to restart the
                                      application (the seed's step 7). A failure is
                                      reported; the switch stands.

Hooks run in the project root with MSTORE_* variables describing the move; their output
goes to stderr so that `--json` output on stdout stays one document.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from mstore.core.layout import Layout

PRE_PROMOTE = "pre-promote"
POST_SWITCH = "post-switch"


@dataclass(frozen=True)
class HookRun:
    name: str
    returncode: int

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def hook_path(layout: Layout, name: str) -> Path | None:
    """The hook's executable, or None if there is none (a non-executable file is ignored)."""
    path = layout.hooks / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def run_hook(
    layout: Layout, name: str, args: list[str], variables: dict[str, str]
) -> HookRun | None:
    """Run hook `name` if installed; None if it is not."""
    path = hook_path(layout, name)
    if path is None:
        return None
    import subprocess  # only when a hook exists: keeps every command's start-up lean

    environment = {**os.environ, **variables, "MSTORE_ROOT": str(layout.root)}
    try:
        completed = subprocess.run(
            [str(path), *args],
            cwd=layout.root,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=_stderr_fd(),
            check=False,
        )
    except OSError as err:
        return HookRun(name, 126 if err.errno is None else -abs(err.errno))
    return HookRun(name, completed.returncode)


def _stderr_fd() -> int:
    """The hook's stdout: our stderr's descriptor, or fd 2 when stderr has none (a
    captured or in-memory stream), so that stdout stays one JSON document."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return 2
