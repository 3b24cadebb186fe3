"""Crash recovery: a transaction interrupted after its journal is rolled forward by the next
command that takes the store lock; one interrupted before its journal changes nothing."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

import mstore.core.envfile
import mstore.transaction
from mstore.core.history import LogEntry
from mstore.errors import IntegrityError
from mstore.ops.commit import CommitOptions, commit
from mstore.ops.show import log
from mstore.ops.switch import checkout, default_archive_name, promote
from mstore.ops.verify import verify
from mstore.repo import Repo
from tests.helpers import assert_consistent, store_digest, tree_digest, write_version


class SimulatedCrash(Exception):
    """Stands for the process dying at this point."""


def crash_on_call(original: Callable[..., Any], call: int = 1) -> Callable[..., Any]:
    """`original`, except that its `call`-th invocation raises SimulatedCrash."""
    calls = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == call:
            raise SimulatedCrash(f"crash in {getattr(original, '__name__', original)}")
        return original(*args, **kwargs)

    return wrapper


def visible_state(repo: Repo) -> str:
    """Refs, log, journal, models/ and .env: everything but objects, views and tmp."""
    layout = repo.layout
    return tree_digest(layout.refs, layout.log, layout.transaction, layout.models, layout.env_file)


def journal_entries(repo: Repo) -> list[dict[str, Any]]:
    document = orjson.loads(repo.layout.transaction.read_bytes())
    entries: list[dict[str, Any]] = document["entries"]
    return entries


def view_metadata(repo: Repo, ref: str) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(
        (repo.layout.view_link(ref) / "metadata.json").read_bytes()
    )
    return document


def moves(entries: list[LogEntry]) -> list[tuple[str, str | None, str | None]]:
    return [(e.ref, e.old, e.new) for e in entries]


@pytest.fixture
def seeded(repo: Repo, tmp_path: Path) -> tuple[str, str, str]:
    """production=v4, staging=v5, active environment staging; returns (v4, v5, archive)."""
    src = tmp_path / "src"
    v4 = commit(repo, write_version(src / "v4", "v4_no_leakage"), "production").manifest_id
    v5 = commit(repo, write_version(src / "v5", "v5_candidate"), "staging").manifest_id
    assert v4 is not None and v5 is not None
    checkout(repo, "staging")
    assert repo.active_environment() == "staging"
    return v4, v5, default_archive_name(repo, v4)


def assert_promoted(root: Path, v4: str, v5: str, archive: str) -> None:
    """The store looks exactly as if `promote staging` had run without a crash."""
    fresh = Repo(root)
    assert not fresh.layout.transaction.exists()
    assert fresh.refs.read_all() == {"production": v5, "staging": v5, archive: v4}
    promoted = [e for e in log(fresh) if e.action == "promote"]
    assert sorted(moves(promoted)) == sorted([("production", v4, v5), (archive, None, v4)])
    assert len({e.txn for e in promoted}) == 1
    assert view_metadata(fresh, "production")["version"] == "v5_candidate"
    assert view_metadata(fresh, "production")["status"] == "active"
    assert view_metadata(fresh, archive)["status"] == "archived"
    assert fresh.active_environment() == "production"
    assert_consistent(fresh)


@contextmanager
def locked_once(root: Path) -> Iterator[Repo]:
    with Repo(root).locked("test") as repo:
        yield repo


# -- crashes after the journal -----------------------------------------------------------

CRASH_POINTS = [
    "finish",
    "ref-write-1",
    "ref-write-2",
    "view-switch-1",
    "view-switch-2",
    "env-write",
    "journal-delete",
]


def inject_crash(point: str, repo: Repo, patch: pytest.MonkeyPatch) -> None:
    if point == "finish":
        patch.setattr(mstore.transaction, "_finish", crash_on_call(mstore.transaction._finish))
    elif point.startswith("ref-write-"):
        patch.setattr(repo.refs, "write", crash_on_call(repo.refs.write, int(point[-1])))
    elif point.startswith("view-switch-"):
        patch.setattr(repo.views, "switch", crash_on_call(repo.views.switch, int(point[-1])))
    elif point == "env-write":
        patch.setattr(mstore.core.envfile, "write_environment", crash_on_call(lambda *a: None))
    elif point == "journal-delete":
        journal = os.fspath(repo.layout.transaction)
        real_unlink = os.unlink

        def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
            if os.fspath(path) == journal:
                raise SimulatedCrash("crash before the journal is deleted")
            real_unlink(path, *args, **kwargs)

        patch.setattr(os, "unlink", unlink)
    else:
        raise AssertionError(point)


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_promote_crash_after_journal_is_rolled_forward_by_next_lock(
    repo: Repo, seeded: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    v4, v5, archive = seeded
    with monkeypatch.context() as patch:
        inject_crash(point, repo, patch)
        with pytest.raises(SimulatedCrash):
            promote(repo, "staging")

    assert repo.layout.transaction.exists()
    assert sorted((e["ref"], e["old"], e["new"]) for e in journal_entries(repo)) == sorted(
        [("production", v4, v5), (archive, None, v4)]
    )
    with locked_once(repo.root) as recovered:
        assert recovered.recovered is not None
    assert_promoted(repo.root, v4, v5, archive)


def test_crash_before_log_append_appends_the_entries_once(
    repo: Repo, seeded: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    v4, v5, archive = seeded
    entries = log(repo)
    with monkeypatch.context() as patch:
        patch.setattr(repo.history, "append", crash_on_call(repo.history.append))
        with pytest.raises(SimulatedCrash):
            promote(repo, "staging")

    assert repo.layout.transaction.exists()
    assert log(repo) == entries
    with locked_once(repo.root):
        pass
    assert_promoted(repo.root, v4, v5, archive)


def test_partially_persisted_log_append_is_completed_by_recovery(
    repo: Repo, seeded: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash can persist part of the one append (the log's torn-tail rule exists for
    this): here the first entry of the promote made it to disk and the second is torn."""
    v4, v5, archive = seeded
    log_path = repo.layout.log

    def partial_append(new_entries: list[LogEntry]) -> None:
        first, second = (e.encode() for e in new_entries)
        with open(log_path, "ab") as f:
            f.write(first + second[: len(second) // 2])
        raise SimulatedCrash("crash in the middle of the log append")

    with monkeypatch.context() as patch:
        patch.setattr(repo.history, "append", partial_append)
        with pytest.raises(SimulatedCrash):
            promote(repo, "staging")

    assert repo.layout.transaction.exists()
    with locked_once(repo.root):
        pass
    assert_promoted(repo.root, v4, v5, archive)


def test_commit_crash_after_journal_is_rolled_forward_by_verify(
    repo: Repo, seeded: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _, v5, _ = seeded
    with monkeypatch.context() as patch:
        patch.setattr(repo.refs, "write", crash_on_call(repo.refs.write))
        with pytest.raises(SimulatedCrash):
            commit(
                repo,
                write_version(tmp_path / "src" / "v6", "v6"),
                "staging",
                options=CommitOptions(message="six"),
            )
    [pending] = journal_entries(repo)
    txn = orjson.loads(repo.layout.transaction.read_bytes())["txn"]
    assert repo.refs.read("staging") == v5

    report = verify(Repo(repo.root))

    assert report.ok, report.to_json()
    assert report.recovered == txn
    fresh = Repo(repo.root)
    assert not fresh.layout.transaction.exists()
    assert fresh.refs.read("staging") == pending["new"]
    assert [e for e in log(fresh) if e.message == "six"] == log(fresh, limit=1)
    assert moves(log(fresh, limit=1)) == [("staging", v5, pending["new"])]
    assert view_metadata(fresh, "staging")["version"] == "v6"
    assert_consistent(fresh)


def test_next_command_finishes_the_interrupted_one_before_its_own(
    repo: Repo, seeded: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    v4, v5, archive = seeded
    with monkeypatch.context() as patch:
        patch.setattr(repo.views, "switch", crash_on_call(repo.views.switch))
        with pytest.raises(SimulatedCrash):
            promote(repo, "staging")

    fresh = Repo(repo.root)
    v6 = commit(fresh, write_version(tmp_path / "src" / "v6", "v6"), "staging").manifest_id

    assert fresh.recovered is not None
    newest, *promoted = log(fresh, limit=3)
    assert moves([newest]) == [("staging", v5, v6)]
    assert sorted(moves(promoted)) == sorted([("production", v4, v5), (archive, None, v4)])
    assert Repo(repo.root).refs.read_all() == {"production": v5, "staging": v6, archive: v4}
    assert_consistent(fresh)


def test_crash_during_recovery_is_recovered_again_without_duplicates(
    repo: Repo, seeded: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    v4, v5, archive = seeded
    with monkeypatch.context() as patch:
        patch.setattr(repo.refs, "write", crash_on_call(repo.refs.write, 2))
        with pytest.raises(SimulatedCrash):
            promote(repo, "staging")

    first_try = Repo(repo.root)
    with monkeypatch.context() as patch:
        patch.setattr(first_try.views, "switch", crash_on_call(first_try.views.switch, 2))
        with pytest.raises(SimulatedCrash), first_try.locked("recover"):
            pass
    assert repo.layout.transaction.exists()

    with locked_once(repo.root):
        pass
    assert_promoted(repo.root, v4, v5, archive)


def test_unreadable_journal_is_refused(repo: Repo, seeded: tuple[str, str, str]) -> None:
    repo.layout.transaction.write_bytes(b'{"entries": [')
    before = store_digest(repo)

    with pytest.raises(IntegrityError, match="transaction is unreadable"), locked_once(repo.root):
        pass

    assert store_digest(repo) == before
    # Nothing else was touched: without the journal the store is whole again.
    repo.layout.transaction.unlink()
    assert_consistent(repo)


# -- failures before the journal ---------------------------------------------------------


@pytest.mark.parametrize("operation", ["promote", "commit", "checkout"])
def test_failure_before_journal_changes_nothing_visible(
    repo: Repo,
    seeded: tuple[str, str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    operation: str,
) -> None:
    source = write_version(tmp_path / "src" / "v6", "v6")
    before = visible_state(repo)
    env_before = repo.layout.env_file.read_bytes()
    entries = log(repo)
    refs = repo.refs.read_all()

    with monkeypatch.context() as patch:
        patch.setattr(repo.views, "build", crash_on_call(repo.views.build))
        with pytest.raises(SimulatedCrash):
            if operation == "promote":
                promote(repo, "staging")
            elif operation == "commit":
                commit(repo, source, "staging")
            else:
                checkout(repo, "production")

    assert not repo.layout.transaction.exists()
    assert repo.refs.read_all() == refs
    assert log(repo) == entries
    assert repo.layout.env_file.read_bytes() == env_before
    assert visible_state(repo) == before
    with locked_once(repo.root) as again:
        assert again.recovered is None
    assert visible_state(repo) == before
    assert_consistent(repo)


# -- torn log tail -----------------------------------------------------------------------


def test_torn_log_tail_is_ignored_then_cut_by_next_transaction(
    repo: Repo, seeded: tuple[str, str, str], tmp_path: Path
) -> None:
    _, v5, _ = seeded
    entries = log(repo)
    intact = repo.layout.log.read_bytes()
    with open(repo.layout.log, "ab") as f:
        f.write(b'{"action":"commit","message":"half a li')

    assert log(Repo(repo.root)) == entries
    assert Repo(repo.root).resolve("staging@{0}") == v5
    torn = verify(Repo(repo.root))
    assert [f.kind for f in torn.faults] == ["log_torn"]

    v6 = commit(Repo(repo.root), write_version(tmp_path / "src" / "v6", "v6"), "staging")

    data = repo.layout.log.read_bytes()
    assert data.startswith(intact)
    assert b"half a li" not in data
    assert data.endswith(b"\n")
    assert moves(log(repo)) == [("staging", v5, v6.manifest_id), *moves(entries)]
    assert_consistent(repo)
