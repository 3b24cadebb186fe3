"""mstore.repo: one store, opened or created, found from anywhere below its project, and
revisions resolved (ref, REF@{N}, id prefix) to manifest ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from mstore.errors import AmbiguousRevisionError, InvalidInputError, NotFoundError
from mstore.ops.commit import commit
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
