"""`mstore import`: adopting a hand-made seed `models/` tree, byte for byte, all or nothing."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mstore.cli.app import app
from mstore.errors import InvalidInputError, MstoreError, RefusedError
from mstore.ops.commit import commit
from mstore.ops.importing import import_tree
from mstore.ops.show import log
from mstore.ops.status import status
from mstore.repo import Repo
from tests.helpers import assert_consistent, store_digest, tree_digest, write_version

# -- the seed tree (also used by test_metadata_truth.py and tests/cli/test_switch_script.py)

ENCODERS_SHARED = b"\x80\x04 pickled label encoders, v3 vocabulary \x00\x01\x02"
README = b"# models/\n\nModel versions of this project.\n"


@dataclass(frozen=True)
class SeedVersion:
    ref: str
    version: str
    model: bytes
    encoders: bytes
    created: str
    deployed: str | None
    status: str
    extra: dict[str, bytes] = field(default_factory=dict)

    def metadata(self) -> dict[str, object]:
        """The version's metadata.json, keys in the seed's order."""
        return {
            "version": self.version,
            "model_name": "model.pth",
            "encoder_name": "encoders.pkl",
            "created_date": self.created,
            "deployed_date": self.deployed,
            "description": f"{self.version} of the recommender",
            "metrics": {"final_val_loss": 89.43, "final_val_mae": 5.74, "best_epoch": 43},
            "model_architecture": {"type": "HybridRecommender", "embedding_dim": 384},
            "changelog": [f"{self.version}: retrained"],
            "status": self.status,
        }


SEED = (
    SeedVersion(
        "production",
        "v4_no_leakage",
        b"PK\x03\x04 weights v4",
        ENCODERS_SHARED,
        "2024-11-12",
        "2024-11-12",
        "active",
    ),
    SeedVersion(
        "staging",
        "v5_candidate",
        b"PK\x03\x04 weights v5",
        b"\x80\x04 pickled label encoders, v5 vocabulary with hair_type",
        "2024-11-15",
        None,
        "staging",
        extra={"notes.txt": b"v5 adds hair_type; validated on November data\n"},
    ),
    SeedVersion(
        "archive/v1_2024-10-15",
        "v1_baseline",
        b"PK\x03\x04 weights v1",
        b"\x80\x04 pickled label encoders, raw labels",
        "2024-10-15",
        "2024-10-15",
        "archived",
    ),
    SeedVersion(
        "archive/v3_2024-11-10",
        "v3_tuned",
        b"PK\x03\x04 weights v3",
        ENCODERS_SHARED,
        "2024-11-10",
        "2024-11-10",
        "archived",
    ),
)
SEED_REFS = {v.ref for v in SEED}


def seed_metadata_bytes(document: dict[str, object]) -> bytes:
    """metadata.json as the seed writes it (json.dumps, 2-space indent, trailing newline)."""
    return (json.dumps(document, indent=2) + "\n").encode()


def make_seed_tree(models: Path) -> dict[str, Path]:
    """Write the seed versions and a README under `models`; return each ref's directory."""
    directories: dict[str, Path] = {}
    for version in SEED:
        directory = models.joinpath(*version.ref.split("/"))
        directory.mkdir(parents=True)
        (directory / "model.pth").write_bytes(version.model)
        (directory / "encoders.pkl").write_bytes(version.encoders)
        (directory / "metadata.json").write_bytes(seed_metadata_bytes(version.metadata()))
        for name, data in version.extra.items():
            (directory / name).write_bytes(data)
        directories[version.ref] = directory
    (models / "README.md").write_bytes(README)
    return directories


def seed_project(tmp_path: Path) -> tuple[Repo, Path]:
    """A project holding the seed tree and a fresh store; (repo, backup copy of models/)."""
    root = tmp_path / "project"
    make_seed_tree(root / "models")
    backup = tmp_path / "backup"
    shutil.copytree(root / "models", backup, symlinks=True)
    repo, _ = Repo.init(root)
    return repo, backup


def files_below(directory: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file below `directory` (following the link itself)."""
    found: dict[str, bytes] = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            found[path.relative_to(directory).as_posix()] = path.read_bytes()
    return found


def object_files(repo: Repo) -> list[Path]:
    return [p for p in repo.layout.objects.rglob("*") if p.is_file()]


# -- a successful import -----------------------------------------------------------------


def test_import_creates_one_ref_and_one_log_entry_per_version(tmp_path: Path) -> None:
    repo, _ = seed_project(tmp_path)

    result = import_tree(repo)

    refs = repo.refs.read_all()
    assert set(refs) == SEED_REFS
    assert result.move.changed
    assert {(m.ref, m.old, m.new) for m in result.move.moves} == {
        (ref, None, refs[ref]) for ref in SEED_REFS
    }
    entries = log(repo)
    assert sorted(e.ref for e in entries) == sorted(SEED_REFS)
    assert {e.action for e in entries} == {"import"}
    assert len({e.txn for e in entries}) == 1
    assert all(e.old is None and e.new == refs[e.ref] for e in entries)
    assert result.files == 4 * 3 + 1
    assert_consistent(repo)


def test_import_keeps_every_file_byte_for_byte(tmp_path: Path) -> None:
    repo, backup = seed_project(tmp_path)

    import_tree(repo)

    for version in SEED:
        original = files_below(backup.joinpath(*version.ref.split("/")))
        shown = files_below(repo.layout.view_link(version.ref))
        assert shown == original, version.ref
    staging = files_below(repo.layout.view_link("staging"))
    assert set(staging) == {"model.pth", "encoders.pkl", "metadata.json", "notes.txt"}


def test_import_turns_directories_into_view_links(tmp_path: Path) -> None:
    repo, _ = seed_project(tmp_path)

    import_tree(repo)

    views = repo.layout.views.resolve()
    for ref in SEED_REFS:
        link = repo.layout.view_link(ref)
        assert link.is_symlink(), ref
        assert not os.readlink(link).startswith("/"), ref
        assert link.resolve().parent == views, ref
    assert (repo.layout.models / "README.md").read_bytes() == README
    assert not (repo.layout.models / "README.md").is_symlink()
    assert sorted(os.listdir(repo.layout.models)) == [
        "README.md",
        "archive",
        "production",
        "staging",
    ]
    assert sorted(os.listdir(repo.layout.models / "archive")) == [
        "v1_2024-10-15",
        "v3_2024-11-10",
    ]
    report = status(repo)
    assert report.clean, report.to_json()
    assert report.unmanaged == ["README.md"]


def test_import_stores_a_shared_file_once(tmp_path: Path) -> None:
    repo, _ = seed_project(tmp_path)

    import_tree(repo)

    production = repo.manifest(repo.refs.read("production") or "")
    archived = repo.manifest(repo.refs.read("archive/v3_2024-11-10") or "")
    assert production.files["encoders.pkl"].id == archived.files["encoders.pkl"].id
    stored = [p for p in object_files(repo) if p.read_bytes() == ENCODERS_SHARED]
    assert len(stored) == 1
    # Nothing is stored twice: every object file has distinct bytes.
    contents = [p.read_bytes() for p in object_files(repo)]
    assert len(contents) == len(set(contents))


def test_import_shows_the_refs_status_when_the_seed_disagrees(tmp_path: Path) -> None:
    root = tmp_path / "project"
    directories = make_seed_tree(root / "models")
    stale = directories["archive/v1_2024-10-15"] / "metadata.json"
    document = json.loads(stale.read_bytes())
    document["status"] = "active"  # left behind by a hand-made archive copy
    stale.write_bytes(seed_metadata_bytes(document))
    repo, _ = Repo.init(root)

    import_tree(repo)

    shown = json.loads(
        (repo.layout.view_link("archive/v1_2024-10-15") / "metadata.json").read_text()
    )
    assert shown == {**document, "status": "archived"}
    assert list(shown) == list(document)
    manifest = repo.manifest(repo.refs.read("archive/v1_2024-10-15") or "")
    assert manifest.metadata == document
    assert_consistent(repo)


def test_second_import_changes_nothing(tmp_path: Path) -> None:
    repo, _ = seed_project(tmp_path)
    import_tree(repo)
    before = store_digest(repo)
    log_bytes = repo.layout.log.read_bytes()

    again = import_tree(repo)

    assert not again.move.changed
    assert again.move.moves == []
    assert sorted(again.skipped) == sorted(
        f"{ref}: already a view (managed by mstore)" for ref in SEED_REFS
    )
    assert store_digest(repo) == before
    assert repo.layout.log.read_bytes() == log_bytes
    assert_consistent(repo)


def test_dry_run_import_changes_nothing(tmp_path: Path) -> None:
    repo, backup = seed_project(tmp_path)
    before = store_digest(repo)

    result = import_tree(repo, dry_run=True)

    assert result.move.dry_run
    assert result.move.changed
    assert {m.ref for m in result.move.moves} == SEED_REFS
    assert all(m.old is None for m in result.move.moves)
    assert store_digest(repo) == before
    assert tree_digest(repo.layout.models) == tree_digest(backup)
    assert object_files(repo) == []
    assert repo.refs.read_all() == {}


def test_dry_run_import_predicts_the_real_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One clock for both runs: a manifest records its time, and the two runs may fall
    # in different seconds on a loaded machine.
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1733000000")
    repo, _ = seed_project(tmp_path)

    planned = import_tree(repo, dry_run=True)
    done = import_tree(repo)

    assert [(m.ref, m.old, m.new) for m in planned.move.moves] == [
        (m.ref, m.old, m.new) for m in done.move.moves
    ]
    assert (planned.files, planned.bytes) == (done.files, done.bytes)
    # The shared encoders.pkl is one new object, in the plan as in the import.
    assert planned.new_objects == done.new_objects


# -- refusals: nothing written, the seed tree untouched ----------------------------------


def _no_metadata(models: Path, tmp_path: Path) -> None:
    (models / "archive" / "v3_2024-11-10" / "metadata.json").unlink()


def _not_json(models: Path, tmp_path: Path) -> None:
    (models / "staging" / "metadata.json").write_bytes(b'{"version": "v5",\n')


def _fifo(models: Path, tmp_path: Path) -> None:
    path = models / "production" / "encoders.pkl"
    path.unlink()
    os.mkfifo(path)


def _dangling_symlink(models: Path, tmp_path: Path) -> None:
    os.symlink("weights-that-were-deleted.pth", models / "production" / "extra.pth")


def _symlink_outside(models: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"secret")
    os.symlink(outside, models / "staging" / "secret.txt")


def _bad_archive_name(models: Path, tmp_path: Path) -> None:
    write_version(models / "archive" / "bad..name", "v2")


REFUSALS: dict[str, tuple[Callable[[Path, Path], None], type[MstoreError], str]] = {
    "no metadata.json": (_no_metadata, InvalidInputError, "models/archive/v3_2024-11-10"),
    "metadata.json not JSON": (_not_json, InvalidInputError, "models/staging/metadata.json"),
    "fifo": (_fifo, InvalidInputError, "models/production/encoders.pkl"),
    "dangling symlink": (_dangling_symlink, InvalidInputError, "models/production/extra.pth"),
    "symlink outside": (_symlink_outside, InvalidInputError, "models/staging/secret.txt"),
    "invalid ref name": (_bad_archive_name, InvalidInputError, "models/archive/bad..name"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_import_refuses_bad_input_and_changes_nothing(tmp_path: Path, case: str) -> None:
    spoil, error, named = REFUSALS[case]
    root = tmp_path / "project"
    make_seed_tree(root / "models")
    spoil(root / "models", tmp_path)
    repo, _ = Repo.init(root)
    before, seed = store_digest(repo), tree_digest(repo.layout.models)

    with pytest.raises(error) as caught:
        import_tree(repo)

    assert named in str(caught.value), str(caught.value)
    assert caught.value.exit_code == 6
    assert store_digest(repo) == before
    assert tree_digest(repo.layout.models) == seed
    assert object_files(repo) == []
    assert repo.refs.read_all() == {}


def test_import_refuses_a_ref_holding_other_content(tmp_path: Path) -> None:
    repo, _ = seed_project(tmp_path)
    import_tree(repo)
    # The old habit: replace the staging link with a hand-copied directory.
    staging = repo.layout.view_link("staging")
    staging.unlink()
    write_version(staging, "v6_handmade", status="staging")
    before, seed = store_digest(repo), tree_digest(repo.layout.models)
    log_bytes = repo.layout.log.read_bytes()

    with pytest.raises(RefusedError) as caught:
        import_tree(repo)

    assert "staging" in str(caught.value)
    assert caught.value.exit_code == 7
    assert store_digest(repo) == before
    assert tree_digest(repo.layout.models) == seed
    assert repo.layout.log.read_bytes() == log_bytes


def test_commit_onto_a_seed_directory_is_refused_before_anything_moves(tmp_path: Path) -> None:
    # A user who commits before importing: models/staging is still a real directory.
    root = tmp_path / "project"
    make_seed_tree(root / "models")
    repo, _ = Repo.init(root)
    source = write_version(tmp_path / "src" / "v6", "v6")
    refs, seed = tree_digest(repo.layout.refs), tree_digest(repo.layout.models)

    with pytest.raises(RefusedError, match="models/staging"):
        commit(repo, source, "staging")

    assert tree_digest(repo.layout.refs) == refs
    assert tree_digest(repo.layout.models) == seed
    assert not repo.layout.transaction.exists(), "a half-applied transaction is left behind"
    assert log(repo) == []


# -- through the CLI ---------------------------------------------------------------------

runner = CliRunner()


def test_cli_import_and_json(tmp_path: Path) -> None:
    repo, _ = seed_project(tmp_path)

    planned = runner.invoke(app, ["--store", str(repo.root), "import", "--dry-run", "--json"])
    done = runner.invoke(app, ["--store", str(repo.root), "import"])
    again = runner.invoke(app, ["--store", str(repo.root), "import", "--json"])

    assert planned.exit_code == 0, (planned.stdout, planned.stderr)
    plan = json.loads(planned.stdout)
    assert plan["dry_run"] is True and plan["action"] == "import"
    assert {m["ref"] for m in plan["moves"]} == SEED_REFS
    assert done.exit_code == 0, (done.stdout, done.stderr)
    for ref in SEED_REFS:
        assert f"create {ref} -> " in done.stdout
    assert again.exit_code == 0, (again.stdout, again.stderr)
    document = json.loads(again.stdout)
    assert document["changed"] is False
    assert document["moves"] == []
    assert len(document["skipped"]) == len(SEED_REFS)
    assert set(Repo(repo.root).refs.read_all()) == SEED_REFS
    assert_consistent(repo)


def test_cli_import_refusal_exits_6_naming_the_path(tmp_path: Path) -> None:
    root = tmp_path / "project"
    make_seed_tree(root / "models")
    _fifo(root / "models", tmp_path)
    repo, _ = Repo.init(root)
    before = store_digest(repo)

    result = runner.invoke(app, ["--store", str(root), "import", "--json"])

    assert result.exit_code == 6, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "models/production/encoders.pkl" in result.stderr
    assert "Traceback" not in result.stderr
    assert store_digest(repo) == before
