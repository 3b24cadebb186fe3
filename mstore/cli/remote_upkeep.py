"""`mstore remote upgrade|stats|verify|prune`: look after what a remote stores.

This module deliberately has no `from __future__ import annotations`: typer reads the
annotations of the functions defined here.
"""

from collections.abc import Callable
from typing import Annotated, Any

import typer

from mstore.cli import completion
from mstore.cli.common import JsonOption, add_command

RemoteArgument = Annotated[
    str,
    typer.Argument(
        metavar="REMOTE",
        help="A configured remote or a URL.",
        autocompletion=completion.when_completing(completion.remote_names),
    ),
]


def register(remote_app: typer.Typer) -> None:
    add_command(remote_app, "upgrade", remote_upgrade)
    add_command(remote_app, "stats", remote_stats)
    add_command(remote_app, "verify", remote_verify)
    add_command(remote_app, "prune", remote_prune)


def _open(ctx: typer.Context, name: str) -> Any:
    from mstore.remotes import is_location, open_remote

    if is_location(name):
        return open_remote(name)
    from mstore.cli.common import open_repo
    from mstore.errors import NotFoundError

    remotes = open_repo(ctx).config.remotes
    if name not in remotes:
        raise NotFoundError(f"no remote named {name!r} (see `mstore remote list`)")
    return open_remote(remotes[name])


def _on_remote(ctx: typer.Context, name: str, work: Callable[[Any], Any], as_json: bool) -> Any:
    """Run `work` on the remote `name` and close it; with `as_json`, print the result's
    JSON and return None (nothing else to show), else return the result."""
    from mstore.cli import output

    remote = _open(ctx, name)
    try:
        result = work(remote)
    finally:
        remote.close()
    if as_json:
        output.emit_json(result.to_json())
        return None
    return result


def remote_upgrade(ctx: typer.Context, name: RemoteArgument, as_json: JsonOption = False) -> None:
    """Upgrade a remote to format 4 (compressed chunks, signed refs): rewrites its marker
    only, giving it a repository id (its own, else this store's)."""
    from mstore.cli import output
    from mstore.cli.common import open_repo
    from mstore.transfer.repository import store_repository
    from mstore.transfer.upkeep import upgrade

    repo = open_repo(ctx)
    result = _on_remote(
        ctx,
        name,
        lambda remote: upgrade(remote, store_repository(repo, remote.repository())),
        as_json,
    )
    if result is None:
        return
    if result.old_format == result.new_format:
        output.say(f"{result.remote} already uses format {result.new_format}")
    else:
        output.say(f"upgraded {result.remote}: format {result.old_format} -> {result.new_format}")


def remote_stats(ctx: typer.Context, name: RemoteArgument, as_json: JsonOption = False) -> None:
    """Logical bytes of the versions a remote's refs name, against the bytes it stores."""
    from mstore.cli import output
    from mstore.transfer.upkeep import stats

    result = _on_remote(ctx, name, stats, as_json)
    if result is None:
        return
    h = output.human_bytes
    output.say(
        f"{result.remote}: {result.versions} versions, {h(result.logical_bytes)} logical "
        f"({h(result.unique_bytes)} as whole files), {h(result.stored_bytes)} stored in "
        f"{result.packs} packs and objects: {100 * result.ratio:.1f}% of logical "
        f"(dedup {1 / result.ratio if result.stored_bytes else 0:.2f}x)"
    )
    _say_strays(result.strays)


def remote_verify(
    ctx: typer.Context,
    name: RemoteArgument,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Send again, from this store, what the damage lost (new packs and recipes; "
            "damaged packs are no longer reused, and prune removes them).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Hash everything the remote's refs need: objects, recipes, packs, indexes (exit 3
    if anything is damaged). With --repair, first send again from this store whatever
    the damage lost; exit 3 if some of it is not in this store."""
    from mstore.cli import output
    from mstore.cli.common import open_repo
    from mstore.transfer.upkeep import verify

    store = open_repo(ctx) if repair else None
    result = _on_remote(ctx, name, lambda remote: verify(remote, repair_from=store), as_json)
    if result is None:
        return
    if result.repaired:
        output.say(f"sent again {len(result.repaired)} damaged objects to {result.remote}")
    output.say(
        f"{result.remote}: {result.objects} objects, {result.packs} packs, {result.chunks} "
        f"chunks checked; no damage"
    )
    _say_strays(result.strays)


def _say_strays(strays: list[str]) -> None:
    """Files mstore does not write and never touches (e.g. an NFS `.nfs...` file)."""
    from mstore.cli import output

    for stray in strays:
        output.note(f"stray (not written by mstore, left alone): {stray}")


def remote_prune(
    ctx: typer.Context,
    name: RemoteArgument,
    grace_hours: Annotated[
        float,
        typer.Option(
            "--grace-hours", metavar="HOURS", min=0.0, help="Keep anything younger than this."
        ),
    ] = 24.0,
    as_json: JsonOption = False,
) -> None:
    """Delete packs and recipes no remote ref needs. A first run marks them; a run at
    least the grace period later deletes those still unneeded (safe against pushes
    running meanwhile, see docs/REMOTES.md)."""
    from mstore.cli import output
    from mstore.transfer.upkeep import prune

    result = _on_remote(ctx, name, lambda remote: prune(remote, grace_hours * 3600.0), as_json)
    if result is None:
        return
    if result.deleted_packs or result.deleted_recipes:
        output.say(
            f"deleted {result.deleted_packs} packs ({output.human_bytes(result.bytes_freed)}) "
            f"and {result.deleted_recipes} recipes"
        )
    if result.marked_packs or result.marked_recipes:
        output.say(
            f"marked {result.marked_packs} packs and {result.marked_recipes} recipes no ref "
            f"needs; run prune again after the grace period to delete them"
        )
    elif result.waiting is not None:
        output.say(f"marked items may be deleted in {result.waiting / 3600:.1f} h; run again then")
    elif not (result.deleted_packs or result.deleted_recipes):
        output.say("nothing to prune")
