"""How the tests are laid out, and the fixtures every test shares.

    tests/<layer>/test_<module>.py   the tests of mstore/<layer>/<module>.py: every
                                     module of core, views and transfer has one
                                     (tests/structure/test_test_files.py fails when one
                                     is missing); chunks, caches, checkpoints and
                                     workflow have them for the modules tested alone
    tests/integration/               the verbs (mstore.ops) and the API on real stores
    tests/cli/                       the command line: output, exit codes, help, shells
    tests/guarantees/                promises across modules: a kill or a fault at every
                                     step, hostile input, concurrent readers and writers
    tests/remote/                    push, pull, clone and remote upkeep on every kind of
                                     remote: a directory, moto and Ceph's RADOS Gateway
    tests/trust/                     signed ref statements, what a pickle would import
    tests/structure/                 the package's shape: layer ranks, a test per module
    tests/helpers.py                 stores, versions, digests, `assert_consistent`

The long sweeps are marked `slow`. `pytest` alone (the quick run) deselects them
(`-m 'not slow'` in pyproject.toml, counted in its summary); `pytest -m slow` runs them
alone, `pytest -m ''` runs everything, and scripts/test.sh (the README's command, CI's)
runs everything on two workers. `pytest --stress` runs the sweeps at full length.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mstore.repo import Repo
from mstore.views import protection


@pytest.fixture(autouse=True)
def _unprotect_tmp_path(request: pytest.FixtureRequest) -> Iterator[None]:
    """Clear the immutable flags a test's stores set (the default link mode protects
    objects), so that pytest can delete its temporary directories."""
    yield
    path = getattr(request.node, "funcargs", {}).get("tmp_path")
    if isinstance(path, Path) and path.is_dir():
        with contextlib.suppress(OSError):  # e.g. a test left ioctl monkeypatched
            protection.protect_tree(path, on=False)
        _make_writable(path)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The same for every temporary directory of the session (module-scoped stores)."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    base = getattr(factory, "_basetemp", None) if factory is not None else None
    if base is not None and Path(base).is_dir():
        protection.protect_tree(Path(base), on=False)
        _make_writable(Path(base))


def _make_writable(root: Path) -> None:
    """Read-only view directories (a plain user's protected store) back to 0755."""
    for directory, _dirs, _names in os.walk(root):
        mode = os.lstat(directory).st_mode
        if not mode & stat.S_IWUSR:
            os.chmod(directory, 0o755)


@pytest.fixture(autouse=True)
def _fixed_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSTORE_AUTHOR", "tester")
    monkeypatch.delenv("MSTORE_DIR", raising=False)
    monkeypatch.delenv("MODEL_ENVIRONMENT", raising=False)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Repo]:
    """A fresh store in a real temporary directory (project root = tmp_path/project)."""
    root = tmp_path / "project"
    root.mkdir()
    store, _ = Repo.init(root)
    yield store


@pytest.fixture
def copy_repo(tmp_path: Path) -> Iterator[Repo]:
    """A fresh store in copy mode, for tests that damage views and objects by hand to
    see them found and repaired (the default mode's protection refuses those writes)."""
    root = tmp_path / "project"
    root.mkdir()
    store, _ = Repo.init(root, "copy")
    yield store


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--stress",
        action="store_true",
        default=False,
        help="Run the crash, fault and concurrency suites at full length (minutes).",
    )


@pytest.fixture
def stress(request: pytest.FixtureRequest) -> bool:
    """True under `pytest --stress`: suites loop longer (CI runs the short form)."""
    return bool(request.config.getoption("--stress"))
