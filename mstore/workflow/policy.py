"""The seed's workflow policy: what its refs are called and mean, and how a version's
metadata is shown under a ref.

This is the only module that knows what `production`, `staging` and `archive/*` mean
(a test holds every other module to that): the rest of mstore names them through the
constants and functions here. The storage core (objects, manifests, refs, log, views,
transactions) moves refs and shows files; what a version's `metadata.json` says under a
ref, and what a promote calls the version it replaces, are decided here:

- `status` follows the ref: `production` shows `active`, `staging` shows `staging`,
  `archive/*` shows `archived`; any other ref keeps the version's own value;
- `deployed_date` is the date of the newest log entry that moved `production` to the
  manifest, other than an `import` (an imported version keeps its own date), under
  every ref that holds the version;
- a version a promote replaces is kept as `archive/<vN>_<date>` (`archive_name`), or
  `-2`, `-3`... after it when another version holds that name (`archive_names`);
- an application with no `MODEL_ENVIRONMENT` serves `production` (`DEFAULT_ENVIRONMENT`);
  `promote` moves `staging` to `production` and `rollback` moves `production` unless
  told otherwise; `import` adopts `production/`, `staging/` and `archive/<name>/` of a
  seed tree (`SEED_REFS`).

What the policy needs from history (the last deployment of each manifest) comes from
the `deployments` index (`core/log_index.py`), which every transaction keeps current, so no
command reads the log to show a version.

Standard library only when imported (orjson when metadata is rendered): `mstore.settings`,
which applications import at start-up, takes its default environment from here.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mstore.core.history import LogEntry

PRODUCTION = "production"
STAGING = "staging"
ARCHIVE = "archive"  # the directory of refs (and of a seed tree) that keeps replaced versions
ARCHIVE_PREFIX = f"{ARCHIVE}/"
DEFAULT_ENVIRONMENT = PRODUCTION  # what an application serves when nothing says otherwise
SEED_REFS = (PRODUCTION, STAGING)  # a seed tree's top-level versions (archive/ aside)
IMPORT_ACTION = "import"
ROLE_STATUS = {PRODUCTION: "active", STAGING: "staging"}
DEPLOYMENTS_INDEX = "deployments"

_VERSION = re.compile(r"^(v\d+)")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def is_archive(ref: str) -> bool:
    """Whether `ref` keeps a replaced version (it lies under `archive/`)."""
    return ref.startswith(ARCHIVE_PREFIX)


def archive_ref(name: str) -> str:
    """`name` as an archive ref: `archive/<name>`, unless it already is one."""
    return name if is_archive(name) else f"{ARCHIVE_PREFIX}{name}"


def archive_name(
    metadata: Mapping[str, Any],
    refs: Iterable[str],
    deployed: str | None,
    today: datetime.date | None = None,
) -> str:
    """`archive/<vN>_<date>` for a version leaving production, as the seed names them.

    `vN` is the version's own (`metadata["version"]` starting `v<digits>`), else one more
    than the archive refs among `refs`; the date is its last deployment (`deployed`),
    else its `deployed_date` or `created_date`, else `today`.
    """
    match = _VERSION.match(str(metadata.get("version") or ""))
    label = match.group(1) if match else f"v{sum(map(is_archive, refs)) + 1}"
    date = deployed
    for key in ("deployed_date", "created_date"):
        value = metadata.get(key)
        if date is None and isinstance(value, str) and _DATE.match(value):
            date = value[:10]
    if date is None:
        date = (today or datetime.date.today()).isoformat()
    return f"{ARCHIVE_PREFIX}{label}_{date}"


def archive_names(base: str) -> Iterator[str]:
    """The names a replaced version may be kept under, in order: `base`, `base-2`, ..."""
    yield base
    n = 2
    while True:
        yield f"{base}-{n}"
        n += 1


def role_status(ref: str) -> str | None:
    """The `status` a version shows under `ref`, or None to keep its own."""
    if ref in ROLE_STATUS:
        return ROLE_STATUS[ref]
    if is_archive(ref):
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
    import orjson  # here, not above: importing the policy stays light (see the module doc)

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
