"""scripts/switch_model_version.py: the seed's switch script, run as a real process."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from mstore.errors import EXIT_CODES
from mstore.ops import show as inspect_ops
from mstore.ops import switch as switch_ops
from mstore.ops.importing import import_tree
from mstore.repo import Repo
from tests.helpers import LOCAL_STATE, assert_consistent, store_digest, tree_digest
from tests.integration.test_import import SEED, SEED_REFS, seed_project

PROJECT = Path(__file__).resolve().parents[2]
SCRIPT = PROJECT / "scripts" / "switch_model_version.py"
ENV_TEXT = (
    b"# Which model version the application loads\r\n"
    b"export API_KEY='k#1'\n"
    b"\n"
    b"MODEL_ENVIRONMENT=production  # Default\n"
    b"LOG_LEVEL=debug"
)


def switch(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--store", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


def marked(stdout: str) -> dict[str, bool]:
    """ref -> is it marked active, from the `--list` table."""
    rows: dict[str, bool] = {}
    for line in stdout.splitlines():
        if line[:3] in (" * ", "   ") and len(line.split()) > 1:
            fields = line.split()
            active = fields[0] == "*"
            rows[fields[1] if active else fields[0]] = active
    return rows


@pytest.fixture
def store(tmp_path: Path) -> Repo:
    """The hand-made seed tree, imported; .env with comments, CRLF and no final newline."""
    repo, _ = seed_project(tmp_path)
    import_tree(repo)
    repo.layout.env_file.write_bytes(ENV_TEXT)
    return repo


def test_list_shows_every_ref_and_marks_the_active_one(store: Repo) -> None:
    done = switch(store.root, "--list")

    assert done.returncode == 0, done.stderr
    assert marked(done.stdout) == {ref: ref == "production" for ref in SEED_REFS}
    for version in SEED:
        assert version.version in done.stdout


def test_info_prints_metadata_and_files(store: Repo) -> None:
    done = switch(store.root, "--info", "archive/v3_2024-11-10")

    assert done.returncode == 0, done.stderr
    manifest = store.refs.read("archive/v3_2024-11-10")
    assert manifest is not None and manifest in done.stdout
    for name in ("model.pth", "encoders.pkl", "metadata.json"):
        assert name in done.stdout
    metadata = json.loads(done.stdout[done.stdout.index("Metadata:") + len("Metadata:") :])
    assert metadata == next(v.metadata() for v in SEED if v.ref == "archive/v3_2024-11-10")


def test_dry_run_prints_the_change_and_changes_nothing(store: Repo) -> None:
    before = store_digest(store)

    done = switch(store.root, "--env", "staging", "--dry-run")

    assert done.returncode == 0, done.stderr
    assert "MODEL_ENVIRONMENT=staging" in done.stdout
    assert "production" in done.stdout
    assert "dry-run" in done.stdout
    assert store_digest(store) == before
    assert store.layout.env_file.read_bytes() == ENV_TEXT


def test_env_switches_and_keeps_every_other_byte_of_env(store: Repo) -> None:
    done = switch(store.root, "--env", "staging")

    assert done.returncode == 0, done.stderr
    assert "MODEL_ENVIRONMENT=staging" in done.stdout
    assert store.layout.env_file.read_bytes() == ENV_TEXT.replace(
        b"MODEL_ENVIRONMENT=production", b"MODEL_ENVIRONMENT=staging"
    )
    assert Repo(store.root).active_environment() == "staging"
    assert marked(switch(store.root, "--list").stdout)["staging"] is True
    assert_consistent(store)


def test_env_to_the_active_version_changes_nothing(store: Repo) -> None:
    before = store_digest(store)

    done = switch(store.root, "--env", "production")

    assert done.returncode == 0, done.stderr
    assert "already production" in done.stdout
    assert store_digest(store) == before


@pytest.mark.parametrize(
    ("environment", "code"), [("does-not-exist", 4), ("archive/v9_2024-12-01", 4), ("../x", 6)]
)
def test_bad_environment_exits_with_mstore_code(store: Repo, environment: str, code: int) -> None:
    before = store_digest(store)

    done = switch(store.root, "--env", environment)

    assert done.returncode == code, (done.stdout, done.stderr)
    assert environment in done.stderr
    assert "Traceback" not in done.stderr
    assert store_digest(store) == before


def test_missing_store_exits_4(tmp_path: Path) -> None:
    done = switch(tmp_path, "--list")

    assert done.returncode == 4, (done.stdout, done.stderr)
    assert str(tmp_path) in done.stderr


# -- the shipped example store -----------------------------------------------------------


def project_state() -> str:
    return tree_digest(PROJECT / ".mstore", skip=LOCAL_STATE) + tree_digest(
        PROJECT / "models", PROJECT / ".env"
    )


def test_example_store_copy(tmp_path: Path) -> None:
    shipped = project_state()
    copy = tmp_path / "example"
    copy.mkdir()
    for name in ("models", ".mstore", ".env"):
        subprocess.run(["cp", "-a", str(PROJECT / name), str(copy / name)], check=True)
    repo = Repo(copy)
    refs = set(repo.refs.read_all())

    listed = switch(copy, "--list")
    info = switch(copy, "--info", "archive/v3_2024-11-10")
    switched = switch(copy, "--env", "staging")

    assert listed.returncode == 0, listed.stderr
    assert marked(listed.stdout) == {ref: ref == "production" for ref in refs}
    assert len(refs) == 6
    assert info.returncode == 0, info.stderr
    assert '"version": "v3' in info.stdout
    assert switched.returncode == 0, switched.stderr
    assert Repo(copy).active_environment() == "staging"
    assert (copy / ".env").read_text().count("MODEL_ENVIRONMENT=staging") == 1
    assert_consistent(repo)
    assert project_state() == shipped


# -- failures: one line, a documented exit code, no traceback without --debug ------------


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("switch_model_version", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("error", [KeyError("production"), RuntimeError("boom")])
def test_an_internal_error_is_one_line_and_exit_1(
    store: Repo,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: Exception,
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(inspect_ops, "list_refs", broken)
    script = load_script()

    code = script.main(["--store", str(store.root), "--list"])

    assert code == 1
    captured = capsys.readouterr()
    assert captured.err == (
        f"error: internal error: {type(error).__name__}: {error}; rerun with --debug\n"
    )
    with pytest.raises(type(error)):
        script.main(["--store", str(store.root), "--list", "--debug"])


def test_an_os_error_names_the_path(
    store: Repo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(store.root / ".env"))

    monkeypatch.setattr(switch_ops, "checkout", broken)

    code = load_script().main(["--store", str(store.root), "--env", "staging"])

    assert code == 1
    assert capsys.readouterr().err == f"error: Permission denied ({store.root / '.env'})\n"


@pytest.mark.parametrize("buffered", [True, False])
def test_a_closed_stdout_ends_quietly(store: Repo, buffered: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "--store", str(store.root), "--list"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=env,
        )
    finally:
        os.close(write_end)

    assert (done.returncode, done.stderr) == (1, "")


def test_help_lists_the_exit_codes() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )

    assert done.returncode == 0
    assert "--debug" in done.stdout
    for code, text in EXIT_CODES.items():
        listed = f"  {code:<3} {text}\n" in done.stdout
        assert listed is (code != 8), code  # the script has no status check


def test_usage_errors_exit_2(store: Repo) -> None:
    done = switch(store.root, "--env")

    assert done.returncode == 2 and "Traceback" not in done.stderr
