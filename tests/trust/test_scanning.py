"""mstore/ops/scanning.py: a version's files against the import allowlist, and where it
applies: checkout, promote and rollback onto a guarded ref refuse a version with a
refused file (nothing written, no hook run); a commit reports such files, refusing
nothing; a store without trust rules behaves as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import mstore
from mstore.cli.app import app
from mstore.ops.commit import CommitOptions, commit
from mstore.ops.scanning import DisallowedImportsError, scan_version
from mstore.ops.switch import PromoteOptions, checkout, promote, rollback
from mstore.repo import Repo
from tests.helpers import assert_consistent, store_digest, write_version
from tests.trust.guarded import guard, install_hooks, os_system

STATE_DICT = b"\x80\x02ccollections\nOrderedDict\n)R."
runner = CliRunner()


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "marker"


@pytest.fixture
def repo(tmp_path: Path, marker: Path) -> Repo:
    """production: a clean version; staging: one whose encoders.pkl runs os.system;
    hooks that log to tmp_path/hooks.log."""
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root, link_mode="copy")
    commit(repo, write_version(tmp_path / "src" / "v1", "v1", model=STATE_DICT), "production")
    commit(
        repo, write_version(tmp_path / "src" / "v2", "v2", encoders=os_system(marker)), "staging"
    )
    install_hooks(repo, tmp_path / "hooks.log")
    return repo


def test_scan_version_names_each_file_its_globals_and_verdict(repo: Repo) -> None:
    result = scan_version(repo, repo.resolve("staging"))

    files = {f.path: f for f in result.files}
    assert files["encoders.pkl"].scan.kind == "pickle"
    assert files["encoders.pkl"].disallowed == ("os.system",)
    assert files["metadata.json"].scan.kind == "other" and not files["metadata.json"].refused
    assert [f.path for f in result.refused] == ["encoders.pkl"]
    assert result.to_json()["verdict"] == "refused"
    assert "1 refused" in result.summary()
    assert scan_version(repo, repo.resolve("production")).to_json()["verdict"] == "allowed"


def refused_untouched(repo: Repo, action, *names: str) -> None:  # type: ignore[no-untyped-def]
    before = store_digest(repo)
    with pytest.raises(DisallowedImportsError) as caught:
        action()
    assert caught.value.exit_code == 7
    for name in names:
        assert name in str(caught.value)
    assert store_digest(repo) == before


def test_promote_onto_a_guarded_ref_refuses_a_refused_version(
    repo: Repo, tmp_path: Path, marker: Path
) -> None:
    guard(repo, ("production",))

    refused_untouched(
        repo, lambda: promote(repo, "staging"), "encoders.pkl", "os.system", "production"
    )

    assert not (tmp_path / "hooks.log").exists() and not marker.exists()
    assert_consistent(repo)


def test_a_dry_run_promote_is_refused_too(repo: Repo) -> None:
    guard(repo, ("production",))

    refused_untouched(repo, lambda: promote(repo, "staging", options=PromoteOptions(dry_run=True)))


def test_checkout_of_a_guarded_ref_refuses_its_refused_version(
    repo: Repo, tmp_path: Path, marker: Path
) -> None:
    guard(repo, ("staging",))

    refused_untouched(repo, lambda: checkout(repo, "staging"), "encoders.pkl", "os.system")

    assert not (tmp_path / "hooks.log").exists() and not marker.exists()


def test_rollback_of_a_guarded_ref_to_a_refused_version_is_refused(
    repo: Repo, tmp_path: Path
) -> None:
    guard(repo, ("production",))

    refused_untouched(repo, lambda: rollback(repo, "production", to="staging"), "os.system")

    assert not (tmp_path / "hooks.log").exists()


def test_unguarded_refs_and_allowed_versions_move_as_before(repo: Repo, tmp_path: Path) -> None:
    guard(repo, ("production",))

    checkout(repo, "staging")  # staging is not guarded
    rollback(repo, "staging", to="production")  # a clean version onto an unguarded ref
    promote(repo, "staging")  # the clean version onto the guarded ref

    assert repo.active_environment() == "production"
    assert (tmp_path / "hooks.log").read_text().count("post-switch") == 3  # each switched
    assert_consistent(repo)


def test_a_store_without_trust_rules_checks_nothing(repo: Repo) -> None:
    result = promote(repo, "staging")

    assert result.changed and repo.refs.read("production") == repo.refs.read("staging")


def test_the_allowlist_of_the_store_lets_a_global_through(repo: Repo, tmp_path: Path) -> None:
    source = write_version(tmp_path / "src" / "v3", "v3", encoders=b"csklearn\nThing\n)R.")
    commit(repo, source, "candidate")
    guard(repo, ("production",), allow=("sklearn.Thing",))

    promote(repo, "candidate")

    assert repo.refs.read("production") == repo.refs.read("candidate")


def test_a_commit_reports_refused_files_and_refuses_nothing(
    repo: Repo, tmp_path: Path, marker: Path
) -> None:
    guard(repo, ("production",))
    source = write_version(tmp_path / "src" / "v3", "v3", model=os_system(marker))

    planned = commit(repo, source, "production", options=CommitOptions(dry_run=True))
    result = commit(repo, source, "production")

    for report in (planned, result):
        assert [f.path for f in report.refused_files] == ["model.pth"]
        assert report.refused_files[0].disallowed == ("os.system",)
    assert repo.refs.read("production") == result.manifest_id
    assert result.to_json()["refused_files"][0]["path"] == "model.pth"  # type: ignore[index]


def test_a_commit_in_a_store_without_trust_rules_scans_nothing(
    repo: Repo, tmp_path: Path, marker: Path
) -> None:
    source = write_version(tmp_path / "src" / "v3", "v3", model=os_system(marker))

    assert commit(repo, source, "production").refused_files == ()


def test_the_api_passes_refusals_and_reports_through(repo: Repo, tmp_path: Path) -> None:
    guard(repo, ("production",))
    store = mstore.open(repo.root)

    with pytest.raises(DisallowedImportsError, match=r"os\.system"):
        store.promote("staging")
    source = write_version(tmp_path / "src" / "v3", "v3", encoders=b"cposix\nsystem\n)R.")
    result = store.commit(source, "staging")

    assert result.refused_files[0].disallowed == ("posix.system",)
    assert store.scan("staging").refused[0].path == "encoders.pkl"


def test_mstore_scan_lists_globals_and_exits_7_on_a_refused_file(repo: Repo) -> None:
    store = ["--store", str(repo.root)]

    refused = runner.invoke(app, [*store, "scan", "staging"])
    allowed = runner.invoke(app, [*store, "scan", "production"])
    document = runner.invoke(app, [*store, "scan", "staging", "--json"])

    assert refused.exit_code == 7, refused.output
    assert "encoders.pkl  pickle  refused" in refused.stdout
    assert "imports os.system  (not allowed)" in refused.stdout
    assert "3 files, globals in 1: 1 refused" in refused.stdout
    assert allowed.exit_code == 0 and "all allowed" in allowed.stdout
    assert "collections.OrderedDict" in allowed.stdout
    assert document.exit_code == 7
    parsed = json.loads(document.stdout)
    assert parsed["verdict"] == "refused"
    assert {f["path"]: f["disallowed"] for f in parsed["files"]}["encoders.pkl"] == ["os.system"]
    help_text = runner.invoke(app, ["scan", "--help"]).stdout
    assert "7 when any file is refused" in help_text


def test_mstore_commit_warns_of_refused_files(repo: Repo, tmp_path: Path, marker: Path) -> None:
    guard(repo, ("production",))
    source = write_version(tmp_path / "src" / "v3", "v3", model=os_system(marker))
    store = ["--store", str(repo.root)]

    result = runner.invoke(app, [*store, "commit", str(source), "--to", "staging"])
    document = runner.invoke(app, [*store, "commit", str(source), "--to", "other", "--json"])

    assert result.exit_code == 0, result.output
    assert "warning: model.pth would be refused on a guarded ref" in result.stderr
    assert "imports os.system" in result.stderr
    assert json.loads(document.stdout)["refused_files"][0]["disallowed"] == ["os.system"]


def test_mstore_checkout_of_a_guarded_ref_exits_7_naming_file_and_global(repo: Repo) -> None:
    guard(repo, ("staging",))
    before = store_digest(repo)

    result = runner.invoke(app, ["--store", str(repo.root), "checkout", "staging"])

    assert result.exit_code == 7
    assert "encoders.pkl: imports os.system" in result.stderr
    assert store_digest(repo) == before


def test_promoting_what_a_guarded_ref_already_holds_is_refused_too(repo: Repo) -> None:
    """Rules added after the ref took a refused version: the promote would make it the
    active environment."""
    promote(repo, "staging")
    checkout(repo, "staging")
    guard(repo, ("production",))

    refused_untouched(repo, lambda: promote(repo, "staging"), "os.system")

    assert repo.active_environment() == "staging"
