"""A store inside a git work tree: kept out of git, and out of `git clean`'s reach.

Most ML projects are git repositories, with `.mstore/` and `models/` at their top. A
store there is sealed like any other (docs/FORMAT.md, "Link modes"), and `init` (and
`relink`) do two things so that git and the store leave each other alone:

1. git ignores the store and the views: `/<project>/.mstore/` and `/<project>/models/`
   (paths from the top of the work tree) are added to the repository's own
   `info/exclude` file (found with `git rev-parse --git-path info/exclude`, or at
   `.git/info/exclude` without a git program). It is local to the clone, never
   committed: nobody else's checkout changes;
2. `git clean -fdx` skips the store: `.mstore/.git` is the smallest directory git takes
   for a repository (`HEAD`, `objects/`, `refs/`), and git refuses to clean an
   untracked nested repository unless given `-f` twice. `git clean -ffdx` does delete
   the store (but for its sealed objects, which no one can delete but `mstore destroy`:
   it then exits 1); the views in `models/` are symlinks, removed by any `git clean -x`
   and rebuilt by `mstore restore`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from mstore.core import fsutil
from mstore.core.layout import MODELS_DIR_NAME, STORE_DIR_NAME, Layout

HEAD_TEXT = b"ref: refs/heads/main\n"


def git_work_tree(root: Path) -> Path | None:
    """The top of the git work tree holding `root`, if any (a `.git` dir or file)."""
    for candidate in (root, *root.parents):
        if os.path.lexists(candidate / ".git"):
            return candidate
    return None


def keep_out_of_git(layout: Layout) -> list[str]:
    """If the project is in a git work tree: make git ignore the store and the views,
    and `git clean -fdx` skip the store. Returns what was done, or what the user should
    do by hand (nothing when there is no work tree). Idempotent."""
    top = git_work_tree(layout.root)
    if top is None:
        return []
    notes = []
    marker = layout.repository_marker
    if not (marker / "HEAD").is_file():
        for directory in (marker / "objects", marker / "refs"):
            fsutil.makedirs_durable(directory)
        fsutil.atomic_write(marker / "HEAD", HEAD_TEXT)
        notes.append(f"git clean -fdx skips {layout.store} (a nested repository marker)")
    exclude = _exclude_file(layout.root, top)
    relative = layout.root.relative_to(top).as_posix()
    prefix = "" if relative == "." else f"/{relative}"
    wanted = [f"{prefix}/{STORE_DIR_NAME}/", f"{prefix}/{MODELS_DIR_NAME}/"]
    if exclude is None:
        return [
            *notes,
            f"add {' and '.join(wanted)} to the repository's .gitignore or info/exclude "
            f"(no git program here to find it)",
        ]
    try:
        present = exclude.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        present = []
    missing = [line for line in wanted if line not in present]
    if missing:
        text = "\n".join([*present, "# mstore: the store and its views", *missing]) + "\n"
        fsutil.makedirs_durable(exclude.parent)
        fsutil.atomic_write(exclude, text.encode())
        notes.append(f"git ignores {' and '.join(missing)} ({exclude})")
    return notes


def _exclude_file(root: Path, top: Path) -> Path | None:
    """The repository's info/exclude: asked of git (worktrees and submodules keep it
    elsewhere), else `.git/info/exclude` when `.git` is a directory."""
    git = shutil.which("git")
    if git is not None:
        done = subprocess.run(
            [git, "rev-parse", "--path-format=absolute", "--git-path", "info/exclude"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0 and done.stdout.strip():
            return Path(done.stdout.strip())
    if (top / ".git").is_dir():
        return top / ".git" / "info" / "exclude"
    return None
