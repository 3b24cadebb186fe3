"""The fleet: the serving hosts that follow a remote, and what each of them runs.

    fleet_status(repo, "origin") -> FleetReport(remote, hosts=(...))

A follower (a host that pulls a ref from a remote and switches to it) is what reports
here: its name, the ref and version it serves, when it last did so, and whether its
last switch failed. Followers do not record their status on a remote yet, so every
report is empty and says so (`recorded` is False); this is the one place the web view
and scripts ask, so that they show hosts as soon as followers write them.
"""

from __future__ import annotations

from dataclasses import dataclass

from mstore.errors import Hint, NotFoundError
from mstore.repo import Repo


@dataclass(frozen=True)
class HostStatus:
    """One serving host: what it runs and how its last switch went."""

    host: str
    ref: str
    manifest_id: str | None
    seen: str
    failed: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "host": self.host,
            "ref": self.ref,
            "id": self.manifest_id,
            "seen": self.seen,
            "failed": self.failed,
        }


@dataclass(frozen=True)
class FleetReport:
    remote: str
    hosts: tuple[HostStatus, ...] = ()
    recorded: bool = False
    """Whether the remote holds any follower status at all."""

    def to_json(self) -> dict[str, object]:
        return {
            "remote": self.remote,
            "recorded": self.recorded,
            "hosts": [h.to_json() for h in self.hosts],
        }


def fleet_status(repo: Repo, remote: str) -> FleetReport:
    """The hosts following the configured remote `remote` (none are recorded yet).

    Reads nothing from the remote: there is no follower status to read."""
    if remote not in repo.config.remotes:
        raise NotFoundError(f"no remote named {remote!r} (see ", Hint(command="remote list"), ")")
    return FleetReport(remote)
