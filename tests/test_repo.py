"""mstore.repo: one store, opened or created, found from anywhere below its project, and
revisions resolved (ref, REF@{N}, id prefix) to manifest ids."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mstore
from mstore.core.config import Config, read_config
from mstore.core.fsutil import StoreLock
from mstore.errors import (
    AmbiguousRevisionError,
    InvalidInputError,
    LockedError,
    NotFoundError,
    RefusedError,
)
from mstore.ops.commit import commit
from mstore.ops.gating import add_gate, remove_gate
from mstore.ops.relink import relink
from mstore.ops.remote_config import add_remote, remove_remote
from mstore.repo import Repo
from tests.helpers import store_digest, write_version


@pytest.fixture
def store(tmp_path: Path) -> Repo:
    """production moved twice (v1, then v2), staging = v2."""
    root = tmp_path / "project"
    root.mkdir()
    repo, _ = Repo.init(root, "copy")
    for version in ("v1", "v2"):
        commit(repo, write_version(tmp_path / "src" / version, version), "production")
    commit(repo, write_version(tmp_path / "src" / "v2", "v2"), "staging")
    return Repo(root)


def test_init_creates_the_store_once(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    repo, created = Repo.init(root, "copy")
    assert created and repo.config.link_mode == "copy"
    assert all(p.is_dir() for p in (repo.layout.objects, repo.layout.refs, repo.layout.models))
    before = store_digest(repo)

    again, created = Repo.init(root, "symlink")  # an existing store is opened as it is

    assert not created and again.config.link_mode == "copy"
    assert store_digest(again) == before


def test_init_refuses_an_unknown_link_mode_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="unknown link mode 'tape'"):
        Repo.init(tmp_path, "tape")
    assert not (tmp_path / ".mstore").exists()


def test_auto_is_resolved_once_and_recorded_with_its_reason(tmp_path: Path) -> None:
    repo, _ = Repo.init(tmp_path)
    assert repo.config.link_mode in ("reflink", "copy", "hardlink")
    assert repo.config.link_reason  # why this mode, as init found it


def test_the_store_is_found_from_below_its_project(store: Repo) -> None:
    deep = store.root / "models" / "production"
    assert Repo.discover(deep).root == store.root
    assert Repo.discover(store.root / ".mstore").root == store.root


def test_an_explicit_store_wins_and_may_name_dot_mstore(
    store: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert Repo.discover(elsewhere, str(store.root)).root == store.root
    assert Repo.discover(elsewhere, str(store.root / ".mstore")).root == store.root
    monkeypatch.setenv("MSTORE_DIR", str(store.root))
    assert Repo.discover(elsewhere).root == store.root
    with pytest.raises(NotFoundError, match="no mstore store at"):
        Repo.discover(store.root, str(elsewhere))


def test_no_store_above_is_named_with_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as info:
        Repo.discover(tmp_path)
    assert str(tmp_path) in str(info.value) and "mstore init" in str(info.value)


def test_a_ref_name_resolves_to_its_value(store: Repo) -> None:
    assert store.resolve("production") == store.refs.read("production")
    with pytest.raises(NotFoundError, match="no such ref"):
        store.resolve("candidate")
    with pytest.raises(InvalidInputError):
        store.resolve("")


def test_ref_at_n_is_the_value_n_moves_ago(store: Repo) -> None:
    now, before = store.resolve("production@{0}"), store.resolve("production@{1}")
    assert now == store.refs.read("production") and before != now
    assert store.manifest(before).metadata["version"] == "v1"  # type: ignore[index]
    with pytest.raises(NotFoundError, match="names a time before ref 'production' existed"):
        store.resolve("production@{2}")
    with pytest.raises(NotFoundError, match="fewer than 9 moves"):
        store.resolve("production@{9}")


def test_an_id_prefix_names_the_one_manifest_it_starts(store: Repo) -> None:
    value = store.refs.read("production") or ""
    assert store.resolve(value[:6]) == value
    assert store.resolve(value.upper()) == value
    with pytest.raises(NotFoundError, match="at least 6 hex digits"):
        store.resolve(value[:5])
    data_object = store.manifest(value).files["model.pth"].id
    with pytest.raises(NotFoundError, match="no manifest id starts with it"):
        store.resolve(data_object[:12])  # an object, not a manifest


def test_an_ambiguous_prefix_lists_the_candidates(
    store: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two manifests sharing 6 digits are rare: the object lookup is made to find both."""
    both = sorted([store.resolve("production"), store.resolve("production@{1}")])
    monkeypatch.setattr(store.objects, "find_prefix", lambda _prefix: both)
    with pytest.raises(AmbiguousRevisionError) as info:
        store.resolve("abcdef")
    assert all(m[:12] in str(info.value) for m in both)


def test_a_manifest_is_read_once_and_validated(store: Repo) -> None:
    value = store.refs.read("production") or ""
    assert store.manifest(value) is store.manifest(value)
    with pytest.raises(NotFoundError):
        store.manifest("f" * 64)


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
