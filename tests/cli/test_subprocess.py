"""The installed `mstore` console script, run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from mstore.cli.app import app
from mstore.repo import Repo
from tests.helpers import assert_consistent, store_digest, write_version

MSTORE = Path(sys.executable).parent / "mstore"


def run(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MSTORE), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_console_script_is_installed() -> None:
    assert MSTORE.is_file() and os.access(MSTORE, os.X_OK), MSTORE


def test_help_lists_every_command() -> None:
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert {"init", "commit", "list", "info", "log", "diff", "checkout", "promote", "rollback"} <= (
        set(commands)
    )

    done = run("--help")

    assert done.returncode == 0, done.stderr
    assert "Exit codes" in done.stdout
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")}
    assert set(commands) <= listed, set(commands) - listed


def test_commit_promote_and_log_json(repo: Repo, tmp_path: Path) -> None:
    v4 = write_version(tmp_path / "src" / "v4", "v4_no_leakage")
    v5 = write_version(tmp_path / "src" / "v5", "v5_candidate")

    first = run("--store", repo.root, "commit", v4, "--to", "production", "--json")
    second = run("--store", repo.root, "commit", v5, "--to", "staging", "--json")
    promote = run("--store", repo.root, "promote", "staging", "-m", "ship v5")
    entries = run("log", "--json", cwd=repo.root / "models")

    for done in (first, second, promote, entries):
        assert done.returncode == 0, done.stderr
    v4_id = json.loads(first.stdout)["manifest"]
    v5_id = json.loads(second.stdout)["manifest"]
    assert f"move production: {v4_id[:12]} -> {v5_id[:12]}" in promote.stdout
    document = json.loads(entries.stdout)
    assert [e["action"] for e in document] == ["promote", "promote", "commit", "commit"]
    promoted = document[:2]
    assert len({e["txn"] for e in promoted}) == 1
    assert {e["message"] for e in promoted} == {"ship v5"}
    [archive] = [e["ref"] for e in promoted if e["ref"] != "production"]
    assert archive.startswith("archive/v4_")
    assert {(e["ref"], e["old"], e["new"]) for e in promoted} == {
        ("production", v4_id, v5_id),
        (archive, None, v4_id),
    }
    assert {e["who"] for e in document} == {"tester"}
    for entry in document:
        assert set(entry) == {"ref", "old", "new", "who", "when", "action", "message", "txn"}
    assert Repo(repo.root).active_environment() == "production"
    assert_consistent(repo)


@pytest.mark.parametrize(
    ("args", "code", "name"),
    [
        (["info", "nosuch"], 4, "'nosuch'"),
        (["commit", "{root}/missing", "--to", "staging"], 4, "missing"),
        (["commit", "{root}/models", "--to", "a..b"], 6, "'a..b'"),
    ],
)
def test_error_exit_codes(repo: Repo, args: list[str], code: int, name: str) -> None:
    before = store_digest(repo)

    done = run("--store", repo.root, *(a.format(root=repo.root) for a in args))

    assert done.returncode == code, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("mstore: error: ")
    assert done.stderr.count("\n") == 1
    assert name in done.stderr
    assert "Traceback" not in done.stderr
    assert store_digest(repo) == before
    assert_consistent(repo)


def test_no_store_exits_4(tmp_path: Path) -> None:
    done = run("--store", tmp_path, "list")

    assert done.returncode == 4
    assert (
        done.stderr == f"mstore: error: no mstore store at {tmp_path} (run `mstore init` there)\n"
    )
    assert not (tmp_path / ".mstore").exists()
