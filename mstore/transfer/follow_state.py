"""What a follower remembers between polls and across restarts (docs/REMOTES.md,
"Following").

    .mstore/follow/host    {"id":"<16 hex>","name":"web-3"}
    .mstore/follow/state   {"failed":null,"format":1,"phase":"checking","previous":"<id>",
                            "ref":"production","remote":"origin","running":"<id>",
                            "wanted":"<id>"}

`phase` says where a follower was when it last wrote the state, so that one killed at
any point continues from there: `idle` (running what it wants, or nothing to do),
`switching` (pulling `wanted`; `previous` is what ran before), `checking` (switched to
`wanted`, the health check not yet passed), `reverting` (the check failed: switching
back to `previous`). `failed` is the last version that failed here, with the remote
ref's value as it was seen: it is not tried again until the remote ref moves. Both
files are canonical JSON written atomically; a damaged state is an IntegrityError
naming the file (delete it to start over: the follower then treats the current
version as running).
"""

from __future__ import annotations

import secrets
import socket
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from mstore.core import fsutil, untrusted
from mstore.core.hashing import is_object_id
from mstore.core.refs import check_ref_name
from mstore.errors import IntegrityError, InvalidInputError, MstoreError

FORMAT = 1
PHASES = ("idle", "switching", "checking", "reverting")
MAX_STATE_BYTES = 64 << 10
MAX_HOST_NAME = 128
_HOST_ID_CHARACTERS = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Failed:
    """A version that failed on this host: its manifest, why, and the remote ref's
    version (ETag) when it was seen."""

    manifest: str
    reason: str


@dataclass(frozen=True)
class FollowState:
    ref: str
    remote: str
    phase: str = "idle"
    running: str | None = None
    previous: str | None = None
    wanted: str | None = None
    failed: Failed | None = None

    def encode(self) -> bytes:
        document: dict[str, Any] = asdict(self)
        document["format"] = FORMAT
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS) + b"\n"

    def moved(self, **changes: Any) -> FollowState:
        return replace(self, **changes)


@dataclass(frozen=True)
class Host:
    id: str
    name: str


def read_state(path: Path) -> FollowState | None:
    try:
        data = untrusted.read_bounded(path, MAX_STATE_BYTES)
    except FileNotFoundError:
        return None
    try:
        raw = orjson.loads(data)
        if not isinstance(raw, dict) or raw.pop("format", None) != FORMAT:
            raise ValueError("not a format-1 follow state")
        failed = raw.pop("failed", None)
        state = FollowState(**raw, failed=_failed(failed))
        check_ref_name(state.ref)
        if state.phase not in PHASES or not isinstance(state.remote, str):
            raise ValueError("unknown phase or remote")
        for value in (state.running, state.previous, state.wanted):
            if value is not None and not (isinstance(value, str) and is_object_id(value)):
                raise ValueError("a version is not a manifest id")
        return state
    except (orjson.JSONDecodeError, TypeError, ValueError, MstoreError) as err:
        raise IntegrityError(
            f"{path} is damaged ({err}); delete it and the follower starts over from the "
            f"version that runs now"
        ) from None


def _failed(value: object) -> Failed | None:
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or set(value) != {"manifest", "reason"}
        or not isinstance(value["manifest"], str)
        or not is_object_id(value["manifest"])
        or not isinstance(value["reason"], str)
    ):
        raise ValueError("failed is not a manifest and a reason")
    return Failed(value["manifest"], value["reason"][:1000])


def write_state(path: Path, state: FollowState) -> None:
    fsutil.makedirs_durable(path.parent)
    fsutil.atomic_write(path, state.encode())


def check_host_name(name: str) -> str:
    if not name or len(name) > MAX_HOST_NAME or not name.isprintable() or name.strip() != name:
        raise InvalidInputError(
            f"host name {name!r} must be 1-{MAX_HOST_NAME} printable characters, no "
            f"surrounding spaces"
        )
    return name


def host_identity(path: Path, name: str | None = None) -> Host:
    """This store's host id (made once, then stable) and name (`name` renames it; the
    default is the machine's host name)."""
    current: Host | None = None
    try:
        raw = orjson.loads(untrusted.read_bounded(path, MAX_STATE_BYTES))
        if (
            isinstance(raw, dict)
            and isinstance(raw.get("id"), str)
            and len(raw["id"]) == 16
            and set(raw["id"]) <= _HOST_ID_CHARACTERS
            and isinstance(raw.get("name"), str)
        ):
            current = Host(raw["id"], check_host_name(raw["name"]))
    except FileNotFoundError:
        pass
    except (orjson.JSONDecodeError, InvalidInputError):
        current = None
    wanted_name = check_host_name(name) if name is not None else None
    if current is not None and (wanted_name is None or wanted_name == current.name):
        return current
    host = Host(
        current.id if current is not None else secrets.token_hex(8),
        wanted_name or (current.name if current else check_host_name(socket.gethostname())),
    )
    fsutil.makedirs_durable(path.parent)
    fsutil.atomic_write(path, orjson.dumps(asdict(host), option=orjson.OPT_SORT_KEYS) + b"\n")
    return host
