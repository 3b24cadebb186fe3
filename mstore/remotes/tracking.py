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
fsync, rename, fsync the directory), `log` by appending one fsynced write. `tracking`
is read like a file mstore did not write (mstore.core.untrusted: no symlink, no FIFO,
bounded). A tracking file that cannot be used counts, for a pull, as absent (as if
deleted, which is safe: pushes of the refs it no longer names are refused until pulled)
and the pull's record replaces it; a record that fails after a pull moved its refs is a
warning, not a failure of the move (`try_record_seen`).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from mstore.core import fsutil, untrusted
from mstore.core.hashing import hash_bytes, is_object_id
from mstore.core.history import History, LogEntry
from mstore.core.layout import Layout
from mstore.core.refs import check_ref_name
from mstore.errors import IntegrityError, InvalidInputError, MstoreError, as_error

TRACKING_FORMAT = 1
MAX_TRACKING_BYTES = 64 << 20  # far above the values of 100,000 refs
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
        self.layout = layout
        key = remote_key(url)
        self.directory = layout.remote_dir(key)
        self.path = layout.remote_tracking(key)
        self.log = History(layout.remote_log(key))

    def read(self) -> Tracking:
        """The tracking values (none if the file is absent); TrackingFileError if the
        file cannot be used, naming it and the way out."""
        try:
            data = untrusted.read_bounded(self.path, MAX_TRACKING_BYTES)
        except (FileNotFoundError, NotADirectoryError):
            return Tracking(self.url)
        except untrusted.UntrustedFileError as err:
            raise TrackingFileError(self.path, self.url, _after_path(str(err), self.path)) from None
        return _decode(data, self.url, self.path)

    def read_or_forget(self) -> tuple[Tracking, str | None]:
        """The tracking values, or, if the file cannot be used, none and a warning saying
        so: it then counts as absent (see the module docstring) until a record replaces it."""
        try:
            return self.read(), None
        except TrackingFileError as err:
            return Tracking(self.url), (
                f"warning: {self.path} {err.reason}: ignored, and replaced by the values this "
                f"pull saw (a push of a ref it no longer names is refused until that ref is "
                f"pulled)"
            )

    def try_record_seen(
        self, values: Mapping[str, str | None], only: bool, current: Tracking, rewrite: bool
    ) -> str | None:
        """`record_seen` after a pull moved its refs: a failure (a full disk, a tracking
        path that is not a file) is returned as a warning, never raised, since the move
        stands; the next pull or push records the values again."""
        try:
            self.record_seen(values, only=only, current=current, rewrite=rewrite)
        except (OSError, MstoreError) as err:
            return (
                f"warning: the values seen on {self.url} were not recorded in {self.path} "
                f"({as_error(err)}); the pull stands, and the next pull or push records "
                f"them"
            )
        return None

    def check_writable(self) -> None:
        """Refuse a store where a push could not record what it moved (a read-only store,
        a lock file it may not open): a push calls this before it sends anything."""
        try:
            os.close(untrusted.open_lock_file(self.layout.lock))
            directory = self.directory
            while not directory.exists():
                directory = directory.parent
            if not os.access(directory, os.W_OK):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(directory))
        except OSError as err:
            raise MstoreError(
                f"this store cannot record a push ({err.strerror}: {err.filename}): a push "
                f"writes the values it moves on {self.url} into {self.directory} under the "
                f"store lock; nothing was sent (push from a store this user can write)"
            ) from None

    def record_pushing(self, values: Mapping[str, str]) -> None:
        """Before a push swaps refs: the values it is about to put there."""
        current = self.read()
        self._write(Tracking(self.url, current.seen, {**current.pushing, **values}))

    def record_seen(
        self,
        values: Mapping[str, str | None],
        done: Iterable[str] = (),
        only: bool = False,
        current: Tracking | None = None,
        rewrite: bool = False,
    ) -> None:
        """After a push, pull or clone: `values` are what the remote refs hold now (None:
        the remote has no such ref); `done` are refs whose push ended (won or lost). With
        `only`, refs not in `values` are forgotten (a pull of every ref saw them gone).
        `current`: the values already read under the same lock (read now if None);
        `rewrite`: write the file even if they did not change (it could not be used)."""
        if current is None:
            current = self.read()
        seen = {} if only else dict(current.seen)
        for ref, value in values.items():
            if value is None:
                seen.pop(ref, None)
            else:
                seen[ref] = value
        ended = set(done) | set(values)
        pushing = {r: v for r, v in current.pushing.items() if r not in ended}
        changed = seen != current.seen or pushing != current.pushing
        if changed or rewrite or not _is_file(self.path):
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


class TrackingFileError(IntegrityError):
    """A tracking file that cannot be used; `reason` says why (after its path)."""

    def __init__(self, path: Path, url: str, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{path} {reason}; delete it and pull from {url} to record it again")


def _decode(data: bytes, url: str, path: Path) -> Tracking:
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise TrackingFileError(path, url, "is not valid JSON") from None
    if not isinstance(raw, dict) or raw.get("format") != TRACKING_FORMAT or raw.get("url") != url:
        raise TrackingFileError(path, url, f"is not the tracking file of {url}")
    maps: list[dict[str, str]] = []
    for key in ("seen", "pushing"):
        values = raw.get(key)
        if not isinstance(values, dict):
            raise TrackingFileError(path, url, f"has no valid {key!r}")
        for ref, value in values.items():
            try:
                check_ref_name(ref)
            except InvalidInputError:
                raise TrackingFileError(path, url, f"names an invalid ref {ref!r}") from None
            if not isinstance(value, str) or not is_object_id(value):
                raise TrackingFileError(path, url, f"has an invalid id for {ref}")
        maps.append(values)
    return Tracking(url, maps[0], maps[1])


def _after_path(message: str, path: Path) -> str:
    """untrusted's "<path> is a symlink; ..." without its leading path."""
    prefix = f"{path} "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _is_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()
