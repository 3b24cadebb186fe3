"""`mstore remote add|list|remove|show`: the names of remotes, and what this store last
saw on each. Nothing here contacts a remote.

This module deliberately has no `from __future__ import annotations`: typer reads the
annotations of the functions defined here.
"""

from typing import Annotated

import typer

from mstore.cli import completion, remote_upkeep
from mstore.cli.common import JsonOption, add_command


def register(app: typer.Typer) -> None:
    """Add the `remote` group to `app`."""
    remote_app = typer.Typer(
        help="Name remotes (S3 buckets or directories) to push to and pull from.",
        no_args_is_help=True,
    )
    add_command(remote_app, "add", remote_add)
    add_command(remote_app, "list", remote_list)
    add_command(remote_app, "remove", remote_remove)
    add_command(remote_app, "show", remote_show)
    remote_upkeep.register(remote_app)  # upgrade stats verify prune
    app.add_typer(remote_app, name="remote")


def remote_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Name for the remote, e.g. origin.")],
    url: Annotated[
        str,
        typer.Argument(metavar="URL", help="s3://BUCKET/PREFIX, file:///PATH or a directory."),
    ],
) -> None:
    """Add remote NAME at URL (nothing is contacted until push or pull)."""
    from mstore.cli import output
    from mstore.cli.common import open_repo
    from mstore.ops.remote_config import add_remote

    stored = add_remote(open_repo(ctx), name, url)
    output.say(f"added remote {name}: {stored}")


def remote_list(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every configured remote and its URL."""
    from mstore.cli import output
    from mstore.cli.common import open_repo
    from mstore.ops.remote_config import list_remotes

    remotes = list_remotes(open_repo(ctx))
    if as_json:
        output.emit_json([{"name": n, "url": u} for n, u in remotes.items()])
        return
    if remotes:
        output.say(output.table(["NAME", "URL"], [[n, u] for n, u in remotes.items()]))


def remote_remove(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            metavar="REMOTE",
            help="Remote to forget.",
            autocompletion=completion.when_completing(completion.remote_names),
        ),
    ],
) -> None:
    """Forget remote NAME (the remote itself is not touched)."""
    from mstore.cli import output
    from mstore.cli.common import open_repo
    from mstore.ops.remote_config import remove_remote

    url = remove_remote(open_repo(ctx), name)
    output.say(f"removed remote {name} ({url})")


def remote_show(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            metavar="REMOTE",
            help="A configured remote or a URL.",
            autocompletion=completion.when_completing(completion.remote_names),
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """What this store last saw on remote NAME (contacts nothing): the value of each
    remote ref at the last push, pull or clone, which push moves it from; recent pushes."""
    from mstore.cli import output
    from mstore.cli.common import open_repo
    from mstore.ops.remote_config import show_remote

    status = show_remote(open_repo(ctx), name)
    if as_json:
        output.emit_json(status.to_json())
        return
    output.say(f"remote {status.name or status.url}: {status.url}")
    seen = status.tracking.seen
    pending = status.tracking.pushing
    if seen or pending:
        rows = [
            [ref, output.short(seen[ref]) if ref in seen else "-", _pending(pending.get(ref))]
            for ref in sorted(set(seen) | set(pending))
        ]
        output.say(output.table(["REF", "LAST SEEN", "NOTE"], rows))
    else:
        output.say("no ref seen there yet (push, pull or clone records them)")
    for entry in status.pushes:
        output.say(
            f"{entry.when}  {entry.action:<12} {entry.ref}: {output.short(entry.old)} -> "
            f"{output.short(entry.new)}  ({entry.who})"
        )


def _pending(value: str | None) -> str:
    from mstore.cli import output

    return f"push of {output.short(value)} unfinished" if value else ""
