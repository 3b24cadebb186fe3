"""What this store has accepted, per ref: the highest statement generation and which
statement it was (docs/REMOTES.md, "Trust").

    .mstore/trust/accepted   {"production": {"generation": 8, "statement": "<object id>"}}

A pull that follows a guarded ref records the statement here BEFORE its transaction
moves the ref (canonical JSON, written atomically under the store lock): so a crash in
between leaves the record ahead of the ref, never behind it, and the retried pull finds
the same statement accepted (equal generation, same id), not a replay. The record only
ever goes up, except through an explicit downgrade the log records.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from mstore.core import fsutil, untrusted
from mstore.core.hashing import is_object_id
from mstore.errors import IntegrityError
from mstore.trust.checks import Accepted

MAX_ACCEPTED_BYTES = 16 << 20


def read_accepted(path: Path) -> dict[str, Accepted]:
    """Ref -> what was accepted for it ({} without a record); IntegrityError if damaged."""
    try:
        data = untrusted.read_bounded(path, MAX_ACCEPTED_BYTES)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    try:
        raw = orjson.loads(data)
        if not isinstance(raw, dict):
            raise TypeError("not an object")
        result = {}
        for ref, entry in raw.items():
            generation, statement = entry["generation"], entry["statement"]
            if type(generation) is not int or generation < 1 or not is_object_id(statement):
                raise ValueError(ref)
            result[str(ref)] = Accepted(generation, statement)
        return result
    except (orjson.JSONDecodeError, TypeError, KeyError, ValueError) as err:
        raise IntegrityError(
            f"{path} is damaged ({err}); it records which signed statements this store "
            f"accepted: restore it from a backup, or delete it to accept the remote's "
            f"current statements again (replays of older ones then go unnoticed once)"
        ) from None


def record_accepted(path: Path, updates: dict[str, Accepted]) -> None:
    """Add `updates` to the record (callers hold the store lock)."""
    if not updates:
        return
    current = read_accepted(path)
    current.update(updates)
    document = {
        ref: {"generation": a.generation, "statement": a.statement}
        for ref, a in sorted(current.items())
    }
    fsutil.makedirs_durable(path.parent)
    fsutil.atomic_write(path, orjson.dumps(document, option=orjson.OPT_SORT_KEYS) + b"\n")
