"""Fixtures shared by the guarantee suites."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.guarantees.faults import scratch_directory


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A directory for a sweep's many stores: in RAM where Linux has it."""
    with scratch_directory(tmp_path) as path:
        yield path
