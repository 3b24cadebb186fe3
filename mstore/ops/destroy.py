"""destroy: delete a store on purpose: `.mstore/` and the view links under `models/`.

A protected store refuses deletion by `rm -rf`, root's included (that is the point of
the protection); this is the way to do it deliberately (the CLI asks first, or takes
`--yes`). The plan lists what goes; executing it, under the store lock, clears every
immutable flag and read-only directory under `.mstore/`, deletes the links under
`models/` that point into it (and the directories left empty, `models/` itself kept),
then deletes `.mstore/`. The model files themselves are gone with it: commit or copy
out what must be kept first. By hand, as root: `chattr -R -i .mstore && rm -rf .mstore`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from mstore import fsutil, protection
from mstore.repo import Repo


@dataclass
class DestroyPlan:
    store: Path
    links: list[Path] = field(default_factory=list)  # under models/, pointing into the store
    files: int = 0
    bytes: int = 0
    dry_run: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "store": str(self.store),
            "links": [str(p) for p in self.links],
            "files": self.files,
            "bytes": self.bytes,
            "dry_run": self.dry_run,
        }


def plan_destroy(repo: Repo) -> DestroyPlan:
    """What `destroy` deletes (reads only)."""
    plan = DestroyPlan(repo.layout.store)
    seen: set[tuple[int, int]] = set()
    for directory, _dirs, names in os.walk(repo.layout.store):
        for name in names:
            st = os.lstat(os.path.join(directory, name))
            plan.files += 1
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                plan.bytes += st.st_size
    models = repo.layout.models
    for directory, dirs, names in os.walk(models) if models.is_dir() else []:
        for name in dirs + names:
            path = Path(directory) / name
            if path.is_symlink() and "/.mstore/views/" in f"/{os.readlink(path)}":
                plan.links.append(path)
    return plan


def destroy(repo: Repo, dry_run: bool = False) -> DestroyPlan:
    """Delete the store (see the module docstring); with `dry_run`, only the plan."""
    if dry_run:
        plan = plan_destroy(repo)
        plan.dry_run = True
        return plan
    with repo.locked("destroy"):
        plan = plan_destroy(repo)
        for link in plan.links:
            os.unlink(link)
            fsutil.remove_empty_parents(link, repo.layout.models)
        store = repo.layout.store
        protection.protect_tree(store, on=False)
        for directory, _dirs, _names in os.walk(store):
            if not os.lstat(directory).st_mode & 0o200:
                os.chmod(directory, 0o755)
        shutil.rmtree(store)
        fsutil.fsync_dir(store.parent)
    return plan
