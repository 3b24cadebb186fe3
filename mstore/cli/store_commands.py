"""Commands on the store itself: relink (move to another link mode) and destroy."""

from __future__ import annotations

from typing import Annotated

import typer

from mstore.cli import output
from mstore.cli.common import DryRunOption, JsonOption, add_command, open_repo, session
from mstore.errors import RefusedError


def register(app: typer.Typer) -> None:
    """Add relink and destroy to `app`."""
    add_command(app, "relink", relink)
    add_command(app, "destroy", destroy)


def relink(
    ctx: typer.Context,
    link_mode: Annotated[
        str,
        typer.Option(
            "--link-mode",
            metavar="MODE",
            help="The mode to move to: auto (probed now), copy, reflink, hardlink, symlink.",
        ),
    ] = "auto",
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Rebuild every view in another link mode and reclaim copies/ (readers never see a
    partial version)."""
    from mstore.ops.relink import relink as run

    result = run(open_repo(ctx), link_mode, dry_run)
    if as_json:
        output.emit_json(result.to_json())
        return
    render_relink(result)


def render_relink(result: object) -> None:
    from mstore.ops.relink import RelinkResult

    assert isinstance(result, RelinkResult)
    verb = "would move" if result.dry_run else "moved"
    output.say(
        f"link mode: {describe_mode(result.previous_mode, result.previous_protection)} -> "
        f"{describe_mode(result.link_mode, result.protection)}"
        + (f" ({result.reason})" if result.reason else "")
    )
    if result.relinked:
        output.say(f"{verb} {len(result.relinked)} views: {', '.join(result.relinked)}")
    if result.removed_views or result.removed_copies:
        output.say(
            f"{'would remove' if result.dry_run else 'removed'} {len(result.removed_views)} "
            f"old views and {result.removed_copies} copies "
            f"({output.human_bytes(result.copy_bytes)})"
        )
    for note in result.notes:
        output.say(note)


def describe_mode(link_mode: str, protection: str | None) -> str:
    return f"{link_mode} ({protection})" if protection else link_mode


def destroy(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Delete the store on purpose: .mstore/ (protection cleared) and its links in models/."""
    from mstore.ops.destroy import destroy as run
    from mstore.ops.destroy import find_target, plan_destroy
    from mstore.repo import Repo

    state = session(ctx)
    target = find_target(state.store)  # a store, or a half-made one (no config)
    if isinstance(target, Repo):
        target.lock_timeout = state.lock_timeout
        state.repo = target
    half = " (a half-made store: no config)" if not isinstance(target, Repo) else ""
    if not dry_run and not yes:
        plan = plan_destroy(target)
        prompt = (
            f"delete {plan.store}{half} ({plan.files} files, {output.human_bytes(plan.bytes)}) "
            f"and {len(plan.links)} links under models/? every stored version is lost"
        )
        if not typer.confirm(prompt, default=False, err=True):
            raise RefusedError("nothing deleted (pass --yes to skip this question)")
    result = run(target, dry_run, state.lock_timeout)
    if as_json:
        output.emit_json(result.to_json())
        return
    verb = "would delete" if dry_run else "deleted"
    output.say(
        f"{verb} {result.store}{half} ({result.files} files, "
        f"{output.human_bytes(result.bytes)}) and {len(result.links)} links under models/"
    )
