"""Scenarios of the view suites: stores whose views gc removes, restore replaces, or a
commit finds damaged, with the invariants checked after a kill or an injected error.

    <run>/project/      the store (.mstore/, models/, .env)
    <run>/src/          directories committed
    <run>/scenario.json the operation

The invariants (`check_views_after`), for every attempt:
- under a view's final name (`views/<id>`) there is either a view intact against its
  record, or the very directory that was there before (a damaged view the operation
  had not reached yet): never a partial one;
- every ref's link shows a view that is complete and byte-identical to its manifest,
  or the damaged view it showed before;
- verify finds no fault the store did not have before.
After the next command (the operation run again) has finished the work: verify passes,
every linked view is complete and byte-identical, `views/.trash` is empty, and the view
directories are those an uninterrupted run leaves.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from mstore.ops.commit import commit
from mstore.ops.gc import gc
from mstore.ops.ref_edits import delete_ref
from mstore.ops.restore import restore
from mstore.ops.verify import verify
from mstore.repo import Repo
from mstore.views.records import check_view, read_record
from tests.guarantees.faults import LOCK_TIMEOUT, listing, project, start_code
from tests.helpers import write_version

SCENARIOS = ("gc-views", "restore", "commit-over-damaged")
Faults = set[tuple[str, str]]


def _version(src: Path, name: str, nested: bool = True) -> Path:
    directory = write_version(src / name, name, model=f"weights {name} ".encode() * 80)
    if nested:
        (directory / "tokenizer").mkdir()
        (directory / "tokenizer" / "vocab.json").write_bytes(f"vocab {name}".encode())
    return directory


def _rewrite_same_size(path: Path) -> None:
    """Root writing over a read-only view file in place."""
    os.chmod(path, 0o644)
    data = path.read_bytes()
    with open(path, "r+b") as f:
        f.write(bytes([data[0] ^ 0xFF]))
    os.chmod(path, 0o444)


def build_template(scenario: str, run: Path) -> None:
    root = project(run)
    root.mkdir(parents=True)
    src = run / "src"
    repo, _ = Repo.init(root, link_mode="copy")
    commit(repo, _version(src, "v4"), "production")
    commit(repo, _version(src, "v5"), "staging")
    if scenario == "gc-views":
        for n in range(3):
            commit(repo, _version(src, f"scratch{n}"), f"scratch/{n}")
            delete_ref(repo, f"scratch/{n}")
    elif scenario == "restore":
        staging = repo.layout.view_link("staging")
        os.unlink(staging / "tokenizer" / "vocab.json")
        (staging / "notes.txt").write_bytes(b"dropped in by hand")
        _rewrite_same_size(repo.layout.view_link("production") / "model.pth")
    elif scenario == "commit-over-damaged":
        commit(repo, _version(src, "exp"), "exp1")
        view = repo.views.current_view_id("exp1")
        delete_ref(repo, "exp1")
        assert view is not None
        os.unlink(repo.layout.view_path(view) / "model.pth")
    else:
        raise AssertionError(scenario)
    repo.hash_cache.close()
    (run / "scenario.json").write_text(json.dumps({"operation": scenario}))


def prepare(run: Path) -> Callable[[], None]:
    scenario = json.loads((run / "scenario.json").read_text())["operation"]
    root = project(run)

    def run_it() -> None:
        repo = Repo(root, lock_timeout=LOCK_TIMEOUT)
        if scenario == "gc-views":
            gc(repo, now=True)
        elif scenario == "restore":
            restore(repo)
        else:
            commit(repo, run / "src" / "exp", "exp2")

    return run_it


# -- observing ---------------------------------------------------------------------------


def view_directories(root: Path) -> dict[str, dict[str, str]]:
    """Every directory under a view's final name, with its listing (modes, digests)."""
    views = Repo(root).layout.views
    return {
        p.name: listing(p)
        for p in sorted(views.iterdir())
        if p.is_dir() and not p.is_symlink() and len(p.name) == 64
    }


def verify_faults(root: Path) -> Faults:
    return {(f.kind, f.subject) for f in verify(Repo(root, lock_timeout=LOCK_TIMEOUT)).faults}


def linked_problems(repo: Repo, allowed: dict[str, dict[str, str]]) -> list[str]:
    """Refs whose link does not show a complete, byte-identical view of their manifest
    (a view identical to one in `allowed`, the damaged views of before, is tolerated)."""
    problems = []
    for ref, manifest_id in sorted(repo.refs.read_all().items()):
        view_id = repo.views.current_view_id(ref)
        spec = repo.view_spec(ref, manifest_id)
        if view_id != spec.id:
            problems.append(f"models/{ref} links to {view_id}, not its view {spec.id[:12]}")
            continue
        view = repo.layout.view_path(view_id)
        if view_id in allowed and listing(view) == allowed[view_id]:
            continue
        shown = {p.relative_to(view).as_posix() for p in view.rglob("*") if not p.is_dir()}
        if shown != set(spec.files):
            problems.append(f"models/{ref} shows {sorted(shown)}, not {sorted(spec.files)}")
            continue
        for path, entry in sorted(spec.files.items()):
            if (view / path).read_bytes() != repo.objects.read_bytes(entry.id):
                problems.append(f"models/{ref}/{path} differs from object {entry.id[:12]}")
    return problems


def check_views_after(root: Path, before: dict[str, dict[str, str]], faults: Faults) -> list[str]:
    """The invariants right after an interrupted operation (and a lock's recovery)."""
    repo = Repo(root, lock_timeout=LOCK_TIMEOUT)
    problems = []
    for view_id, shown in view_directories(root).items():
        if before.get(view_id) == shown:
            continue  # untouched: as it was
        record = read_record(repo.layout, view_id)
        check = check_view(repo.layout, view_id, repo.config.link_mode, None, record)
        if record is None or not check.intact:
            problems.append(
                f"views/{view_id[:12]} is neither its old self nor intact: "
                f"{check.problems or check.changed or 'no record'}"
            )
    problems += linked_problems(repo, before)
    new_faults = verify_faults(root) - faults
    if new_faults:
        problems.append(f"verify finds new faults: {sorted(new_faults)}")
    return problems


def check_finished(root: Path, wanted_views: set[str]) -> list[str]:
    """The invariants once the next command has finished the work."""
    repo = Repo(root, lock_timeout=LOCK_TIMEOUT)
    problems = [f"after the retry: {p}" for p in linked_problems(repo, {})]
    faults = verify_faults(root)
    if faults:
        problems.append(f"after the retry, verify finds {sorted(faults)}")
    trash = repo.layout.trash
    if trash.is_dir() and any(trash.iterdir()):
        problems.append(f"after the retry, the trash holds {sorted(os.listdir(trash))}")
    views = set(view_directories(root))
    if views != wanted_views:
        problems.append(f"after the retry, views {sorted(views ^ wanted_views)} differ")
    return problems


# -- child processes ---------------------------------------------------------------------

CHILD_CODE = """
import json, sys
from pathlib import Path
from tests.guarantees.faults import FsCalls, kill_self
from tests.guarantees.view_scenarios import prepare
run, kill_at = Path(sys.argv[1]), int(sys.argv[2])
operation = prepare(run)
with FsCalls(run, fail_at=kill_at or None, action=kill_self) as calls:
    operation()
print(json.dumps([[c.number, c.name, c.relative(run)] for c in calls.calls]))
"""


def start_child(run: Path, kill_at: int) -> subprocess.Popen[str]:
    """The scenario in a child that SIGKILLs itself before filesystem call `kill_at`."""
    return start_code(CHILD_CODE, run, kill_at)
