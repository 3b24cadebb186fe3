"""`mstore.settings`: the seed's config/settings.py contract on top of mstore views."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mstore.ops.commit import commit
from mstore.ops.importing import import_tree
from mstore.ops.switch import checkout, promote, rollback
from mstore.repo import Repo
from mstore.settings import Settings
from tests.helpers import assert_consistent, write_version
from tests.integration.test_import import seed_project

ARCHIVE = "archive/v3_2024-11-10"
BYTES = {
    "v3": (b"weights v3", b"encoders v3"),
    "v4": (b"weights v4", b"encoders v4"),
    "v5": (b"weights v5", b"encoders v5"),
}


def commit_version(repo: Repo, tmp_path: Path, label: str, ref: str) -> str:
    model, encoders = BYTES[label]
    source = write_version(tmp_path / "src" / label, label, model=model, encoders=encoders)
    manifest = commit(repo, source, ref).manifest_id
    assert manifest is not None
    return manifest


@pytest.fixture
def store(repo: Repo, tmp_path: Path) -> Repo:
    """production = v4, staging = v5, archive/v3_2024-11-10 = v3; no .env yet."""
    commit_version(repo, tmp_path, "v4", "production")
    commit_version(repo, tmp_path, "v5", "staging")
    commit_version(repo, tmp_path, "v3", ARCHIVE)
    return repo


def loaded(settings: Settings) -> tuple[bytes, bytes]:
    """What an application loads: model and encoders, with plain open()."""
    with open(settings.active_model_path, "rb") as f:
        model = f.read()
    with open(settings.active_encoder_path, "rb") as f:
        encoders = f.read()
    return model, encoders


# -- paths -------------------------------------------------------------------------------


def test_paths_go_through_the_models_link(store: Repo) -> None:
    settings = Settings(store.root)

    assert settings.model_environment == "production"
    assert settings.active_model_path == store.root / "models" / "production" / "model.pth"
    assert settings.active_encoder_path == store.root / "models" / "production" / "encoders.pkl"
    assert settings.model_metadata_path == store.root / "models" / "production" / "metadata.json"
    assert loaded(settings) == BYTES["v4"]
    with open(settings.model_metadata_path, "rb") as f:
        assert json.load(f)["version"] == "v4"


def test_paths_of_an_imported_store_give_the_seed_bytes(tmp_path: Path) -> None:
    repo, backup = seed_project(tmp_path)
    import_tree(repo)

    for environment in ("production", "staging", ARCHIVE):
        settings = Settings(repo.root, environment)
        original = backup.joinpath(*environment.split("/"))
        assert settings.model_dir == repo.root / "models" / environment
        assert loaded(settings) == (
            (original / "model.pth").read_bytes(),
            (original / "encoders.pkl").read_bytes(),
        )
        assert settings.model_metadata_path.read_bytes() == (
            (original / "metadata.json").read_bytes()
        )


# -- which environment -------------------------------------------------------------------


def test_default_environment_is_production(store: Repo) -> None:
    assert not store.layout.env_file.exists()

    assert Settings(store.root).model_environment == "production"


def test_env_file_beats_the_default(store: Repo) -> None:
    store.layout.env_file.write_text("MODEL_ENVIRONMENT=staging\n")

    settings = Settings(store.root)

    assert settings.model_environment == "staging"
    assert loaded(settings) == BYTES["v5"]


def test_process_environment_beats_env_file(store: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    store.layout.env_file.write_text("MODEL_ENVIRONMENT=staging\n")
    monkeypatch.setenv("MODEL_ENVIRONMENT", ARCHIVE)

    settings = Settings(store.root)

    assert settings.model_environment == ARCHIVE
    assert settings.active_model_path == store.root / "models" / "archive" / "v3_2024-11-10" / (
        "model.pth"
    )
    assert loaded(settings) == BYTES["v3"]


@pytest.mark.parametrize(
    "text",
    [
        "# Which model version the application loads\n"
        "export API_KEY='k#1'\n"
        "\n"
        "MODEL_ENVIRONMENT=staging  # switched by the release script\n"
        "LOG_LEVEL=debug\n",
        'export MODEL_ENVIRONMENT="staging"\nOTHER=1',
        "MODEL_ENVIRONMENT=production\r\nMODEL_ENVIRONMENT='staging'\r\n",
        "# MODEL_ENVIRONMENT=production\nMODEL_ENVIRONMENT = staging\n",
    ],
)
def test_env_file_with_comments_and_other_lines(store: Repo, text: str) -> None:
    store.layout.env_file.write_bytes(text.encode())

    settings = Settings(store.root)

    assert settings.model_environment == "staging"
    assert loaded(settings) == BYTES["v5"]


def test_env_file_without_the_variable_means_production(store: Repo) -> None:
    store.layout.env_file.write_text("# nothing chosen yet\nLOG_LEVEL=info\n")

    assert Settings(store.root).model_environment == "production"
    assert loaded(Settings(store.root)) == BYTES["v4"]


def test_model_and_encoder_names_come_from_metadata(repo: Repo, tmp_path: Path) -> None:
    source = tmp_path / "src" / "custom"
    source.mkdir(parents=True)
    (source / "weights.pt").write_bytes(b"custom weights")
    (source / "label_encoders.pkl").write_bytes(b"custom encoders")
    (source / "metadata.json").write_text(
        json.dumps(
            {
                "version": "v6_custom",
                "model_name": "weights.pt",
                "encoder_name": "label_encoders.pkl",
                "status": "active",
            },
            indent=2,
        )
        + "\n"
    )
    commit(repo, source, "production")

    settings = Settings(repo.root)
    snapshot = settings.snapshot()

    assert settings.active_model_path == repo.root / "models" / "production" / "weights.pt"
    assert settings.active_encoder_path == (
        repo.root / "models" / "production" / "label_encoders.pkl"
    )
    assert loaded(settings) == (b"custom weights", b"custom encoders")
    assert snapshot.model_path.name == "weights.pt"
    assert snapshot.encoder_path.name == "label_encoders.pkl"
    assert snapshot.model_path.read_bytes() == b"custom weights"


# -- snapshots ---------------------------------------------------------------------------


def test_snapshot_is_one_resolved_view(store: Repo) -> None:
    snapshot = Settings(store.root).snapshot()

    directory = snapshot.directory
    assert directory == (store.root / "models" / "production").resolve()
    assert directory.parent == store.layout.views.resolve()
    assert not directory.is_symlink()
    assert {
        snapshot.model_path.parent,
        snapshot.encoder_path.parent,
        snapshot.metadata_path.parent,
    } == {directory}
    assert snapshot.environment == "production"
    assert snapshot.version == "v4"
    assert snapshot.metadata["status"] == "active"


def test_promote_between_two_loads_does_not_mix_versions(store: Repo) -> None:
    snapshot = Settings(store.root).snapshot()
    with open(snapshot.model_path, "rb") as f:
        model = f.read()

    promote(store, "staging")

    with open(snapshot.encoder_path, "rb") as f:
        encoders = f.read()
    assert (model, encoders) == BYTES["v4"]
    assert json.loads(snapshot.metadata_path.read_bytes())["version"] == "v4"
    fresh = Settings(store.root).snapshot()
    assert fresh.directory != snapshot.directory
    assert fresh.version == "v5"
    assert (fresh.model_path.read_bytes(), fresh.encoder_path.read_bytes()) == BYTES["v5"]
    assert loaded(Settings(store.root)) == BYTES["v5"]
    assert_consistent(store)


def test_each_switch_is_seen_by_the_next_load(store: Repo) -> None:
    settings = Settings(store.root)
    assert loaded(settings) == BYTES["v4"]

    checkout(store, "staging")
    assert settings.model_environment == "staging"
    assert loaded(settings) == BYTES["v5"]

    checkout(store, ARCHIVE)
    assert loaded(settings) == BYTES["v3"]
    assert settings.snapshot().version == "v3"

    promote(store, "staging")
    assert settings.model_environment == "production"
    assert loaded(settings) == BYTES["v5"]

    rollback(store)
    assert loaded(settings) == BYTES["v4"]
    assert settings.snapshot().version == "v4"
    assert_consistent(store)


# -- import cost -------------------------------------------------------------------------


def test_importing_settings_loads_no_cli_or_hashing_modules() -> None:
    code = (
        "import mstore.settings, sys; print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'typer','blake3','orjson','click','rich'}))"
    )

    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
