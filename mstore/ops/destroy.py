"""destroy: delete a store on purpose: `.mstore/` and the view links under `models/`.

A protected store refuses deletion by `rm -rf`, root's included (that is the point of
the protection); this is the way to do it deliberately (the CLI asks first, or takes
`--yes`). The plan lists what goes; executing it, under the store lock, deletes the
links under `models/` that point into it (and the directories left empty, `models/`
itself kept), then clears every immutable flag and read-only directory under
`.mstore/` and deletes it (`remove_protected`). The model files themselves are gone
with it: commit or copy out what must be kept first. By hand, as root:
`chattr -R -i .mstore && rm -rf .mstore`.

A half-made store, a `.mstore/` without its config (what an `init` or a `clone` cut
off before its end leaves), is not a store any other command opens; destroy deletes
it all the same (`find_target`), without the recovery a store's lock runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from mstore.core import fsutil
from mstore.core.layout import Layout, named_root, root_of
from mstore.errors import NotFoundError
from mstore.repo import Repo
from mstore.views import protection
from mstore.views.guard import WRITABLE_DIRECTORY_MODE


@dataclass
class DestroyPlan:
    store: Path
    links: list[Path] = field(default_factory=list)  # under models/, pointing into the store
    files: int = 0
    bytes: int = 0
    dry_run: bool = False
    half_made: bool = False  # a .mstore/ without its config

    def to_json(self) -> dict[str, object]:
        return {
            "store": str(self.store),
            "links": [str(p) for p in self.links],
            "files": self.files,
            "bytes": self.bytes,
            "dry_run": self.dry_run,
            "half_made": self.half_made,
        }


def find_target(store: str | None) -> Repo | Layout:
    """The store to destroy: the one `Repo.discover` finds, else the half-made store at
    `store` (or MSTORE_DIR, or the current directory): a `.mstore/` without config."""
    try:
        return Repo.discover(store=store)
    except NotFoundError:
        layout = Layout(named_root(store) or root_of(Path.cwd()))
        if not _is_half_made(layout):
            raise
        return layout


def plan_destroy(target: Repo | Layout) -> DestroyPlan:
    """What `destroy` deletes (reads only)."""
    layout = _layout(target)
    plan = DestroyPlan(layout.store, half_made=not isinstance(target, Repo))
    seen: set[tuple[int, int]] = set()
    for directory, _dirs, names in os.walk(layout.store):
        for name in names:
            st = os.lstat(os.path.join(directory, name))
            plan.files += 1
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                plan.bytes += st.st_size
    models = layout.models
    for directory, dirs, names in os.walk(models) if models.is_dir() else []:
        for name in dirs + names:
            path = Path(directory) / name
            if path.is_symlink() and "/.mstore/views/" in f"/{os.readlink(path)}":
                plan.links.append(path)
    return plan


def destroy(
    target: Repo | Layout, dry_run: bool = False, lock_timeout: float = 10.0
) -> DestroyPlan:
    """Delete the store (see the module docstring); with `dry_run`, only the plan.
    `lock_timeout`: for a half-made store (a Repo has its own)."""
    if dry_run:
        plan = plan_destroy(target)
        plan.dry_run = True
        return plan
    layout = _layout(target)
    with _locked(target, lock_timeout):
        plan = plan_destroy(target)
        for link in plan.links:
            os.unlink(link)
            fsutil.remove_empty_parents(link, layout.models)
        remove_protected(layout.store)
        fsutil.fsync_dir(layout.store.parent)
    return plan


def remove_protected(path: Path) -> None:
    """Delete the file or tree `path`, whose files and directories may be sealed (the
    immutable flag, read-only directories): a store, or what a failed clone made.
    Symlinks are deleted, never followed; a flag that cannot be cleared fails it."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        _unseal(path, mode)
        os.unlink(path)
        return
    for directory, _dirs, names in os.walk(path):  # each directory opened before its files
        _unseal(Path(directory), stat.S_IFDIR)
        for name in names:
            file = Path(directory) / name
            _unseal(file, os.lstat(file).st_mode)
    shutil.rmtree(path)


def _unseal(path: Path, mode: int) -> None:
    """Clear the immutable flag of a file or directory (where it can carry one), and
    make a read-only directory writable again."""
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return
    with contextlib.suppress(FileNotFoundError):
        if protection.is_immutable(path):
            protection.set_immutable(path, False)
        if stat.S_ISDIR(mode) and not os.lstat(path).st_mode & stat.S_IWUSR:
            os.chmod(path, WRITABLE_DIRECTORY_MODE)


def _is_half_made(layout: Layout) -> bool:
    store = layout.store
    return store.is_dir() and not store.is_symlink() and not os.path.lexists(layout.config)


def _layout(target: Repo | Layout) -> Layout:
    return target.layout if isinstance(target, Repo) else target


def _locked(target: Repo | Layout, timeout: float) -> AbstractContextManager[object]:
    """The store lock: a store's own (with its recovery), or the bare lock of a half-made
    one (nothing in it is recovered: all of it goes)."""
    if isinstance(target, Repo):
        return target.locked("destroy")
    return fsutil.StoreLock(target.lock, "destroy", timeout)
