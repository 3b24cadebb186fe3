"""verify checks every view: present files, sizes, modes, link targets and the record,
and names a bad view with its ref (or "released")."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
import pytest

from mstore.ops.ref_edits import delete_ref
from mstore.ops.verify import VerifyReport, verify
from mstore.repo import Repo
from mstore.views.records import record_path
from tests.helpers import two_version_store as store
from tests.helpers import view_dir


def faults(report: VerifyReport) -> list[tuple[str, str, str]]:
    return [(f.kind, f.subject, f.detail) for f in report.faults]


def rewrite_same_size(path: Path) -> None:
    os.chmod(path, 0o644)
    data = path.read_bytes()
    with open(path, "r+b") as f:
        f.write(bytes([data[0] ^ 0xFF]))
    os.chmod(path, 0o444)


def test_intact_views_verify_and_are_counted(tmp_path: Path) -> None:
    repo = store(tmp_path)
    report = verify(repo)
    assert report.ok, faults(report)
    assert report.views == 2
    assert report.to_json()["views"] == 2


def test_file_written_in_place_is_a_damaged_view_of_its_ref(tmp_path: Path) -> None:
    repo = store(tmp_path)
    view = view_dir(repo, "staging")
    rewrite_same_size(view / "model.pth")

    [(kind, subject, detail)] = faults(verify(Repo(repo.root)))

    assert (kind, subject) == ("view_damaged", view.name)
    assert "models/staging" in detail and "model.pth" in detail


def test_quick_verify_does_not_hash_view_files(tmp_path: Path) -> None:
    repo = store(tmp_path)
    rewrite_same_size(view_dir(repo, "staging") / "model.pth")
    assert verify(Repo(repo.root), quick=True).ok


def test_link_to_a_view_that_is_gone(tmp_path: Path) -> None:
    repo = store(tmp_path)
    view = view_dir(repo, "production")
    shutil.rmtree(view)

    report = verify(Repo(repo.root))

    assert ("view_incomplete", view.name) in [(k, s) for k, s, _ in faults(report)]
    assert any("models/production" in d for _, _, d in faults(report))


def test_symlink_mode_link_to_another_object(tmp_path: Path) -> None:
    repo = store(tmp_path, "symlink")
    production, staging = view_dir(repo, "production"), view_dir(repo, "staging")
    target = production / "model.pth"
    os.unlink(target)
    os.symlink(os.readlink(staging / "model.pth"), target)

    [(kind, subject, detail)] = faults(verify(Repo(repo.root)))

    assert (kind, subject) == ("view_incomplete", production.name)
    assert "model.pth: links to another file" in detail


def test_record_listing_other_files(tmp_path: Path) -> None:
    repo = store(tmp_path)
    view = view_dir(repo, "production")
    path = record_path(repo.layout, view.name)
    document = orjson.loads(path.read_bytes())
    document["files"]["model.pth"]["id"] = "0" * 64
    os.chmod(path, 0o644)
    path.write_bytes(orjson.dumps(document))

    [(kind, subject, detail)] = faults(verify(Repo(repo.root)))

    assert (kind, subject) == ("view_incomplete", view.name)
    assert "record does not match the listing" in detail


@pytest.mark.parametrize("ref", ["production", "staging"])
def test_released_view_is_checked_against_its_record(tmp_path: Path, ref: str) -> None:
    repo = store(tmp_path)
    view = view_dir(repo, ref)
    delete_ref(repo, ref, force=True)
    (view / "extra.bin").write_bytes(b"x")

    [(kind, subject, detail)] = faults(verify(Repo(repo.root)))

    assert (kind, subject) == ("view_incomplete", view.name)
    assert detail.startswith("view of released:") and "extra.bin: not in the listing" in detail


def test_store_copied_elsewhere_verifies(tmp_path: Path) -> None:
    """New inodes and times, same bytes: verify re-hashes and finds nothing wrong."""
    repo = store(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(repo.root, copy, symlinks=True)

    report = verify(Repo(copy))

    assert report.ok, faults(report)


def test_trash_and_a_lone_record_are_not_faults(tmp_path: Path) -> None:
    """What a gc killed mid-removal leaves: the next gc finishes it."""
    repo = store(tmp_path)
    trash = repo.layout.views / ".trash" / "0123.abcd"
    trash.mkdir(parents=True)
    (trash / "model.pth").write_bytes(b"half a view")
    (repo.layout.views / (("a" * 64) + ".json")).write_bytes(b"{}")

    assert verify(Repo(repo.root)).ok
