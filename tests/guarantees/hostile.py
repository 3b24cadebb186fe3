"""What the hostile-input suites share: a small store to attack, running a command
on it, and checking that a refusal says what it refused and changed nothing."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from typer.testing import CliRunner, Result

from mstore.cli.app import app
from mstore.core.layout import Layout
from mstore.ops.commit import commit
from mstore.repo import Repo
from tests.helpers import store_digest, tree_digest, write_version

runner = CliRunner()


@dataclass(frozen=True)
class Project:
    """A store with production=v4 and staging=v5, and a place for new sources."""

    root: Path
    src: Path
    production: str
    staging: str

    @property
    def store(self) -> Path:
        return self.root / ".mstore"

    def repo(self) -> Repo:
        return Repo(self.root)


def build_project(base: Path) -> Project:
    """Create the store every hostile case starts from under `base`."""
    root, src = base / "project", base / "src"
    root.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MSTORE_AUTHOR", "tester")
        repo, _ = Repo.init(root)
        production = commit(repo, write_version(src / "v4", "v4"), "production").manifest_id
        staging = commit(
            repo, write_version(src / "v5", "v5", model=b"v5 weights"), "staging"
        ).manifest_id
    # SQLite removes a cache's -wal and -shm files with its last connection: closed now,
    # not by the garbage collector while a test copies the store.
    repo.hash_cache.close()
    repo.index.close()
    assert production is not None and staging is not None
    return Project(root, src, production, staging)


def copy_project(template: Project, base: Path) -> Project:
    """A private copy of `template` under `base`."""
    root, src = base / "project", base / "src"
    shutil.copytree(template.root, root, symlinks=True)
    shutil.copytree(template.src, src, symlinks=True)
    return Project(root, src, template.production, template.staging)


class _Unopened:
    """Just the layout of a store, for `store_digest` of a store that cannot be opened
    (a damaged config)."""

    def __init__(self, root: Path) -> None:
        self.layout = Layout(root)


def digest(root: Path) -> str:
    """`store_digest`: .mstore/ (but local state), models/ and .env."""
    return store_digest(cast(Repo, _Unopened(root)))


def invoke(root: Path, *args: object) -> Result:
    return runner.invoke(app, ["--store", str(root), *map(str, args)])


def assert_refused(result: Result, code: int, *names: str) -> str:
    """Exit `code`, one `mstore: error:` line on stderr naming `names`, no traceback."""
    detail = (result.exit_code, result.stdout, result.stderr, repr(result.exception))
    assert result.exit_code == code, detail
    assert isinstance(result.exception, SystemExit), detail
    assert "Traceback" not in result.stdout + result.stderr, detail
    lines = result.stderr.splitlines()
    assert len(lines) == 1, detail
    assert lines[0].startswith("mstore: error: "), detail
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def refused(root: Path, code: int, args: list[Any], *names: str) -> str:
    """Run one command that must be refused, and check it changed nothing."""
    before = digest(root)
    line = assert_refused(invoke(root, *args), code, *names)
    assert digest(root) == before, f"{args} changed the store"
    return line


def visible_digest(root: Path) -> str:
    """What readers and later commands see: config, refs, log, journal, models/, .env."""
    store = root / ".mstore"
    return tree_digest(
        store / "config",
        store / "refs",
        store / "log",
        store / "transaction",
        root / "models",
        root / ".env",
    )
