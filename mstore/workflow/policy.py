"""The seed's workflow policy: how a version's metadata is shown under a ref.

This is the only module that knows what `production`, `staging` and `archive/*` mean.
The storage core (objects, manifests, refs, log, views, transactions) moves refs and
shows files; what a version's `metadata.json` says under a ref is decided here:

- `status` follows the ref: `production` shows `active`, `staging` shows `staging`,
  `archive/*` shows `archived`; any other ref keeps the version's own value;
- `deployed_date` is the date of the newest log entry that moved `production` to the
  manifest, other than an `import` (an imported version keeps its own date), under
  every ref that holds the version.

What the policy needs from history (the last deployment of each manifest) comes from
the `deployments` index (`core/log_index.py`), which every transaction keeps current, so no
command reads the log to show a version.
"""

from __future__ import annotations

from typing import Any

import orjson

from mstore.core.history import LogEntry

PRODUCTION = "production"
IMPORT_ACTION = "import"
ROLE_STATUS = {PRODUCTION: "active", "staging": "staging"}
ARCHIVE_PREFIX = "archive/"
DEPLOYMENTS_INDEX = "deployments"


def role_status(ref: str) -> str | None:
    """The `status` a version shows under `ref`, or None to keep its own."""
    if ref in ROLE_STATUS:
        return ROLE_STATUS[ref]
    if ref.startswith(ARCHIVE_PREFIX):
        return "archived"
    return None


def deployment(entry: LogEntry) -> tuple[str, str] | None:
    """(manifest id, date) if `entry` deploys a version, else None.

    A deployment is a move of `production` to a manifest by anything but `import`
    (promote, rollback, commit, rename, pull all count).
    """
    if entry.ref != PRODUCTION or entry.action == IMPORT_ACTION or entry.new is None:
        return None
    return entry.new, entry.when[:10]


def shown_status(ref: str, own: str | None) -> str | None:
    """The status `mstore list` shows for a version under `ref` (`own`: its metadata's)."""
    status = role_status(ref)
    return own if status is None else status


def shown_deployed(deployed_date: str | None, own: str | None) -> str | None:
    """The deployed date shown for a version: its last deployment, else its own field."""
    return own if deployed_date is None else deployed_date


def render_metadata(original: bytes, ref: str, deployed_date: str | None) -> bytes | None:
    """`metadata.json` as shown under `ref`, or None if the original bytes already fit.

    Only `status` and `deployed_date` change; every other key keeps its value and its
    place (2-space indent, trailing newline). Bytes that are not a JSON object are kept.
    """
    try:
        document = orjson.loads(original)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    wanted: dict[str, Any] = {}
    status = role_status(ref)
    if status is not None:
        wanted["status"] = status
    if deployed_date is not None:
        wanted["deployed_date"] = deployed_date
    if all(document.get(key) == value for key, value in wanted.items()):
        return None
    document.update(wanted)
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
