"""Storage (`/storage`) and the fleet (`/fleet`): what the store and its remotes hold.

Storage: logical bytes against stored bytes in this store (`ops.storage`, local files
only), and for one configured remote only when asked (`?remote=NAME`: that contacts
it; the figures are `mstore remote stats NAME --json`). The fleet: the hosts that
follow each configured remote (`transfer.fleet`); the page refreshes itself.
"""

from __future__ import annotations

from starlette.responses import Response

from mstore.errors import MstoreError, NotFoundError
from mstore.ops.storage import local_storage
from mstore.remotes import open_remote
from mstore.transfer.fleet import FleetReport, fleet_status
from mstore.transfer.upkeep import RemoteStats, stats
from mstore.ui import params
from mstore.ui.view import View

FLEET_REFRESH_SECONDS = 30


def storage(view: View) -> Response:
    name = params.text(view.request, "remote")
    local = local_storage(view.repo)
    remote = remote_stats(view, name) if name is not None else None
    document = {"local": local.to_json(), "remote": remote.to_json() if remote else None}
    if view.api:
        return view.json(document)
    return view.html(
        "storage.html",
        "Storage",
        local=local,
        remote=remote,
        remote_name=name,
        remotes=sorted(view.repo.config.remotes),
    )


def remote_stats(view: View, name: str) -> RemoteStats:
    """`mstore remote stats NAME` for a configured remote (never a URL from the query)."""
    remotes = view.repo.config.remotes
    if name not in remotes:
        raise NotFoundError(f"no remote named {name!r} (see `mstore remote list`)")
    remote = open_remote(remotes[name])
    try:
        return stats(remote)
    finally:
        remote.close()


def _fleet_report(view: View, name: str) -> FleetReport:
    """The remote's fleet, or a report that says why it cannot be read (the page shows
    every remote; one that is unreachable or not a remote must not hide the others)."""
    try:
        return fleet_status(view.repo, name)
    except MstoreError as err:
        if isinstance(err, NotFoundError) and name not in view.repo.config.remotes:
            raise
        return FleetReport(name, notes=(f"cannot read the fleet of {name}: {err}",))


def fleet(view: View) -> Response:
    names = sorted(view.repo.config.remotes)
    wanted = params.text(view.request, "remote")
    if wanted is not None:
        names = [wanted]
    reports = [_fleet_report(view, name) for name in names]
    if view.api:
        return view.json([r.to_json() for r in reports])
    return view.html(
        "fleet.html",
        "Fleet",
        reports=reports,
        refresh=FLEET_REFRESH_SECONDS if any(r.recorded for r in reports) else None,
    )
