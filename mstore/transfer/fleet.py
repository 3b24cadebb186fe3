"""The fleet: the serving hosts that follow a remote, and what each of them runs
(docs/REMOTES.md, "Fleet status").

    remote/fleet/<host id>   {"error":null,"format":1,"heartbeat":300,"host":"web-3",
                              "id":"<16 hex>","ref":"production","running":"<id>",
                              "state":"healthy","time":"2026-12-07T01:00:00Z",
                              "wanted":"<id>"}

Each follower writes its own status object (one small PUT) when its state changes,
and at least every `heartbeat` seconds while it runs. Readers list `fleet/` and read
each object (bounded: `MAX_STATUS_BYTES`); an object that is malformed, too large or
named unlike a host id is skipped with a note, never trusted. A host is *silent* when
its last status is older than three heartbeats: it stopped, or cannot reach the remote.

    fleet_status(repo, "origin") -> FleetReport(remote, hosts, notes, summary)

The states: `following` (running what the remote names), `switching` (pulling and
switching to `wanted`), `checking` (switched; the health check runs), `healthy` (the
check passed on `running`), `failed-and-reverted` (`wanted` failed its check here and
the host went back to `running`), `refused` (`wanted` was refused: untrusted, or it
imports what the allowlist forbids), `pending` (a staged rollout has not reached this
host yet), `error` (the last poll failed; it retries).
"""

from __future__ import annotations

import calendar
import re
import time
from collections import Counter
from dataclasses import dataclass, field

import orjson

from mstore.core.hashing import is_object_id
from mstore.core.ids import short
from mstore.core.refs import check_ref_name
from mstore.errors import Hint, MstoreError, NotFoundError
from mstore.remotes import open_remote
from mstore.remotes.base import Remote
from mstore.repo import Repo

FORMAT = 1
FOLDER = "fleet"
MAX_STATUS_BYTES = 4096
STATES = (
    "following", "switching", "checking", "healthy", "failed-and-reverted", "refused",
    "pending", "error",
)  # fmt: skip
SILENT_HEARTBEATS = 3
MAX_HOSTS = 100_000
_HOST_ID = re.compile(r"[0-9a-f]{16}", re.ASCII)
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", re.ASCII)


@dataclass(frozen=True)
class HostStatus:
    """One serving host, as its last status object says, and whether it went silent."""

    host: str
    id: str
    ref: str
    running: str | None
    wanted: str | None
    state: str
    error: str | None
    time: str
    heartbeat: int
    silent: bool = False

    @property
    def manifest_id(self) -> str | None:
        return self.running

    @property
    def seen(self) -> str:
        return self.time

    @property
    def failed(self) -> bool:
        return self.state in ("failed-and-reverted", "refused")

    def encode(self) -> bytes:
        document = {k: v for k, v in self.to_json().items() if k != "silent"}
        document["format"] = FORMAT
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)

    def to_json(self) -> dict[str, object]:
        return {
            "host": self.host,
            "id": self.id,
            "ref": self.ref,
            "running": self.running,
            "wanted": self.wanted,
            "state": self.state,
            "error": self.error,
            "time": self.time,
            "heartbeat": self.heartbeat,
            "silent": self.silent,
        }


@dataclass(frozen=True)
class FleetReport:
    remote: str
    hosts: tuple[HostStatus, ...] = ()
    refs: dict[str, str | None] = field(default_factory=dict)  # what the remote names now
    notes: tuple[str, ...] = ()

    @property
    def recorded(self) -> bool:
        """Whether the remote holds any follower status at all."""
        return bool(self.hosts)

    def summary(self) -> list[str]:
        """Per ref: "7/10 on 3f2a…, 1 failed, 2 pending, 1 silent"."""
        lines = []
        for ref in sorted({h.ref for h in self.hosts}):
            hosts = [h for h in self.hosts if h.ref == ref]
            target = self.refs.get(ref)
            current = sum(1 for h in hosts if h.running == target and not h.silent)
            counts = Counter(
                "silent" if h.silent else "failed" if h.failed else "pending"
                for h in hosts
                if h.silent or h.running != target
            )
            parts = [f"{ref}: {current}/{len(hosts)} on {short(target) if target else '(none)'}"]
            parts += [f"{counts[k]} {k}" for k in ("failed", "pending", "silent") if counts[k]]
            lines.append(", ".join(parts))
        return lines

    def to_json(self) -> dict[str, object]:
        return {
            "remote": self.remote,
            "recorded": self.recorded,
            "refs": dict(self.refs),
            "hosts": [h.to_json() for h in self.hosts],
            "summary": self.summary(),
            "notes": list(self.notes),
        }


def status_name(host_id: str) -> str:
    return f"{FOLDER}/{host_id}"


def write_status(remote: Remote, status: HostStatus) -> None:
    """Publish this host's status (one PUT of a few hundred bytes)."""
    remote.put_blob(status_name(status.id), status.encode())


def decode_status(data: bytes, host_id: str, now_seconds: float) -> HostStatus:
    """A status object; ValueError naming what is wrong."""
    raw = orjson.loads(data)
    fields = {"host", "id", "ref", "running", "wanted", "state", "error", "time", "heartbeat"}
    if not isinstance(raw, dict) or raw.pop("format", None) != FORMAT or set(raw) != fields:
        raise ValueError("not a format-1 status object")
    if raw["id"] != host_id:
        raise ValueError("its id is not its name")
    for name in ("host", "ref", "state", "time"):
        if not isinstance(raw[name], str):
            raise ValueError(f"{name} is not a string")
    check_ref_name(raw["ref"])
    if raw["state"] not in STATES or not _TIME.fullmatch(raw["time"]):
        raise ValueError("unknown state or time")
    for name in ("running", "wanted"):
        if raw[name] is not None and not (isinstance(raw[name], str) and is_object_id(raw[name])):
            raise ValueError(f"{name} is not a manifest id")
    if raw["error"] is not None and not isinstance(raw["error"], str):
        raise ValueError("error is not a string")
    heartbeat = raw["heartbeat"]
    if type(heartbeat) is not int or not 1 <= heartbeat <= 86400:
        raise ValueError("heartbeat is not 1-86400 seconds")
    seen = calendar.timegm(time.strptime(raw["time"], "%Y-%m-%dT%H:%M:%SZ"))
    silent = now_seconds - seen > SILENT_HEARTBEATS * heartbeat
    return HostStatus(**raw, silent=silent)


def read_fleet(
    remote: Remote, now_seconds: float | None = None
) -> tuple[list[HostStatus], list[str]]:
    """Every host's status on `remote`, and notes on objects skipped."""
    clock = time.time() if now_seconds is None else now_seconds
    hosts, notes = [], []
    listing = remote.list_blobs(FOLDER)
    for name in sorted(listing)[:MAX_HOSTS]:
        where = f"{FOLDER}/{name}"
        if not _HOST_ID.fullmatch(name):
            notes.append(f"{where}: not named like a host id; skipped")
            continue
        try:
            data = remote.get_blob(where, MAX_STATUS_BYTES)
            if data is None:
                continue  # removed since the listing
            hosts.append(decode_status(data, name, clock))
        except MstoreError as err:
            notes.append(f"{where}: skipped ({err})")
        except (orjson.JSONDecodeError, ValueError, TypeError) as err:
            notes.append(f"{where}: malformed status object, skipped ({err})")
    return hosts, notes


def fleet_status(repo: Repo, remote: str, now_seconds: float | None = None) -> FleetReport:
    """The hosts following the configured remote `remote`, and what its refs name now."""
    url = repo.config.remotes.get(remote)
    if url is None:
        raise NotFoundError(f"no remote named {remote!r} (see ", Hint(command="remote list"), ")")
    opened = open_remote(url)
    try:
        if not opened.probe():
            return FleetReport(remote, notes=(f"{url} holds no remote yet",))
        hosts, notes = read_fleet(opened, now_seconds)
        values = opened.read_refs({h.ref for h in hosts})
        refs = {
            ref: (values[ref].manifest_id if ref in values else None)
            for ref in {h.ref for h in hosts}
        }
    finally:
        opened.close()
    return FleetReport(
        remote, tuple(sorted(hosts, key=lambda h: (h.ref, h.host, h.id))), refs, tuple(notes)
    )
