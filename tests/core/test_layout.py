"""mstore.core.layout: the one discovery of the store, which every reader uses."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mstore import settings
from mstore.cli import completion
from mstore.core.layout import find_root
from mstore.errors import NotFoundError
from mstore.repo import Repo


def _found_by_every_reader(start: Path, store: str | None = None) -> set[Path | None]:
    """The project root each reader finds from `start` (with `--store` `store`)."""
    try:
        by_repo: Path | None = Repo.discover(start, store).root
    except NotFoundError:
        by_repo = None
    context: Any = SimpleNamespace(find_root=lambda: SimpleNamespace(params={"store": store}))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(start)
        by_completion = completion.find_store(context)
    return {by_repo, find_root(start, store), by_completion}


def test_every_reader_finds_the_same_store(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = repo.root
    nested = root / "models" / "deep" / "er"
    nested.mkdir(parents=True)
    # A `.mstore/` without its config (an interrupted `init`) is no store: the walk goes on.
    (nested / ".mstore").mkdir()
    (tmp_path / "link").symlink_to(root / ".mstore", target_is_directory=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    assert _found_by_every_reader(root) == {root}
    assert _found_by_every_reader(nested) == {root}
    assert settings.find_root(nested) == root
    assert _found_by_every_reader(elsewhere) == {None}
    for named in (root, root / ".mstore", tmp_path / "link"):
        assert _found_by_every_reader(elsewhere, str(named)) == {root}
    assert _found_by_every_reader(root, str(elsewhere)) == {None}  # named: nothing else

    monkeypatch.setenv("MSTORE_DIR", str(root / ".mstore"))
    assert _found_by_every_reader(elsewhere) == {root}
    assert settings.find_root(elsewhere) == root


def test_the_application_falls_back_to_where_it_was_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a store, `mstore.settings` keeps its root (loading then finds no model and
    says so): MSTORE_DIR's directory, else the start."""
    assert settings.find_root(tmp_path) == tmp_path.resolve()
    monkeypatch.setenv("MSTORE_DIR", str(tmp_path / "project" / ".mstore"))
    assert settings.find_root(tmp_path) == (tmp_path / "project").resolve()
