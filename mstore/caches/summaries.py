"""The summary cache: what `mstore list` shows of each manifest, keyed by its id.

    .mstore/summaries.db    SQLite: manifest id -> JSON array of a Summary's fields

A summary holds facts of the manifest alone (its metadata's version, created date,
status, deployed date and metrics); what the policy shows under a ref is applied on top
(workflow/policy.py). Manifests are immutable, so a summary can never be stale: listing ten
thousand refs reads one cache instead of ten thousand manifests (each hashed and
validated). It is a local cache like `hashcache.db`: deleting it loses nothing, it is
filled by the first `list` that misses, and a cache that cannot be read or written is
no cache (the manifests are read instead).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from mstore.core import untrusted
from mstore.core.manifests import Manifest

if TYPE_CHECKING:
    import sqlite3

QUERY_BATCH = 900
SCAN_AT = 2000


class Summary(NamedTuple):
    """A manifest's own facts, as its metadata states them (a tuple: `list` makes
    thousands of them, and it is stored as a JSON array of these fields in order)."""

    version: str | None
    created: str | None
    status: str | None
    deployed_date: str | None
    metrics: dict[str, Any]


def _text(metadata: Mapping[str, Any], key: str) -> str | None:
    value = metadata.get(key)
    return None if value is None else str(value)


def summarize_manifest(manifest: Manifest) -> Summary:
    metadata = dict(manifest.metadata or {})
    metrics = metadata.get("metrics")
    return Summary(
        version=_text(metadata, "version"),
        created=_text(metadata, "created_date") or manifest.lineage.time[:10],
        status=_text(metadata, "status"),
        deployed_date=_text(metadata, "deployed_date"),
        metrics=dict(metrics) if isinstance(metrics, dict) else {},
    )


class SummaryCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._broken = False

    def get_many(self, manifest_ids: Iterable[str]) -> dict[str, Summary]:
        """The cached summaries of those manifests that have one."""
        import sqlite3

        db = self._connect()
        if db is None:
            return {}
        found: dict[str, Summary] = {}
        wanted = set(manifest_ids)
        try:
            if len(wanted) >= SCAN_AT:
                # Listing many refs: one pass over the table beats thousands of lookups.
                rows = db.execute("SELECT id, body FROM summaries")
                selected = ((mid, body) for mid, body in rows if mid in wanted)
                self._decode(selected, found)
            else:
                ordered = sorted(wanted)
                for start in range(0, len(ordered), QUERY_BATCH):
                    batch = ordered[start : start + QUERY_BATCH]
                    marks = ",".join("?" * len(batch))
                    query = f"SELECT id, body FROM summaries WHERE id IN ({marks})"
                    self._decode(db.execute(query, batch), found)
        except sqlite3.Error:
            return found
        return found

    @staticmethod
    def _decode(rows: Iterable[tuple[str, bytes]], found: dict[str, Summary]) -> None:
        for manifest_id, body in rows:
            with contextlib.suppress(orjson.JSONDecodeError, TypeError):
                found[str(manifest_id)] = Summary(*orjson.loads(body))

    def put_many(self, summaries: Mapping[str, Summary]) -> None:
        """Remember summaries (silently nothing if the cache cannot be written)."""
        import sqlite3

        db = self._connect()
        if db is None or not summaries:
            return
        rows = [(mid, orjson.dumps(list(s))) for mid, s in summaries.items()]
        with contextlib.suppress(sqlite3.Error):
            db.execute("BEGIN")
            db.executemany("INSERT OR REPLACE INTO summaries VALUES (?, ?)", rows)
            db.execute("COMMIT")

    def _connect(self) -> sqlite3.Connection | None:
        import sqlite3  # lazily, like the hash cache

        if self._db is None and not self._broken:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if not untrusted.clear_for_cache(self.path):
                    raise OSError(f"{self.path} is a directory")
                db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
                # synchronous first: switching a new database to WAL is then not synced (a cache
                # need not survive a crash; a broken one is no cache)
                db.execute("PRAGMA synchronous=OFF")
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("CREATE TABLE IF NOT EXISTS summaries (id TEXT PRIMARY KEY, body BLOB)")
                self._db = db
            except (sqlite3.Error, OSError):
                self._broken = True  # a broken cache is no cache
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
