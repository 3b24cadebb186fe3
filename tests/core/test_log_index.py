"""The deployments index (index.py) stays the log's: every kind of move keeps it right,
a crash at either side of its update is recovered, it is rebuilt when missing or made
from another log, readers never need it current, verify catches a wrong one, and no
command scans the log to show a version."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from mstore.core.history import History, LogEntry, decode_entry
from mstore.ops.commit import commit
from mstore.ops.importing import import_tree
from mstore.ops.ref_edits import delete_ref, rename_ref
from mstore.ops.show import list_refs
from mstore.ops.switch import checkout, promote, rollback
from mstore.ops.verify import verify
from mstore.repo import Repo
from mstore.transaction import RefUpdate, Transaction, apply
from mstore.workflow.policy import deployment
from tests.helpers import assert_consistent, write_version
from tests.integration.test_import import seed_project


class SimulatedCrash(Exception):
    """Stands for the process dying at this point."""


def crash_on_call(original: Callable[..., Any], call: int) -> Callable[..., Any]:
    calls = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == call:
            raise SimulatedCrash(f"crash in {original.__name__}")
        return original(*args, **kwargs)

    return wrapper


def expected(repo: Repo) -> dict[str, str]:
    """The index recomputed from the log here, independently of index.py."""
    values: dict[str, str] = {}
    for _number, line in repo.history.lines():
        pair = deployment(decode_entry(line))
        if pair is not None:
            values[pair[0]] = pair[1]
    return values


def stored(repo: Repo) -> dict[str, str]:
    with sqlite3.connect(repo.index.path) as db:
        return dict(db.execute("SELECT key, value FROM entries").fetchall())


def stored_size(repo: Repo) -> int:
    with sqlite3.connect(repo.index.path) as db:
        return int(db.execute("SELECT size FROM position").fetchone()[0])


def assert_index_right(repo: Repo) -> None:
    fresh = Repo(repo.root)
    assert stored(fresh) == expected(fresh)
    assert stored_size(fresh) == fresh.history.end()
    assert fresh.index.check() == []


def listed(repo: Repo) -> list[dict[str, object]]:
    return [s.to_json() for s in list_refs(Repo(repo.root))]


@pytest.fixture
def versions(tmp_path: Path) -> list[Path]:
    return [write_version(tmp_path / "src" / f"v{i}", f"v{i}") for i in range(1, 4)]


def test_every_kind_of_move_keeps_the_index_right(repo: Repo, versions: list[Path]) -> None:
    v1 = commit(repo, versions[0], "production").manifest_id  # a commit to production deploys
    assert v1 is not None and v1 in stored(repo)
    assert_index_right(repo)
    v2 = commit(repo, versions[1], "staging").manifest_id
    assert v2 is not None and v2 not in stored(repo)  # staging is no deployment
    promote(repo, "staging")
    assert stored(repo)[v2] == repo.history.newest_first("production").__next__().when[:10]
    assert_index_right(repo)
    rollback(repo, "production")  # back to v1: a new deployment of v1
    assert_index_right(repo)
    archive = next(n for n in repo.refs.names() if n.startswith("archive/"))
    rename_ref(repo, "staging", "candidate")
    delete_ref(repo, archive)
    assert_index_right(repo)
    rename_ref(repo, "production", "old-production")
    rename_ref(repo, "candidate", "production")  # a rename onto production deploys
    assert_index_right(repo)
    checkout(repo, "production")
    assert_index_right(repo)
    assert_consistent(repo)


def test_import_is_not_a_deployment(tmp_path: Path) -> None:
    repo, _backup = seed_project(tmp_path)
    import_tree(repo)
    assert stored(repo) == {}
    assert_index_right(repo)


def test_a_transaction_re_renders_refs_whose_deployment_it_changes(
    repo: Repo, versions: list[Path]
) -> None:
    v1 = commit(repo, versions[0], "staging").manifest_id
    assert v1 is not None
    apply(repo, Transaction("promote", "", [RefUpdate("production", None, v1)]))
    shown = orjson.loads((repo.layout.view_link("staging") / "metadata.json").read_bytes())
    assert shown["deployed_date"] == stored(repo)[v1]  # staging shares the deployed version
    assert_consistent(repo)


@pytest.mark.parametrize("call", [1, 2])
def test_crash_around_the_index_update_is_recovered(
    repo: Repo, versions: list[Path], monkeypatch: pytest.MonkeyPatch, call: int
) -> None:
    """Call 1: after the log append, before the index update; call 2: after the index
    update, before any ref moved."""
    v1 = commit(repo, versions[0], "production").manifest_id
    v2 = commit(repo, versions[1], "staging").manifest_id
    assert v1 is not None and v2 is not None
    before = listed(repo)
    with monkeypatch.context() as patch:
        if call == 1:
            patch.setattr(repo.index, "update", crash_on_call(repo.index.update, 2))
        else:
            patch.setattr(repo.refs, "write", crash_on_call(repo.refs.write, 1))
        with pytest.raises(SimulatedCrash):
            promote(repo, "staging")
    assert repo.layout.transaction.exists()
    assert (stored_size(repo) < repo.history.end()) == (call == 1)
    # A reader meanwhile: refs are old; the dates are those of the log it reads.
    reader = Repo(repo.root)
    assert reader.refs.read("production") == v1
    assert reader.deployments([v2]) == {v2: expected(repo)[v2]}
    assert [s["id"] for s in listed(repo)] == [s["id"] for s in before]
    with Repo(repo.root).locked("test"):
        pass  # the documented automatic recovery
    recovered = Repo(repo.root)
    assert recovered.refs.read("production") == v2
    assert_index_right(recovered)
    assert_consistent(recovered)


def test_a_missing_index_is_computed_by_readers_and_rebuilt_by_the_next_lock(
    repo: Repo, versions: list[Path]
) -> None:
    commit(repo, versions[0], "staging")
    promote(repo, "staging")
    commit(repo, versions[1], "staging")
    before = listed(repo)
    shutil.rmtree(repo.layout.index)
    assert listed(repo) == before  # from the log, without writing anything
    assert not repo.layout.index.exists()
    with Repo(repo.root).locked("test"):
        pass
    assert_index_right(repo)
    assert listed(repo) == before


def test_an_index_behind_the_log_is_caught_up(repo: Repo, versions: list[Path]) -> None:
    """Entries appended by something that does not keep the index (an older mstore)."""
    v1 = commit(repo, versions[0], "staging").manifest_id
    assert v1 is not None
    size = stored_size(repo)
    moved = LogEntry("production", None, v1, "old@host", "2031-01-02T00:00:00Z", "promote", "", "1")
    History(repo.layout.log).append([moved])
    assert Repo(repo.root).deployments([v1]) == {v1: "2031-01-02"}  # reader catches up
    assert stored_size(repo) == size
    with Repo(repo.root).locked("test"):
        pass
    assert stored(repo) == {v1: "2031-01-02"}
    assert_index_right(repo)


def test_an_index_of_another_log_is_not_used_and_is_rebuilt(
    repo: Repo, versions: list[Path]
) -> None:
    v1 = commit(repo, versions[0], "production").manifest_id
    assert v1 is not None
    log = repo.layout.log.read_bytes()
    date = expected(repo)[v1]
    # Same length, last line different: the position's tail no longer matches.
    repo.layout.log.write_bytes(log.replace(date.encode(), b"2031-01-02"))
    assert Repo(repo.root).deployments([v1]) == {v1: "2031-01-02"}
    assert Repo(repo.root).index.check() != []
    with Repo(repo.root).locked("test"):
        pass
    assert stored(repo) == {v1: "2031-01-02"}
    assert_index_right(repo)


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE entries SET value = '1999-01-01'",
        "DELETE FROM entries",
        "INSERT INTO entries VALUES ('" + "c" * 64 + "', '2024-01-01')",
    ],
)
def test_verify_catches_a_wrong_index(repo: Repo, versions: list[Path], tamper: str) -> None:
    commit(repo, versions[0], "production")
    assert verify(Repo(repo.root)).ok
    with sqlite3.connect(repo.index.path) as db:
        db.execute(tamper)
    report = verify(Repo(repo.root))
    assert [f.kind for f in report.faults] == ["index_wrong"], report.faults
    assert "rebuilds it from the log" in report.faults[0].detail
    shutil.rmtree(repo.layout.index)  # the way out the fault names
    assert verify(Repo(repo.root)).ok


def test_a_position_that_is_not_the_end_of_a_line_is_rebuilt(
    repo: Repo, versions: list[Path]
) -> None:
    commit(repo, versions[0], "production")
    with sqlite3.connect(repo.index.path) as db:
        db.execute("UPDATE position SET size = size - 1")
        db.execute("DELETE FROM entries")
    assert verify(Repo(repo.root)).ok  # its lock rebuilt the index
    assert_index_right(repo)


def test_no_command_scans_the_log_to_show_a_version(
    repo: Repo, versions: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the index current, commit, promote, rollback --to, checkout and list never
    read the log backwards (what made them cost more on a long log)."""
    v1 = commit(repo, versions[0], "staging").manifest_id
    promote(repo, "staging")

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the log was scanned")

    monkeypatch.setattr(History, "newest_first", refuse)
    monkeypatch.setattr(History, "lines_newest_first", refuse)
    monkeypatch.setattr(History, "lines", refuse)
    commit(repo, versions[1], "staging")
    promote(repo, "staging")
    assert v1 is not None
    rollback(repo, "production", to=v1)
    checkout(repo, "staging")
    assert {s.ref for s in list_refs(Repo(repo.root))} == set(repo.refs.names())
    monkeypatch.undo()
    assert_index_right(repo)
    assert_consistent(repo)


def test_list_uses_the_summary_cache_and_does_without_it(
    repo: Repo, versions: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    commit(repo, versions[0], "staging")
    promote(repo, "staging")
    first = listed(repo)  # fills the cache
    assert repo.layout.summaries.exists()

    def refuse(_self: Repo, _manifest_id: str) -> None:
        raise AssertionError("a manifest was read")

    with monkeypatch.context() as patch:
        patch.setattr(Repo, "manifest", refuse)
        assert listed(repo) == first  # every summary came from the cache
    repo.layout.summaries.unlink()
    assert listed(repo) == first
    repo.layout.summaries.write_bytes(b"not a database")
    assert listed(repo) == first  # a broken cache is no cache
