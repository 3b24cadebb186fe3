"""`mstore rollout status|pause|resume|abort [REMOTE] REF`: a staged rollout, as the
remote ref's statement describes it (mstore.transfer.rollouts), with the fleet's view
of it. A rollout starts with `mstore push --rollout WINDOW`.

Like the other command modules, this one has no `from __future__ import annotations`
(typer reads the annotations) and imports the library inside the commands.
"""

from typing import Annotated, Any

import typer

from mstore.cli import completion
from mstore.cli.common import JsonOption, add_command

Words = Annotated[
    list[str],
    typer.Argument(
        metavar="[REMOTE] REF",
        help="A configured remote (default: origin), then the ref rolled out.",
        autocompletion=completion.when_completing(completion.remote_or_ref_names),
    ),
]


def register(app: typer.Typer) -> None:
    """Add the `rollout` group to `app`."""
    rollout_app = typer.Typer(
        help="Follow, pause, resume or abort a staged rollout (started by push --rollout).",
        no_args_is_help=True,
    )
    for command in (status, pause, resume, abort):
        add_command(rollout_app, command.__name__, command)
    app.add_typer(rollout_app, name="rollout")


def status(ctx: typer.Context, words: Words, as_json: JsonOption = False) -> None:
    """The rollout's window, how far it is, and which hosts run what (`mstore fleet`)."""
    _run(ctx, words, "status", as_json)


def pause(ctx: typer.Context, words: Words, as_json: JsonOption = False) -> None:
    """Switch no further host (those that switched stay): a new statement of the ref."""
    _run(ctx, words, "pause", as_json)


def resume(ctx: typer.Context, words: Words, as_json: JsonOption = False) -> None:
    """Go on from where the rollout was paused: a new statement, its start moved."""
    _run(ctx, words, "resume", as_json)


def abort(ctx: typer.Context, words: Words, as_json: JsonOption = False) -> None:
    """Roll the ref back to the version the rollout replaced, here and on the remote,
    at once: hosts that switched go back, the others never switch."""
    _run(ctx, words, "abort", as_json)


def _run(ctx: typer.Context, words: list[str], action: str, as_json: bool) -> None:
    from mstore.cli import output
    from mstore.cli.common import open_repo
    from mstore.errors import UsageError
    from mstore.remotes import DEFAULT_REMOTE, open_remote
    from mstore.transfer import rollouts

    repo = open_repo(ctx)
    if len(words) not in (1, 2):
        raise UsageError("name the ref rolled out: mstore rollout status [REMOTE] REF")
    name, ref = (DEFAULT_REMOTE, words[0]) if len(words) == 1 else (words[0], words[1])
    url = repo.config.remotes.get(name)
    if url is None:
        raise UsageError(f"no remote named {name!r} (see `mstore remote list`)")
    remote = open_remote(url)
    try:
        if action == "status":
            report: Any = rollouts.rollout_status(remote, ref)
        else:
            report = getattr(rollouts, f"{action}_rollout")(repo, remote, ref)
    finally:
        remote.close()
    fleet = _fleet_lines(repo, name, ref) if action == "status" else []
    if as_json:
        output.emit_json({**report.to_json(), "fleet": fleet})
        return
    output.say(_describe(report, output))
    for line in fleet:
        output.say(line)


def _describe(report: Any, output: Any) -> str:
    if report.action == "abort":
        return (
            f"aborted: {report.ref} is back on {output.short(report.manifest)} "
            f"(from {output.short(report.previous)}), here and on the remote"
        )
    if report.rollout is None:
        return f"{report.ref} is {output.short(report.manifest)}, with no rollout"
    window = report.rollout
    state = "paused" if window.paused else "rolling out"
    done = f", {report.elapsed:.0%} of the window passed" if report.elapsed is not None else ""
    return (
        f"{report.ref}: {output.short(report.manifest)} {state} over {window.window} s from "
        f"{window.start}{done} (replaces {output.short(report.previous)})"
    )


def _fleet_lines(repo: Any, name: str, ref: str) -> list[str]:
    from mstore.transfer.fleet import fleet_status

    return [line for line in fleet_status(repo, name).summary() if line.startswith(f"{ref}:")]
