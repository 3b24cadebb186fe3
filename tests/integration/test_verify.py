"""verify: every kind of damage to a store is found and named, through the API and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mstore.cli.app import app
from mstore.core.manifests import METADATA_FILE
from mstore.ops.commit import CommitOptions, commit
from mstore.ops.switch import promote
from mstore.ops.verify import VerifyReport, verify
from mstore.repo import Repo
from tests.helpers import write_version


@pytest.fixture
def repo(copy_repo: Repo) -> Repo:
    """Copy mode: these tests damage views and objects by hand to see them found and
    repaired, which the default mode's protection refuses (tests/integration/
    test_stored_once.py covers that mode)."""
    return copy_repo


runner = CliRunner()


def mstore(root: Path, *args: object) -> Result:
    return runner.invoke(app, ["--store", str(root), *map(str, args)])


def build_store(repo: Repo, tmp_path: Path) -> dict[str, str]:
    """production=v5 (promoted), staging=v5, archive/v4_<date>=v4; the refs' manifest ids."""
    v4 = write_version(tmp_path / "src" / "v4", "v4_no_leakage")
    v5 = write_version(tmp_path / "src" / "v5", "v5_candidate")
    commit(repo, v4, "production", options=CommitOptions(message="v4"))
    commit(repo, v5, "staging", options=CommitOptions(message="v5"))
    promote(repo, "staging")
    refs = repo.refs.read_all()
    assert len(refs) == 3
    return refs


def object_ids(repo: Repo) -> list[str]:
    return list(repo.objects.iter_ids())


def flip_byte(path: Path, offset: int = 0) -> None:
    """Invert one byte of a (read-only) object file in place."""
    os.chmod(path, stat.S_IMODE(path.stat().st_mode) | stat.S_IWUSR)
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def faults_of(report: VerifyReport, kind: str) -> list[str]:
    return [f.subject for f in report.faults if f.kind == kind]


def kinds(report: VerifyReport) -> set[str]:
    return {f.kind for f in report.faults}


def copy_store(root: Path, destination: Path) -> Repo:
    """A fresh copy of the whole project (store, models/ links, .env)."""
    shutil.copytree(root, destination, symlinks=True)
    return Repo(destination)


def object_roles(repo: Repo) -> dict[str, str]:
    """A name for each kind of object in the store built by `build_store`."""
    production = repo.refs.read("production")
    [archive] = [r for r in repo.refs.read_all() if r.startswith("archive/")]
    archived = repo.refs.read(archive)
    assert production is not None and archived is not None
    files = repo.manifest(production).files
    shown = repo.view_spec("production", production).files
    return {
        "model": files["model.pth"].id,
        "encoders": files["encoders.pkl"].id,
        "original-metadata": files[METADATA_FILE].id,
        "rendered-metadata": shown[METADATA_FILE].id,
        "production-manifest": production,
        "archive-manifest": archived,
    }


@pytest.fixture
def refs(repo: Repo, tmp_path: Path) -> dict[str, str]:
    return build_store(repo, tmp_path)


def test_intact_store_verifies(repo: Repo, refs: dict[str, str]) -> None:
    report = verify(repo)

    assert report.ok, [f.to_json() for f in report.faults]
    assert report.refs == 3
    assert report.objects == len(object_ids(repo))
    assert report.manifests == 2
    assert report.log_entries == 4
    assert report.bytes_hashed == sum(
        repo.layout.object_path(i).stat().st_size for i in object_ids(repo)
    )
    done = mstore(repo.root, "verify")
    assert done.exit_code == 0, (done.stdout, done.stderr)
    assert done.stdout.startswith("ok: ")


def test_every_flipped_object_is_named(repo: Repo, refs: dict[str, str], tmp_path: Path) -> None:
    """For each object of the store, in a fresh copy: flip a byte; verify names that object."""
    missed: dict[str, list[dict[str, str]]] = {}
    ids = object_ids(repo)
    assert len(ids) >= 8
    for index, object_id in enumerate(ids):
        damaged = copy_store(repo.root, tmp_path / f"copy{index}")
        path = damaged.layout.object_path(object_id)
        flip_byte(path, offset=path.stat().st_size // 2)

        report = verify(damaged)

        if faults_of(report, "object_corrupt") != [object_id]:
            missed[object_id] = [f.to_json() for f in report.faults]
    assert not missed


@pytest.mark.parametrize(
    "role",
    [
        "model",
        "encoders",
        "original-metadata",
        "rendered-metadata",
        "production-manifest",
        "archive-manifest",
    ],
)
def test_flipped_object_is_corrupt_and_cli_exits_3(
    repo: Repo, refs: dict[str, str], role: str
) -> None:
    object_id = object_roles(repo)[role]
    flip_byte(repo.layout.object_path(object_id))

    report = verify(repo)

    assert not report.ok
    assert faults_of(report, "object_corrupt") == [object_id]
    if role.endswith("manifest"):
        # The manifest's bytes are checked before use: it cannot be read either.
        assert faults_of(report, "manifest_invalid") == [object_id]
        assert kinds(report) == {"object_corrupt", "manifest_invalid"}
    else:
        assert kinds(report) == {"object_corrupt"}
    done = mstore(repo.root, "verify")
    assert done.exit_code == 3, (done.stdout, done.stderr)
    assert f"object_corrupt: {object_id}" in done.stdout


def test_truncated_manifest_is_corrupt_and_invalid(repo: Repo, refs: dict[str, str]) -> None:
    manifest = refs["production"]
    path = repo.layout.object_path(manifest)
    os.chmod(path, 0o644)
    os.truncate(path, path.stat().st_size // 2)

    report = verify(repo)

    assert faults_of(report, "object_corrupt") == [manifest]
    assert faults_of(report, "manifest_invalid") == [manifest]


def test_deleted_data_object_is_missing(repo: Repo, refs: dict[str, str]) -> None:
    model = repo.manifest(refs["production"]).files["model.pth"].id
    os.unlink(repo.layout.object_path(model))

    report = verify(repo)

    assert faults_of(report, "object_missing") == [model]
    assert kinds(report) == {"object_missing"}
    assert mstore(repo.root, "verify").exit_code == 3


def test_garbage_ref_is_corrupt(repo: Repo, refs: dict[str, str]) -> None:
    repo.layout.ref_path("staging").write_bytes(b"not a manifest id\n")

    report = verify(repo)

    assert faults_of(report, "ref_corrupt") == ["staging"]
    done = mstore(repo.root, "verify")
    assert done.exit_code == 3
    assert "ref_corrupt: staging" in done.stdout


@pytest.mark.parametrize(
    "where", ["temp-in-fan", "file-in-objects", "dir-in-fan", "uppercase-name"]
)
def test_stray_entry_under_objects(repo: Repo, refs: dict[str, str], where: str) -> None:
    manifest = refs["production"]
    fan = repo.layout.object_path(manifest).parent
    stray = {
        "temp-in-fan": fan / ".tmp-object.0123456789abcdef",
        "file-in-objects": repo.layout.objects / "README",
        "dir-in-fan": fan / "subdirectory",
        "uppercase-name": fan / manifest[2:].upper(),
    }[where]
    if where == "dir-in-fan":
        stray.mkdir()
    else:
        stray.write_bytes(b"half an object")

    report = verify(repo)

    assert faults_of(report, "stray") == [str(stray)]
    assert kinds(report) == {"stray"}


@pytest.mark.parametrize(
    "line",
    [
        b"this is not json\n",
        b'{"ref":"staging"}\n',
        b'{"action":"commit","message":"","new":"abc","old":null,"ref":"staging",'
        b'"txn":"0","when":"2024-11-15T00:00:00Z","who":"x"}\n',
    ],
    ids=["not-json", "missing-fields", "bad-id"],
)
def test_log_line_that_is_not_an_entry(repo: Repo, refs: dict[str, str], line: bytes) -> None:
    lines = repo.layout.log.read_bytes().splitlines(keepends=True)
    lines.insert(1, line)
    repo.layout.log.write_bytes(b"".join(lines))

    report = verify(repo)

    assert faults_of(report, "log_corrupt") == ["log line 2"]
    assert kinds(report) == {"log_corrupt"}


def test_torn_last_log_line(repo: Repo, refs: dict[str, str]) -> None:
    with open(repo.layout.log, "ab") as f:
        f.write(b'{"action":"commit","message":"')
    count = len(repo.layout.log.read_bytes().splitlines())

    report = verify(repo)

    assert faults_of(report, "log_torn") == [f"log line {count}"]
    assert kinds(report) == {"log_torn"}


def test_ref_that_differs_from_its_newest_log_entry(repo: Repo, refs: dict[str, str]) -> None:
    [archive] = [r for r in refs if r.startswith("archive/")]
    # A valid manifest id, but not the one the log says staging was moved to.
    repo.layout.ref_path("staging").write_text(refs[archive] + "\n")

    report = verify(repo)

    assert faults_of(report, "ref_log_mismatch") == ["staging"]
    assert kinds(report) == {"ref_log_mismatch"}


def test_quick_does_not_rehash_but_finds_missing_objects(repo: Repo, refs: dict[str, str]) -> None:
    files = repo.manifest(refs["production"]).files
    flip_byte(repo.layout.object_path(files["model.pth"].id))

    quick = verify(repo, quick=True)

    assert quick.ok, [f.to_json() for f in quick.faults]
    assert quick.bytes_hashed == 0
    assert quick.objects == len(object_ids(repo))
    assert not verify(repo).ok  # the full verify does see it

    os.unlink(repo.layout.object_path(files["encoders.pkl"].id))
    quick = verify(repo, quick=True)

    assert faults_of(quick, "object_missing") == [files["encoders.pkl"].id] * 2
    assert kinds(quick) == {"object_missing"}
    assert quick.bytes_hashed == 0
    done = mstore(repo.root, "verify", "--quick")
    assert done.exit_code == 3
    assert "re-hashed" not in done.stdout


def test_quick_finds_an_object_of_the_wrong_size(repo: Repo, refs: dict[str, str]) -> None:
    model = repo.manifest(refs["production"]).files["model.pth"]
    path = repo.layout.object_path(model.id)
    os.chmod(path, 0o644)
    with open(path, "ab") as f:
        f.write(b"appended")

    quick = verify(repo, quick=True)

    assert faults_of(quick, "object_size") == [model.id]
    assert kinds(quick) == {"object_size"}
    assert quick.bytes_hashed == 0


def test_json_output_lists_the_faults(repo: Repo, refs: dict[str, str]) -> None:
    model = repo.manifest(refs["production"]).files["model.pth"].id
    flip_byte(repo.layout.object_path(model))
    repo.layout.ref_path("staging").write_bytes(b"garbage")

    done = mstore(repo.root, "verify", "--json")

    assert done.exit_code == 3, (done.stdout, done.stderr)
    document = json.loads(done.stdout)
    assert document["ok"] is False
    faults = {(f["kind"], f["subject"]) for f in document["faults"]}
    assert ("object_corrupt", model) in faults
    assert ("ref_corrupt", "staging") in faults
    for fault in document["faults"]:
        assert set(fault) == {"kind", "subject", "detail"}
    assert document["bytes_hashed"] > 0
