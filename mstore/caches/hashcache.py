"""The hash cache: object ids of files already hashed, keyed on their stat.

    .mstore/hashcache.db      SQLite: (device, inode) -> size, mtime_ns, ctime_ns, id

Like git's index and DVC's state, it lets `commit` and `status` skip reading a file
whose (device, inode, size, mtime_ns, ctime_ns) are what they were when it was hashed.
It is only a cache: deleting it loses nothing, any stat change is a miss, and a file
modified within the clock's granularity of being hashed is never cached ("racily
clean" in git's words), so a changed file is never trusted.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mstore.core import untrusted

if TYPE_CHECKING:
    import sqlite3

# Files whose mtime is this close to "now" are not cached: a write in the same clock
# tick would leave their stat unchanged.
RACY_SECONDS = 2.0


class HashCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection | None:
        import sqlite3  # lazily: commands that never consult the cache skip the import

        if self._db is None:
            try:
                if not untrusted.clear_for_cache(self.path):
                    return None
                self._db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
                # synchronous first: switching a new database to WAL is then not synced (a cache
                # need not survive a crash; a broken one is no cache)
                self._db.execute("PRAGMA synchronous=OFF")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS hashes (device INTEGER, inode INTEGER, "
                    "size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, id TEXT, "
                    "PRIMARY KEY (device, inode))"
                )
            except (sqlite3.Error, OSError):
                self._db = None  # a broken cache is no cache
        return self._db

    def lookup(self, st: os.stat_result) -> str | None:
        """The cached id of the file with stat `st`, or None."""
        import sqlite3

        db = self._connect()
        if db is None:
            return None
        try:
            row = db.execute(
                "SELECT size, mtime_ns, ctime_ns, id FROM hashes WHERE device=? AND inode=?",
                (st.st_dev, st.st_ino),
            ).fetchone()
        except sqlite3.Error:
            return None
        if row is None or tuple(row[:3]) != (st.st_size, st.st_mtime_ns, st.st_ctime_ns):
            return None
        return str(row[3])

    def remember(self, st: os.stat_result, object_id: str) -> None:
        """Cache `object_id` for the file with stat `st` (unless it changed too recently)."""
        if max(st.st_mtime_ns, st.st_ctime_ns) / 1e9 > time.time() - RACY_SECONDS:
            return
        import sqlite3

        db = self._connect()
        if db is None:
            return
        try:
            db.execute(
                "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?, ?)",
                (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, object_id),
            )
        except sqlite3.Error:
            return

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
