"""remote add / list / remove / show: the named remotes in `.mstore/config`.

    {"format":1,"link_mode":"copy","remotes":{"backup":"/mnt/models","origin":"s3://bucket/models"}}

Names map to canonical URLs (`mstore.remotes.normalize_url`: a directory path is stored
absolute). The config is re-read and rewritten atomically under the store lock
(`Repo.update_config`), so two concurrent edits cannot drop each other's remote. Adding
a remote contacts nothing.
`show` reads what this store last saw there (mstore.remotes.tracking), contacting nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mstore.core.config import read_config
from mstore.core.history import LogEntry
from mstore.errors import Hint, NotFoundError, RefusedError
from mstore.remotes import check_remote_name, normalize_url
from mstore.remotes.tracking import RemoteTracking, Tracking
from mstore.repo import Repo

RECENT_PUSHES = 10


@dataclass(frozen=True)
class RemoteStatus:
    """A remote as this store knows it: the values it last saw there, its recent pushes."""

    name: str | None
    url: str
    tracking: Tracking
    pushes: list[LogEntry]
    tracking_path: str

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "url": self.url,
            "seen": self.tracking.seen,
            "pushing": self.tracking.pushing,
            "pushes": [entry.to_json() for entry in self.pushes],
            "tracking_file": self.tracking_path,
        }


def list_remotes(repo: Repo) -> dict[str, str]:
    """Every configured remote: name -> URL, sorted by name."""
    return dict(sorted(read_config(repo.layout.config).remotes.items()))


def add_remote(repo: Repo, name: str, url: str, base: Path | None = None) -> str:
    """Configure remote `name` at `url` (a relative path is taken from `base`); return the
    URL as stored."""
    check_remote_name(name)
    canonical = normalize_url(url, base)
    with repo.locked("remote add"):
        existing = read_config(repo.layout.config).remotes.get(name)
        if existing is not None:
            raise RefusedError(
                f"remote {name} already exists ({existing}); remove it first (",
                Hint(command="remote remove", args=(name,)),
                ")",
            )
        repo.update_config(lambda config: config.with_remotes({**config.remotes, name: canonical}))
    return canonical


def remove_remote(repo: Repo, name: str) -> str:
    """Forget remote `name` (nothing on the remote is touched); return its URL."""
    with repo.locked("remote remove"):
        remotes = read_config(repo.layout.config).remotes
        url = remotes.get(name)
        if url is None:
            known = ", ".join(sorted(remotes)) or "none"
            raise NotFoundError(f"no remote named {name!r} (configured: {known})")
        repo.update_config(
            lambda config: config.with_remotes(
                {n: u for n, u in config.remotes.items() if n != name}
            )
        )
    return url


def show_remote(repo: Repo, name_or_url: str, limit: int = RECENT_PUSHES) -> RemoteStatus:
    """What this store last saw on remote `name_or_url` (a configured name or a URL)."""
    remotes = read_config(repo.layout.config).remotes
    if name_or_url in remotes:
        name: str | None = name_or_url
        url = remotes[name_or_url]
    elif "://" in name_or_url or name_or_url.startswith(("/", "./", "../", "~")):
        name, url = None, normalize_url(name_or_url)
    else:
        known = ", ".join(sorted(remotes)) or "none"
        raise NotFoundError(f"no remote named {name_or_url!r} (configured: {known})")
    tracking = RemoteTracking(repo.layout, url)
    return RemoteStatus(name, url, tracking.read(), tracking.pushes(limit), str(tracking.path))
