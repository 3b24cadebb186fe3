"""Log indexes: small maps derived from the log, kept current by every transaction.

    .mstore/index/<name>.db        SQLite, one file per index
      entries(key TEXT PRIMARY KEY, value TEXT)
      position(id 0, size INTEGER, tail TEXT)

An index applies a rule to each log entry, oldest first: the rule gives a (key, value)
pair or nothing, and the newest pair for a key wins. `position` is how much of the log
the entries cover: `size`, the byte offset just after the last line applied, and
`tail`, the blake3 of that line, so an index made from another log (replaced, cut,
rewritten) is recognized. Entries and position change in one SQLite transaction, so
the file always describes exactly the first `size` bytes of the log.

- A transaction brings the index up to the log's end (`update`) right after appending
  its entries and before moving any ref; recovery redoes it (it is idempotent: it
  applies what lies between `position` and the log's end).
- A reader (no lock) reads the stored entries and position in one read transaction,
  then applies the log lines written after `position` in memory: what it gets is
  always the index of the log it read, whether or not a writer is half-way through.
- A missing index, or one whose position does not match the log, is rebuilt from the
  whole log by the next command that takes the store lock; until then readers compute
  the same values from the log (slower, never wrong).

The index is derived state: deleting `index/` loses nothing. `check` compares it with
a full recomputation (`mstore verify`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mstore.core import untrusted
from mstore.core.hashing import hash_bytes
from mstore.core.history import History, LogEntry, decode_entry
from mstore.errors import IntegrityError

if TYPE_CHECKING:
    import sqlite3

Rule = Callable[[LogEntry], "tuple[str, str] | None"]
# SQLite's default limit on host parameters is 999 before 3.32 and 32766 after.
QUERY_BATCH = 900
BUSY_TIMEOUT = 30.0


@dataclass(frozen=True)
class Position:
    """The part of the log an index covers: bytes [0, size), whose last line hashes to tail."""

    size: int
    tail: str


class LogIndex:
    def __init__(self, path: Path, history: History, rule: Rule) -> None:
        self.path = path
        self.history = history
        self.rule = rule
        self._db: sqlite3.Connection | None = None
        self._writable = False

    # -- reading (no lock needed) ----------------------------------------------------

    def lookup(self, keys: Iterable[str], pending: Iterable[LogEntry] = ()) -> dict[str, str]:
        """The values of `keys` that have one, as of the log's end plus `pending`
        entries (not yet in the log; they count as the newest)."""
        wanted = set(keys)
        found = self._stored_lookup(wanted)
        if found is None:
            found = self._scan_newest_first(wanted)
        self._overlay(found, wanted, pending)
        return found

    def changes(self, entries: Iterable[LogEntry]) -> dict[str, str]:
        """The keys whose value `entries` would change, with their new values."""
        proposed: dict[str, str] = {}
        self._overlay(proposed, None, entries)
        current = self.lookup(proposed)
        return {k: v for k, v in proposed.items() if current.get(k) != v}

    def _stored_lookup(self, wanted: set[str]) -> dict[str, str] | None:
        """Stored values caught up with the log's tail, or None if the index is unusable."""
        import sqlite3

        db = self._connect(writable=False)
        if db is None:
            return None
        try:
            db.execute("BEGIN")
            try:
                position = _read_position(db)
                found = _select(db, wanted) if position is not None else {}
            finally:
                db.execute("COMMIT")
        except sqlite3.Error:
            return None
        if position is None:
            return None
        end = self.history.end()
        if not self._matches(position, end):
            return None
        self._overlay(found, wanted, _entries(self.history.lines_after(position.size, end)))
        return found

    def _scan_newest_first(self, wanted: set[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        remaining = set(wanted)
        for entry in _entries(self.history.lines_newest_first()):
            pair = self.rule(entry)
            if pair is not None and pair[0] in remaining:
                found[pair[0]] = pair[1]
                remaining.discard(pair[0])
                if not remaining:
                    break
        return found

    def _overlay(
        self, values: dict[str, str], wanted: set[str] | None, entries: Iterable[LogEntry]
    ) -> None:
        for entry in entries:
            pair = self.rule(entry)
            if pair is not None and (wanted is None or pair[0] in wanted):
                values[pair[0]] = pair[1]

    def _matches(self, position: Position, end: int) -> bool:
        if position.size > end:
            return False
        line = self.history.last_line_before(position.size)
        return line is not None and hash_bytes(line) == position.tail

    # -- writing (the caller holds the store lock) -----------------------------------

    def update(self) -> bool:
        """Bring the stored index to the log's end (catch up, or rebuild if it does not
        match the log). Idempotent. False if the index file cannot be written: readers
        then catch up from the log (correct, slower) until a later update succeeds."""
        import sqlite3

        db = self._connect(writable=True)
        if db is None:
            return False
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                end = self.history.end()
                position = _read_position(db)
                if position is not None and self._matches(position, end):
                    if position.size == end:
                        db.execute("ROLLBACK")
                        return True
                    start = position.size
                else:
                    db.execute("DELETE FROM entries")
                    start = 0
                values: dict[str, str] = {}
                self._overlay(values, None, _entries(self.history.lines_after(start, end)))
                db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?)", values.items())
                tail = hash_bytes(self.history.last_line_before(end) or b"")
                db.execute("INSERT OR REPLACE INTO position VALUES (0, ?, ?)", (end, tail))
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error:
            return False
        return True

    def remove(self) -> None:
        """Delete the index file (it is rebuilt by the next update)."""
        self.close()
        for suffix in ("", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}{suffix}")

    # -- checking --------------------------------------------------------------------

    def check(self) -> list[str]:
        """What is wrong with the stored index, compared with the whole log ([] if right)."""
        import sqlite3

        expected: dict[str, str] = {}
        end = self.history.end()
        self._overlay(expected, None, _entries(self.history.lines_after(0, end)))
        db = self._connect(writable=False)
        if db is None:
            return [f"{self.path} is missing or unreadable"]
        try:
            position = _read_position(db)
            stored = dict(db.execute("SELECT key, value FROM entries").fetchall())
        except sqlite3.Error as err:
            return [f"{self.path} is unreadable ({err})"]
        if position is None:
            return [f"{self.path} has no log position"]
        problems = []
        if not self._matches(position, end) or position.size != end:
            problems.append(f"covers {position.size} bytes of the log, which has {end}")
        wrong = sorted(
            k for k in expected.keys() | stored.keys() if expected.get(k) != stored.get(k)
        )
        if wrong:
            shown = ", ".join(
                f"{k[:12]}: {stored.get(k)} instead of {expected.get(k)}" for k in wrong[:3]
            )
            problems.append(f"{len(wrong)} entries disagree with the log ({shown})")
        return problems

    # -- the file --------------------------------------------------------------------

    def _connect(self, writable: bool) -> sqlite3.Connection | None:
        import sqlite3

        if self._db is not None and (self._writable or not writable):
            return self._db
        self.close()
        try:
            if writable:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if not untrusted.clear_for_cache(self.path):
                    return None
                db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
                db.execute("PRAGMA synchronous=FULL")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS entries "
                    "(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"
                )
                db.execute(
                    "CREATE TABLE IF NOT EXISTS position (id INTEGER PRIMARY KEY CHECK (id = 0), "
                    "size INTEGER NOT NULL, tail TEXT NOT NULL)"
                )
            else:
                if not untrusted.is_plain_cache(self.path):
                    return None  # never through a planted link or FIFO: read the log
                uri = f"file:{self.path}?mode=ro"
                db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None)
        except (sqlite3.Error, OSError):
            return None
        self._db, self._writable = db, writable
        return db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _read_position(db: sqlite3.Connection) -> Position | None:
    import sqlite3

    try:
        row = db.execute("SELECT size, tail FROM position WHERE id = 0").fetchone()
    except sqlite3.OperationalError:
        return None  # no such table: not an index yet
    return None if row is None else Position(int(row[0]), str(row[1]))


def _select(db: sqlite3.Connection, keys: set[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    ordered = sorted(keys)
    for start in range(0, len(ordered), QUERY_BATCH):
        batch = ordered[start : start + QUERY_BATCH]
        marks = ",".join("?" * len(batch))
        rows = db.execute(f"SELECT key, value FROM entries WHERE key IN ({marks})", batch)
        found.update((str(k), str(v)) for k, v in rows)
    return found


def _entries(lines: Iterable[bytes]) -> Iterator[LogEntry]:
    """The entries of raw log lines. A line that is not an entry moves no ref, so it
    adds nothing to an index (`mstore verify` reports it as a corrupt log line)."""
    for line in lines:
        try:
            yield decode_entry(line)
        except IntegrityError:
            continue
