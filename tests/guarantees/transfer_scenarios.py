"""The transfer scenarios of test_remote_faults.py (and tests/remote/test_s3_faults.py):
a store that pushes to a remote, a host that pulls from it, and the invariants after an
interrupted transfer. The remote is the directory <run>/remote unless a URL is given.

    <run>/project/   the store that pushes (v1 pushed; v2 committed and promoted since)
    <run>/host/      a store cloned from the remote when it held v1
    <run>/remote/    the directory remote
    <run>/operation  "push" or "pull" (for pull, v2 is on the remote already)
"""

from __future__ import annotations

import os
import random
from array import array
from pathlib import Path

from mstore.ops.commit import commit
from mstore.ops.switch import promote
from mstore.remotes import open_remote
from mstore.repo import Repo
from mstore.transfer import upkeep as remote_upkeep
from mstore.transfer.verbs import clone, pull, push
from tests.checkpoint_files import tensors_file
from tests.guarantees.faults import (
    fresh_copy,
    recover,
    remove_tree,
)
from tests.helpers import assert_consistent, weights, write_version
from tests.remote.support import remote_state

OPERATIONS = ("push", "pull")


def _moved(data: bytes) -> bytes:
    """Every float32 of `data` moved a little (a fine-tune's update)."""
    values = array("f", data)
    draw = random.Random(6).gauss
    return array("f", (x + draw(0.0, 1e-5) for x in values)).tobytes()


# A checkpoint above the chunking threshold (4 MiB), mostly shared between v1 and v2, so
# push and pull go through packs, indexes and recipes as well as whole objects: a
# float32 tensor (chunks travel compressed, bg4-zstd) whose first MiB v2 fine-tunes
# (those chunks travel as deltas against v1's), and random bytes (raw) of which v2
# changes 64 KiB.
_WEIGHTS = weights(5 << 19, seed=5)
_NOISE = os.urandom(5 << 19)
MODEL_V1 = tensors_file(
    [("w", "F32", [len(_WEIGHTS) // 4], _WEIGHTS), ("noise", "U8", [len(_NOISE)], _NOISE)]
)
_CHANGED = _NOISE[: 1 << 20] + os.urandom(64 << 10) + _NOISE[(1 << 20) + (64 << 10) :]
MODEL_V2 = tensors_file(
    [
        ("w", "F32", [len(_WEIGHTS) // 4], _moved(_WEIGHTS[: 1 << 20]) + _WEIGHTS[1 << 20 :]),
        ("noise", "U8", [len(_CHANGED)], _CHANGED),
    ]
)


def remote_of(run: Path, url: str | None) -> str:
    """The scenario's remote: `url` (an S3 location), or the directory <run>/remote."""
    return url or str(run / "remote")


def build(run: Path, operation: str, url: str | None = None) -> None:
    url = remote_of(run, url)
    src = run / "src"
    project = run / "project"
    project.mkdir(parents=True)
    repo, _ = Repo.init(project)
    commit(repo, write_version(src / "v1", "v1", model=MODEL_V1), "production")
    push(repo, open_remote(url), jobs=1)
    clone(open_remote(url), run / "host", jobs=1)
    commit(Repo(project), write_version(src / "v2", "v2", model=MODEL_V2), "staging")
    promote(Repo(project), "staging")
    if operation == "pull":
        push(Repo(project), open_remote(url), jobs=1)
    (run / "operation").write_text(operation)


def restore(pristine: Path, run: Path) -> None:
    """The template back at `run` (both stores, views sealed again, and the remote)."""
    remove_tree(run)
    fresh_copy(pristine, run)


def run_operation(operation: str, run: Path, url: str | None = None) -> None:
    """The scenario's transfer, one object at a time (the same calls in every run)."""
    remote = open_remote(remote_of(run, url))
    if operation == "push":
        push(Repo(run / "project", lock_timeout=5), remote, jobs=1)
    else:
        pull(Repo(run / "host", lock_timeout=5), remote, jobs=1)


def check_after(
    operation: str, run: Path, before: dict[str, dict[str, str]], url: str | None = None
) -> list[str]:
    """The invariants after an attempt, then the retry; the problems found."""
    url = remote_of(run, url)
    store = run / ("project" if operation == "push" else "host")
    problems: list[str] = []
    recover(store)
    try:
        assert_consistent(Repo(store))
    except AssertionError as err:
        problems.append(f"store inconsistent: {err}")
    try:
        remote = remote_state(url)
    except Exception as err:  # an assertion or any failure to read it: the finding
        return [*problems, f"remote inconsistent: {err!r}"]
    if operation == "push":
        wanted = Repo(store).refs.read_all()
        for ref in sorted(set(remote) | set(wanted)):
            if remote.get(ref) not in (before["remote"].get(ref), wanted.get(ref)):
                problems.append(f"remote ref {ref} is {remote.get(ref)}: neither old nor new")
        report = remote_upkeep.verify(open_remote(url), jobs=1)
        if report.problems:
            problems.append(f"remote verify: {report.problems}")
    else:
        refs = Repo(store).refs.read_all()
        if refs not in (before["host"], remote):
            problems.append(f"host refs {refs} are neither all old nor all new")
    try:
        run_operation(operation, run, url)
    except Exception as err:
        return [*problems, f"the retry failed: {err!r}"]
    remote = remote_state(url)
    final = Repo(store).refs.read_all()
    if final != remote:
        problems.append(f"after the retry, the store has {final}, the remote {remote}")
    try:
        assert_consistent(Repo(store))
    except AssertionError as err:
        problems.append(f"after the retry: {err}")
    return problems
