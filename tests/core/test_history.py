"""Unit tests for mstore.core.history: the append-only log, read newest-first from the end."""

from __future__ import annotations

import itertools
from pathlib import Path

import orjson
import pytest

from mstore.core.history import BLOCK_SIZE, History, LogEntry, decode_entry
from mstore.errors import IntegrityError


def oid(n: int) -> str:
    return f"{n:064x}"


def entry(
    ref: str,
    old: str | None,
    new: str | None,
    message: str = "",
    n: int = 0,
    action: str = "commit",
) -> LogEntry:
    return LogEntry(
        ref=ref,
        old=old,
        new=new,
        who="tester",
        when=f"2024-11-15T10:00:{n % 60:02d}Z",
        action=action,
        message=message,
        txn=f"txn-{n}",
    )


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History(tmp_path / "log")


def test_missing_log_reads_empty(history: History) -> None:
    assert list(history.newest_first()) == []
    assert list(history.lines()) == []


def test_append_then_newest_first_reverses_order(history: History) -> None:
    first = [entry("staging", None, oid(1), n=1), entry("production", None, oid(1), n=2)]
    second = [entry("staging", oid(1), oid(2), n=3)]
    history.append(first)
    history.append(second)
    assert list(history.newest_first()) == [second[0], first[1], first[0]]


def test_append_writes_one_canonical_line_per_entry(history: History) -> None:
    entries = [entry("staging", None, oid(1), "hello", n=1), entry("b", oid(1), None, n=2)]
    history.append(entries)
    assert history.path.read_bytes() == b"".join(e.encode() for e in entries)
    assert history.path.read_bytes().count(b"\n") == 2


def test_append_of_nothing_creates_nothing(history: History) -> None:
    history.append([])
    assert not history.path.exists()


def test_newest_first_filters_by_ref(history: History) -> None:
    a1 = entry("staging", None, oid(1), n=1)
    b1 = entry("production", None, oid(1), n=2)
    a2 = entry("staging", oid(1), oid(2), n=3)
    archive = entry("staging/old", None, oid(2), n=4)
    tricky = entry("production", oid(1), oid(2), message='"ref":"staging"', n=5)
    history.append([a1, b1, a2, archive, tricky])
    assert list(history.newest_first("staging")) == [a2, a1]
    assert list(history.newest_first("production")) == [tricky, b1]
    assert list(history.newest_first("staging/old")) == [archive]
    assert list(history.newest_first("nope")) == []


@pytest.fixture
def staging_history(history: History) -> History:
    history.append(
        [
            entry("staging", None, oid(1), n=1),
            entry("production", None, oid(9), n=2),
            entry("staging", oid(1), oid(2), n=3),
            entry("production", oid(9), oid(8), n=4),
            entry("staging", oid(2), oid(3), n=5),
        ]
    )
    return history


def test_value_at_zero_is_newest_new_value(staging_history: History) -> None:
    assert staging_history.value_at("staging", 0) == oid(3)
    assert staging_history.value_at("production", 0) == oid(8)


def test_value_at_n_walks_back_through_old_values(staging_history: History) -> None:
    assert staging_history.value_at("staging", 1) == oid(2)
    assert staging_history.value_at("staging", 2) == oid(1)
    assert staging_history.value_at("staging", 3) is None  # before the ref existed
    assert staging_history.value_at("production", 1) == oid(9)


def test_value_at_past_the_start_raises_index_error(staging_history: History) -> None:
    with pytest.raises(IndexError):
        staging_history.value_at("staging", 4)
    with pytest.raises(IndexError):
        staging_history.value_at("production", 3)
    with pytest.raises(IndexError):
        staging_history.value_at("unknown", 0)


def test_torn_last_line_is_ignored_by_readers(history: History) -> None:
    entries = [entry("staging", None, oid(1), n=1), entry("staging", oid(1), oid(2), n=2)]
    history.append(entries)
    torn = entry("staging", oid(2), oid(3), n=3).encode()[:-20]
    with open(history.path, "ab") as f:
        f.write(torn)
    assert list(history.newest_first()) == [entries[1], entries[0]]
    assert list(history.newest_first("staging")) == [entries[1], entries[0]]
    assert history.value_at("staging", 0) == oid(2)
    assert [line for _, line in history.lines()][-1] == torn  # verify still sees it


def test_next_append_cuts_off_torn_last_line(history: History) -> None:
    first = entry("staging", None, oid(1), n=1)
    history.append([first])
    with open(history.path, "ab") as f:
        f.write(b'{"action":"commit","mess')
    second = entry("staging", oid(1), oid(2), n=2)
    history.append([second])
    assert history.path.read_bytes() == first.encode() + second.encode()
    assert list(history.newest_first()) == [second, first]


def test_log_that_is_one_torn_line_yields_nothing(history: History) -> None:
    history.path.write_bytes(entry("staging", None, oid(1)).encode()[:-1])
    assert list(history.newest_first()) == []
    with pytest.raises(IndexError):
        history.value_at("staging", 0)
    second = entry("staging", None, oid(2), n=2)
    history.append([second])
    assert history.path.read_bytes() == second.encode()


def test_entries_spanning_block_boundaries_are_read_back(history: History) -> None:
    entries = [
        entry(f"ref{n % 7}", oid(n), oid(n + 1), "m" * (50 + (n * 37) % 400), n=n)
        for n in range(2000)
    ]
    history.append(entries)
    offsets = list(itertools.accumulate(len(e.encode()) for e in entries))
    size = offsets[-1]
    assert size > 4 * BLOCK_SIZE
    # Some entry must cross a boundary counted from the end, where reading starts.
    starts = [0, *offsets[:-1]]
    assert any(
        (size - end) // BLOCK_SIZE != (size - start - 1) // BLOCK_SIZE
        for start, end in zip(starts, offsets, strict=True)
    )
    assert list(history.newest_first()) == entries[::-1]
    assert list(history.newest_first("ref3")) == [e for e in entries[::-1] if e.ref == "ref3"]


def test_entry_longer_than_a_block_is_read_back(history: History) -> None:
    entries = [
        entry("staging", None, oid(1), n=1),
        entry("staging", oid(1), oid(2), "x" * (3 * BLOCK_SIZE + 17), n=2),
        entry("staging", oid(2), oid(3), n=3),
    ]
    history.append(entries)
    assert list(history.newest_first()) == entries[::-1]


def test_newest_twenty_of_a_hundred_thousand_entries(history: History) -> None:
    entries = [entry(f"r{n % 3}", None, oid(n), n=n) for n in range(100_000)]
    history.append(entries)
    assert list(itertools.islice(history.newest_first(), 20)) == entries[:-21:-1]
    wanted = [e for e in entries[-200:] if e.ref == "r1"][::-1][:20]
    assert list(itertools.islice(history.newest_first("r1"), 20)) == wanted


def test_decode_entry_round_trips() -> None:
    original = entry("archive/v1", None, oid(5), 'a message with "quotes" and é', n=4)
    assert decode_entry(original.encode()) == original
    assert decode_entry(original.encode().rstrip(b"\n")) == original


def valid_fields() -> dict[str, object]:
    return entry("staging", oid(1), oid(2), n=1).to_json()


def with_fields(**changes: object) -> bytes:
    fields = valid_fields()
    fields.update(changes)
    return orjson.dumps(fields)


def without_field(name: str) -> bytes:
    fields = valid_fields()
    del fields[name]
    return orjson.dumps(fields)


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"",
        b"\xff",
        b'{"ref":',
        b"[]",
        b"null",
        b'"staging"',
        without_field("ref"),
        without_field("txn"),
        with_fields(extra=1),
        with_fields(old="A" * 64),
        with_fields(new="a" * 63),
        with_fields(new="z" * 64),
        with_fields(old=1),
        with_fields(who=1),
        with_fields(ref=None),
        with_fields(message=["m"]),
    ],
)
def test_decode_entry_refuses_bad_lines(line: bytes) -> None:
    with pytest.raises(IntegrityError) as info:
        decode_entry(line)
    assert info.value.exit_code == 3


def test_corrupt_line_in_log_raises_integrity_error(history: History) -> None:
    history.append([entry("staging", None, oid(1), n=1)])
    with open(history.path, "ab") as f:
        f.write(b"garbage\n")
    with pytest.raises(IntegrityError):
        list(history.newest_first())
