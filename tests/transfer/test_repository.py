"""mstore/transfer/repository.py: the repository id a store shares with its remotes."""

from __future__ import annotations

from pathlib import Path

from mstore.repo import Repo
from mstore.transfer.repository import store_repository
from tests.transfer.conftest import new_store

THEIRS = "5" * 32


def test_a_store_with_an_id_keeps_it(tmp_path: Path) -> None:
    repo = new_store(tmp_path / "a")
    repo.update_config(lambda c: c.with_repository("1" * 32))

    assert store_repository(repo, THEIRS) == "1" * 32
    assert Repo(repo.root).config.repository == "1" * 32


def test_a_store_without_one_takes_the_remote_s_and_records_it(tmp_path: Path) -> None:
    repo = new_store(tmp_path / "a")

    assert store_repository(repo, THEIRS) == THEIRS
    assert Repo(repo.root).config.repository == THEIRS


def test_a_store_and_a_remote_without_one_get_a_new_one_that_stays(tmp_path: Path) -> None:
    repo = new_store(tmp_path / "a")

    made = store_repository(repo)

    assert len(made) == 32 and int(made, 16) >= 0
    assert store_repository(Repo(repo.root), THEIRS) == made
