"""ref delete / ref rename: logged ref moves in one transaction, with views and .env."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mstore.cli.app import app
from mstore.errors import InvalidInputError, NotFoundError, RefMovedError, RefusedError
from mstore.ops.commit import commit
from mstore.ops.ref_edits import delete_ref, rename_ref
from mstore.ops.show import log
from mstore.ops.status import status
from mstore.ops.switch import checkout, promote
from mstore.ops.verify import verify
from mstore.repo import Repo
from tests.helpers import assert_consistent, store_digest, write_version

runner = CliRunner()


def cli(root: Path, *args: object) -> Result:
    return runner.invoke(app, ["--store", str(root), *map(str, args)])


def seed(repo: Repo, tmp_path: Path) -> dict[str, str]:
    """production=v5 (active), staging=v5, archive/v4_<date>=v4."""
    commit(repo, write_version(tmp_path / "src" / "v4", "v4"), "production")
    commit(repo, write_version(tmp_path / "src" / "v5", "v5"), "staging")
    promote(repo, "staging")
    refs = repo.refs.read_all()
    assert len(refs) == 3
    return refs


@pytest.fixture
def refs(repo: Repo, tmp_path: Path) -> dict[str, str]:
    return seed(repo, tmp_path)


def view_states(repo: Repo) -> dict[str, str]:
    """Each ref's view state, and orphan links."""
    report = status(Repo(repo.root))
    states = {v.ref: v.state for v in report.views}
    return {**states, **{ref: "orphan" for ref in report.orphans}}


def archive_of(refs: dict[str, str]) -> str:
    [name] = [r for r in refs if r.startswith("archive/")]
    return name


# -- delete ------------------------------------------------------------------------------


def test_delete_logs_the_move_and_removes_the_link(repo: Repo, refs: dict[str, str]) -> None:
    archive = archive_of(refs)

    result = delete_ref(repo, archive, message="no longer needed")

    assert [(m.ref, m.old, m.new) for m in result.moves] == [(archive, refs[archive], None)]
    newest = log(repo, limit=1)[0]
    assert (newest.action, newest.ref, newest.old, newest.new) == (
        "delete",
        archive,
        refs[archive],
        None,
    )
    assert newest.message == "no longer needed"
    assert repo.refs.read(archive) is None
    link = repo.layout.view_link(archive)
    assert not link.exists() and not link.is_symlink()
    assert not link.parent.exists(), "models/archive/ is left empty"
    assert not repo.layout.ref_path(archive).parent.exists(), "refs/archive/ is left empty"
    assert repo.resolve(f"{archive}@{{1}}") == refs[archive]
    assert view_states(repo) == {"production": "ok", "staging": "ok"}
    assert_consistent(repo)


def test_delete_of_the_active_environment_is_refused(repo: Repo, refs: dict[str, str]) -> None:
    before = store_digest(repo)

    with pytest.raises(RefusedError, match="active environment"):
        delete_ref(repo, "production")

    assert store_digest(repo) == before
    assert repo.refs.read("production") == refs["production"]


def test_forced_delete_of_the_active_environment(repo: Repo, refs: dict[str, str]) -> None:
    delete_ref(repo, "production", force=True)

    assert repo.refs.read("production") is None
    assert not repo.layout.view_link("production").is_symlink()
    report = status(repo)
    assert report.active == "production" and not report.active_exists


def test_delete_of_a_checked_out_archive_is_refused(repo: Repo, refs: dict[str, str]) -> None:
    archive = archive_of(refs)
    checkout(repo, archive)
    before = store_digest(repo)

    with pytest.raises(RefusedError):
        delete_ref(repo, archive)

    assert store_digest(repo) == before
    delete_ref(repo, "production")  # no longer the active one


def test_delete_with_wrong_expect_changes_nothing(repo: Repo, refs: dict[str, str]) -> None:
    archive = archive_of(refs)
    before = store_digest(repo)

    with pytest.raises(RefMovedError):
        delete_ref(repo, archive, expect=refs["production"][:12])
    with pytest.raises(RefMovedError):
        delete_ref(repo, archive, expect="none")

    assert store_digest(repo) == before
    delete_ref(repo, archive, expect=refs[archive][:8])
    assert repo.refs.read(archive) is None


def test_delete_of_unknown_ref(repo: Repo, refs: dict[str, str]) -> None:
    before = store_digest(repo)

    with pytest.raises(NotFoundError, match="'archive/v0' does not exist"):
        delete_ref(repo, "archive/v0")
    with pytest.raises(InvalidInputError):
        delete_ref(repo, "bad..name")

    assert store_digest(repo) == before


def test_delete_dry_run_changes_nothing(repo: Repo, refs: dict[str, str]) -> None:
    archive = archive_of(refs)
    before = store_digest(repo)

    result = delete_ref(repo, archive, dry_run=True)

    assert result.dry_run and result.changed
    assert store_digest(repo) == before


def test_refused_delete_changes_nothing_and_leaves_no_journal(
    repo: Repo, refs: dict[str, str]
) -> None:
    """models/staging replaced by the user's own directory: the delete is refused (exit 7,
    "refused": nothing changed) and the store stays usable."""
    link = repo.layout.view_link("staging")
    link.unlink()
    link.mkdir()
    (link / "model.pth").write_bytes(b"the user's own file")
    before = store_digest(repo)

    with pytest.raises(RefusedError, match="real directory"):
        delete_ref(repo, "staging")

    assert not repo.layout.transaction.exists(), "a refused command left a journal behind"
    assert store_digest(repo) == before
    assert repo.refs.read("staging") == refs["staging"]
    assert verify(Repo(repo.root)).ok  # takes the lock: must not trip over the journal


# -- rename ------------------------------------------------------------------------------


def test_rename_is_one_transaction_of_create_and_delete(repo: Repo, refs: dict[str, str]) -> None:
    archive = archive_of(refs)
    old_link = repo.layout.view_link(archive)
    old_target = old_link.resolve()

    rename_ref(repo, archive, "archive/v4_golden")

    entries = log(repo, limit=2)
    assert {(e.action, e.ref, e.old, e.new) for e in entries} == {
        ("rename", "archive/v4_golden", None, refs[archive]),
        ("rename", archive, refs[archive], None),
    }
    assert len({e.txn for e in entries}) == 1
    assert repo.refs.read("archive/v4_golden") == refs[archive]
    assert repo.refs.read(archive) is None
    assert not old_link.is_symlink()
    new_link = repo.layout.view_link("archive/v4_golden")
    assert new_link.is_symlink()
    assert new_link.resolve() == old_target  # same role, same view
    assert repo.active_environment() == "production"
    assert view_states(repo) == {"production": "ok", "staging": "ok", "archive/v4_golden": "ok"}
    assert_consistent(repo)


def test_rename_of_the_active_ref_moves_the_environment(repo: Repo, refs: dict[str, str]) -> None:
    env = repo.layout.env_file
    env.write_text("# settings\nMODEL_ENVIRONMENT=production\nLOG_LEVEL=info\n")

    result = rename_ref(repo, "production", "live")

    assert result.environment == "live"
    assert result.previous_environment == "production"
    assert env.read_text() == "# settings\nMODEL_ENVIRONMENT=live\nLOG_LEVEL=info\n"
    assert repo.refs.read("live") == refs["production"]
    assert repo.refs.read("production") is None
    assert repo.layout.view_link("live").is_symlink()
    assert not repo.layout.view_link("production").is_symlink()
    report = status(repo)
    assert report.active == "live" and report.active_exists
    assert view_states(repo) == {"live": "ok", "staging": "ok", archive_of(refs): "ok"}
    assert_consistent(repo)


def test_rename_onto_an_existing_ref_is_refused(repo: Repo, refs: dict[str, str]) -> None:
    archive = archive_of(refs)
    before = store_digest(repo)

    with pytest.raises(RefusedError, match="already exists"):
        rename_ref(repo, archive, "staging")
    with pytest.raises(RefusedError):
        rename_ref(repo, archive, "staging/old")  # would make staging a directory

    assert store_digest(repo) == before


def test_refused_rename_changes_nothing_and_leaves_no_journal(
    repo: Repo, refs: dict[str, str]
) -> None:
    mine = repo.layout.view_link("candidate")
    mine.mkdir()
    (mine / "notes.txt").write_bytes(b"the user's own directory")
    before = store_digest(repo)

    with pytest.raises(RefusedError, match="real directory"):
        rename_ref(repo, "staging", "candidate")

    assert not repo.layout.transaction.exists(), "a refused command left a journal behind"
    assert store_digest(repo) == before
    assert verify(Repo(repo.root)).ok


def test_rename_with_wrong_expect_changes_nothing(repo: Repo, refs: dict[str, str]) -> None:
    before = store_digest(repo)

    with pytest.raises(RefMovedError):
        rename_ref(repo, "staging", "candidate", expect=refs[archive_of(refs)][:12])

    assert store_digest(repo) == before


def test_rename_of_unknown_ref(repo: Repo, refs: dict[str, str]) -> None:
    with pytest.raises(NotFoundError):
        rename_ref(repo, "nosuch", "other")


# -- CLI ---------------------------------------------------------------------------------


def test_cli_ref_delete_and_rename_exit_codes(repo: Repo, refs: dict[str, str]) -> None:
    archive = archive_of(refs)
    root = repo.root
    before = store_digest(repo)

    assert cli(root, "ref", "delete", "production").exit_code == 7
    assert cli(root, "ref", "delete", "archive/v0").exit_code == 4
    assert cli(root, "ref", "delete", "bad..name").exit_code == 6
    assert cli(root, "ref", "delete", archive, "--expect", "0" * 12).exit_code == 5
    assert cli(root, "ref", "rename", archive, "staging").exit_code == 7
    assert cli(root, "ref", "rename", "archive/v0", "x").exit_code == 4
    assert store_digest(repo) == before

    renamed = cli(root, "ref", "rename", archive, "archive/keep", "--json")
    assert renamed.exit_code == 0, (renamed.stdout, renamed.stderr)
    document = json.loads(renamed.stdout)
    assert document["action"] == "rename"
    assert {(m["ref"], m["old"], m["new"]) for m in document["moves"]} == {
        ("archive/keep", None, refs[archive]),
        (archive, refs[archive], None),
    }
    deleted = cli(root, "ref", "delete", "archive/keep")
    assert deleted.exit_code == 0, (deleted.stdout, deleted.stderr)
    assert f"delete archive/keep (was {refs[archive][:12]})" in deleted.stdout
    forced = cli(root, "ref", "delete", "staging", "--force")
    assert forced.exit_code == 0
    assert Repo(root).refs.read_all() == {"production": refs["production"]}
    assert_consistent(repo)
