"""Packed refs (.mstore/packed-refs): one file for many refs, loose files winning.

On real temporary directories: the race test runs a packing writer and a reader in two
processes, and the crash test fails the pack between its two steps.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from mstore.core.packed_refs import HEADER
from mstore.core.refs import RefStore
from mstore.errors import IntegrityError, RefusedError
from mstore.ops.gc import gc
from mstore.ops.verify import verify
from mstore.repo import Repo
from tests.helpers import assert_consistent, write_version

A = "a" * 64
B = "b" * 64
NAMES = ["production", "staging", "archive/v1_2024-10-15", "archive/v2_2024-11-01", "exp/x/y"]


@pytest.fixture
def refs(tmp_path: Path) -> RefStore:
    repo, _ = Repo.init(tmp_path / "project")
    return repo.refs


def loose_files(refs: RefStore) -> list[str]:
    root = refs.layout.refs
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_pack_moves_every_loose_ref_into_one_file(refs: RefStore) -> None:
    for name in NAMES:
        refs.write(name, A)
    assert refs.pack() == len(NAMES)
    assert loose_files(refs) == []
    assert sorted(os.listdir(refs.layout.refs)) == []  # emptied directories are gone
    assert refs.layout.packed_refs.read_bytes().startswith(HEADER)
    assert refs.read_all() == dict.fromkeys(sorted(NAMES), A)
    assert refs.names() == sorted(NAMES)
    assert all(refs.read(name) == A for name in NAMES)
    assert refs.pack() == 0


def test_a_loose_file_wins_over_its_packed_line(refs: RefStore) -> None:
    for name in NAMES:
        refs.write(name, A)
    refs.pack()
    refs.write("staging", B)
    assert refs.read("staging") == B
    assert refs.read_all()["staging"] == B
    assert refs.packed()["staging"] == A  # stale until the next pack
    refs.pack()
    assert refs.packed()["staging"] == B and loose_files(refs) == []


def test_deleting_a_packed_ref_removes_its_line_and_its_loose_file(refs: RefStore) -> None:
    for name in NAMES:
        refs.write(name, A)
    refs.pack()
    refs.write("production", B)  # loose and packed
    refs.delete("production")
    refs.delete("archive/v1_2024-10-15")  # packed only
    assert refs.read("production") is None
    assert "production" not in refs.read_all() and "production" not in refs.names()
    assert "archive/v1_2024-10-15" not in refs.packed()
    for name in refs.names():
        refs.delete(name)
    assert not refs.layout.packed_refs.exists()
    assert refs.read_all() == {}


def test_new_names_clash_with_packed_ones(refs: RefStore) -> None:
    refs.write("archive/v1", A)
    refs.write("Staging", A)
    refs.pack()
    with pytest.raises(RefusedError, match="directory"):
        refs.check_new_name("archive")
    with pytest.raises(RefusedError, match="case"):
        refs.check_new_name("staging")


@pytest.mark.parametrize(
    "body",
    [
        b"no header\n",
        HEADER + f"{A} production".encode(),  # torn: no final newline
        HEADER + b"xyz production\n",
        HEADER + f"{A} bad..name\n".encode(),
        HEADER + f"{A} staging\n{A} production\n".encode(),  # out of order
        HEADER + f"{A} production\n{B} production\n".encode(),  # listed twice
        HEADER + f"{A}\n".encode(),
        HEADER + b"\xff\xfe\n",
    ],
)
def test_a_malformed_packed_file_is_refused_and_named_by_verify(
    tmp_path: Path, body: bytes
) -> None:
    repo, _ = Repo.init(tmp_path / "project")
    repo.layout.packed_refs.write_bytes(body)
    with pytest.raises(IntegrityError, match="packed-refs"):
        repo.refs.read_all()
    report = verify(Repo(repo.root))
    assert not report.ok
    assert any(
        f.kind == "ref_corrupt" and f.subject.endswith("packed-refs") for f in report.faults
    ), [f.to_json() for f in report.faults]


def test_a_failed_pack_leaves_every_ref_at_its_value(
    refs: RefStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number, name in enumerate(NAMES):
        refs.write(name, A if number % 2 else B)
    before = refs.read_all()
    real_unlink = os.unlink
    calls = {"n": 0}

    def failing_unlink(path: object, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(5, "Input/output error", str(path))
        real_unlink(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "unlink", failing_unlink)
    with pytest.raises(OSError):
        refs.pack()
    monkeypatch.setattr(os, "unlink", real_unlink)
    assert refs.read_all() == before  # half loose, half packed: the same values
    assert all(refs.read(name) == value for name, value in before.items())
    refs.pack()
    assert refs.read_all() == before and loose_files(refs) == []


def _pack_and_unpack(root: str, rounds: int) -> None:
    refs = Repo(Path(root)).refs
    for number in range(rounds):
        value = A if number % 2 else B
        refs.write(f"archive/r{number}", value)  # a new ref, loose until the pack
        for name in NAMES:
            refs.write(name, value)
        refs.pack()


@pytest.mark.slow
def test_a_reader_never_misses_a_ref_while_another_process_packs(tmp_path: Path) -> None:
    """Refs are never deleted here, so each read must see every ref an earlier read saw:
    a reader that looked at packed-refs before the loose files would lose the refs that
    a pack moved in between."""
    repo, _ = Repo.init(tmp_path / "project")
    for name in NAMES:
        repo.refs.write(name, A)
    writer = multiprocessing.get_context("spawn").Process(
        target=_pack_and_unpack, args=(str(repo.root), 300)
    )
    writer.start()
    reader = Repo(repo.root).refs
    seen: set[str] = set(NAMES)
    reads = 0
    try:
        while writer.is_alive() or reads == 0:
            everything = reader.read_all()
            assert seen <= everything.keys(), sorted(seen - everything.keys())
            assert set(everything.values()) <= {A, B}
            seen = set(everything)
            for name in NAMES:
                assert reader.read(name) in (A, B)
            reads += 1
    finally:
        writer.join(timeout=60)
    assert writer.exitcode == 0
    assert reads > 10
    assert len(reader.read_all()) == len(NAMES) + 300


def test_gc_packs_refs_and_every_command_works_on_packed_refs(repo: Repo, tmp_path: Path) -> None:
    from mstore.ops.commit import commit
    from mstore.ops.switch import promote, rollback

    first = commit(repo, write_version(tmp_path / "v1", "v1"), "staging").manifest_id
    commit(repo, write_version(tmp_path / "p", "v0"), "production")
    assert gc(repo, dry_run=True).loose_refs == 2 and repo.refs.loose_count() == 2
    assert gc(repo).loose_refs == 2 and repo.refs.loose_count() == 0
    assert_consistent(repo)
    commit(repo, write_version(tmp_path / "v2", "v2"), "staging")  # moves a packed ref
    promote(repo, "staging")  # reads packed production, archives it
    rollback(repo, "staging", to=first)
    assert repo.refs.read("staging") == first
    assert gc(repo).loose_refs == repo.refs.packed().keys().__len__()
    assert repo.refs.loose_count() == 0
    assert_consistent(repo)


def test_the_plain_name_shortcut_accepts_only_names_the_full_check_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """check_ref_name decides common names with one regex; every name it lets through
    that way must pass the full rules too (checked with the shortcut switched off)."""
    import re

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from mstore.core import ref_names as refs_module

    plain = refs_module._PLAIN
    alphabet = st.sampled_from([*"ab-_./@{}~ ", "lock", "..", "/.", ".lock"])

    @settings(max_examples=3000, deadline=None)
    @given(st.lists(alphabet, min_size=1, max_size=12).map("".join))
    def check(name: str) -> None:
        if plain.fullmatch(name):
            monkeypatch.setattr(refs_module, "_PLAIN", re.compile(r"(?!)"))
            try:
                assert refs_module.check_ref_name(name) == name
            finally:
                monkeypatch.setattr(refs_module, "_PLAIN", plain)

    check()
    for name in ("production", "archive/v3_2024-11-10", "a.b/c-d_e"):
        assert plain.fullmatch(name)
    for name in ("a..b", "a.lock", "a.lock/b", ".a", "a.", "a//b", "/a", "a/", "@", "a@{b"):
        assert not plain.fullmatch(name)
