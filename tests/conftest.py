from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mstore.repo import Repo


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
