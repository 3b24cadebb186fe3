"""The local chunk index: which chunks the store's own large objects hold, and where.

    .mstore/chunks.sqlite     chunks(id, object, offset, length), objects(id), meta(params)

A cache over objects already present, so that a pull rebuilding a new version reads the
bytes this host already has instead of fetching them: deleting the file is safe (it is
rebuilt on the next pull), and every chunk read through it is hashed before use (an
entry that no longer matches is simply not used, and an object that is no longer a
regular file is skipped, never followed or read blocking). It is keyed by the chunking
parameters' name: other parameters start it afresh.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from mstore.chunks.chunking import ChunkParams, chunk_file
from mstore.core import untrusted
from mstore.core.hashing import hash_bytes
from mstore.core.layout import Layout
from mstore.core.objects import ObjectStore
from mstore.core.untrusted import UntrustedFileError


class LocalChunks:
    """Lookups of chunk ids among the store's objects above `threshold` bytes."""

    def __init__(
        self, layout: Layout, objects: ObjectStore, params: ChunkParams, threshold: int
    ) -> None:
        self.objects = objects
        self.path = layout.chunk_index
        try:
            self.db = self._open(params)
        except sqlite3.DatabaseError:
            # A damaged cache: start it afresh.
            self.path.unlink(missing_ok=True)
            self.db = self._open(params)
        self.params = params
        self.threshold = threshold

    def _open(self, params: ChunkParams) -> sqlite3.Connection:
        if not untrusted.clear_for_cache(self.path):
            raise UntrustedFileError(f"{self.path} is a directory; remove it (a cache)")
        db = sqlite3.connect(self.path, check_same_thread=False)
        try:
            _prepare(db, params)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def update(self, ids: Iterable[str] | None = None) -> int:
        """Index the store's large objects not indexed yet; returns how many were."""
        known = {r[0] for r in self.db.execute("SELECT id FROM objects")}
        added = 0
        for object_id in ids if ids is not None else self.objects.iter_ids():
            if object_id in known or not self.objects.has(object_id):
                continue
            if self.objects.size(object_id) <= self.threshold:
                continue
            path = self.objects.path(object_id)
            rows = [
                (c.id, object_id, c.offset, c.length)
                for c in chunk_file(path, self.params, owned=True)
            ]
            self.db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?)", rows)
            self.db.execute("INSERT INTO objects VALUES (?)", (object_id,))
            self.db.commit()
            added += 1
        return added

    def read(self, chunk_id: str, length: int) -> bytes | None:
        """The chunk's bytes from a local object, checked; None if no object holds it."""
        rows = self.db.execute(
            "SELECT object, offset FROM chunks WHERE id = ? AND length = ?", (chunk_id, length)
        ).fetchall()
        for object_id, offset in rows:
            path: Path = self.objects.path(object_id)
            with contextlib.suppress(OSError, UntrustedFileError):
                fd = untrusted.open_regular(path)  # a planted link or FIFO is skipped
                try:
                    data = os.pread(fd, length, offset)
                finally:
                    os.close(fd)
                if hash_bytes(data) == chunk_id:
                    return data
        return None

    def close(self) -> None:
        self.db.close()


def _prepare(db: sqlite3.Connection, params: ChunkParams) -> None:
    db.executescript(
        "CREATE TABLE IF NOT EXISTS meta (params TEXT);"
        "CREATE TABLE IF NOT EXISTS objects (id TEXT PRIMARY KEY);"
        "CREATE TABLE IF NOT EXISTS chunks (id TEXT, object TEXT, offset INTEGER,"
        " length INTEGER);"
        "CREATE INDEX IF NOT EXISTS chunk_ids ON chunks (id);"
    )
    row = db.execute("SELECT params FROM meta").fetchone()
    if row is None or row[0] != params.name:
        db.executescript("DELETE FROM meta; DELETE FROM objects; DELETE FROM chunks;")
        db.execute("INSERT INTO meta VALUES (?)", (params.name,))
        db.commit()
