"""Remote-tracking values: the value of each remote ref this store last saw.

    .mstore/remotes/<remote key>/       remote key: blake3 of the remote's URL, 16 hex digits
      tracking    {"format":1,"pushing":{...},"seen":{"production":"<id>"},"url":"s3://b/p"}
      log         one JSON line per remote ref a push moved (action "push" or "push --force")

`seen` is what the remote ref held at this store's last push, pull or clone of it (like
git's refs/remotes/origin/*). A push moves a remote ref only from that value: anything
else there was put by another store, and replacing it would undo their move unseen.
`pushing` is written before a push swaps a ref and cleared after: a crash between the
swap and the record leaves the remote holding our own value, which the next push
recognizes from it instead of calling it a foreign move.

Both files are written under the store lock: `tracking` atomically (temporary file,
fsync, rename, fsync the directory), `log` by appending one fsynced write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from mstore import fsutil
from mstore.errors import IntegrityError, InvalidInputError
from mstore.hashing import hash_bytes, is_object_id
from mstore.history import History, LogEntry
from mstore.layout import Layout
from mstore.refs import check_ref_name

TRACKING_FORMAT = 1
PUSH = "push"
FORCED_PUSH = "push --force"


def remote_key(url: str) -> str:
    """The directory name under `.mstore/remotes/` for the canonical remote URL `url`."""
    return hash_bytes(url.encode("utf-8"))[:16]


@dataclass(frozen=True)
class Tracking:
    """What this store knows of one remote's refs."""

    url: str
    seen: dict[str, str] = field(default_factory=dict)
    pushing: dict[str, str] = field(default_factory=dict)

    def allows(self, ref: str, remote_value: str | None) -> bool:
        """True if the remote ref still holds what this store last saw there (or what an
        interrupted push of ours left there)."""
        if remote_value is None:
            return ref not in self.seen
        return remote_value in (self.seen.get(ref), self.pushing.get(ref))

    def to_json(self) -> dict[str, object]:
        return {"url": self.url, "seen": self.seen, "pushing": self.pushing}


class RemoteTracking:
    """The tracking file and push log of one remote URL. Writers hold the store lock."""

    def __init__(self, layout: Layout, url: str) -> None:
        self.url = url
        self.directory = layout.remote_dir(remote_key(url))
        self.path = self.directory / "tracking"
        self.log = History(self.directory / "log")

    def read(self) -> Tracking:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return Tracking(self.url)
        return _decode(data, self.url, self.path)

    def record_pushing(self, values: Mapping[str, str]) -> None:
        """Before a push swaps refs: the values it is about to put there."""
        current = self.read()
        self._write(Tracking(self.url, current.seen, {**current.pushing, **values}))

    def record_seen(
        self, values: Mapping[str, str | None], done: Iterable[str] = (), only: bool = False
    ) -> None:
        """After a push, pull or clone: `values` are what the remote refs hold now (None:
        the remote has no such ref); `done` are refs whose push ended (won or lost). With
        `only`, refs not in `values` are forgotten (a pull of every ref saw them gone)."""
        current = self.read()
        seen = {} if only else dict(current.seen)
        for ref, value in values.items():
            if value is None:
                seen.pop(ref, None)
            else:
                seen[ref] = value
        ended = set(done) | set(values)
        pushing = {r: v for r, v in current.pushing.items() if r not in ended}
        if seen != current.seen or pushing != current.pushing or not self.path.exists():
            self._write(Tracking(self.url, dict(sorted(seen.items())), pushing))

    def record_pushes(self, entries: list[LogEntry]) -> None:
        fsutil.makedirs_durable(self.directory)
        self.log.append(entries)

    def pushes(self, limit: int) -> list[LogEntry]:
        """The newest `limit` entries of the push log, newest first."""
        found: list[LogEntry] = []
        for entry in self.log.newest_first():
            if len(found) >= limit:
                break
            found.append(entry)
        return found

    def _write(self, tracking: Tracking) -> None:
        fsutil.makedirs_durable(self.directory)
        document = {"format": TRACKING_FORMAT, **tracking.to_json()}
        fsutil.atomic_write(self.path, orjson.dumps(document, option=orjson.OPT_SORT_KEYS))


def _decode(data: bytes, url: str, path: Path) -> Tracking:
    way_out = f"delete {path} and pull from {url} to record it again"
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise IntegrityError(f"{path} is not valid JSON; {way_out}") from None
    if not isinstance(raw, dict) or raw.get("format") != TRACKING_FORMAT or raw.get("url") != url:
        raise IntegrityError(f"{path} is not the tracking file of {url}; {way_out}")
    maps: list[dict[str, str]] = []
    for key in ("seen", "pushing"):
        values = raw.get(key)
        if not isinstance(values, dict):
            raise IntegrityError(f"{path} has no valid {key!r}; {way_out}")
        for ref, value in values.items():
            try:
                check_ref_name(ref)
            except InvalidInputError:
                raise IntegrityError(f"{path} names an invalid ref {ref!r}; {way_out}") from None
            if not isinstance(value, str) or not is_object_id(value):
                raise IntegrityError(f"{path} has an invalid id for {ref}; {way_out}")
        maps.append(values)
    return Tracking(url, maps[0], maps[1])
