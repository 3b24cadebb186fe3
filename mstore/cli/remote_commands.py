"""The remote commands: push, pull, clone (and, from remote_names, `mstore remote`).

`register(app)` adds them to the `mstore` typer app (called by mstore/cli/app.py).
Like the other command modules, each command parses, calls one library function
(mstore.transfer.verbs, mstore.ops.remote_config) and renders the result. Everything
beyond typer is imported inside the commands, so `mstore --help` loads none of it
(boto3 is imported only when an s3:// remote is opened).

This module deliberately has no `from __future__ import annotations`: typer reads the
annotations of the functions defined here.
"""

from typing import Annotated, Any

import typer

from mstore.cli import completion, remote_names
from mstore.cli.clone_command import clone
from mstore.cli.common import DryRunOption, JsonOption, add_command
from mstore.cli.remote_options import AllowDowngradeOption, JobsOption

RemoteWords = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[REMOTE] [REF]...",
        help="A configured remote or a URL (default: origin), then refs (default: all).",
        autocompletion=completion.when_completing(completion.remote_or_ref_names),
    ),
]


def register(app: typer.Typer) -> None:
    """Add push, pull, clone and the `remote` group to `app`."""
    add_command(app, "push", push)
    add_command(app, "pull", pull)
    add_command(app, "clone", clone)
    remote_names.register(app)


def push(
    ctx: typer.Context,
    words: RemoteWords = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Move remote refs even from values this store has not seen there "
            "(recorded in the push log, see `mstore remote show`).",
        ),
    ] = False,
    jobs: JobsOption = 8,
    rollout: Annotated[
        str | None,
        typer.Option(
            "--rollout",
            metavar="WINDOW",
            help="Roll the moved refs out over WINDOW (90s, 30m, 2h, 1d): followers switch "
            "one after another, in their wariness order, not at once (`mstore rollout`).",
        ),
    ] = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Send refs and the objects they need to a remote; only what it lacks is sent.

    A remote ref moves only from the value this store last saw there (at its last push,
    pull or clone; `mstore remote show`): if another store moved it since, exit 5
    (pull, then push again). Data objects go first, then manifests, then refs, each by
    compare-and-swap.
    """
    from mstore.cli import output
    from mstore.cli.common import open_repo, session
    from mstore.transfer.rollout import parse_window
    from mstore.transfer.verbs import push as run

    repo = open_repo(ctx)
    label, remote, refs = _remote_for(repo, words)
    try:
        with output.byte_progress("pushing", session(ctx).quiet) as (start, advance):
            window = parse_window(rollout) if rollout is not None else None
            result = run(
                repo, remote, refs or None, force, dry_run, advance, start, jobs, rollout=window
            )
    finally:
        remote.close()
    if as_json:
        output.emit_json(result.to_json())
        return
    prefix = "would " if dry_run else ""
    for change in result.refs:
        if change.old is None:
            output.say(f"{prefix}create {label}/{change.ref} -> {output.short(change.new)}")
        elif change.changed:
            forced = " (forced: not the value last seen there)" if change.forced else ""
            output.say(
                f"{prefix}move {label}/{change.ref}: {output.short(change.old)} -> "
                f"{output.short(change.new)}{forced}"
            )
    if not result.changed:
        output.say(f"{label} is up to date")
    if not session(ctx).quiet:
        for text in result.notes:
            output.note(text)
    verb = "would send" if dry_run else "sent"
    output.say(
        f"{verb} {result.objects_sent} objects ({output.human_bytes(result.bytes_sent)} of "
        f"{output.human_bytes(result.bytes_total)}); {result.objects_present} already on {label}"
    )


def pull(
    ctx: typer.Context,
    words: RemoteWords = None,
    checkout: Annotated[
        bool,
        typer.Option("--checkout", help="Then make the pulled REF (exactly one) the active one."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Move local refs even away from versions never pushed."),
    ] = False,
    jobs: JobsOption = 8,
    allow_downgrade: AllowDowngradeOption = False,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Fetch refs and their objects from a remote; move the local refs in one transaction.

    Every object is hashed before it is stored: a corrupt one fails the pull (exit 3)
    with nothing changed. A ref this store's trust rules guard is followed only with a
    statement they accept, and a version passing the import allowlist (exit 7
    otherwise, nothing changed). On a serving host, `mstore pull production && mstore
    checkout production` (or `mstore pull production --checkout`) deploys what was
    promoted.
    """
    from mstore.cli import output
    from mstore.cli.common import open_repo, render_move, session
    from mstore.errors import UsageError
    from mstore.ops.switch import checkout as checkout_ref
    from mstore.transfer.verbs import pull as run
    from mstore.workflow.policy import PRODUCTION

    repo = open_repo(ctx)
    label, remote, refs = _remote_for(repo, words)
    if checkout and len(refs) != 1:
        raise UsageError(
            f"--checkout needs exactly one REF, e.g. `mstore pull {PRODUCTION} --checkout`"
        )
    try:
        with output.byte_progress("pulling", session(ctx).quiet) as (start, advance):
            result = run(
                repo,
                remote,
                refs or None,
                force,
                dry_run,
                advance,
                start,
                jobs,
                label,
                allow_downgrade=allow_downgrade,
            )
    finally:
        remote.close()
    switched = checkout_ref(repo, refs[0]) if checkout and not dry_run else None
    if as_json:
        document: dict[str, Any] = result.to_json()
        if switched is not None:
            document["checkout"] = switched.to_json()
        output.emit_json(document)
        return
    render_move(ctx, result.move, False)
    if not result.move.changed:
        output.say(f"already up to date with {label}")
    verb = "would receive" if dry_run else "received"
    output.say(
        f"{verb} {result.objects_received} objects "
        f"({output.human_bytes(result.bytes_received)} of data, "
        f"{output.human_bytes(result.bytes_fetched)} fetched) from {label}"
    )
    if switched is not None:
        render_move(ctx, switched, False)
    elif checkout:
        output.say(f"would check out {refs[0]}")


def _remote_for(repo: Any, words: list[str] | None) -> tuple[str, Any, list[str]]:
    """(label shown, opened Remote, refs) for `[REMOTE] [REF...]`."""
    from mstore.remotes import open_remote, select_remote

    name, url, refs = select_remote(repo.config.remotes, words or [])
    return name or url, open_remote(url), refs
