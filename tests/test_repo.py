"""mstore/repo.py: `Repo.update_config`, the one read-modify-write of `.mstore/config`.

Every command that changes the config (gate add/remove, remote add/remove, relink,
clone) goes through it: under the store lock, the file is re-read, changed and written
whole, and the Repo's `config` (and its views' link mode) follow it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mstore
from mstore.core.config import Config, read_config
from mstore.core.fsutil import StoreLock
from mstore.errors import LockedError, RefusedError
from mstore.ops.gating import add_gate, remove_gate
from mstore.ops.relink import relink
from mstore.ops.remote_config import add_remote, remove_remote
from mstore.repo import Repo

PACKAGE = Path(mstore.__file__).resolve().parent


def test_a_change_made_meanwhile_by_another_command_is_kept(repo: Repo, tmp_path: Path) -> None:
    other = Repo(repo.root)  # another command, which read the config before this one
    add_remote(repo, "origin", str(tmp_path / "remote"))

    config = other.update_config(lambda c: c.with_gates({"production": ("final_val_mae<=6",)}))

    assert dict(config.remotes) == {"origin": str(tmp_path / "remote")}
    assert read_config(repo.layout.config) == config == other.config


def test_the_change_is_made_under_the_store_lock(repo: Repo) -> None:
    before = repo.layout.config.read_bytes()
    repo.lock_timeout = 0

    with StoreLock(repo.layout.lock, "elsewhere"), pytest.raises(LockedError):
        repo.update_config(lambda c: c.with_gates({"production": ("final_val_mae<=6",)}))

    assert repo.layout.config.read_bytes() == before


def test_inside_the_callers_lock_it_takes_no_second_one(repo: Repo) -> None:
    repo.lock_timeout = 0

    with repo.locked("gate add"):
        config = repo.update_config(lambda c: c.with_remotes({"backup": "/mnt/b"}))

    assert read_config(repo.layout.config) == config


def test_a_refused_change_writes_nothing(repo: Repo) -> None:
    before = repo.layout.config.read_bytes()

    def refuse(config: Config) -> Config:
        raise RefusedError("no")

    with pytest.raises(RefusedError):
        repo.update_config(refuse)

    assert repo.layout.config.read_bytes() == before


def test_an_unchanged_config_is_not_rewritten(repo: Repo) -> None:
    inode = repo.layout.config.stat().st_ino

    repo.update_config(lambda c: c)

    assert repo.layout.config.stat().st_ino == inode


def test_the_verbs_leave_the_repo_showing_the_config_they_wrote(repo: Repo, tmp_path: Path) -> None:
    add_gate(repo, "production", "final_val_mae<=6")
    assert repo.config == read_config(repo.layout.config)
    add_remote(repo, "origin", str(tmp_path / "remote"))
    assert repo.config == read_config(repo.layout.config)
    remove_gate(repo, "production", "final_val_mae<=6")
    remove_remote(repo, "origin")
    assert (
        repo.config
        == read_config(repo.layout.config)
        == Config(
            link_mode=repo.config.link_mode,
            protection=repo.config.protection,
            link_reason=repo.config.link_reason,
        )
    )

    relink(repo, "copy")

    assert repo.config == read_config(repo.layout.config)
    assert (repo.config.link_mode, repo.views.link_mode) == ("copy", "copy")


def test_no_module_but_repo_writes_the_config_or_sets_a_repos_config() -> None:
    """`Repo.update_config` is the one read-modify-write: nothing else calls
    `write_config` (Repo.init writes a new store's first config) or assigns
    `repo.config` / `repo.views`."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts in {("repo.py",), ("core", "config.py")}:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "write_config":
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} calls write_config")
            if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if (
                        isinstance(target, ast.Attribute)
                        and target.attr in {"config", "views"}
                        and getattr(target.value, "id", None) == "repo"
                    ):
                        found.append(
                            f"{path.relative_to(PACKAGE)}:{node.lineno} sets repo.{target.attr}"
                        )

    assert found == []
