"""gc: what a deleted version leaves is reclaimed once the windows pass, nothing else is;
and a commit racing gc never ends naming a missing object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import mstore.caches.hashcache
from mstore.caches.hashcache import RACY_SECONDS
from mstore.cli.app import app
from mstore.core.hashing import hash_bytes
from mstore.core.manifests import METADATA_FILE
from mstore.ops.commit import CommitOptions, commit, scan_source, store_files
from mstore.ops.gc import DAY, gc
from mstore.ops.ref_edits import delete_ref
from mstore.ops.restore import restore
from mstore.ops.status import status
from mstore.ops.switch import promote
from mstore.ops.verify import verify
from mstore.repo import Repo
from tests.helpers import assert_consistent, store_digest, write_version


@pytest.fixture
def repo(copy_repo: Repo) -> Repo:
    """Copy mode: these tests damage views and objects by hand to see them found and
    repaired, which the default mode's protection refuses (tests/integration/
    test_stored_once.py covers that mode)."""
    return copy_repo


MSTORE = Path(sys.executable).parent / "mstore"
MONTH_AGO = 30 * DAY
RACE_ITERATIONS = 20

runner = CliRunner()


def three_versions(repo: Repo, tmp_path: Path) -> SimpleNamespace:
    """v1, v2, v3 each committed to staging and promoted: production=staging=v3,
    archive/v1_<date>=v1, archive/v2_<date>=v2. Every version shares encoders.pkl."""
    ids: list[str] = []
    for n in (1, 2, 3):
        source = write_version(tmp_path / "src" / f"v{n}", f"v{n}")
        ref = "production" if n == 1 else "staging"
        manifest_id = commit(repo, source, ref, options=CommitOptions(message=f"v{n}")).manifest_id
        assert manifest_id is not None
        ids.append(manifest_id)
        if n > 1:
            promote(repo, "staging")
    refs = repo.refs.read_all()
    [archive1] = [r for r in refs if r.startswith("archive/v1_")]
    [archive2] = [r for r in refs if r.startswith("archive/v2_")]
    assert refs == {"production": ids[2], "staging": ids[2], archive1: ids[0], archive2: ids[1]}
    return SimpleNamespace(v1=ids[0], v2=ids[1], v3=ids[2], archive1=archive1, archive2=archive2)


def object_ids(repo: Repo) -> set[str]:
    return set(repo.objects.iter_ids())


def view_ids(repo: Repo) -> set[str]:
    """The view directories under views/ (not their records, nor the trash)."""
    return {p.name for p in repo.layout.views.iterdir() if p.is_dir() and p.name != ".trash"}


def needed_objects(repo: Repo, shown: bool) -> dict[str, set[str]]:
    """For each ref: its manifest and the objects it names, and with `shown` also the
    objects its view shows (a re-rendered metadata.json is named by no manifest)."""
    needed: dict[str, set[str]] = {}
    for ref, manifest_id in repo.refs.read_all().items():
        needed[ref] = {manifest_id} | {e.id for e in repo.manifest(manifest_id).files.values()}
        if shown:
            needed[ref] |= {e.id for e in repo.view_spec(ref, manifest_id).files.values()}
    return needed


def missing_objects(repo: Repo, shown: bool = False) -> dict[str, set[str]]:
    """Objects a ref needs that are not stored, by ref (empty when all is well)."""
    present = object_ids(repo)
    needed = needed_objects(repo, shown)
    return {ref: ids - present for ref, ids in needed.items() if ids - present}


def backdate(paths: Iterable[Path], seconds: float = MONTH_AGO) -> None:
    past = time.time() - seconds
    for path in paths:
        os.utime(path, (past, past), follow_symlinks=False)


def backdate_store(repo: Repo) -> None:
    """Objects, copies and view directories written a month ago."""
    layout = repo.layout
    backdate(layout.object_path(i) for i in object_ids(repo))
    if layout.copies.is_dir():
        backdate(p for p in layout.copies.rglob("*") if p.is_file())
    backdate(layout.views.iterdir())  # view directories and their records


@pytest.fixture
def versions(repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """`three_versions`, with every log entry (and the later ref deletions) dated two days
    ago, so that a retention window of 0 days has certainly passed (log times have whole
    seconds: an entry made this second is not older than a window of 0)."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(int(time.time() - 2 * DAY)))
    return three_versions(repo, tmp_path)


# -- what gc reclaims --------------------------------------------------------------------


def test_gc_after_deleting_an_archive_removes_exactly_its_unique_objects(
    repo: Repo, versions: SimpleNamespace
) -> None:
    gc(repo, now=True)  # first reclaim what earlier switches released
    v1 = repo.manifest(versions.v1).files
    v3 = repo.manifest(versions.v3).files
    archived = repo.layout.view_link(versions.archive1) / METADATA_FILE
    unique = {
        versions.v1,
        v1["model.pth"].id,
        v1[METADATA_FILE].id,
        hash_bytes(archived.read_bytes()),  # the metadata.json archive/v1 shows
    }
    assert v1["encoders.pkl"].id == v3["encoders.pkl"].id
    before = object_ids(repo)
    delete_ref(repo, versions.archive1)

    plan = gc(repo, now=True)

    after = object_ids(repo)
    assert before - after == unique & before
    assert set(plan.objects) == unique & before
    assert v1["model.pth"].id not in after and versions.v1 not in after
    assert v3["encoders.pkl"].id in after
    assert missing_objects(repo) == {}
    report = verify(Repo(repo.root))
    assert report.ok, [f.to_json() for f in report.faults]
    assert_consistent(repo)


def test_gc_keeps_the_objects_that_linked_views_show(repo: Repo, versions: SimpleNamespace) -> None:
    """FORMAT.md: views linked from models/ are kept "with the objects and copies they
    show" -- including a re-rendered metadata.json, which no manifest names."""
    gc(repo, now=True)

    assert missing_objects(repo, shown=True) == {}
    # What those objects are for: restoring a damaged view file.
    os.unlink(repo.layout.view_link("production") / METADATA_FILE)
    restore(Repo(repo.root))
    assert status(Repo(repo.root)).clean
    assert_consistent(repo)


def test_default_windows_delete_nothing_recent(repo: Repo, versions: SimpleNamespace) -> None:
    delete_ref(repo, versions.archive1)
    refs = repo.refs.read_all()
    with repo.locked("test"):
        repo.refs.pack()  # what gc does first; packed, the refs are what they were
    assert repo.refs.read_all() == refs
    before = store_digest(repo)

    plan = gc(repo)

    assert plan.objects == {} and plan.views == [] and plan.copies == []
    assert plan.kept_recent > 0 and plan.loose_refs == 0
    assert store_digest(repo) == before


def test_zero_windows_reclaim_what_now_reclaims(repo: Repo, versions: SimpleNamespace) -> None:
    delete_ref(repo, versions.archive1)
    now = gc(repo, now=True, dry_run=True)

    plan = gc(repo, retention_days=0, grace_days=0)

    assert plan.objects == now.objects
    assert sorted(plan.views) == sorted(now.views)
    assert versions.v1 in plan.objects
    assert missing_objects(repo) == {}


def test_backdated_garbage_goes_with_default_grace(repo: Repo, versions: SimpleNamespace) -> None:
    delete_ref(repo, versions.archive1)
    backdate_store(repo)

    plan = gc(repo, retention_days=0)  # default 14-day grace; everything is a month old

    v3 = repo.manifest(versions.v3).files
    assert versions.v1 in plan.objects
    assert v3["encoders.pkl"].id not in plan.objects
    assert plan.kept_recent == 0
    assert not repo.objects.has(versions.v1)
    for ref in ("production", "staging", versions.archive2):
        assert repo.layout.view_link(ref).resolve().is_dir(), ref


def test_recent_log_entry_keeps_a_deleted_version(repo: Repo, versions: SimpleNamespace) -> None:
    delete_ref(repo, versions.archive1)
    files = repo.manifest(versions.v1).files

    plan = gc(repo, retention_days=90, grace_days=0)

    assert versions.v1 not in plan.objects
    assert repo.objects.has(versions.v1)
    for entry in files.values():
        assert repo.objects.has(entry.id)
    # ... and it can be brought back from the log.
    assert repo.resolve(f"{versions.archive1}@{{1}}") == versions.v1
    report = verify(Repo(repo.root))
    assert report.ok, [f.to_json() for f in report.faults]


def test_dry_run_changes_nothing_and_plans_what_gc_then_does(
    repo: Repo, versions: SimpleNamespace
) -> None:
    delete_ref(repo, versions.archive1)
    objects, views = object_ids(repo), view_ids(repo)
    before = store_digest(repo)

    plan = gc(repo, now=True, dry_run=True)

    assert store_digest(repo) == before
    assert plan.objects and plan.views and plan.copies
    done = gc(repo, now=True)
    assert set(done.objects) == set(plan.objects)
    assert objects - object_ids(repo) == set(plan.objects)
    assert views - view_ids(repo) == set(plan.views)
    assert not any(path.exists() for path in plan.copies)


# -- views -------------------------------------------------------------------------------


def test_unlinked_old_view_is_removed_and_linked_ones_never(repo: Repo, tmp_path: Path) -> None:
    commit(repo, write_version(tmp_path / "src" / "v1", "v1"), "staging")
    released = repo.views.current_view_id("staging")
    commit(repo, write_version(tmp_path / "src" / "v2", "v2"), "staging")
    linked = repo.views.current_view_id("staging")
    assert released is not None and linked is not None and released != linked
    backdate_store(repo)

    plan = gc(repo)

    assert plan.views == [released]
    assert view_ids(repo) == {linked}
    assert_consistent(repo)


def test_a_link_keeps_a_view_only_if_it_is_a_link_of_this_store(repo: Repo, tmp_path: Path) -> None:
    """Links under models/ are read as every reader of view links reads them
    (`ref_links.current_view_id`): a link an old ref left keeps its view; a link into
    another store's views/ keeps nothing here, even where the view ids are equal."""
    views = []
    for n in (1, 2, 3):
        commit(repo, write_version(tmp_path / "src" / f"v{n}", f"v{n}"), "staging")
        views.append(repo.views.current_view_id("staging"))
    left, foreign, linked = views
    assert None not in views and len(set(views)) == 3
    models = repo.layout.models
    os.symlink(repo.layout.view_link_target("old", str(left)), models / "old")
    os.symlink(tmp_path / "other" / ".mstore" / "views" / str(foreign), models / "other")
    backdate_store(repo)

    plan = gc(repo)

    assert plan.views == [foreign]
    assert view_ids(repo) == {left, linked}
    assert_consistent(repo)


def test_view_released_just_now_is_kept(repo: Repo, tmp_path: Path) -> None:
    commit(repo, write_version(tmp_path / "src" / "v1", "v1"), "staging")
    old = repo.views.current_view_id("staging")
    commit(repo, write_version(tmp_path / "src" / "v2", "v2"), "staging")
    middle = repo.views.current_view_id("staging")
    backdate_store(repo)  # v1's view was released a month ago; v2's built a month ago
    commit(repo, write_version(tmp_path / "src" / "v3", "v3"), "staging")  # releases v2's

    plan = gc(repo)

    assert plan.views == [old]
    assert middle in view_ids(repo)
    assert_consistent(repo)


def test_view_of_a_deleted_ref_is_kept_for_the_grace_period(repo: Repo, tmp_path: Path) -> None:
    """Deleting a ref takes its link away: that view is released now, like a switch."""
    commit(repo, write_version(tmp_path / "src" / "v1", "v1"), "production")
    commit(repo, write_version(tmp_path / "src" / "v2", "v2"), "scratch")
    view = repo.views.current_view_id("scratch")
    backdate_store(repo)  # built a month ago ...
    delete_ref(repo, "scratch")  # ... released just now

    plan = gc(repo)

    assert view not in plan.views
    assert view in view_ids(repo)


# -- temporary files ---------------------------------------------------------------------


def test_stale_temporary_files_are_removed(repo: Repo, versions: SimpleNamespace) -> None:
    tmp = repo.layout.tmp
    stale = tmp / ".tmp-object.0123456789abcdef"
    stale.write_bytes(b"a crashed writer's copy")
    fresh = tmp / ".tmp-object.fedcba9876543210"
    fresh.write_bytes(b"a writer at work")
    backdate([stale], seconds=2 * DAY)

    plan = gc(repo)

    assert plan.temporaries == [stale]
    assert not stale.exists()
    assert fresh.exists()


def test_stale_temporary_view_directory_is_removed(repo: Repo, versions: SimpleNamespace) -> None:
    crashed = repo.layout.tmp / ".tmp-view.0123456789abcdef"
    (crashed / "sub").mkdir(parents=True)
    (crashed / "sub" / "model.pth").write_bytes(b"half a view")
    backdate([crashed / "sub" / "model.pth", crashed / "sub", crashed], seconds=2 * DAY)

    gc(repo)

    assert list(repo.layout.tmp.iterdir()) == []


# -- a commit racing gc (git's t6501) ----------------------------------------------------


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hash cache's clock runs past the racy window (files count as settled)."""
    real = time.time
    monkeypatch.setattr(
        mstore.caches.hashcache, "time", SimpleNamespace(time=lambda: real() + RACY_SECONDS + 5)
    )


@pytest.mark.parametrize("cached", [True, False], ids=["cache-hit", "copied"])
def test_commit_of_old_unreferenced_objects_freshens_them(
    repo: Repo, tmp_path: Path, settled: None, cached: bool
) -> None:
    commit(repo, write_version(tmp_path / "src" / "base", "base"), "production")
    source = write_version(tmp_path / "src" / "old", "old")
    with repo.locked("test: store the files"):
        entries, _ = store_files(repo, scan_source(source), False, None)
    stored = {e.id for e in entries.values()}
    if not cached:
        backdate(p for p in source.iterdir())  # new ctime: a cache miss
    backdate(repo.layout.object_path(i) for i in stored)
    inodes = {i: repo.layout.object_path(i).stat().st_ino for i in stored}

    result = commit(Repo(repo.root), source, "again")
    plan = gc(Repo(repo.root), retention_days=0, grace_days=0.0001)

    assert result.new_objects == 0
    assert not set(plan.objects) & stored
    for object_id, inode in inodes.items():
        path = repo.layout.object_path(object_id)
        assert path.stat().st_ino == inode  # the same object, not a new copy
        marker = repo.layout.fresh / object_id  # marked, never touched itself
        assert time.time() - marker.stat().st_mtime < DAY
    assert missing_objects(Repo(repo.root)) == {}


@pytest.mark.slow
def test_commit_racing_gc_never_names_a_missing_object(
    repo: Repo, tmp_path: Path, settled: None
) -> None:
    """Each round: the files of a version are already stored but unreferenced and a month
    old (gc may take them); a child `mstore commit` of those files races a parent running
    gc with a grace of seconds. Even rounds find the files in the hash cache (lookup, then
    freshen), odd rounds copy them (and freshen the existing object)."""
    commit(repo, write_version(tmp_path / "src" / "base", "base"), "production")
    for n in range(RACE_ITERATIONS):
        source = write_version(tmp_path / "src" / f"race{n}", f"race{n}")
        with repo.locked("test: store the files"):
            entries, _ = store_files(repo, scan_source(source), False, None)
        stored = {e.id for e in entries.values()}
        if n % 2:
            backdate(p for p in source.iterdir())  # new ctime: a cache miss
        backdate(repo.layout.object_path(i) for i in stored)
        command = [str(MSTORE), "--store", str(repo.root), "-q", "commit", str(source)]
        child = subprocess.Popen(
            [*command, "--to", f"race/{n}", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.03 * (n % 10))  # vary which of the two gets the lock first
        rounds = 0
        while child.poll() is None or rounds == 0:
            gc(Repo(repo.root), retention_days=0, grace_days=0.0001)
            rounds += 1
            time.sleep(0.01)  # let the child run between gc rounds: varies the interleaving
        out, err = child.communicate(timeout=60)

        assert child.returncode == 0, (n, err)
        fresh = Repo(repo.root)
        manifest_id = json.loads(out)["manifest"]
        assert fresh.refs.read(f"race/{n}") == manifest_id
        assert {e.id for e in fresh.manifest(manifest_id).files.values()} == stored
        assert missing_objects(fresh) == {}, n
        report = verify(fresh)
        assert report.ok, (n, [f.to_json() for f in report.faults])
    gc(Repo(repo.root), retention_days=0, grace_days=0)
    assert missing_objects(Repo(repo.root)) == {}


# -- CLI ---------------------------------------------------------------------------------


def test_cli_gc_json_reports_objects_and_bytes(repo: Repo, versions: SimpleNamespace) -> None:
    delete_ref(repo, versions.archive1)
    model = repo.manifest(versions.v1).files["model.pth"]
    sizes = {i: repo.layout.object_path(i).stat().st_size for i in object_ids(repo)}

    dry = runner.invoke(app, ["--store", str(repo.root), "gc", "--now", "--dry-run", "--json"])
    done = runner.invoke(app, ["--store", str(repo.root), "gc", "--now", "--json"])

    assert dry.exit_code == 0 and done.exit_code == 0, (dry.stderr, done.stderr)
    planned, document = json.loads(dry.stdout), json.loads(done.stdout)
    assert planned["dry_run"] is True and document["dry_run"] is False
    assert document["objects"] == len(document["object_ids"]) > 0
    assert versions.v1 in document["object_ids"] and model.id in document["object_ids"]
    assert document["bytes"] == sum(sizes[i] for i in document["object_ids"])
    assert planned["object_ids"] == document["object_ids"]
    assert {"views", "copies", "temporaries", "kept_objects", "kept_recent"} <= set(document)
    assert not repo.objects.has(versions.v1)
