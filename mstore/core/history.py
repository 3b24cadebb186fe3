"""The log: an append-only record of every ref move, read newest-first from the end.

    .mstore/log
      {"action":"commit","message":"...","new":"<id>","old":null,"ref":"staging","txn":"...","when":"...","who":"..."}
      {"action":"promote",...}

One JSON object per line (canonical, sorted keys). A move made by a store that signs,
or pulled with its publisher's signature, also holds `statement`: the signed statement
(docs/FORMAT.md, "Statements"), as text; the field is absent otherwise.

All entries of one transaction are appended with a single write and fsynced before any
ref moves (see transaction.py). A crash can leave a last line without its newline;
readers ignore it and the next writer (holding the store lock) cuts it off before
appending. The file is opened through
`untrusted.open_regular`: a symlink or a FIFO planted in its place is refused, never
followed or waited on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from mstore.core import fsutil, untrusted
from mstore.core.hashing import is_object_id
from mstore.errors import IntegrityError

BLOCK_SIZE = 64 << 10


@dataclass(frozen=True)
class LogEntry:
    """One ref move: `old` -> `new` (None when the ref was created or deleted)."""

    ref: str
    old: str | None
    new: str | None
    who: str
    when: str
    action: str
    message: str
    txn: str
    statement: str | None = None  # the signed statement of this move, if it has one

    def encode(self) -> bytes:
        return orjson.dumps(self.to_json(), option=orjson.OPT_SORT_KEYS) + b"\n"

    def to_json(self) -> dict[str, object]:
        document = asdict(self)
        if self.statement is None:
            del document["statement"]
        return document


FIELDS = frozenset(LogEntry.__dataclass_fields__) - {"statement"}
MAX_STATEMENT_CHARACTERS = 8192  # as statements.MAX_STATEMENT_BYTES


def decode_entry(line: bytes) -> LogEntry:
    """Parse one log line; IntegrityError if it is not a well-formed entry."""
    try:
        raw = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise IntegrityError(f"log line is not JSON: {line[:80]!r}") from None
    if not isinstance(raw, dict) or set(raw) - {"statement"} != FIELDS:
        raise IntegrityError(f"log line has wrong fields: {line[:80]!r}")
    statement = raw.get("statement")
    if "statement" in raw and not (
        isinstance(statement, str) and 0 < len(statement) <= MAX_STATEMENT_CHARACTERS
    ):
        raise IntegrityError(f"log line has an invalid statement: {line[:80]!r}")
    for key in ("old", "new"):
        value = raw[key]
        if value is not None and not (isinstance(value, str) and is_object_id(value)):
            raise IntegrityError(f"log line has an invalid {key} id: {line[:80]!r}")
    for key in ("ref", "who", "when", "action", "message", "txn"):
        if not isinstance(raw[key], str):
            raise IntegrityError(f"log line field {key} is not a string: {line[:80]!r}")
    return LogEntry(**raw)


class History:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, entries: Iterable[LogEntry]) -> None:
        """Append entries with one write and fsync. Callers hold the store lock."""
        data = b"".join(entry.encode() for entry in entries)
        if not data:
            return
        fd = untrusted.open_regular(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self._cut_torn_tail(fd)
            fsutil.write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def newest_first(self, ref: str | None = None) -> Iterator[LogEntry]:
        """Entries newest first (optionally only those of `ref`), reading from the end."""
        # Lines are canonical JSON, so a ref's lines contain this exact byte string;
        # skipping the others unparsed keeps per-ref reads cheap on a long log.
        needle = b'"ref":' + orjson.dumps(ref) if ref is not None else b""
        for line in self._lines_backwards():
            if needle not in line:
                continue
            entry = decode_entry(line)
            if ref is None or entry.ref == ref:
                yield entry

    def lines_newest_first(self) -> Iterator[bytes]:
        """Raw complete lines, newest first."""
        return self._lines_backwards()

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """(line number, raw line) oldest first, including a torn last line (for verify)."""
        try:
            fd = untrusted.open_regular(self.path)
        except FileNotFoundError:
            return
        with os.fdopen(fd, "rb") as f:
            yield from enumerate(f, start=1)

    def end(self) -> int:
        """Offset just after the last complete line: the part of the log that counts."""
        try:
            fd = untrusted.open_regular(self.path)
        except FileNotFoundError:
            return 0
        try:
            return _end_of_last_line(fd)
        finally:
            os.close(fd)

    def last_line_before(self, offset: int) -> bytes | None:
        """The complete line that ends at byte `offset` (without its newline), or None
        if no line ends there. Identifies a log position: see log_index.py."""
        if offset <= 0:
            return b"" if offset == 0 else None
        try:
            fd = untrusted.open_regular(self.path)
        except FileNotFoundError:
            return None
        try:
            if os.pread(fd, 1, offset - 1) != b"\n":
                return None
            line = b""
            position = offset - 1
            while position > 0:
                start = max(0, position - BLOCK_SIZE)
                chunk = os.pread(fd, position - start, start)
                index = chunk.rfind(b"\n")
                if index >= 0:
                    return chunk[index + 1 :] + line
                line = chunk + line
                position = start
            return line
        finally:
            os.close(fd)

    def lines_after(self, offset: int, end: int) -> Iterator[bytes]:
        """Raw lines oldest first from byte `offset` (a line start) to `end` (a line end)."""
        if offset >= end:
            return
        with os.fdopen(untrusted.open_regular(self.path), "rb") as f:
            f.seek(offset)
            remaining = end - offset
            pending = b""
            while remaining > 0:
                block = f.read(min(BLOCK_SIZE << 4, remaining))
                if not block:
                    break
                remaining -= len(block)
                lines = (pending + block).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    if line:
                        yield line

    def value_at(self, ref: str, steps_back: int) -> str | None:
        """`ref@{N}`: the value `ref` had N moves ago (N=0 is the newest logged value)."""
        for index, entry in enumerate(self.newest_first(ref)):
            if steps_back == 0 and index == 0:
                return entry.new
            if index == steps_back - 1:
                return entry.old
        raise IndexError(steps_back)

    def _lines_backwards(self) -> Iterator[bytes]:
        try:
            fd = untrusted.open_regular(self.path)
        except FileNotFoundError:
            return
        try:
            # Everything after the last newline is a torn write, not an entry.
            position = _end_of_last_line(fd)
            pending = b""
            while position > 0:
                size = min(BLOCK_SIZE, position)
                position -= size
                parts = (os.pread(fd, size, position) + pending).split(b"\n")
                pending = parts[0]
                for line in reversed(parts[1:]):
                    if line:
                        yield line
            if pending:
                yield pending
        finally:
            os.close(fd)

    @staticmethod
    def _cut_torn_tail(fd: int) -> None:
        end = _end_of_last_line(fd)
        if end != os.fstat(fd).st_size:
            os.ftruncate(fd, end)


def _end_of_last_line(fd: int) -> int:
    """Offset just after the last newline of the file (0 if it has none)."""
    position = os.fstat(fd).st_size
    while position > 0:
        start = max(0, position - BLOCK_SIZE)
        index = os.pread(fd, position - start, start).rfind(b"\n")
        if index >= 0:
            return start + index + 1
        position = start
    return 0
