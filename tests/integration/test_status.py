"""status and restore: every way models/ can drift from the refs, found, then repaired."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner, Result

import mstore.caches.hashcache
import mstore.ops.status
from mstore.caches.hashcache import RACY_SECONDS
from mstore.cli.app import app
from mstore.core.hashing import hash_file
from mstore.ops.commit import commit
from mstore.ops.ref_edits import delete_ref
from mstore.ops.restore import restore
from mstore.ops.status import StatusReport, ViewStatus, status
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


runner = CliRunner()


def cli(root: Path, *args: object) -> Result:
    return runner.invoke(app, ["--store", str(root), *map(str, args)])


def seed(repo: Repo, tmp_path: Path) -> dict[str, str]:
    """production=v4 and staging=v5, no promote: each model.pth is in one view only."""
    v4 = commit(repo, write_version(tmp_path / "src" / "v4", "v4"), "production").manifest_id
    v5 = commit(repo, write_version(tmp_path / "src" / "v5", "v5"), "staging").manifest_id
    assert v4 is not None and v5 is not None
    return {"production": v4, "staging": v5}


def view_of(report: StatusReport, ref: str) -> ViewStatus:
    [found] = [v for v in report.views if v.ref == ref]
    return found


def states(report: StatusReport) -> dict[str, str]:
    return {v.ref: v.state for v in report.views}


def overwrite(path: Path, data: bytes) -> None:
    """Write into a read-only view file in place, as root can (same inode)."""
    with open(path, "r+b") as f:
        f.write(data)


def assert_clean(repo: Repo) -> None:
    report = status(Repo(repo.root))
    assert report.clean, report.to_json()


def assert_restored(repo: Repo) -> None:
    """restore repairs it: status clean, verify ok, views show their manifests."""
    result = restore(Repo(repo.root))
    assert result.changed, result
    assert_clean(repo)
    assert verify(Repo(repo.root)).ok
    assert_consistent(repo)


@pytest.fixture
def ids(repo: Repo, tmp_path: Path) -> dict[str, str]:
    return seed(repo, tmp_path)


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hash cache's clock runs past the racy window: files written just now (and
    `os.utime`d, which changes ctime) count as settled, as if hashed seconds later."""
    real = time.time
    monkeypatch.setattr(
        mstore.caches.hashcache, "time", SimpleNamespace(time=lambda: real() + RACY_SECONDS + 5)
    )


def count_hashes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every path status hashes."""
    calls: list[Path] = []
    original: Callable[..., str] = hash_file

    def counting(path: Path, *args: object, **kwargs: object) -> str:
        calls.append(Path(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(mstore.ops.status, "hash_file", counting)
    return calls


# -- clean -------------------------------------------------------------------------------


def test_status_is_clean_after_commits(repo: Repo, ids: dict[str, str]) -> None:
    report = status(repo)

    assert report.clean, report.to_json()
    assert states(report) == {"production": "ok", "staging": "ok"}
    assert {v.ref: v.manifest_id for v in report.views} == ids
    assert report.active == "production" and report.active_exists
    assert report.orphans == [] and report.unmanaged == []
    assert not report.pending_transaction
    assert report.link_mode == "copy"


def test_status_is_clean_after_promote(repo: Repo, ids: dict[str, str]) -> None:
    promote(repo, "staging")

    report = status(Repo(repo.root))

    # staging shows the promoted manifest, whose metadata now has a deployed_date; its
    # view must show that too (docs/FORMAT.md, Views), so no view may be stale.
    assert {v.ref: v.state for v in report.views if v.state != "ok"} == {}
    assert report.clean


def test_cli_status_exit_codes_and_json(repo: Repo, ids: dict[str, str]) -> None:
    clean = cli(repo.root, "status")
    assert clean.exit_code == 0, (clean.stdout, clean.stderr)
    assert "clean: 2 views" in clean.stdout

    os.unlink(repo.layout.view_link("staging"))
    dirty = cli(repo.root, "status")
    as_json = cli(repo.root, "status", "--json")

    assert dirty.exit_code == 8, (dirty.stdout, dirty.stderr)
    assert "missing  models/staging" in dirty.stdout
    assert as_json.exit_code == 8
    document = json.loads(as_json.stdout)
    assert document["clean"] is False
    assert {v["ref"]: v["state"] for v in document["views"]} == {
        "production": "ok",
        "staging": "missing",
    }


# -- each kind of drift, and its repair --------------------------------------------------


def test_removed_link_is_missing_then_restored(repo: Repo, ids: dict[str, str]) -> None:
    os.unlink(repo.layout.view_link("production"))

    report = status(repo)

    assert states(report) == {"production": "missing", "staging": "ok"}
    assert not report.clean
    assert_restored(repo)


def test_link_to_another_view_is_stale_then_restored(repo: Repo, ids: dict[str, str]) -> None:
    link = repo.layout.view_link("production")
    os.unlink(link)
    os.symlink(os.readlink(repo.layout.view_link("staging")), link)

    assert states(status(repo)) == {"production": "stale", "staging": "ok"}
    assert_restored(repo)


def test_real_directory_is_foreign_and_restore_keeps_it(repo: Repo, ids: dict[str, str]) -> None:
    link = repo.layout.view_link("production")
    os.unlink(link)
    link.mkdir()
    (link / "model.pth").write_bytes(b"the user's own file")

    report = status(repo)

    assert states(report) == {"production": "foreign", "staging": "ok"}
    assert not report.clean
    # Observed: restore does not touch a directory mstore does not own (nor report it);
    # the user's bytes survive and status stays not clean until the user moves it aside.
    result = restore(repo)
    assert (link / "model.pth").read_bytes() == b"the user's own file"
    assert states(status(repo))["production"] == "foreign"
    assert not result.changed
    # Once the user moves it aside, restore relinks the view.
    link.rename(link.with_name("production.mine"))
    assert restore(repo).relinked == ["production"]
    assert states(status(repo)) == {"production": "ok", "staging": "ok"}
    assert status(repo).unmanaged == ["production.mine/"]


def test_extra_file_in_view_then_restored(repo: Repo, ids: dict[str, str]) -> None:
    (repo.layout.view_link("staging") / "notes.txt").write_bytes(b"dropped in by hand")

    report = status(repo)

    assert view_of(report, "staging").extra == ["notes.txt"]
    assert view_of(report, "staging").state == "ok"
    assert not report.clean
    assert_restored(repo)
    assert not (repo.layout.view_link("staging") / "notes.txt").exists()


def test_deleted_view_file_is_missing_then_restored(repo: Repo, ids: dict[str, str]) -> None:
    os.unlink(repo.layout.view_link("production") / "encoders.pkl")

    report = status(repo)

    assert view_of(report, "production").missing == ["encoders.pkl"]
    assert view_of(report, "staging").clean
    assert_restored(repo)


def test_file_overwritten_in_place_is_modified_then_restored(
    repo: Repo, ids: dict[str, str]
) -> None:
    target = repo.layout.view_link("production") / "model.pth"
    size = target.stat().st_size
    overwrite(target, b"X" * size)  # same size: only the bytes tell

    report = status(repo)

    assert view_of(report, "production").modified == ["model.pth"]
    assert view_of(report, "staging").clean
    # Copy mode: the write must not reach the object; verify names the damaged view.
    assert [f.kind for f in verify(repo).faults] == ["view_damaged"]
    assert_restored(repo)
    assert target.read_bytes() == b"weights v4"


def test_shared_file_overwritten_in_place_is_restored_in_every_view(
    repo: Repo, ids: dict[str, str]
) -> None:
    # encoders.pkl is the same object in both views: in copy mode, one shared inode.
    target = repo.layout.view_link("production") / "encoders.pkl"
    overwrite(target, b"Y" * target.stat().st_size)

    report = status(repo)

    assert view_of(report, "production").modified == ["encoders.pkl"]
    assert view_of(report, "staging").modified == ["encoders.pkl"]
    assert_restored(repo)


def test_orphan_link_of_a_deleted_ref(repo: Repo, ids: dict[str, str]) -> None:
    link = repo.layout.view_link("staging")
    target = os.readlink(link)
    delete_ref(repo, "staging")
    os.symlink(target, link)  # a link left behind (e.g. restored from a backup)

    report = status(repo)

    assert report.orphans == ["staging"]
    assert not report.clean
    assert [v.ref for v in report.views] == ["production"]
    # Observed: restore does not remove orphan links; status stays not clean.
    result = restore(repo)
    assert not result.changed
    assert status(repo).orphans == ["staging"]
    assert link.is_symlink()
    assert verify(repo).ok


def test_orphan_link_in_a_directory_without_refs(
    repo: Repo, ids: dict[str, str], tmp_path: Path
) -> None:
    """The last archive ref is deleted but its link is left: models/archive/ now holds
    only that orphan link, which status must still call an orphan."""
    commit(repo, write_version(tmp_path / "src" / "old", "old"), "archive/old")
    link = repo.layout.view_link("archive/old")
    target = os.readlink(link)
    delete_ref(repo, "archive/old")
    link.parent.mkdir()
    os.symlink(target, link)

    report = status(repo)

    assert report.orphans == ["archive/old"]
    assert report.unmanaged == []
    assert not report.clean


def test_active_environment_naming_a_missing_ref(repo: Repo, ids: dict[str, str]) -> None:
    repo.layout.env_file.write_text("MODEL_ENVIRONMENT=archive/v0\n")

    report = status(repo)

    assert report.active == "archive/v0"
    assert report.active_exists is False
    assert not report.clean
    assert all(v.clean for v in report.views)
    done = cli(repo.root, "status")
    assert done.exit_code == 8
    assert "(no such ref!)" in done.stdout
    # Observed: restore cannot pick a ref for the user; nothing changes.
    before = store_digest(repo)
    assert not restore(repo).changed
    assert store_digest(repo) == before


def test_restore_dry_run_changes_nothing(repo: Repo, ids: dict[str, str]) -> None:
    os.unlink(repo.layout.view_link("production"))
    os.unlink(repo.layout.view_link("staging") / "model.pth")
    before = store_digest(repo)

    result = restore(repo, dry_run=True)

    assert result.relinked == ["production"]
    assert result.replaced == ["staging/model.pth"]
    assert store_digest(repo) == before


def test_restore_repairs_every_kind_at_once(repo: Repo, ids: dict[str, str]) -> None:
    os.unlink(repo.layout.view_link("production"))
    staging = repo.layout.view_link("staging")
    overwrite(staging / "model.pth", b"Z" * (staging / "model.pth").stat().st_size)
    os.unlink(staging / "encoders.pkl")
    (staging / "extra.bin").write_bytes(b"extra")

    result = restore(repo)

    assert result.relinked == ["production"]
    assert sorted(result.replaced) == ["staging/encoders.pkl", "staging/model.pth"]
    assert result.removed == ["staging/extra.bin"]
    assert_clean(repo)
    assert_consistent(repo)


# -- the hash cache ----------------------------------------------------------------------


def test_status_rehashes_only_changed_files(
    repo: Repo, ids: dict[str, str], settled: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    past = time.time() - 60
    for ref in ids:
        for path in repo.layout.view_link(ref).iterdir():
            os.utime(path, (past, past))
    calls = count_hashes(monkeypatch)

    assert status(repo).clean  # may hash, and fills the cache
    first = len(calls)
    assert status(Repo(repo.root)).clean

    assert first > 0
    assert len(calls) == first, "an unchanged view file was hashed again"

    target = repo.layout.view_link("staging") / "model.pth"
    overwrite(target, b"Q" * target.stat().st_size)
    calls.clear()

    report = status(Repo(repo.root))

    assert view_of(report, "staging").modified == ["model.pth"]
    assert [p.name for p in calls] == ["model.pth"]
    assert calls[0].resolve() == target.resolve()


def test_status_does_not_cache_files_changed_within_the_racy_window(
    repo: Repo, ids: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # View files changed a moment ago (real clock): never cached, always re-hashed.
    for ref in ids:
        for path in repo.layout.view_link(ref).iterdir():
            os.utime(path)
    calls = count_hashes(monkeypatch)

    status(repo)
    first = len(calls)
    status(Repo(repo.root))

    assert first == 6
    assert len(calls) == 2 * first
