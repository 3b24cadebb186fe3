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
goes where the caller says (`HookOutput`): the command line sends it to stderr, so that
`--json` output on stdout stays one document; the Python API lets it go where the
process's own goes, or to a file it is given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mstore.core.layout import Layout

PRE_PROMOTE = "pre-promote"
POST_SWITCH = "post-switch"

# Where a hook's output (stdout and stderr) goes: a file or a descriptor; None: where
# this process's own goes (inherited).
HookOutput = IO[Any] | int | None


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
    layout: Layout,
    name: str,
    args: list[str],
    variables: dict[str, str],
    output: HookOutput = None,
) -> HookRun | None:
    """Run hook `name` if installed, its output to `output`; None if it is not."""
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
            stdout=output,
            stderr=output,
            check=False,
        )
    except OSError as err:
        return HookRun(name, 126 if err.errno is None else -abs(err.errno))
    return HookRun(name, completed.returncode)
