"""Fixtures shared by the guarantee suites."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.guarantees.faults import scratch_directory
from tests.guarantees.hostile import Project, build_project, copy_project, invoke


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A directory for a sweep's many stores: in RAM where Linux has it."""
    with scratch_directory(tmp_path) as path:
        yield path


@pytest.fixture(scope="module")
def project_template(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The hostile suites' store, built once per module (it takes fsyncs)."""
    return build_project(tmp_path_factory.mktemp("hostile-template"))


@pytest.fixture
def project(project_template: Project, tmp_path: Path) -> Project:
    """A private copy of the hostile suites' store: production=v4, staging=v5."""
    return copy_project(project_template, tmp_path)


@pytest.fixture
def sealed(project: Project) -> Project:
    """`project` with its views sealed again (a copy loses their protection), so that
    `verify` of it passes."""
    result = invoke(project.root, "restore")
    assert result.exit_code == 0, result.stderr
    assert invoke(project.root, "verify").exit_code == 0
    return project
