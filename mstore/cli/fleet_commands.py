"""The serving fleet's commands: `mstore follow` (on each serving host) and `mstore
fleet` (anywhere the remote is configured).

Each parses, calls the library (mstore.transfer.follow, mstore.transfer.fleet) and
renders: `follow` prints one line per event (JSON lines with --json), `fleet` a table
and a summary. Like the other command modules, this one has no `from __future__ import
annotations` (typer reads the annotations) and imports the library inside the commands.
"""

import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from mstore.cli import completion
from mstore.cli.common import JsonOption, add_command
from mstore.workflow.policy import PRODUCTION

RemoteArgument = Annotated[
    str,
    typer.Argument(
        metavar="[REMOTE]",
        help="A configured remote (default: origin).",
        autocompletion=completion.when_completing(completion.remote_or_ref_names),
    ),
]


def register(app: typer.Typer) -> None:
    """Add follow and fleet to `app`."""
    add_command(app, "follow", follow)
    add_command(app, "fleet", fleet)


def follow(
    ctx: typer.Context,
    remote: RemoteArgument = "origin",
    ref: Annotated[
        str, typer.Option("--ref", metavar="REF", help="The ref to follow.")
    ] = PRODUCTION,
    interval: Annotated[
        float, typer.Option("--interval", metavar="SECONDS", min=0.05, help="Time between polls.")
    ] = 30.0,
    once: Annotated[
        bool, typer.Option("--once", help="Poll once (and switch if needed), then exit.")
    ] = False,
    health_cmd: Annotated[
        str | None,
        typer.Option(
            "--health-cmd",
            metavar="CMD",
            help="Shell command that exits 0 when the application is healthy after a "
            "switch (default: the store's `health` hook, if any; none: no check).",
        ),
    ] = None,
    health_timeout: Annotated[
        float,
        typer.Option(
            "--health-timeout", metavar="SECONDS", min=0.1, help="Kill the check after this."
        ),
    ] = 60.0,
    host_name: Annotated[
        str | None,
        typer.Option(
            "--host-name", metavar="NAME", help="This host's name in fleet status (kept once set)."
        ),
    ] = None,
    heartbeat: Annotated[
        float,
        typer.Option(
            "--heartbeat",
            metavar="SECONDS",
            min=1,
            help="Rewrite this host's status object at least this often.",
        ),
    ] = 300.0,
    wariness: Annotated[
        float | None,
        typer.Option(
            "--wariness",
            metavar="W",
            min=0.0,
            max=1.0,
            help="This host's place in staged rollouts, 0 (first, a canary) to 1 (last); "
            "default: a stable number drawn from its host id.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Follow a remote ref on a serving host: switch to each new version, check health,
    go back by itself when the check fails.

    Each poll reads the remote ref (one small request). When it moves: pull it (signature
    and import checks where trust rules guard it; only missing chunks), switch, run the
    post-switch hook (the restart), then the health check. A failed check switches back
    to the version that ran before, runs the hook again, and marks the failed version:
    it is not tried again until the remote ref moves. Errors back off and retry. SIGTERM
    or Ctrl-C stop it between steps; a follower killed anywhere continues where it was
    on its next start. Every change is written to the remote as this host's status
    (`mstore fleet`). One follower per store. Exit codes with --once: 0 when the host
    runs what the remote names, 1 when that version failed here or was refused.
    """
    from mstore.cli import output
    from mstore.cli.common import open_repo
    from mstore.transfer.follow import Follower, FollowEvent, FollowOptions

    repo = open_repo(ctx)

    def show(event: FollowEvent) -> None:
        if as_json:
            output.emit_json_line(event.to_json())
        else:
            output.say(event.line())
            sys.stdout.flush()

    options = FollowOptions(
        ref=ref,
        interval=interval,
        health_command=health_cmd,
        health_timeout=health_timeout,
        host_name=host_name,
        heartbeat=heartbeat,
        wariness=wariness,
    )
    import threading

    stop = threading.Event()
    with Follower(repo, remote, options, show) as follower:
        if once:
            state = follower.poll_once()
            if state in ("failed-and-reverted", "refused"):
                raise typer.Exit(1)
            return
        with _stop_on_signals(stop):
            follower.run(stop)


@contextlib.contextmanager
def _stop_on_signals(stop: Any) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop`: the follower finishes its step, then exits."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def handle(signum: int, _frame: object) -> None:
        stop.set()

    for number in previous:
        signal.signal(number, handle)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def fleet(
    ctx: typer.Context,
    remote: RemoteArgument = "origin",
    watch: Annotated[
        float | None,
        typer.Option("--watch", metavar="SECONDS", min=1, help="Refresh every SECONDS."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show every host that follows a remote: what it runs, whether it is current,
    failed or silent (no status for three heartbeats), and a summary per ref.

    Reads the hosts' status objects from the remote (`fleet/<host id>`); no server.
    """
    import time

    from mstore.cli import output
    from mstore.cli.common import open_repo
    from mstore.transfer.fleet import fleet_status

    repo = open_repo(ctx)
    while True:
        report = fleet_status(repo, remote)
        if as_json:
            output.emit_json(report.to_json())
        else:
            _render(report, output)
        if watch is None:
            return
        time.sleep(watch)


def _render(report: Any, output: Any) -> None:
    if not report.hosts:
        output.say(f"no host reports to {report.remote}")
    for h in report.hosts:
        state = "silent" if h.silent else h.state
        wanted = f" wants {output.short(h.wanted)}" if h.wanted and h.wanted != h.running else ""
        error = f" ({h.error})" if h.error else ""
        output.say(
            f"{h.host:<20} {h.ref:<12} {output.short(h.running)}{wanted} {state} {h.time}{error}"
        )
    for line in report.summary():
        output.say(line)
    for note in report.notes:
        output.note(note)
